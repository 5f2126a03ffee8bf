package io.tinyllamaj.kernels.cuda;

/** Why a CudaBackend cannot run here (no driver, no GPU, no fatbin in this build), in one line. */
public final class CudaUnavailableException extends IllegalStateException {

    public CudaUnavailableException(String message) {
        super(message);
    }

    public CudaUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
