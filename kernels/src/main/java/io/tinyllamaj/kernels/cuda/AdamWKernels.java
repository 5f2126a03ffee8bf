package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.AdamWStep;

import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.F32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I64;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;

/** adamw.cu: one AdamW step over flat fp32 runs, optionally writing the new values rounded to bf16 too. Grid-stride. */
final class AdamWKernels {

    static final KernelSignature UPDATE = KernelSignature.of("adamw_update", PTR, PTR, PTR, PTR, PTR, I64,
            F32, F32, F32, F32, F32, F32, F32, F32, I32);
    static final List<KernelSignature> SIGNATURES = List.of(UPDATE);

    private final Kernel update;

    AdamWKernels(Gpu gpu) {
        update = gpu.kernels().kernel(UPDATE);
    }

    /**
     * params, grads, m, v: n fp32 values each; copyBf16: where the new values also go, rounded to
     * bf16, or 0. The bias corrections are computed here as the CPU reference computes them.
     */
    void update(long params, long copyBf16, long grads, long m, long v, long n, AdamWStep s) {
        float correction1 = (float) (1 - Math.pow(s.beta1(), s.step()));
        float correction2 = (float) (1 - Math.pow(s.beta2(), s.step()));
        // 16-byte accesses when every base allows them (slices of a flat buffer may start anywhere)
        int vec4 = ((params | grads | m | v) & 15) == 0 && (copyBf16 & 7) == 0 ? 1 : 0;
        update.args().ptr(params).ptr(copyBf16).ptr(grads).ptr(m).ptr(v).i64(n).f32(s.lr()).f32(s.beta1()).f32(s.beta2())
                .f32(s.eps()).f32(s.weightDecay()).f32(correction1).f32(correction2).f32(s.gradScale()).i32(vec4)
                .launchFlat(vec4 == 1 ? (n + 3) / 4 : n);
    }
}
