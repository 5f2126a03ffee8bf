package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I64;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;

/**
 * global_norm.cu: the sum of squares of a flat fp32 run in double, in two passes without atomics
 * (per-block partials, then one block sums them in order), so the same bits every run. The grid
 * depends on n only; blocks are any multiple of 32 threads up to 1024.
 */
final class GlobalNormKernels {

    static final KernelSignature SUM_OF_SQUARES = KernelSignature.of("sum_of_squares", PTR, PTR, I64);
    static final KernelSignature SUM_PARTIALS = KernelSignature.of("sum_partials", PTR, PTR, I32);
    static final List<KernelSignature> SIGNATURES = List.of(SUM_OF_SQUARES, SUM_PARTIALS);
    private static final int MAX_BLOCKS = 1024; // the partials buffer
    private static final int THREADS = 256;

    private final Gpu gpu;
    private final Kernel sumOfSquares, sumPartials;
    private final long sum, partials;

    GlobalNormKernels(Gpu gpu) {
        this.gpu = gpu;
        sumOfSquares = gpu.kernels().kernel(SUM_OF_SQUARES);
        sumPartials = gpu.kernels().kernel(SUM_PARTIALS);
        sum = gpu.arena().allocate(Double.BYTES);
        partials = gpu.arena().allocate((long) MAX_BLOCKS * Double.BYTES);
    }

    /** Sum of x[0, n)^2, waiting for the stream. */
    double sumOfSquares(long x, long n) {
        int blocks = (int) Math.max(1, Math.min((n + THREADS - 1) / THREADS, MAX_BLOCKS));
        sumOfSquares.args().ptr(partials).ptr(x).i64(n).launch(blocks, 1, 1, THREADS, 0);
        sumPartials.args().ptr(sum).ptr(partials).i32(blocks).launch(1, 1, 1, THREADS, 0);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(JAVA_DOUBLE);
            gpu.driver().memcpyDtoHAsync(host, sum, 8, gpu.stream());
            gpu.driver().streamSynchronize(gpu.stream());
            return host.get(JAVA_DOUBLE, 0);
        }
    }
}
