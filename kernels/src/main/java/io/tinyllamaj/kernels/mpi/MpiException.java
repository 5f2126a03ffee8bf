package io.tinyllamaj.kernels.mpi;

/** A failed MPI call, or MPI not usable here; the message names the call and MPI's own error text. */
public final class MpiException extends RuntimeException {

    public MpiException(String message) {
        super(message);
    }

    public MpiException(String message, Throwable cause) {
        super(message, cause);
    }
}
