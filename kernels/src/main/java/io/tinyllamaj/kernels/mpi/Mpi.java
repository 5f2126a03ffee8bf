package io.tinyllamaj.kernels.mpi;

import io.tinyllamaj.kernels.NativeCalls;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * FFM bindings to Open MPI's C API ({@code libmpi.so.40}): the calls the trainer needs, each
 * looked up once; every call's return code is checked and a failure becomes an
 * {@link MpiException} naming the call and carrying {@code MPI_Error_string}'s text.
 *
 * <p>Open MPI's handles ({@code MPI_COMM_WORLD}, {@code MPI_FLOAT}, {@code MPI_SUM}, ...) are
 * the addresses of global objects ({@code ompi_mpi_comm_world}, ...), so a handle here is the
 * symbol's address. Communicators made by {@link #split} are pointers returned through an
 * out-parameter. {@code MPI_COMM_WORLD} is switched to {@code MPI_ERRORS_RETURN} right after
 * initialisation (split communicators inherit it), so a failure comes back as a code to check
 * instead of aborting the job from inside the library.
 *
 * <p>Downcalls are plain ones, not {@code Linker.Option.critical}: a collective blocks until
 * the slowest rank arrives, and a critical downcall holds off every safepoint while it runs,
 * which stalls GC on all threads and keeps {@code System.exit}/{@code Runtime.halt} from
 * completing, so a watchdog could not end a hung rank. Callers therefore pass native
 * (off-heap) buffers. Measured on JDK 25: a critical {@code sleep(6)} delays a watchdog's
 * {@code System.exit} from 1 s to 6 s and {@code System.gc()} with it.
 *
 * <p>Thread level: {@code MPI_THREAD_FUNNELED}, every call from the thread that initialised.
 */
public final class Mpi {

    private static final String LIB = "libmpi.so.40";
    private static final int MPI_THREAD_FUNNELED = 1;
    private static final int MPI_MAX_ERROR_STRING = 256;
    /** Open MPI's {@code MPI_IN_PLACE} is {@code (void *) 1}. */
    public static final MemorySegment IN_PLACE = MemorySegment.ofAddress(1);
    private static final int RTLD_NOW = 0x2, RTLD_GLOBAL = 0x100;

    private static Mpi instance;

    private final MethodHandle initThread, finalizeMpi, initialized, finalized, commRank, commSize, commSplit,
            commFree, commSetErrhandler, allreduce, reduce, reduceScatterBlock, allgather, bcast, barrier, abort, errorString,
            ibcast, ireduce, await;
    private final MemorySegment commWorld, floatType, doubleType, byteType, opSum, opMax, errorsReturn;

