package io.tinyllamaj.trainer;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.cpu.CpuBackend;

/** The one place a device name becomes a backend. */
public final class Backends {

    private Backends() {
    }

    public static Backend create(String device) {
        return switch (device) {
            case "cpu" -> new CpuBackend();
            case "cuda" -> throw new IllegalStateException("device cuda: this build has no CUDA backend");
            default -> throw new IllegalArgumentException("unknown device '" + device + "' (expected cpu or cuda)");
        };
    }
}
