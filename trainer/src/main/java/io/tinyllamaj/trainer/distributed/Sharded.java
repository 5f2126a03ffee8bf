package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.model.LlamaModel;

/**
 * fsdp and hybrid: the optimizer state and the AdamW update are sharded over a group of
 * ranks, each owning a contiguous 1/group slice of the flat parameter buffer ({@link Shard}).
 * One step:
 * <pre>
 *   reduce-scatter gradients over the shard group        this rank's slice = sum over the group
 *   all-reduce that slice over the replica group          (hybrid: the same slice on other nodes)
 *   scale the slice by 1 / world size                     gradient of the global mean loss
 *   norm^2 = sum over the shard group of ||slice||^2      each value counted once
 *   AdamW on the slice with its moments (1/group of the full state)
 *   all-gather parameters over the shard group            every rank whole again
 * </pre>
 * fsdp is one shard group of all ranks; hybrid shards inside a node of
 * {@code ranksPerNode} ranks and replicates across nodes (HSDP), so the large reduce-scatter
 * and all-gather stay on NVLink and only 1/ranksPerNode of the gradient crosses the network.
 *
 * <p>Parameters stay whole on every rank between steps, which the CPU backend needs for its
 * forward anyway; on GPUs the memory-saving form gathers each block just before its forward
 * and backward and frees it after (docs/distributed.md).
 */
final class Sharded extends AbstractStrategy {

    private final Collectives shardGroup;
    private final Collectives replicaGroup;

    /** replicaGroup: the ranks holding the same slice on other nodes (a group of one for fsdp). */
    Sharded(Ranks ranks, String name, Collectives shardGroup, Collectives replicaGroup) {
        if (shardGroup.size() * replicaGroup.size() != ranks.world().size()) {
            throw new IllegalArgumentException("shard group of " + shardGroup.size() + " x replica group of "
                    + replicaGroup.size() + " ranks does not make the world of " + ranks.world().size());
        }
        super(ranks, name);
        this.shardGroup = shardGroup;
        this.replicaGroup = replicaGroup;
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
        Backend backend = model.backend();
        Tensor gradients = model.gradients();
        Shard own = optimizerShard(gradients.length());
        Tensor slice = gradients.slice(own.offset(), own.length());
        if (shardGroup.size() > 1) {
            shardGroup.reduceScatterSum(gradients);
        }
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
        if (shardGroup.size() > 1) {
            shardGroup.allGather(model.parameters());
        }
    }
}
