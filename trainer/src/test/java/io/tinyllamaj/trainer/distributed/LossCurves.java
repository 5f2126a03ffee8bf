package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.data.sampler.MixtureSampler;
import io.tinyllamaj.data.sampler.WeightedSource;
import io.tinyllamaj.data.shards.TokenSource;
import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.Initialization;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;

import java.util.List;

/**
 * A few steps of the training loop as docs/distributed.md wires a {@link Strategy} into it:
 * the same global batch (drawn by the MixtureSampler, each rank its own blocks), AdamW with
 * global-norm clipping, and the non-finite skip agreed by all ranks.
 */
final class LossCurves {

    static final int GLOBAL_BATCH = 4;
    static final int STEPS = 20;
    static final long SEED = 3407;

    /** Per step: the mean loss over all ranks; {@code micro} sequences per forward on each rank. */
    static double[] train(Strategy strategy, String preset, int micro) {
        LlamaConfig config = LlamaConfig.preset(preset);
        int seqLen = Math.min(config.maxSeqLen(), 32);
        int perRank = GLOBAL_BATCH / strategy.worldSize();
        int accumulation = perRank / micro;
        try (CpuBackend backend = new CpuBackend()) {
            LlamaModel model = new LlamaModel(backend, config);
            Initialization.initialize(model, SEED);
            strategy.prepare(model);
            MixtureSampler sampler = new MixtureSampler(
                    List.of(new WeightedSource("random", new HashedTokens(config.vocabSize(), 400L * (seqLen + 1)), 1.0)),
                    seqLen, SEED, strategy.rank(), strategy.worldSize(), 0, true);
            Shard own = strategy.optimizerShard(model.layout().total());
            Tensor m = backend.allocate(own.length()), v = backend.allocate(own.length());
            int[] block = new int[seqLen + 1], tokens = new int[micro * seqLen], targets = new int[micro * seqLen];
            double[] losses = new double[STEPS];
            int updates = 0;
            for (int step = 0; step < STEPS; step++) {
                model.zeroGradients();
                double lossSum = 0;
                for (int a = 0; a < accumulation; a++) {
                    for (int row = 0; row < micro; row++) {
                        sampler.nextBlock(block);
                        System.arraycopy(block, 0, tokens, row * seqLen, seqLen);
                        System.arraycopy(block, 1, targets, row * seqLen, seqLen);
                    }
                    lossSum += model.forwardBackward(tokens, targets, micro, seqLen, 1f / (perRank * seqLen));
                }
                double localLoss = lossSum / (perRank * seqLen);
                double normSquared = strategy.afterBackward(model);
                losses[step] = strategy.meanOverRanks(localLoss);
                boolean skip = strategy.anyRank(!Double.isFinite(localLoss) || !Double.isFinite(normSquared));
                if (!skip) {
                    float clip = (float) Math.min(1.0, 1.0 / (Math.sqrt(normSquared) + 1e-6));
                    strategy.step(model, m, v, new AdamWStep(3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, ++updates, clip));
                }
            }
            return losses;
        }
    }

    /** Token i is a hash of i: any block can be read in any order and is always the same. */
    record HashedTokens(int vocab, long tokenCount) implements TokenSource {
        @Override
        public void read(long offset, int[] dst, int dstOffset, int length) {
            for (int i = 0; i < length; i++) {
                long x = (offset + i) * 0x9E3779B97F4A7C15L;
                x ^= x >>> 29;
                x *= 0xBF58476D1CE4E5B9L;
                dst[dstOffset + i] = (int) Long.remainderUnsigned(x ^ (x >>> 32), vocab);
            }
        }

        @Override
        public String name() {
            return "hashed";
        }

        @Override
        public void close() {
        }
    }

    private LossCurves() {
    }
}
