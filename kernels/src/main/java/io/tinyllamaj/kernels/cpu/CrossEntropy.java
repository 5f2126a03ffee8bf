package io.tinyllamaj.kernels.cpu;

/**
 * Softmax cross-entropy over the vocabulary, fused with its backward as in llm.c:
 *   loss_i = logsumexp(z_i) - z_i[y_i];  dz_i = (softmax(z_i) - onehot(y_i)) * scale
 * With a z-loss coefficient c (PaLM's auxiliary loss c * logsumexp(z_i)^2, which keeps the
 * softmax normaliser near 1) the gradient gains 2 c lse_i softmax(z_i) * scale, and lse_i is
 * written out so the caller can report the term; loss_i stays the cross-entropy.
 * The gradient overwrites the logits, so no second [n, V] buffer exists; each logit costs one
 * exp (kept in place between the sum and the normalisation). Sums run in double: a 32000-way
 * logsumexp in fp32 loses digits the 1e-5 loss tolerance needs.
 */
final class CrossEntropy {

    private CrossEntropy() {
    }

    static void forwardBackward(CpuTensor logits, CpuTensor losses, int[] targets, int n, int v, float scale) {
        run(logits, losses, targets, n, v, scale, true, 0f, null, null);
    }

    /** As {@link #forwardBackward} with the z-loss term of coefficient {@code zLoss}; {@code logZ[i]} = lse_i (0 where ignored). */
    static void forwardBackward(CpuTensor logits, CpuTensor losses, int[] targets, int n, int v, float scale, float zLoss,
                                CpuTensor logZ) {
        run(logits, losses, targets, n, v, scale, true, zLoss, logZ, null);
    }

    /** Losses, and with margins (may be null) margins[i] = max_j z_ij - z_i[y_i] (0 where ignored). */
    static void forward(CpuTensor losses, CpuTensor margins, CpuTensor logits, int[] targets, int n, int v) {
        run(logits, losses, targets, n, v, 0f, false, 0f, null, margins);
    }

    private static void run(CpuTensor logits, CpuTensor losses, int[] targets, int n, int v, float scale, boolean backward,
                            float zLoss, CpuTensor logZ, CpuTensor margins) {
        float[] z = logits.data(), out = losses.data();
        int zo = logits.offset(), lo = losses.offset();
        Parallel.forChunks(n, 8L * n * v, (start, end) -> {
            for (int i = start; i < end; i++) {
                int row = zo + i * v;
                int target = targets[i];
                if (target >= v) {
                    throw new IllegalArgumentException("target id " + target + " at position " + i
                            + " is outside the vocabulary [0, " + v + ")");
                }
                if (target < 0) {
                    out[lo + i] = 0f;
                    if (logZ != null) {
                        logZ.data()[logZ.offset() + i] = 0f;
                    }
                    if (margins != null) {
                        margins.data()[margins.offset() + i] = 0f;
                    }
                    if (backward) {
                        java.util.Arrays.fill(z, row, row + v, 0f);
                    }
                    continue;
                }
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < v; j++) {
                    max = Math.max(max, z[row + j]);
                }
                float targetLogit = z[row + target];
                if (margins != null) {
                    margins.data()[margins.offset() + i] = max - targetLogit;
                }
                double sum = 0;
                if (backward) {
                    // one exp per logit: keep exp(z - max) in place, normalise in a second pass
                    for (int j = 0; j < v; j++) {
                        float e = (float) Math.exp(z[row + j] - max);
                        z[row + j] = e;
                        sum += e;
                    }
                } else {
                    for (int j = 0; j < v; j++) {
                        sum += Math.exp(z[row + j] - max);
                    }
                }
                double lse = Math.log(sum) + max;
                out[lo + i] = (float) (lse - targetLogit);
                if (logZ != null) {
                    logZ.data()[logZ.offset() + i] = (float) lse;
                }
                if (backward) {
                    float factor = (float) (scale * (1 + 2 * (double) zLoss * lse) / sum);
                    for (int j = 0; j < v; j++) {
                        z[row + j] *= factor;
                    }
                    z[row + target] -= scale;
                }
            }
        });
    }
}
