package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cuda.CudaBackend;
import io.tinyllamaj.kernels.cuda.CudaDriver;
import io.tinyllamaj.kernels.cuda.CudaTensor;
import io.tinyllamaj.kernels.nccl.Nccl;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;

/**
 * {@link Collectives} over an NCCL communicator, for device tensors of a {@link CudaBackend}.
 * The communicator is bootstrapped over MPI: rank 0 of the MPI group makes an ncclUniqueId,
 * MPI_Bcast carries its 128 bytes to the others, and every rank calls ncclCommInitRank.
 *
 * <p>Ordering: a blocking call first waits for the backend's compute stream (so its input is
 * written), runs NCCL on a stream of its own and waits for it before returning, so the next
 * kernel sees the result. A started call ({@link #broadcastAsync}, {@link #reduceSumAsync})
 * syncs nothing when it starts: the NCCL stream waits, on the device, for an event recorded on
 * the compute stream (the tensor written, its earlier readers done), and the compute stream goes
 * on with the kernels queued after it, which overlap the transfer. Its completion waits on the
 * host for the call's end event (a hung peer therefore blocks inside a call the {@link Watchdog}
 * watches, and the host stays one collective ahead of the device at most) and orders the
 * compute stream after that event.
 *
 * <p>Sharded calls follow {@link Shard#of}: one in-place ncclReduceScatter/ncclAllGather over
 * the equal parts and, when the length does not divide, an ncclAllReduce/ncclBroadcast of the
 * few remaining values, fused in one NCCL group.
 */
public final class NcclCollectives implements Collectives {

    private final Nccl nccl;
    private final MpiCollectives bootstrap;
    private final CudaBackend backend;
    private final CudaDriver driver;
    private final MemorySegment comm;
    private final MemorySegment stream;
    private final long scalarDevice;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment scalarHost;
    private final MemorySegment computeReady;
    private final List<MemorySegment> events = new ArrayList<>();
    private final ArrayDeque<MemorySegment> freeEvents = new ArrayDeque<>();
    private boolean closed;

    /** Collective over {@code bootstrap}'s ranks: they must all call it. Takes ownership of bootstrap. */
    public NcclCollectives(Nccl nccl, MpiCollectives bootstrap, CudaBackend backend) {
        this.nccl = nccl;
        this.bootstrap = bootstrap;
        this.backend = backend;
        this.driver = backend.driver();
        byte[] id = shareUniqueId(bootstrap, nccl::uniqueId);
        this.comm = nccl.commInitRank(bootstrap.size(), id, bootstrap.rank());
        this.stream = driver.streamCreate();
        this.scalarDevice = driver.memAlloc(Double.BYTES);
        this.scalarHost = arena.allocate(JAVA_DOUBLE);
        this.computeReady = orderingEvent();
    }

    private MemorySegment orderingEvent() {
        MemorySegment event = driver.orderingEventCreate();
        events.add(event);
        return event;
    }

    /** Rank 0 makes the id with {@code create}; every rank returns rank 0's bytes. */
    static byte[] shareUniqueId(MpiCollectives group, Supplier<byte[]> create) {
        byte[] id = group.rank() == 0 ? create.get() : new byte[Nccl.UNIQUE_ID_BYTES];
        if (id.length != Nccl.UNIQUE_ID_BYTES) {
            throw new IllegalStateException("an ncclUniqueId has " + Nccl.UNIQUE_ID_BYTES + " bytes, got " + id.length);
        }
        group.broadcastBytes(id, 0);
        return id;
    }

    @Override
    public int rank() {
        return bootstrap.rank();
    }

    @Override
    public int size() {
        return bootstrap.size();
    }

    @Override
    public void allReduceSum(Tensor t) {
        CudaTensor d = device(t);
        backend.synchronize();
        nccl.allReduce(d.address(), d.address(), d.length(), Nccl.FLOAT32, Nccl.SUM, comm, stream);
        finish();
    }

    @Override
    public void reduceSum(Tensor t, int root) {
        CudaTensor d = device(t);
        backend.synchronize();
        nccl.reduce(d.address(), d.address(), d.length(), Nccl.FLOAT32, Nccl.SUM, root, comm, stream);
        finish();
    }

    @Override
    public Pending broadcastAsync(Tensor t, int root) {
        CudaTensor d = device(t);
        return started(() -> nccl.broadcast(d.address(), d.address(), d.length(), type(d), root, comm, stream));
    }

    @Override
    public Pending reduceSumAsync(Tensor t, int root) {
        CudaTensor d = device(t);
        return started(() -> nccl.reduce(d.address(), d.address(), d.length(), type(d), Nccl.SUM, root, comm, stream));
    }

