package io.tinyllamaj.kernels.nccl;

import io.tinyllamaj.kernels.NativeCalls;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * FFM bindings to NCCL ({@code libnccl.so.2}, 2.18 or newer): the unique-id bootstrap,
 * communicator creation and destruction, the four collectives the strategies use and group
 * calls. Every call's {@code ncclResult_t} is checked; a failure becomes an
 * {@link NcclException} naming the call, {@code ncclGetErrorString} and
 * {@code ncclGetLastError}. Device buffers are CUdeviceptr values (Java longs); communicators
 * and streams are addresses. Loaded only when {@link #load} is called, so a CPU run never
 * looks for the library.
 *
 * <p>Bootstrap: rank 0 calls {@link #uniqueId}, the 128 bytes travel to every rank over MPI
 * (MPI_Bcast), then every rank calls {@link #commInitRank} with the same bytes.
 */
public final class Nccl {

    private static final String LIB = "libnccl.so.2";
    /** sizeof(ncclUniqueId): NCCL_UNIQUE_ID_BYTES. */
    public static final int UNIQUE_ID_BYTES = 128;
    /** ncclDataType_t values. */
    public static final int FLOAT32 = 7, FLOAT64 = 8, BFLOAT16 = 9;
    /** ncclRedOp_t values. */
    public static final int SUM = 0, MAX = 2;
    private static final int NCCL_IN_PROGRESS = 7;

    private static final MemoryLayout UNIQUE_ID = MemoryLayout.structLayout(
            MemoryLayout.sequenceLayout(UNIQUE_ID_BYTES, JAVA_BYTE).withName("internal"));

    private final MethodHandle getVersion, getUniqueId, commInitRank, commDestroy, commAbort, commGetAsyncError,
            allReduce, reduce, reduceScatter, allGather, broadcast, groupStart, groupEnd, getErrorString, getLastError;

    private Nccl(SymbolLookup lib) {
        getVersion = status(lib, "ncclGetVersion", ADDRESS);
        getUniqueId = status(lib, "ncclGetUniqueId", ADDRESS);
        commInitRank = status(lib, "ncclCommInitRank", ADDRESS, JAVA_INT, UNIQUE_ID, JAVA_INT);
        commDestroy = status(lib, "ncclCommDestroy", ADDRESS);
        commAbort = status(lib, "ncclCommAbort", ADDRESS);
        commGetAsyncError = status(lib, "ncclCommGetAsyncError", ADDRESS, ADDRESS);
        allReduce = status(lib, "ncclAllReduce", ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS);
        reduce = status(lib, "ncclReduce", ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS);
        reduceScatter = status(lib, "ncclReduceScatter", ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS);
        allGather = status(lib, "ncclAllGather", ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS);
        broadcast = status(lib, "ncclBroadcast", ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS);
        groupStart = status(lib, "ncclGroupStart");
        groupEnd = status(lib, "ncclGroupEnd");
        getErrorString = Linker.nativeLinker().downcallHandle(find(lib, "ncclGetErrorString"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
        getLastError = Linker.nativeLinker().downcallHandle(find(lib, "ncclGetLastError"), FunctionDescriptor.of(ADDRESS, ADDRESS));
    }

    /**
     * Opens libnccl.so.2 ({@code TINYLLAMA_LIBNCCL} may name the file or its directory); when it
     * is absent, an NcclException says so in one line.
     */
    public static Nccl load() {
        SymbolLookup lib = open();
        if (lib == null) {
            throw new NcclException("NCCL unavailable: " + LIB + " is not installed on this machine (install NCCL 2.18+, "
                    + "or set TINYLLAMA_LIBNCCL; without it multi-GPU runs cannot reduce gradients)");
        }
        return new Nccl(lib);
    }

    private static SymbolLookup open() {
        String fromEnv = System.getenv("TINYLLAMA_LIBNCCL");
        try {
            if (fromEnv != null && !fromEnv.isBlank()) {
                Path path = Path.of(fromEnv);
                return SymbolLookup.libraryLookup(path.toFile().isDirectory() ? path.resolve(LIB) : path, Arena.global());
            }
            return SymbolLookup.libraryLookup(LIB, Arena.global());
        } catch (IllegalArgumentException notThere) {
            return null;
        }
    }

    /** e.g. 22803 for 2.28.3. */
    public int version() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check("ncclGetVersion", null, getVersion, out);
            return out.get(JAVA_INT, 0);
        }
    }

    /** A fresh ncclUniqueId (call on one rank, then broadcast the bytes). */
    public byte[] uniqueId() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment id = arena.allocate(UNIQUE_ID);
            check("ncclGetUniqueId", null, getUniqueId, id);
            return id.toArray(JAVA_BYTE);
        }
    }

    /** ncclCommInitRank on the current CUDA context's device; blocks until all ranks have joined. */
    public MemorySegment commInitRank(int ranks, byte[] uniqueId, int rank) {
        if (uniqueId.length != UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("an ncclUniqueId has " + UNIQUE_ID_BYTES + " bytes, got " + uniqueId.length);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            MemorySegment id = arena.allocate(UNIQUE_ID);
            MemorySegment.copy(uniqueId, 0, id, JAVA_BYTE, 0, UNIQUE_ID_BYTES);
            check("ncclCommInitRank", null, commInitRank, out, ranks, id, rank);
            return out.get(ADDRESS, 0);
        }
    }

    public void commDestroy(MemorySegment comm) {
        check("ncclCommDestroy", comm, commDestroy, comm);
    }

    /** ncclCommAbort: frees the communicator without waiting for peers (after a timeout or error). */
    public void commAbort(MemorySegment comm) {
        check("ncclCommAbort", comm, commAbort, comm);
    }

    /** Throws if the communicator has recorded an asynchronous error (a peer gone, a network fault). */
    public void checkAsyncError(MemorySegment comm) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check("ncclCommGetAsyncError", comm, commGetAsyncError, comm, out);
            int async = out.get(JAVA_INT, 0);
            if (async != 0 && async != NCCL_IN_PROGRESS) {
                throw new NcclException("NCCL communicator error (ncclCommGetAsyncError): " + describe(async, comm));
            }
        }
    }

    // ---- collectives: enqueued on stream; pointers are device addresses ----

    public void allReduce(long send, long recv, long count, int type, int op, MemorySegment comm, MemorySegment stream) {
        check("ncclAllReduce", comm, allReduce, address(send), address(recv), count, type, op, comm, stream);
    }

    /** root's recv = the sum (op) over ranks of send; recv is used on root only. In place when send == recv. */
    public void reduce(long send, long recv, long count, int type, int op, int root, MemorySegment comm, MemorySegment stream) {
        check("ncclReduce", comm, reduce, address(send), address(recv), count, type, op, root, comm, stream);
    }

    /** recvCount elements per rank; send holds ranks x recvCount. In place when recv == send + rank * recvCount elements. */
    public void reduceScatter(long send, long recv, long recvCount, int type, int op, MemorySegment comm, MemorySegment stream) {
        check("ncclReduceScatter", comm, reduceScatter, address(send), address(recv), recvCount, type, op, comm, stream);
    }

    /** sendCount elements per rank; recv holds ranks x sendCount. In place when send == recv + rank * sendCount elements. */
    public void allGather(long send, long recv, long sendCount, int type, MemorySegment comm, MemorySegment stream) {
        check("ncclAllGather", comm, allGather, address(send), address(recv), sendCount, type, comm, stream);
    }

    public void broadcast(long send, long recv, long count, int type, int root, MemorySegment comm, MemorySegment stream) {
        check("ncclBroadcast", comm, broadcast, address(send), address(recv), count, type, root, comm, stream);
    }

    public void groupStart() {
        check("ncclGroupStart", null, groupStart);
    }

    public void groupEnd() {
        check("ncclGroupEnd", null, groupEnd);
    }

    // ---- plumbing ----

    private static MemorySegment address(long pointer) {
        return MemorySegment.ofAddress(pointer);
    }

    private void check(String name, MemorySegment comm, MethodHandle handle, Object... args) {
        int code = NativeCalls.status(name, handle, args, NcclException::new);
        if (code != 0) {
            throw new NcclException(name + " failed: " + describe(code, comm));
        }
    }

    private String describe(int code, MemorySegment comm) {
        StringBuilder text = new StringBuilder("error ").append(code);
        try {
            MemorySegment s = (MemorySegment) getErrorString.invokeExact(code);
            if (!s.equals(MemorySegment.NULL)) {
                text.append(" (").append(s.reinterpret(1024).getString(0)).append(')');
            }
            MemorySegment last = (MemorySegment) getLastError.invokeExact(comm == null ? MemorySegment.NULL : comm);
            if (!last.equals(MemorySegment.NULL)) {
                String detail = last.reinterpret(4096).getString(0);
                if (!detail.isBlank()) {
                    text.append(": ").append(detail);
                }
            }
        } catch (Throwable t) {
            text.append(" (no error text: ").append(t).append(')');
        }
        return text.toString();
    }

    private static MemorySegment find(SymbolLookup lib, String symbol) {
        return lib.find(symbol).orElseThrow(() -> new NcclException(LIB + " has no symbol " + symbol + " (NCCL 2.18+ needed)"));
    }

    private static MethodHandle status(SymbolLookup lib, String symbol, MemoryLayout... args) {
        return Linker.nativeLinker().downcallHandle(find(lib, symbol), FunctionDescriptor.of(JAVA_INT, args));
    }
}
