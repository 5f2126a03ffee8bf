package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.model.LlamaModel;

/**
 * How ranks share one optimizer step: the training loop calls it at four points and
 * otherwise runs as on one rank (docs/distributed.md shows the calls in place).
 * <pre>
 *   m, v = allocate(optimizerShard(n).length())        once
 *   each step: forward + backward of this rank's micro-batches (gradScale 1 / this rank's tokens)
 *              normSquared = afterBackward(model)
 *              loss        = meanOverRanks(localLoss)
 *              skip        = anyRank(!finite(localLoss) || !finite(normSquared))
 *              if !skip: step(model, m, v, adamw(clip from sqrt(normSquared)))
 *   stop       = anyRank(stopSignal.requested())
 * </pre>
 * Implementations: {@link DataParallel} (ddp), {@link Sharded} (fsdp, hybrid). All ranks get
 * the same bits back from every call, so their decisions (skip, clip factor, stop) agree.
 */
public interface Strategy extends AutoCloseable {

    /** none, ddp, fsdp or hybrid. */
    String name();

    /** The ranks of the whole job, for anything beyond the calls below (a checkpoint barrier). */
    Collectives world();

    default int rank() {
        return world().rank();
    }

    default int worldSize() {
        return world().size();
    }

    /**
     * The range of the flat parameter buffer (of {@code parameterCount} values) whose AdamW
     * moments this rank keeps and updates: everything for ddp, this rank's shard for fsdp and
     * hybrid. The loop allocates m and v of this length.
     */
    Shard optimizerShard(long parameterCount);

    /** Ranks the optimizer state is split over: 1 for ddp, the shard group's size for fsdp and hybrid. */
    default int optimizerShards() {
        return 1;
    }

    /**
     * Before the first forward, after the weights are set (initialised or loaded whole): full
     * sharding keeps only this rank's range of the model from here on. Nothing for ddp.
     */
    default void prepare(LlamaModel model) {
    }

    /**
     * All parameters for a checkpoint's params.f32 on rank 0, the one rank that writes it (other
     * ranks may get anything). A sharded strategy gathers them to rank 0 here; the caller releases
     * the result if it is not {@code model.parameters()}.
     */
    default Tensor parametersForCheckpoint(LlamaModel model) {
        return model.parameters();
    }

    /**
     * Bytes of parameter and gradient blocks this rank holds gathered from other ranks, beyond its
     * own shard: the unit buffers of full sharding (0 for ddp); the memory account reports it as
     * its own category.
     */
    default long gatheredBlockBytes() {
        return 0;
    }

    /**
     * Whether this rank writes its {@link #optimizerShard} into a checkpoint: one rank per
     * distinct shard (rank 0 for ddp, every rank for fsdp, the first node's ranks for hybrid).
     */
    boolean savesOptimizerShard();

    /**
     * Turns this rank's gradients of its own mean loss into the gradients of the global mean
     * loss, over {@link #optimizerShard} at least (outside it they may be partial sums), and
     * returns the squared L2 norm of the whole global gradient: the same value on every rank,
     * non-finite on every rank when any rank's gradient held a NaN or infinity.
     */
    double afterBackward(LlamaModel model);

    /** The mean over ranks of a per-rank value (each rank's mean loss over equally many tokens). */
    default double meanOverRanks(double value) {
        return worldSize() == 1 ? value : world().allReduceSum(value) / worldSize();
    }

    /** True on every rank when at least one rank passes true (a non-finite value, a stop signal). */
    default boolean anyRank(boolean flag) {
        return worldSize() == 1 ? flag : world().allReduceMax(flag ? 1 : 0) > 0;
    }

    /**
     * One AdamW update of the parameters in {@link #optimizerShard}, whose moments are m and v,
     * after which every rank holds all parameters again. The one optimizer route of every
     * strategy: the model updates its range (and keeps its matmul copy current, see
     * {@link LlamaModel#adamwUpdate}), then {@link #gatherParameters} makes the ranks whole.
     */
    default void step(LlamaModel model, Tensor m, Tensor v, AdamWStep step) {
        Shard own = optimizerShard(model.layout().total());
        if (m.length() != own.length() || v.length() != own.length()) {
            throw new IllegalArgumentException("AdamW moments hold " + m.length() + " and " + v.length()
                    + " values; this rank's shard has " + own.length());
        }
        model.adamwUpdate(own.offset(), m, v, step);
        gatherParameters(model);
    }

    /** After each rank updated its {@link #optimizerShard}: every rank gets all parameters. */
    void gatherParameters(LlamaModel model);

    /**
     * Ends every rank of the job after an error on this one, instead of leaving them waiting
     * in their next collective: prints the cause and calls MPI_Abort. Single-rank: nothing.
     */
    void abort(Throwable cause);

    /** Releases the communicators and, when this process started MPI, finalizes it. */
    @Override
    void close();
}
