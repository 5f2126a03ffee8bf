package io.tinyllamaj.kernels.nccl;

/** A failed NCCL call, or NCCL not usable here; the message names the call and NCCL's error text. */
public final class NcclException extends RuntimeException {

    public NcclException(String message) {
        super(message);
    }

    public NcclException(String message, Throwable cause) {
        super(message, cause);
    }
}
