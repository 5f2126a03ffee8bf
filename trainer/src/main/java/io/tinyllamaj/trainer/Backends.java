package io.tinyllamaj.trainer;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.cpu.CpuBackend;

import java.lang.reflect.InvocationTargetException;

/**
 * The one place a device name becomes a backend. The CUDA backend is looked up by name, so a
 * build without it (or a machine without a GPU) still runs on the CPU, and asking for cuda
 * there fails with one line saying why.
 */
public final class Backends {

    static final String CUDA_CLASS = "io.tinyllamaj.kernels.cuda.CudaBackend";

    private Backends() {
    }

    public static Backend create(String device) {
        return switch (device) {
            case "cpu" -> new CpuBackend();
            case "cuda" -> cuda();
            default -> throw new IllegalArgumentException("unknown device '" + device + "' (expected cpu or cuda)");
        };
    }

    private static Backend cuda() {
        Class<?> type;
        try {
            type = Class.forName(CUDA_CLASS);
        } catch (ClassNotFoundException e) {
            throw new IllegalStateException("device cuda: this build has no CUDA backend (" + CUDA_CLASS + " is missing)");
        }
        try {
            return (Backend) type.getDeclaredConstructor().newInstance();
        } catch (InvocationTargetException e) {
            Throwable cause = e.getCause();
            throw new IllegalStateException("device cuda: the CUDA backend failed to start: "
                    + (cause.getMessage() != null ? cause.getMessage() : cause.getClass().getSimpleName()), cause);
        } catch (ReflectiveOperationException | ClassCastException | LinkageError e) {
            throw new IllegalStateException("device cuda: cannot create " + CUDA_CLASS + ": " + e, e);
        }
    }
}
