package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.F32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I64;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * elementwise.cu: the fp32 -> bf16 cast of matmul operands, dst += src, t *= f, and the fingerprint
 * CublasLt's tuner compares candidate outputs with. Grid-stride kernels over flat runs: any
 * geometry serves, launched flat ({@link KernelArgs#launchFlat}).
 */
final class ElementwiseKernels {

    static final KernelSignature CAST_BF16 = KernelSignature.of("cast_bf16", PTR, PTR, I64);
    static final KernelSignature ACCUMULATE = KernelSignature.of(List.of("accumulate", "accumulate_bf16"), PTR, PTR, I64);
    static final KernelSignature SCALE = KernelSignature.of("scale", PTR, F32, I64);
    static final KernelSignature FINGERPRINT = KernelSignature.of("fingerprint", PTR, PTR, I64);
    static final List<KernelSignature> SIGNATURES = List.of(CAST_BF16, ACCUMULATE, SCALE, FINGERPRINT);

    private final Gpu gpu;
    private final Kernel castBf16, accumulate, accumulateBf16, scale, fingerprint;
    private final long slot; // the fingerprint's sum

    ElementwiseKernels(Gpu gpu) {
        this.gpu = gpu;
        KernelModule k = gpu.kernels();
        castBf16 = k.kernel(CAST_BF16);
        accumulate = k.kernel(ACCUMULATE, "accumulate");
        accumulateBf16 = k.kernel(ACCUMULATE, "accumulate_bf16");
        scale = k.kernel(SCALE);
        fingerprint = k.kernel(FINGERPRINT);
        slot = gpu.arena().allocate(Long.BYTES);
    }

    /** dst[0, n) = bf16(src[0, n)), round to nearest even. */
    void castBf16(long dst, long src, long n) {
        castBf16.args().ptr(dst).ptr(src).i64(n).launchFlat(n);
    }

    /** dst[0, n) += src[0, n); src fp32 or (srcBf16) bf16, dst fp32. */
    void accumulate(long dst, long src, long n, boolean srcBf16) {
        (srcBf16 ? accumulateBf16 : accumulate).args().ptr(dst).ptr(src).i64(n).launchFlat(n);
    }

    /** t[0, n) *= factor. */
    void scale(long t, float factor, long n) {
        scale.args().ptr(t).f32(factor).i64(n).launchFlat(n);
    }

    /** An order-independent fingerprint of {@code bytes} (even) at {@code address}, after the stream's queued work. */
    long fingerprint(long address, long bytes) {
        gpu.driver().memsetD32Async(slot, 0, 2, gpu.stream());
        fingerprint.args().ptr(slot).ptr(address).i64(bytes / 2).launchFlat(bytes / 2);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(JAVA_LONG);
            gpu.driver().memcpyDtoHAsync(host, slot, 8, gpu.stream());
            gpu.driver().streamSynchronize(gpu.stream());
            return host.get(JAVA_LONG, 0);
        }
    }
}
