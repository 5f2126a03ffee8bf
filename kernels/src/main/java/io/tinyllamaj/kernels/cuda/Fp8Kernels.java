package io.tinyllamaj.kernels.cuda;

import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I64;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;

/**
 * fp8.cu: a bf16 matrix to FP8 with a per-tensor scale taken from its own amax (current
 * scaling): an amax pass, then a cast that writes the matrix, its transpose or both, and the
 * inverse scale cuBLASLt multiplies the products by. Everything stays on the stream: the scale
 * never visits the host.
 */
final class Fp8Kernels {

    static final KernelSignature AMAX = KernelSignature.of("fp8_amax", PTR, PTR, I64, I32);
    static final KernelSignature CAST = KernelSignature.of("fp8_cast", PTR, PTR, PTR, PTR, PTR, I32, I32, I32, I32);
    static final List<KernelSignature> SIGNATURES = List.of(AMAX, CAST);
    private static final int THREADS = 256;
    private static final int TILE = 64;
    private static final int AMAX_BLOCKS = 1024;

    /** The two FP8 formats: e4m3 (3 mantissa bits, largest 448) for weights and activations, e5m2 (range to 57344) for gradients. */
    enum Format {
        E4M3, E5M2
    }

    private final Gpu gpu;
    private final Kernel amax, cast;

    Fp8Kernels(Gpu gpu) {
        this.gpu = gpu;
        amax = gpu.kernels().kernel(AMAX);
        cast = gpu.kernels().kernel(CAST);
    }

    /**
     * x (bf16 [rows, cols]) scaled by {@code max / amax(x)} into y ([rows, cols]) and/or yt
     * ([cols, rows]), each 0 to skip; scaleInv (one fp32 of device memory) gets the inverse scale.
     * y and yt are 8-byte aligned device buffers. amaxSlot (4 bytes of device memory) holds
     * amax(x): measured into it first when {@code measure}, else read as an earlier call measured
     * it over the same values (the backward casting again what its forward cast).
     */
    void quantize(long x, int rows, int cols, Format format, long y, long yt, long scaleInv, long amaxSlot, boolean measure) {
        if ((rows + TILE - 1) / TILE > 65535) {
            throw new IllegalArgumentException("fp8 cast: " + rows + " rows is more than the grid takes (at most " + 65535L * TILE + ")");
        }
        if (measure) {
            long n = (long) rows * cols;
            gpu.driver().memsetD32Async(amaxSlot, 0, 1, gpu.stream());
            boolean vec8 = n % 8 == 0 && (x & 15) == 0;
            long blocks = Math.max(1, Math.min((vec8 ? n / 8 : n + THREADS - 1) / THREADS, AMAX_BLOCKS));
            amax.args().ptr(amaxSlot).ptr(x).i64(n).i32(vec8 ? 1 : 0).launch((int) blocks, 1, 1, THREADS, 0);
        }
        boolean aligned = (x & 15) == 0 && ((y | yt) & 7) == 0;
        cast.args().ptr(y).ptr(yt).ptr(scaleInv).ptr(x).ptr(amaxSlot).i32(rows).i32(cols).i32(format == Format.E5M2 ? 1 : 0)
                .i32(aligned ? 1 : 0).launch((cols + TILE - 1) / TILE, (rows + TILE - 1) / TILE, 1, THREADS, 0);
    }
}
