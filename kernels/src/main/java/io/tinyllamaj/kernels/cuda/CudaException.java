package io.tinyllamaj.kernels.cuda;

/** A failed CUDA or cuBLASLt call; the message names the call and the status it returned. */
public final class CudaException extends RuntimeException {

    private final int status;

    public CudaException(String message) {
        this(message, -1);
    }

    /** status: the CUresult of a failed driver call. */
    public CudaException(String message, int status) {
        super(message);
        this.status = status;
    }

    /** The CUresult of a failed driver call (e.g. {@link CudaDriver#ERROR_OUT_OF_MEMORY}), -1 for anything else. */
    public int status() {
        return status;
    }
}