    private Mpi(SymbolLookup lib) {
        initThread = call(lib, "MPI_Init_thread", ADDRESS, ADDRESS, JAVA_INT, ADDRESS);
        finalizeMpi = call(lib, "MPI_Finalize");
        initialized = call(lib, "MPI_Initialized", ADDRESS);
        finalized = call(lib, "MPI_Finalized", ADDRESS);
        commRank = call(lib, "MPI_Comm_rank", ADDRESS, ADDRESS);
        commSize = call(lib, "MPI_Comm_size", ADDRESS, ADDRESS);
        commSplit = call(lib, "MPI_Comm_split", ADDRESS, JAVA_INT, JAVA_INT, ADDRESS);
        commFree = call(lib, "MPI_Comm_free", ADDRESS);
        commSetErrhandler = call(lib, "MPI_Comm_set_errhandler", ADDRESS, ADDRESS);
        allreduce = call(lib, "MPI_Allreduce", ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        reduce = call(lib, "MPI_Reduce", ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS);
        reduceScatterBlock = call(lib, "MPI_Reduce_scatter_block", ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
        allgather = call(lib, "MPI_Allgather", ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        bcast = call(lib, "MPI_Bcast", ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
        barrier = call(lib, "MPI_Barrier", ADDRESS);
        ibcast = call(lib, "MPI_Ibcast", ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        ireduce = call(lib, "MPI_Ireduce", ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        await = call(lib, "MPI_Wait", ADDRESS, ADDRESS);
        abort = call(lib, "MPI_Abort", ADDRESS, JAVA_INT);
        errorString = call(lib, "MPI_Error_string", JAVA_INT, ADDRESS, ADDRESS);
        commWorld = handle(lib, "ompi_mpi_comm_world");
        floatType = handle(lib, "ompi_mpi_float");
        doubleType = handle(lib, "ompi_mpi_double");
        byteType = handle(lib, "ompi_mpi_byte");
        opSum = handle(lib, "ompi_mpi_op_sum");
        opMax = handle(lib, "ompi_mpi_op_max");
        errorsReturn = handle(lib, "ompi_mpi_errors_return");
    }

    // ---- start and end ----

    /**
     * Loads libmpi.so.40 and initialises MPI once per process (later calls return the same
     * instance). Refuses to run without a launcher ({@link Launch}), where MPI_Init would start
     * a singleton world and hide a launch mistake.
     */
    public static synchronized Mpi initialize() {
        if (instance != null) {
            return instance;
        }
        if (Launch.detect().launcher() == Launch.Launcher.NONE) {
            throw new MpiException("MPI requested but this process was not started by mpirun, srun or a PMIx launcher");
        }
        Mpi mpi = new Mpi(open());
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment provided = arena.allocate(JAVA_INT);
            mpi.check("MPI_Init_thread", mpi.initThread, MemorySegment.NULL, MemorySegment.NULL, MPI_THREAD_FUNNELED, provided);
            if (provided.get(JAVA_INT, 0) < MPI_THREAD_FUNNELED) {
                throw new MpiException("MPI_Init_thread: the library provides thread level " + provided.get(JAVA_INT, 0)
                        + ", below MPI_THREAD_FUNNELED");
            }
        }
        mpi.check("MPI_Comm_set_errhandler", mpi.commSetErrhandler, mpi.commWorld, mpi.errorsReturn);
        instance = mpi;
        return mpi;
    }

    /**
     * Opens libmpi.so.40 with {@code dlopen(RTLD_NOW | RTLD_GLOBAL)} and resolves symbols with
     * {@code dlsym} on that handle. {@code SymbolLookup.libraryLookup} opens libraries
     * {@code RTLD_LOCAL}; Open MPI then dlopens its plugins ({@code mca_*.so}) which, in builds
     * that do not link every plugin against libmpi/libopen-pal (a from-source build, or a
     * vendor one), resolve {@code ompi_}/{@code opal_} symbols through the global namespace
     * and fail with "undefined symbol" at MPI_Init. Debian's packages happen to work either way
     * (checked with mpirun -np 1); the global open costs nothing and works for all of them.
     * {@code TINYLLAMA_LIBMPI} may name the library file.
     */
    private static SymbolLookup open() {
        Linker linker = Linker.nativeLinker();
        SymbolLookup libc = linker.defaultLookup();
        MethodHandle dlopen = linker.downcallHandle(libc.find("dlopen").orElseThrow(), FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT));
        MethodHandle dlsym = linker.downcallHandle(libc.find("dlsym").orElseThrow(), FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS));
        MethodHandle dlerror = linker.downcallHandle(libc.find("dlerror").orElseThrow(), FunctionDescriptor.of(ADDRESS));
        String fromEnv = System.getenv("TINYLLAMA_LIBMPI");
        String name = fromEnv != null && !fromEnv.isBlank() ? fromEnv : LIB;
        MemorySegment handle;
        try (Arena arena = Arena.ofConfined()) {
            handle = (MemorySegment) dlopen.invokeExact(arena.allocateFrom(name), RTLD_NOW | RTLD_GLOBAL);
            if (handle.equals(MemorySegment.NULL)) {
                MemorySegment why = (MemorySegment) dlerror.invokeExact();
                throw new MpiException("MPI unavailable: cannot open " + name + " ("
                        + (why.equals(MemorySegment.NULL) ? "no reason given" : why.reinterpret(4096).getString(0))
                        + "); install Open MPI 4.x (openmpi-bin, libopenmpi-dev) or set TINYLLAMA_LIBMPI");
            }
        } catch (MpiException e) {
            throw e;
        } catch (Throwable t) {
            throw new MpiException("MPI unavailable: dlopen " + name + " failed: " + t, t);
        }
        MemorySegment library = handle;
        return symbol -> {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment address = (MemorySegment) dlsym.invokeExact(library, arena.allocateFrom(symbol));
                return address.equals(MemorySegment.NULL) ? Optional.empty() : Optional.of(address);
            } catch (Throwable t) {
                throw new MpiException("dlsym " + symbol + " failed: " + t, t);
            }
        };
    }

    /** MPI_Finalize, once; after it no MPI call may be made in this process. */
    public synchronized void finish() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment flag = arena.allocate(JAVA_INT);
            check("MPI_Finalized", finalized, flag);
            if (flag.get(JAVA_INT, 0) == 0) {
                check("MPI_Finalize", finalizeMpi);
            }
        }
    }

