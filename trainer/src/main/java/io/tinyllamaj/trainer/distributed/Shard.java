package io.tinyllamaj.trainer.distributed;

/**
 * The contiguous range of a flat buffer that one rank owns. With q = length / ranks, rank r
 * owns [r q, (r + 1) q) and the last rank also the remainder [ranks q, length): every range
 * is contiguous, the equal parts map onto one NCCL ReduceScatter/AllGather or MPI
 * Reduce_scatter_block/Allgather call, and the remainder (fewer than {@code ranks} values)
 * onto one small AllReduce/Broadcast.
 */
public record Shard(long offset, long length) {

    public static Shard of(long length, int rank, int ranks) {
        if (ranks < 1 || rank < 0 || rank >= ranks) {
            throw new IllegalArgumentException("rank " + rank + " is outside a group of " + ranks);
        }
        long q = length / ranks;
        return new Shard(rank * q, rank == ranks - 1 ? length - rank * q : q);
    }

    /** The equal part each rank owns: length / ranks. */
    static long equalPart(long length, int ranks) {
        return length / ranks;
    }
}
