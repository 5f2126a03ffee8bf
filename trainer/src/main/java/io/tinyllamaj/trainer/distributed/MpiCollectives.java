package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuTensor;
import io.tinyllamaj.kernels.mpi.Mpi;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * {@link Collectives} over an MPI communicator, for tensors of any backend: values pass
 * through a native staging buffer, in chunks of at most {@code chunkFloats} per rank.
 * CpuTensor ranges are copied straight between their float[] and the staging buffer (one
 * memcpy each way); other tensors go through the backend's download/upload.
 *
 * <p>Why a staging copy rather than handing MPI the float[] itself: FFM passes heap arrays
 * only to {@code Linker.Option.critical} downcalls, which hold off safepoints for as long as
 * they run. A collective runs until the slowest rank arrives (forever, when a rank hangs), so
 * a critical one would stall GC on every thread and keep the {@link Watchdog} from ending the
 * process (see {@link Mpi}). The copy is a memcpy at memory bandwidth, small next to the
 * reduction itself.
 *
 * <p>Chunking also keeps every MPI count below 2^31 and lets the sharded calls pack the
 * ranks' pieces side by side, as MPI_Reduce_scatter_block and MPI_Allgather expect.
 */
public final class MpiCollectives implements Collectives {

    /** 4 Mi floats (16 MiB) per rank and call. */
    public static final int DEFAULT_CHUNK_FLOATS = 1 << 22;

    private final Mpi mpi;
    private final MemorySegment comm;
    private final boolean ownsComm;
    private final Backend backend;
    private final int rank;
    private final int size;
    private final int chunkFloats;
    private final Arena arena = Arena.ofShared();
    private MemorySegment staging = MemorySegment.NULL;
    private final MemorySegment scalar;
    private float[] host = new float[0];
    private final List<MemorySegment> freeBuffers = new ArrayList<>();

