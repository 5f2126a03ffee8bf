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

    /** The device with its default kernels: score, generate, export. */
    public static Backend create(String device) {
        return create(device, 0, "auto");
    }

    /**
     * {@code gpu} picks the GPU of this process (a rank's local rank); {@code attention} is
     * {@code train.attention} (auto: the fastest kernel the GPU runs, wgmma on Hopper, mma on
     * other tensor-core GPUs, plain below them). The CPU ignores both. On cuda the precision is
     * bf16-mixed: bf16 activations and matmul operands over fp32 masters.
     */
    public static Backend create(String device, int gpu, String attention) {
        return switch (device) {
            case "cpu" -> new CpuBackend();
            case "cuda" -> new CudaBackend(gpu, new CudaBackend.Options(attentionKernel(attention), true, true));
            default -> throw new IllegalArgumentException("unknown device '" + device + "' (expected cpu or cuda)");
        };
    }

    /** The backend falls back from the kernel named here to the next one down where the GPU or the shape needs it. */
    private static CudaBackend.Attention attentionKernel(String name) {
        if (name.equals("auto")) {
            return CudaBackend.Attention.WGMMA_SM90;
        }
        for (CudaBackend.Attention kernel : CudaBackend.Attention.values()) {
            if (kernel.key().equals(name)) {
                return kernel;
            }
        }
        throw new IllegalArgumentException("train.attention must be auto, plain, mma or wgmma, got '" + name + "'");
    }
}
