package io.tinyllamaj.trainer.plan;

import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ParameterLayout;
import io.tinyllamaj.model.ModelMemory;
import io.tinyllamaj.trainer.distributed.Shard;
import io.tinyllamaj.trainer.run.RankMemory;

/**
 * How a strategy splits a model's state over ranks: the fp32 masters with the matmuls' copy, the
 * gradients and the AdamW moments each over their number of ranks (1: every rank holds all of it),
 * whether blocks are gathered per use (full sharding), and whether the gathered units' gradients
 * are reduced in bf16 ({@code distributed.reduce_dtype: bf16}).
 */
public record Sharding(String name, int parameterShards, int gradientShards, int optimizerShards, boolean gathersBlocks,
                       boolean bf16Reduce) {

    /** Everything on every rank (ddp, or one rank): gradients all-reduced in fp32. */
    public static Sharding replicated(String name) {
        return new Sharding(name, 1, 1, 1, false, false);
    }

    /** Full sharding over {@code ranks}: every state split, each block gathered before it is used. */
    public static Sharding full(String name, int ranks, boolean bf16Reduce) {
        return new Sharding(name, ranks, ranks, ranks, true, bf16Reduce);
    }

    /** Bytes a value of a unit's gradient takes in its reduction. */
    public int reduceBytes() {
        return bf16Reduce ? 2 : Float.BYTES;
    }

    /** The reduction's dtype as {@code distributed.reduce_dtype} names it. */
    public String reduceDtype() {
        return bf16Reduce ? "bf16" : "fp32";
    }

    /**
     * One rank's memory at micro-batches of b x t tokens, {@code microBatches} an optimizer step, through the model's own sizing
     * ({@link ModelMemory#planned}); the rank with the largest shard (the last, which also holds
     * the remainder). {@code workspace}: the backend's, as measured elsewhere.
     */
    public RankMemory memory(LlamaConfig c, int b, int t, int microBatches, ModelMemory.Storage storage, long workspace) {
        ModelMemory whole = ModelMemory.planned(c, b, t, microBatches, storage);
        long values = whole.parameters() / Float.BYTES;
        long own = largestShard(values, parameterShards);
        return new RankMemory(own * Float.BYTES, own * storage.operandBytes(), largestShard(values, gradientShards) * Float.BYTES,
                2L * Float.BYTES * largestShard(values, optimizerShards), gathersBlocks ? gatheredBytes(c, storage, bf16Reduce) : 0,
                whole.activations(), workspace, optimizerShards);
    }

    /** Values of a buffer of {@code values} the last of {@code shards} ranks owns ({@link Shard#of}). */
    static long largestShard(long values, int shards) {
        return Shard.of(values, shards - 1, shards).length();
    }

    /**
     * The buffers full sharding holds besides its shards: three unit buffers of parameters (the
     * unit in use, the next one, whose input norm the current block reads, and the one being
     * prefetched) and two units' fp32 gradients (one being written while the other's reduction
     * runs), each of the largest unit (a block, the embedding, or the final norm with lm_head).
     * Where the matmuls read a copy (bf16 on a GPU) the three hold a block's or the head's parts
     * packed (the largest matmul part in the copy's storage, the norms in fp32), and the
     * embedding has an fp32 buffer of its own; on the CPU each holds a whole unit in fp32. A bf16
     * reduction on a GPU adds the two gradient buffers' bf16 copies, which the reduction moves (the
     * CPU rounds in place).
     */
    static long gatheredBytes(LlamaConfig c, ModelMemory.Storage storage, boolean bf16Reduce) {
        ParameterLayout layout = new ParameterLayout(c);
        long largest = layout.largestUnit();
        long gradients = 2 * largest * Float.BYTES;
        if (storage.operandBytes() == 0) {
            return 3 * largest * Float.BYTES + gradients;
        }
        if (bf16Reduce) {
            gradients += 2 * largest * storage.operandBytes();
        }
        return 3 * (layout.largestPart(false) * Float.BYTES + layout.largestPart(true) * storage.operandBytes())
                + layout.unitPart(0, false) * Float.BYTES + gradients;
    }
}