    /**
     * @param comm     the communicator (MPI_COMM_WORLD or one from a split)
     * @param ownsComm whether {@link #close} frees it
     */
    public MpiCollectives(Mpi mpi, MemorySegment comm, boolean ownsComm, Backend backend, int chunkFloats) {
        if (chunkFloats < 1) {
            throw new IllegalArgumentException("chunkFloats must be positive, got " + chunkFloats);
        }
        this.mpi = mpi;
        this.comm = comm;
        this.ownsComm = ownsComm;
        this.backend = backend;
        this.rank = mpi.rank(comm);
        this.size = mpi.size(comm);
        this.chunkFloats = chunkFloats;
        this.scalar = arena.allocate(JAVA_DOUBLE);
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public void allReduceSum(Tensor t) {
        long n = t.length();
        MemorySegment buffer = staging(Math.min(n, chunkFloats));
        for (long start = 0; start < n; start += chunkFloats) {
            int count = (int) Math.min(chunkFloats, n - start);
            toNative(t, start, count, buffer, 0);
            mpi.allreduce(Mpi.IN_PLACE, buffer, count, mpi.floatType(), mpi.sum(), comm);
            fromNative(buffer, 0, t, start, count);
        }
    }

    @Override
    public void reduceSum(Tensor t, int root) {
        long n = t.length();
        MemorySegment buffer = staging(Math.min(n, chunkFloats));
        for (long start = 0; start < n; start += chunkFloats) {
            int count = (int) Math.min(chunkFloats, n - start);
            toNative(t, start, count, buffer, 0);
            if (rank == root) {
                mpi.reduce(Mpi.IN_PLACE, buffer, count, mpi.floatType(), mpi.sum(), root, comm);
                fromNative(buffer, 0, t, start, count);
            } else {
                mpi.reduce(buffer, MemorySegment.NULL, count, mpi.floatType(), mpi.sum(), root, comm);
            }
        }
    }

    @Override
    public void reduceScatterSum(Tensor buffer) {
        overShards(buffer, (send, own, q, start, count) -> {
            for (int r = 0; r < size; r++) {
                toNative(buffer, r * q + start, count, send, (long) r * count);
            }
            mpi.reduceScatterBlock(send, send.asSlice(own * Float.BYTES), count, mpi.floatType(), mpi.sum(), comm);
            fromNative(send, own, buffer, rank * q + start, count);
        }, this::allReduceSum);
    }

    @Override
    public void allGather(Tensor buffer) {
        overShards(buffer, (recv, own, q, start, count) -> {
            toNative(buffer, rank * q + start, count, recv, own);
            mpi.allgather(recv.asSlice(own * Float.BYTES), count, mpi.floatType(), recv, comm);
            for (int r = 0; r < size; r++) {
                if (r != rank) {
                    fromNative(recv, (long) r * count, buffer, r * q + start, count);
                }
            }
        }, tail -> broadcast(tail, size - 1));
    }

    /** One piece of a sharded call: values [start, start + count) of every rank's equal part of q values. */
    private interface Piece {
        /** staging holds one count-long slot per rank, rank r's at r * count, and this rank's own at index own. */
        void move(MemorySegment staging, long own, long q, long start, int count);
    }

    /**
     * A sharded call over {@link Shard#of}'s layout: the equal parts in pieces that fit the
     * staging buffer, then the remainder (fewer than size values) handed to {@code tail}.
     */
    private void overShards(Tensor buffer, Piece step, Consumer<Tensor> tail) {
        long n = buffer.length();
        long q = Shard.equalPart(n, size);
        int piece = (int) Math.min(q, Math.max(1, chunkFloats / size));
        if (q > 0) {
            MemorySegment staging = staging((long) (size + 1) * piece);
            long own = (long) size * piece;
            for (long start = 0; start < q; start += piece) {
                step.move(staging, own, q, start, (int) Math.min(piece, q - start));
            }
        }
        long rest = n - q * size;
        if (rest > 0) {
            tail.accept(buffer.slice(q * size, rest));
        }
    }

    @Override
    public void broadcast(Tensor t, int root) {
        long n = t.length();
        MemorySegment buffer = staging(Math.min(n, chunkFloats));
        for (long start = 0; start < n; start += chunkFloats) {
            int count = (int) Math.min(chunkFloats, n - start);
            if (rank == root) {
                toNative(t, start, count, buffer, 0);
            }
            mpi.bcast(buffer, count, mpi.floatType(), root, comm);
            if (rank != root) {
                fromNative(buffer, 0, t, start, count);
            }
        }
    }

    /** Each started collective stages through a native buffer of its own, so several can be in flight. */
    @Override
    public Pending broadcastAsync(Tensor t, int root) {
        return started(t, (buffer, start, count) -> {
            if (rank == root) {
                toNative(t, start, count, buffer, start);
            }
            return mpi.ibcast(buffer.asSlice(start * Float.BYTES), count, mpi.floatType(), root, comm);
        }, rank != root);
    }

    @Override
    public Pending reduceSumAsync(Tensor t, int root) {
        return started(t, (buffer, start, count) -> {
            toNative(t, start, count, buffer, start);
            MemorySegment chunk = buffer.asSlice(start * Float.BYTES);
            return rank == root
                    ? mpi.ireduce(Mpi.IN_PLACE, chunk, count, mpi.floatType(), mpi.sum(), root, comm)
                    : mpi.ireduce(chunk, MemorySegment.NULL, count, mpi.floatType(), mpi.sum(), root, comm);
        }, rank == root);
    }

    /** Starts one chunk of a non-blocking collective in the op's buffer (values [start, start + count) at index start); returns its request. */
    private interface Start {
        MemorySegment chunk(MemorySegment buffer, long start, int count);
    }

    /** A non-blocking collective over t in chunks; on completion the result is copied back into t when {@code receives}. */
    private Pending started(Tensor t, Start start, boolean receives) {
        long n = t.length();
        MemorySegment buffer = takeBuffer(n);
        List<MemorySegment> requests = new ArrayList<>();
        for (long from = 0; from < n; from += chunkFloats) {
            requests.add(start.chunk(buffer, from, (int) Math.min(chunkFloats, n - from)));
        }
        return () -> {
            for (MemorySegment request : requests) {
                mpi.await(request);
            }
            if (receives) {
                for (long from = 0; from < n; from += chunkFloats) {
                    fromNative(buffer, from, t, from, (int) Math.min(chunkFloats, n - from));
                }
            }
            freeBuffers.add(buffer);
        };
    }

    /** The smallest free buffer that holds n floats, or a new one. */
    private MemorySegment takeBuffer(long n) {
        long bytes = Math.max(1, n) * Float.BYTES;
        MemorySegment best = null;
        for (MemorySegment b : freeBuffers) {
            if (b.byteSize() >= bytes && (best == null || b.byteSize() < best.byteSize())) {
                best = b;
            }
        }
        if (best == null) {
            return arena.allocate(bytes, 64);
        }
        freeBuffers.remove(best);
        return best; // whole, so it goes back to the pool at its full size
    }

    @Override
    public void barrier() {
        mpi.barrier(comm);
    }

    @Override
    public double allReduceSum(double value) {
        return scalar(value, mpi.sum());
    }

    @Override
    public double allReduceMax(double value) {
        return scalar(value, mpi.max());
    }

    private double scalar(double value, MemorySegment op) {
        scalar.set(JAVA_DOUBLE, 0, value);
        mpi.allreduce(Mpi.IN_PLACE, scalar, 1, mpi.doubleType(), op, comm);
        return scalar.get(JAVA_DOUBLE, 0);
    }

    /** Broadcasts raw bytes from root (the NCCL unique id). */
    void broadcastBytes(byte[] bytes, int root) {
        try (Arena temporary = Arena.ofConfined()) {
            MemorySegment buffer = temporary.allocate(bytes.length);
            MemorySegment.copy(bytes, 0, buffer, JAVA_BYTE, 0, bytes.length);
            mpi.bcast(buffer, bytes.length, mpi.byteType(), root, comm);
            MemorySegment.copy(buffer, JAVA_BYTE, 0, bytes, 0, bytes.length);
        }
    }

    @Override
    public MpiCollectives split(int color, int key) {
        return new MpiCollectives(mpi, mpi.split(comm, color, key), true, backend, chunkFloats);
    }

    Mpi mpi() {
        return mpi;
    }

    MemorySegment comm() {
        return comm;
    }

    @Override
    public void close() {
        if (ownsComm && mpi.active()) {
            mpi.free(comm);
        }
        arena.close();
    }

    // ---- staging ----

    private MemorySegment staging(long floats) {
        long bytes = Math.max(1, floats) * Float.BYTES;
        if (staging.byteSize() < bytes) {
            staging = arena.allocate(bytes, 64);
        }
        return staging;
    }

    private void toNative(Tensor t, long from, int count, MemorySegment dst, long dstIndex) {
        if (t instanceof CpuTensor cpu) {
            MemorySegment.copy(cpu.data(), cpu.offset() + (int) from, dst, JAVA_FLOAT, dstIndex * Float.BYTES, count);
        } else {
            float[] values = host(count);
            backend.download(t.slice(from, count), values, 0, count);
            MemorySegment.copy(values, 0, dst, JAVA_FLOAT, dstIndex * Float.BYTES, count);
        }
    }

    private void fromNative(MemorySegment src, long srcIndex, Tensor t, long to, int count) {
        if (t instanceof CpuTensor cpu) {
            MemorySegment.copy(src, JAVA_FLOAT, srcIndex * Float.BYTES, cpu.data(), cpu.offset() + (int) to, count);
        } else {
            float[] values = host(count);
            MemorySegment.copy(src, JAVA_FLOAT, srcIndex * Float.BYTES, values, 0, count);
            backend.upload(t.slice(to, count), values, 0, count);
        }
    }

    private float[] host(int count) {
        if (host.length < count) {
            host = new float[count];
        }
        return host;
    }
}
