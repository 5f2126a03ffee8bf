package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Tensor;

/**
 * The collective operations the strategies need, over one group of ranks: MPI on the CPU
 * ({@link MpiCollectives}), NCCL on GPUs ({@link NcclCollectives}), or nothing at all for a
 * single process ({@link SingleRankCollectives}). Every call is collective: all ranks of the
 * group make the same calls in the same order with tensors of the same length. All results
 * are in place, and every rank receives the same bits.
 *
 * <p>Sharded calls split a buffer of n values by {@link Shard#of}: rank r owns a contiguous
 * range, the last rank takes the remainder.
 */
public interface Collectives extends AutoCloseable {

    /** This rank's index in the group. */
    int rank();

    /** Ranks in the group. */
    int size();

    /** The range of a buffer of {@code length} values this rank owns in sharded calls. */
    default Shard shard(long length) {
        return Shard.of(length, rank(), size());
    }

    /** t = the sum over ranks of t. */
    void allReduceSum(Tensor t);

    /**
     * Afterwards this rank's {@link #shard} of {@code buffer} holds the sum over ranks of that
     * range; the rest of the buffer is unspecified.
     */
    void reduceScatterSum(Tensor buffer);

    /**
     * root's t = the sum over ranks of t; the other ranks' t is left as it was. The default is an
     * all-reduce (twice the traffic; for transports without a reduce binding).
     */
    default void reduceSum(Tensor t, int root) {
        allReduceSum(t);
    }

    /**
     * A collective started and not yet finished: {@link #complete} makes its result visible to
     * what the caller does next (and the tensor free to use again). Started operations finish in
     * the order they were started, on every rank.
     */
    interface Pending {
        Pending DONE = () -> { };

        void complete();
    }

    /**
     * {@link #broadcast} started now and finished by {@link Pending#complete}, so that the
     * transfer can overlap the caller's work in between. Until then the caller leaves t alone
     * (root: t was read at the call). The default runs it at once.
     */
    default Pending broadcastAsync(Tensor t, int root) {
        broadcast(t, root);
        return Pending.DONE;
    }

    /** {@link #reduceSum} started now and finished by {@link Pending#complete}, as {@link #broadcastAsync}. */
    default Pending reduceSumAsync(Tensor t, int root) {
        reduceSum(t, root);
        return Pending.DONE;
    }

    /** Every rank's {@link #shard} of {@code buffer} is copied into the same range on all ranks. */
    void allGather(Tensor buffer);

    /** t = root's t. */
    void broadcast(Tensor t, int root);

    void barrier();

    /** The sum over ranks of a scalar, in double. */
    double allReduceSum(double value);

    /**
     * The maximum over ranks of a scalar. NaN does not reliably win a MAX reduction: agree on
     * "any rank non-finite" by passing 0 or 1, or sum (a NaN in a sum stays NaN).
     */
    double allReduceMax(double value);

    /**
     * Sub-groups, as MPI_Comm_split: ranks passing the same color form a group, ordered by key.
     * Collective over this group. The caller closes the result.
     */
    Collectives split(int color, int key);

    /** Releases this group's communicator (not the process's MPI). */
    @Override
    void close();
}
