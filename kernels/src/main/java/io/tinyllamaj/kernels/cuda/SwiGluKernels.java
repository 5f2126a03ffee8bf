package io.tinyllamaj.kernels.cuda;

import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;

/**
 * swiglu.cu: silu(gate) * up over the fused gate|up rows and its backward. A 2-D grid (column
 * chunks x rows, rows grid-strided); 16 bytes of every operand per thread when every row start is
 * 16-byte aligned, else one value. Either may also measure the amax of what it writes, for an
 * FP8 matmul that reads it next (fp8-mixed); the backward may also write the forward's output.
 */
final class SwiGluKernels {

    static final KernelSignature FORWARD = KernelSignature.of("swiglu_forward", PTR, PTR, I32, I32, I32, PTR).withBf16();
    static final KernelSignature BACKWARD = KernelSignature.of("swiglu_backward", PTR, PTR, PTR, PTR, I32, I32, I32, PTR).withBf16();
    static final List<KernelSignature> SIGNATURES = List.of(FORWARD, BACKWARD);
    private static final int THREADS = 128; // any block size
    private static final int MAX_GRID = 65535;

    private final Twin forward, backward;

    SwiGluKernels(Gpu gpu) {
        forward = Twin.load(gpu.kernels(), FORWARD, "swiglu_forward");
        backward = Twin.load(gpu.kernels(), BACKWARD, "swiglu_backward");
    }

    /**
     * out [n, hidden] = silu(gate) * up, h [n, 2 hidden] = gate | up; one storage type. amax: 0, or
     * 4 bytes of device memory that max |out| joins (as unsigned float bits: zero it first).
     */
    void forward(CudaTensor out, CudaTensor h, int n, int hidden, long amax) {
        if (n == 0) {
            return;
        }
        int vec = vec(out, hidden, out.address() | h.address());
        forward.of(out).args().ptr(out.address()).ptr(h.address()).i32(n).i32(hidden).i32(vec).ptr(amax).launch(columns(hidden, vec),
                Math.min(n, MAX_GRID), 1, THREADS, 0);
    }

    /**
     * dh [n, 2 hidden] overwritten from dout [n, hidden] and h; one storage type. out: null, or
     * [n, hidden] that gets {@link #forward}'s output bit for bit in the same pass. amax: as
     * {@link #forward}'s, for dh.
     */
    void backward(CudaTensor dh, CudaTensor out, CudaTensor dout, CudaTensor h, int n, int hidden, long amax) {
        if (n == 0) {
            return;
        }
        long outAddress = out == null ? 0 : out.address();
        int vec = vec(dh, hidden, dh.address() | outAddress | dout.address() | h.address());
        backward.of(dh).args().ptr(dh.address()).ptr(outAddress).ptr(dout.address()).ptr(h.address()).i32(n).i32(hidden).i32(vec)
                .ptr(amax).launch(columns(hidden, vec), Math.min(n, MAX_GRID), 1, THREADS, 0);
    }

    /** Values per thread: 16 bytes' worth when hidden allows it and every base (or-ed in {@code bases}) is 16-byte aligned, else 1. */
    private static int vec(CudaTensor storage, int hidden, long bases) {
        int wide = 16 / storage.elementBytes();
        return hidden % wide == 0 && (bases & 15) == 0 ? wide : 1;
    }

    private static int columns(int hidden, int vec) {
        return (hidden / vec + THREADS - 1) / THREADS;
    }
}
