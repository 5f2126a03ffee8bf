package io.tinyllamaj.kernels.cuda;

import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.F32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;

/**
 * rmsnorm.cu: the norm (and the residual add fused before it) and its backward, whose dweight is
 * summed per block into partials and then over the blocks in a fixed order (no atomics). Rows per
 * block, the forward's threads and the reduce's block size come from the module's constants.
 */
final class RmsNormKernels {

    static final KernelSignature FORWARD = KernelSignature.of("rmsnorm_forward", PTR, PTR, PTR, PTR, I32, I32, F32, PTR).withBf16();
    static final KernelSignature RESIDUAL_FORWARD = KernelSignature.of("residual_rmsnorm_forward", PTR, PTR, PTR, PTR, PTR, PTR,
            I32, I32, F32, PTR).withBf16();
    static final KernelSignature BACKWARD = KernelSignature.of(List.of("rmsnorm_backward", "rmsnorm_backward_vec"),
            PTR, PTR, PTR, PTR, PTR, PTR, PTR, I32, I32, PTR).withBf16();
    static final KernelSignature DWEIGHT_REDUCE = KernelSignature.of("rmsnorm_dweight_reduce", PTR, PTR, I32, I32, I32);
    static final List<KernelSignature> SIGNATURES = List.of(FORWARD, RESIDUAL_FORWARD, BACKWARD, DWEIGHT_REDUCE);
    static final String FORWARD_ROWS = "rmsnorm_forward_rows_per_block", FORWARD_THREADS = "rmsnorm_forward_threads",
            BACKWARD_ROWS = "rmsnorm_backward_rows_per_block", REDUCE_THREADS = "rmsnorm_dweight_reduce_threads";
    static final List<String> CONSTANTS = List.of(FORWARD_ROWS, FORWARD_THREADS, BACKWARD_ROWS, REDUCE_THREADS);
    /** The one-value-per-thread backward keeps a row of dweight partials in shared memory: 48 KB by default. */
    static final int MAX_COLUMNS = 48 * 1024 / Float.BYTES;
    private static final int VEC_MAX_COLUMNS = 4096; // the 16-byte backward: a thread per 4 columns, at most 1024 threads

    private final Twin forward, residualForward, backward, backwardVec;
    private final Kernel reduce;
    private final int forwardRows, forwardThreads, backwardRows, reduceThreads;
    private final Scratch partials;

    RmsNormKernels(Gpu gpu) {
        KernelModule k = gpu.kernels();
        forward = Twin.load(k, FORWARD, "rmsnorm_forward");
        residualForward = Twin.load(k, RESIDUAL_FORWARD, "residual_rmsnorm_forward");
        backward = Twin.load(k, BACKWARD, "rmsnorm_backward");
        backwardVec = Twin.load(k, BACKWARD, "rmsnorm_backward_vec");
        reduce = k.kernel(DWEIGHT_REDUCE);
        forwardRows = k.constant(FORWARD_ROWS);
        forwardThreads = k.constant(FORWARD_THREADS);
        backwardRows = k.constant(BACKWARD_ROWS);
        reduceThreads = k.constant(REDUCE_THREADS);
        partials = new Scratch(gpu.arena());
    }

    /**
     * out = inp * rstd * weight per row (four warps a row); out fp32 or bf16, everything else fp32.
     * amax: 0, or 4 bytes of device memory that max |out| joins (unsigned float bits: zero it first).
     */
    void forward(CudaTensor out, long rstd, long inp, long weight, int n, int c, float eps, long amax) {
        forward.of(out).args().ptr(out.address()).ptr(rstd).ptr(inp).ptr(weight).i32(n).i32(c).f32(eps).ptr(amax)
                .launch((n + forwardRows - 1) / forwardRows, 1, 1, forwardThreads, 0);
    }

    /** residual = x + delta (written once), then out = rmsnorm(residual); delta has out's storage type; amax as {@link #forward}'s. */
    void residualForward(long residual, CudaTensor out, long rstd, long x, long delta, long weight, int n, int c, float eps, long amax) {
        residualForward.of(out).args().ptr(residual).ptr(out.address()).ptr(rstd).ptr(x).ptr(delta).ptr(weight).i32(n).i32(c).f32(eps)
                .ptr(amax)
                .launch((n + forwardRows - 1) / forwardRows, 1, 1, forwardThreads, 0);
    }

    /**
     * dinp += ..., dweight += ... (= when !accumulateWeight); copyBf16: where the new dinp also goes,
     * rounded to bf16, or 0. dout (a matmul input's gradient) fp32 or bf16; everything else fp32.
     * amax: 0, or (with copyBf16) 4 bytes of device memory that max |copy| joins (unsigned float
     * bits: zero it first).
     */
    void backward(long dinp, long copyBf16, long dweight, CudaTensor dout, long inp, long weight, long rstd, int n, int c,
                  boolean accumulateWeight, long amax) {
        if (c > MAX_COLUMNS) {
            throw new IllegalArgumentException("rmsnormBackward: at most " + MAX_COLUMNS + " columns, got " + c);
        }
        int blocks = Math.max(1, (n + backwardRows - 1) / backwardRows);
        // per-block dweight partials [blocks, c], summed in a fixed order by the reduce (deterministic)
        long partial = partials.atLeast((long) blocks * c * Float.BYTES);
        long dy = dout.address();
        if (c % 4 == 0 && c <= VEC_MAX_COLUMNS && ((dinp | inp | weight) & 15) == 0 && (copyBf16 & 7) == 0
                && dy % (4L * dout.elementBytes()) == 0) {
            // the vectorized form: a thread per 4 columns
            backwardVec.of(dout).args().ptr(dinp).ptr(copyBf16).ptr(partial).ptr(dy).ptr(inp).ptr(weight).ptr(rstd).i32(n).i32(c)
                    .ptr(amax).launch(blocks, 1, 1, (c / 4 + 31) / 32 * 32, 0);
        } else {
            backward.of(dout).args().ptr(dinp).ptr(copyBf16).ptr(partial).ptr(dy).ptr(inp).ptr(weight).ptr(rstd).i32(n).i32(c)
                    .ptr(amax).launch(blocks, 1, 1, blockFor(c), c * Float.BYTES);
        }
        reduce.args().ptr(dweight).ptr(partial).i32(blocks).i32(c).i32(accumulateWeight ? 1 : 0)
                .launch((c + 31) / 32, 1, 1, reduceThreads, 0);
    }

    private static int blockFor(int c) {
        return c >= 1024 ? 512 : c >= 256 ? 256 : c >= 128 ? 128 : c >= 64 ? 64 : 32;
    }
}
