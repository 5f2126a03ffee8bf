package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.model.LlamaModel;

/**
 * ddp: every rank keeps all parameters and all optimizer state. After the backward the
 * gradients are summed over ranks and divided by the world size (each rank's gradient is of
 * its own mean loss; the global mean loss is their mean), then every rank runs the same AdamW
 * update on the same bits, so the replicas never drift apart.
 */
final class DataParallel extends AbstractStrategy {

    DataParallel(Ranks ranks, String name) {
        super(ranks, name);
    }

    @Override
    public Shard optimizerShard(long parameterCount) {
        return new Shard(0, parameterCount);
    }

    @Override
    public boolean savesOptimizerShard() {
        return rank() == 0;
    }

    @Override
    public double afterBackward(LlamaModel model) {
        Backend backend = model.backend();
        Tensor gradients = model.gradients();
        int size = worldSize();
        if (size > 1) {
            world().allReduceSum(gradients);
            backend.scale(gradients, 1f / size);
        }
        return backend.sumOfSquares(gradients);
    }

    @Override
    public void gatherParameters(LlamaModel model) {
        // every rank updated all parameters with the same bits
    }
}
