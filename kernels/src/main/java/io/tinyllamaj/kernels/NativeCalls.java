package io.tinyllamaj.kernels;

import java.lang.invoke.MethodHandle;
import java.util.function.BiFunction;

/** Calls into native libraries (MPI, NCCL) whose functions return an int status. */
public final class NativeCalls {
    private NativeCalls() {
    }

    /**
     * The status {@code handle} returns for {@code args}. Unchecked exceptions pass through; any
     * other throwable means the call itself could not be made and becomes {@code failure}'s
     * exception, with a message naming {@code name}.
     */
    public static int status(String name, MethodHandle handle, Object[] args,
                             BiFunction<String, Throwable, ? extends RuntimeException> failure) {
        try {
            return (int) handle.invokeWithArguments(args);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw failure.apply(name + " could not be called: " + t, t);
        }
    }
}
