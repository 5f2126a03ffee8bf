package io.tinyllamaj.kernels.cuda;

import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.F32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;

/**
 * cross_entropy.cu: softmax cross-entropy over the vocabulary, one block per row, fused with its
 * backward (the logits replaced by their gradient). Target ids are checked and uploaded here.
 */
final class CrossEntropyKernels {

    static final KernelSignature LOSS = KernelSignature.of("cross_entropy", PTR, PTR, PTR, PTR, I32, I32, F32, I32, I32).withBf16();
    static final List<KernelSignature> SIGNATURES = List.of(LOSS);
    private static final int THREADS = 512; // any multiple of 32 up to 1024

    private final Gpu gpu;
    private final Twin loss;
    private final Scratch targets;

    CrossEntropyKernels(Gpu gpu) {
        this.gpu = gpu;
        loss = Twin.load(gpu.kernels(), LOSS, "cross_entropy");
        targets = new Scratch(gpu.arena());
    }

    /**
     * losses[i] of logits [n, v] (fp32 or bf16) against ids[i] (negative: ignored); margins (0: none)
     * gets max_j z_ij - z_i[ids[i]]; with backward, the logits become (softmax - onehot) * scale.
     */
    void run(CudaTensor logits, long losses, long margins, int[] ids, int n, int v, float scale, boolean backward) {
        for (int i = 0; i < n; i++) {
            if (ids[i] >= v) {
                throw new IllegalArgumentException("target id " + ids[i] + " at position " + i + " is outside the vocabulary [0, " + v + ")");
            }
        }
        long device = targets.atLeast((long) n * Integer.BYTES);
        gpu.staging().upload(device, ids, n, gpu.stream());
        CudaBackend.checkLength(logits, (long) n * v);
        int wide = 16 / logits.elementBytes();
        int vec = v % wide == 0 && (logits.address() & 15) == 0 ? wide : 1; // 16-byte accesses when every row allows them
        loss.of(logits).args().ptr(logits.address()).ptr(losses).ptr(margins).ptr(device).i32(n).i32(v).f32(scale).i32(backward ? 1 : 0).i32(vec)
                .launch(n, 1, 1, THREADS, 0);
    }
}