    /** True between a successful MPI_Init_thread and MPI_Finalize. */
    public boolean active() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment init = arena.allocate(JAVA_INT), fin = arena.allocate(JAVA_INT);
            check("MPI_Initialized", initialized, init);
            check("MPI_Finalized", finalized, fin);
            return init.get(JAVA_INT, 0) != 0 && fin.get(JAVA_INT, 0) == 0;
        }
    }

    /** MPI_Abort: ends every rank of the job with {@code code}; does not return. */
    public void abort(MemorySegment comm, int code) {
        check("MPI_Abort", abort, comm, code);
    }

    // ---- handles ----

    public MemorySegment world() {
        return commWorld;
    }

    public MemorySegment floatType() {
        return floatType;
    }

    public MemorySegment doubleType() {
        return doubleType;
    }

    public MemorySegment byteType() {
        return byteType;
    }

    public MemorySegment sum() {
        return opSum;
    }

    public MemorySegment max() {
        return opMax;
    }

    // ---- communicators ----

    public int rank(MemorySegment comm) {
        return intOut("MPI_Comm_rank", commRank, comm);
    }

    public int size(MemorySegment comm) {
        return intOut("MPI_Comm_size", commSize, comm);
    }

    /** MPI_Comm_split: ranks with the same color form a communicator, ordered by key. */
    public MemorySegment split(MemorySegment comm, int color, int key) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            check("MPI_Comm_split", commSplit, comm, color, key, out);
            return out.get(ADDRESS, 0);
        }
    }

    /** MPI_Comm_free of a communicator made by {@link #split}. */
    public void free(MemorySegment comm) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment holder = arena.allocate(ADDRESS);
            holder.set(ADDRESS, 0, comm);
            check("MPI_Comm_free", commFree, holder);
        }
    }

    // ---- collectives (buffers are native memory; counts are elements of the datatype) ----

    /** MPI_Allreduce; pass {@link #IN_PLACE} as send to reduce recv in place. */
    public void allreduce(MemorySegment send, MemorySegment recv, int count, MemorySegment type, MemorySegment op, MemorySegment comm) {
        check("MPI_Allreduce", allreduce, send, recv, count, type, op, comm);
    }

    /** MPI_Reduce onto root; root passes {@link #IN_PLACE} as send to reduce recv in place, the others their data as send. */
    public void reduce(MemorySegment send, MemorySegment recv, int count, MemorySegment type, MemorySegment op, int root,
                       MemorySegment comm) {
        check("MPI_Reduce", reduce, send, recv, count, type, op, root, comm);
    }

    /** MPI_Reduce_scatter_block: send holds size x recvCount elements; rank r receives the reduced block r. */
    public void reduceScatterBlock(MemorySegment send, MemorySegment recv, int recvCount, MemorySegment type, MemorySegment op,
                                   MemorySegment comm) {
        check("MPI_Reduce_scatter_block", reduceScatterBlock, send, recv, recvCount, type, op, comm);
    }

    /** MPI_Allgather: every rank's count elements, in rank order, into recv (size x count elements). */
    public void allgather(MemorySegment send, int count, MemorySegment type, MemorySegment recv, MemorySegment comm) {
        check("MPI_Allgather", allgather, send, count, type, recv, count, type, comm);
    }

    public void bcast(MemorySegment buffer, int count, MemorySegment type, int root, MemorySegment comm) {
        check("MPI_Bcast", bcast, buffer, count, type, root, comm);
    }

    public void barrier(MemorySegment comm) {
        check("MPI_Barrier", barrier, comm);
    }

    // ---- non-blocking collectives: issued in the same order on every rank, buffers untouched until waited ----

    /**
     * MPI_Ibcast; returns the request, to pass to {@link #await}. The buffer must stay allocated and
     * unread (unwritten at root) until then.
     */
    public MemorySegment ibcast(MemorySegment buffer, int count, MemorySegment type, int root, MemorySegment comm) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment request = arena.allocate(ADDRESS);
            check("MPI_Ibcast", ibcast, buffer, count, type, root, comm, request);
            return request.get(ADDRESS, 0);
        }
    }

    /** MPI_Ireduce onto root, with {@link #reduce}'s in-place convention; returns the request for {@link #await}. */
    public MemorySegment ireduce(MemorySegment send, MemorySegment recv, int count, MemorySegment type, MemorySegment op, int root,
                                 MemorySegment comm) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment request = arena.allocate(ADDRESS);
            check("MPI_Ireduce", ireduce, send, recv, count, type, op, root, comm, request);
            return request.get(ADDRESS, 0);
        }
    }

    /** MPI_Wait on a request from {@link #ibcast} or {@link #ireduce} (status ignored); the request is freed. */
    public void await(MemorySegment request) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment holder = arena.allocate(ADDRESS);
            holder.set(ADDRESS, 0, request);
            check("MPI_Wait", await, holder, MemorySegment.NULL); // MPI_STATUS_IGNORE is a null pointer in Open MPI
        }
    }

    // ---- plumbing ----

    private int intOut(String name, MethodHandle handle, MemorySegment comm) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check(name, handle, comm, out);
            return out.get(JAVA_INT, 0);
        }
    }

    private void check(String name, MethodHandle handle, Object... args) {
        int code = NativeCalls.status(name, handle, args, MpiException::new);
        if (code != 0) {
            throw new MpiException(name + " failed with error " + code + ": " + errorText(code));
        }
    }

    private String errorText(int code) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment text = arena.allocate(MPI_MAX_ERROR_STRING);
            MemorySegment length = arena.allocate(JAVA_INT);
            int status = (int) errorString.invokeExact(code, text, length);
            return status == 0 ? text.getString(0) : "(MPI_Error_string failed too)";
        } catch (Throwable t) {
            return "(MPI_Error_string failed: " + t + ")";
        }
    }

    private static MethodHandle call(SymbolLookup lib, String symbol, MemoryLayout... args) {
        return Linker.nativeLinker().downcallHandle(
                lib.find(symbol).orElseThrow(() -> new MpiException(LIB + " has no symbol " + symbol + " (not Open MPI 4.x?)")),
                FunctionDescriptor.of(JAVA_INT, args));
    }

    private static MemorySegment handle(SymbolLookup lib, String symbol) {
        return lib.find(symbol).orElseThrow(() -> new MpiException(LIB + " has no symbol " + symbol
                + ": Open MPI's handles are global objects; another MPI (MPICH) is not supported"));
    }
}
