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

    public static Backend create(String device) {
        return create(device, 0);
    }

    /** {@code gpu} picks the GPU of this process (a rank's local rank); the CPU ignores it. */
    public static Backend create(String device, int gpu) {
        return switch (device) {
            case "cpu" -> new CpuBackend();
            case "cuda" -> new CudaBackend(gpu);
            default -> throw new IllegalArgumentException("unknown device '" + device + "' (expected cpu or cuda)");
        };
    }
}
