package io.tinyllamaj.trainer;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.kernels.cuda.CudaBackend;

/**
 * The one place a device name becomes a backend. Asking for cuda where it cannot run (no
 * driver, no GPU, a build without nvcc) fails with the backend's one-line reason.
 */
public final class Backends {

    private Backends() {
    }

    /**
     * The device with its default kernels, for score, eval, generate and export. Their batches
     * change shape from one to the next (rows of each batch's longest length), so cuBLASLt's
     * tuning, which times the candidates of every new shape once, would cost more than it saves;
     * it is off (it never changes a result, only which bit-identical algorithm runs).
     */
    public static Backend create(String device) {
        return create(device, 0, "auto", "auto", false);
    }

    /**
     * {@code gpu} picks the GPU of this process (a rank's local rank); {@code attention} is
     * {@code train.attention} (auto: the fastest kernels per direction, see
     * {@link CudaBackend.Attention#AUTO}). The CPU ignores both. {@code precision} is
     * {@code train.precision} as it takes effect: on cuda bf16-mixed (bf16 activations and matmul
     * operands over fp32 masters) or fp8-mixed (the same, with the transformer blocks' projections
     * in FP8). For training: the matmuls tune once per shape.
     */
    public static Backend create(String device, int gpu, String attention, String precision) {
        return create(device, gpu, attention, precision, true);
    }

    private static Backend create(String device, int gpu, String attention, String precision, boolean matmulTuning) {
        return switch (device) {
            case "cpu" -> new CpuBackend();
            case "cuda" -> new CudaBackend(gpu, new CudaBackend.Options(attentionKernel(attention), true, matmulTuning,
                    precision.equals("fp8-mixed")));
            default -> throw new IllegalArgumentException("unknown device '" + device + "' (expected cpu or cuda)");
        };
    }

    /** The backend falls back from the kernel named here to the next one down where the GPU or the shape needs it. */
    private static CudaBackend.Attention attentionKernel(String name) {
        for (CudaBackend.Attention kernel : CudaBackend.Attention.values()) {
            if (kernel.key().equals(name)) {
                return kernel;
            }
        }
        throw new IllegalArgumentException("train.attention must be auto, plain, mma, wgmma or cudnn, got '" + name + "'");
    }
}
