package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.model.LlamaModel;

/**
 * fsdp and hybrid, fully sharded (ZeRO-3): each rank of a shard group keeps only its contiguous
 * 1/group range ({@link Shard}) of the fp32 masters, gradients and AdamW moments. One step:
 * <pre>
 *   forward, unit by unit: gather the unit from its owners, compute, drop it (reshard_after_forward)
 *   backward, unit by unit: gather again, compute, reduce the unit's gradient onto its owners
 *   all-reduce this rank's range over the replica group   (hybrid: the same range on other nodes)
 *   scale the range by 1 / world size                     gradient of the global mean loss
 *   norm^2 = sum over the shard group of ||range||^2      each value counted once
 *   AdamW on the range with its moments
 * </pre>
 * A unit is the embedding, one block, or the final norm with the head ({@link UnitShards}).
 * fsdp is one shard group of all ranks; hybrid shards inside a node of {@code ranksPerNode}
 * ranks and replicates across nodes (HSDP), so the gathers and reductions stay on the node's
 * links and only 1/ranksPerNode of the gradient crosses the network.
 *
 * <p>The model must be {@link #prepare prepared} (sharded) after its weights are set and before
 * its first forward. A checkpoint's params.f32 is gathered to rank 0 at save time.
 */
final class Sharded extends AbstractStrategy {

    private final Collectives shardGroup;
    private final Collectives replicaGroup;
    private final Options options;
    private LlamaModel prepared;
    private UnitShards units;

    /** distributed.reshard_after_forward and distributed.reduce_dtype (bf16: true). */
    record Options(boolean reshardAfterForward, boolean bf16Reduce) {
        static final Options DEFAULT = new Options(true, false);
    }

    /** replicaGroup: the ranks holding the same slice on other nodes (a group of one for fsdp). */
    Sharded(Ranks ranks, String name, Collectives shardGroup, Collectives replicaGroup, Options options) {
        if (shardGroup.size() * replicaGroup.size() != ranks.world().size()) {
            throw new IllegalArgumentException("shard group of " + shardGroup.size() + " x replica group of "
                    + replicaGroup.size() + " ranks does not make the world of " + ranks.world().size());
        }
        super(ranks, name);
        this.shardGroup = shardGroup;
        this.replicaGroup = replicaGroup;
        this.options = options;
    }

    @Override
    public void prepare(LlamaModel model) {
        if (prepared == model) {
            return;
        }
        units = new UnitShards(shardGroup, model.backend(), model.layout(), options.reshardAfterForward(), options.bf16Reduce(),
                model.backend().matmulOperandsAreCopies());
        Shard own = optimizerShard(model.layout().total());
        model.shard(own.offset(), own.length(), units);
        prepared = model;
    }

    private void requirePrepared(LlamaModel model) {
        if (prepared != model) {
            throw new IllegalStateException(name() + ": the model is not sharded (call prepare after setting its weights)");
        }
    }

    @Override
    public long gatheredBlockBytes() {
        return units == null ? 0 : units.bytes();
    }

    /**
     * Rank 0 (of the shard group, so of the world) receives every owner's range by a broadcast
     * from that owner; the others pass a scratch range. Only rank 0 ever holds all masters, and
     * only while a checkpoint is written.
     */
    @Override
    public Tensor parametersForCheckpoint(LlamaModel model) {
        requirePrepared(model);
        Backend backend = model.backend();
        long total = model.layout().total();
        Tensor own = model.parameters();
        if (shardGroup.size() == 1 || replicaGroup.rank() != 0) { // hybrid: the other nodes hold copies
            return own;
        }
        Tensor whole = shardGroup.rank() == 0 ? backend.allocate(total) : null;
        Tensor scratch = null;
        for (int r = 0; r < shardGroup.size(); r++) {
            Shard piece = Shard.of(total, r, shardGroup.size());
            Tensor t;
            if (whole != null) {
                t = whole.slice(piece.offset(), piece.length());
                if (r == 0) {
                    backend.copy(t, own);
                }
            } else if (r == shardGroup.rank()) {
                t = own;
            } else {
                if (scratch == null || scratch.length() < piece.length()) {
                    scratch = backend.allocate(piece.length());
                }
                t = scratch.slice(0, piece.length());
            }
            if (r > 0) {
                shardGroup.broadcast(t, r);
            }
        }
        if (scratch != null) {
            backend.release(scratch);
        }
        return whole != null ? whole : own;
    }

    @Override
    public Shard optimizerShard(long parameterCount) {
        return shardGroup.shard(parameterCount);
    }

    @Override
    public int optimizerShards() {
        return shardGroup.size();
    }

    @Override
    public boolean savesOptimizerShard() {
        return replicaGroup.rank() == 0;
    }

    @Override
    public double afterBackward(LlamaModel model) {
        requirePrepared(model);
        Backend backend = model.backend();
        Tensor slice = model.gradients(); // this rank's range, summed over the shard group unit by unit
        if (replicaGroup.size() > 1) {
            replicaGroup.allReduceSum(slice);
        }
        if (worldSize() > 1) {
            backend.scale(slice, 1f / worldSize());
        }
        double squares = backend.sumOfSquares(slice);
        return shardGroup.size() > 1 ? shardGroup.allReduceSum(squares) : squares;
    }

    @Override
    public void gatherParameters(LlamaModel model) {
        requirePrepared(model); // nothing to gather: the next forward gathers each unit
    }
}
