package io.tinyllamaj.kernels;

/**
 * The four projections of a transformer block, named for {@link Backend#blockMatmulForward}: a
 * backend may treat them differently (the CUDA backend's fp8-mixed runs q/k/v, gate/up and down
 * in FP8 and the attention output in bf16), and (projection, layer) names the pair of a forward
 * and its backward.
 */
public enum Projection {
    QKV, ATTENTION_OUTPUT, GATE_UP, DOWN
}