    /** The call on the NCCL stream after the compute stream's work so far; completion as the class comment says. */
    private Pending started(Runnable call) {
        driver.eventRecord(computeReady, backend.stream());
        driver.streamWaitEvent(stream, computeReady);
        call.run();
        MemorySegment done = freeEvents.isEmpty() ? orderingEvent() : freeEvents.pop();
        driver.eventRecord(done, stream);
        return () -> {
            try {
                driver.eventSynchronize(done);
            } catch (RuntimeException e) {
                nccl.checkAsyncError(comm);
                throw e;
            }
            driver.streamWaitEvent(backend.stream(), done);
            freeEvents.push(done);
        };
    }

    @Override
    public void reduceScatterSum(Tensor buffer) {
        inOneGroup(buffer,
                (base, q) -> nccl.reduceScatter(base, base + rank() * q * Float.BYTES, q, Nccl.FLOAT32, Nccl.SUM, comm, stream),
                (at, tail) -> nccl.allReduce(at, at, tail, Nccl.FLOAT32, Nccl.SUM, comm, stream));
    }

    @Override
    public void allGather(Tensor buffer) {
        inOneGroup(buffer,
                (base, q) -> nccl.allGather(base + rank() * q * Float.BYTES, base, q, Nccl.FLOAT32, comm, stream),
                (at, tail) -> nccl.broadcast(at, at, tail, Nccl.FLOAT32, size() - 1, comm, stream));
    }

    /** An NCCL call on count floats at a device address. */
    private interface Call {
        void on(long address, long count);
    }

    /**
     * A sharded call over {@link Shard#of}'s layout in one NCCL group: {@code parts} gets the
     * buffer's address and the equal part q (when there is one), {@code tail} the address and
     * length of the remainder (when there is one).
     */
    private void inOneGroup(Tensor buffer, Call parts, Call tail) {
        CudaTensor d = device(buffer);
        long q = Shard.equalPart(d.length(), size());
        long rest = d.length() - q * size();
        backend.synchronize();
        nccl.groupStart();
        if (q > 0) {
            parts.on(d.address(), q);
        }
        if (rest > 0) {
            tail.on(d.address() + q * size() * Float.BYTES, rest);
        }
        nccl.groupEnd();
        finish();
    }

    @Override
    public void broadcast(Tensor t, int root) {
        CudaTensor d = device(t);
        backend.synchronize();
        nccl.broadcast(d.address(), d.address(), d.length(), type(d), root, comm, stream);
        finish();
    }

    @Override
    public void barrier() {
        bootstrap.barrier();
    }

    @Override
    public double allReduceSum(double value) {
        return scalar(value, Nccl.SUM);
    }

    @Override
    public double allReduceMax(double value) {
        return scalar(value, Nccl.MAX);
    }

    private double scalar(double value, int op) {
        scalarHost.set(JAVA_DOUBLE, 0, value);
        driver.memcpyHtoDAsync(scalarDevice, scalarHost, Double.BYTES, stream);
        nccl.allReduce(scalarDevice, scalarDevice, 1, Nccl.FLOAT64, op, comm, stream);
        driver.memcpyDtoHAsync(scalarHost, scalarDevice, Double.BYTES, stream);
        finish();
        return scalarHost.get(JAVA_DOUBLE, 0);
    }

    @Override
    public NcclCollectives split(int color, int key) {
        return new NcclCollectives(nccl, bootstrap.split(color, key), backend);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        nccl.commDestroy(comm);
        driver.streamDestroy(stream);
        for (MemorySegment event : events) {
            driver.eventDestroy(event);
        }
        driver.memFree(scalarDevice);
        arena.close();
        bootstrap.close();
    }

    /** Waits for the NCCL stream; an error there is reported with the communicator's own error first. */
    private void finish() {
        try {
            driver.streamSynchronize(stream);
        } catch (RuntimeException e) {
            nccl.checkAsyncError(comm);
            throw e;
        }
    }

    /**
     * A call moves the tensor's own storage: bf16 matmul weights (broadcast) and bf16 gradients
     * (distributed.reduce_dtype bf16: NCCL sums them in bf16) as 2 bytes a value.
     */
    private static int type(CudaTensor t) {
        return t.bf16() ? Nccl.BFLOAT16 : Nccl.FLOAT32;
    }

    private static CudaTensor device(Tensor t) {
        if (t instanceof CudaTensor d) {
            return d;
        }
        throw new IllegalArgumentException("NCCL collectives take CUDA tensors, got " + t);
    }
}
