package io.tinyllamaj.kernels.cuda;

/** A failed CUDA or cuBLASLt call; the message names the call and the status it returned. */
public final class CudaException extends RuntimeException {

    public CudaException(String message) {
        super(message);
    }
}
