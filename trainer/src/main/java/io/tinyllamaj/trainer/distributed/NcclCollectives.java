package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cuda.CudaBackend;
import io.tinyllamaj.kernels.cuda.CudaDriver;
import io.tinyllamaj.kernels.cuda.CudaTensor;
import io.tinyllamaj.kernels.nccl.Nccl;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.Supplier;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;

/**
 * {@link Collectives} over an NCCL communicator, for device tensors of a {@link CudaBackend}.
 * The communicator is bootstrapped over MPI: rank 0 of the MPI group makes an ncclUniqueId,
 * MPI_Bcast carries its 128 bytes to the others, and every rank calls ncclCommInitRank.
 *
 * <p>Ordering: each call first waits for the backend's compute stream (so the gradients are
 * written), runs NCCL on a stream of its own and waits for it before returning, so the next
 * kernel sees the result. That serialises communication with compute; overlapping them (a
 * reduce-scatter per block while the backward runs on, and a per-block all-gather before each
 * block's forward) is the GPU design of docs/distributed.md and needs the compute stream to
 * be shared with NCCL.
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
        nccl.broadcast(d.address(), d.address(), d.length(), Nccl.FLOAT32, root, comm, stream);
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

    private static CudaTensor device(Tensor t) {
        if (t instanceof CudaTensor d) {
            return d;
        }
        throw new IllegalArgumentException("NCCL collectives take CUDA tensors, got " + t);
    }
}
