package io.tinyllamaj.model;

import io.tinyllamaj.kernels.Tensor;

import java.util.Locale;

/**
 * Keys and values of the positions seen so far, for one sequence. Each block keeps whole fused
 * qkv rows [capacity, qkvDim] (queries included: attention then reads the cache exactly as it
 * reads a training batch, at the cost of storing q, heads / (heads + 2 kvHeads) of the cache).
 */
public final class KvCache {

    final Tensor[] layers;
    final int capacity;
    int length;

    public KvCache(LlamaModel model, int capacity) {
        LlamaConfig c = model.config();
        if (capacity > c.maxSeqLen()) {
            throw new IllegalArgumentException("a context of " + capacity + " tokens exceeds the model's max_seq_len " + c.maxSeqLen());
        }
        MemoryBudget.require(model.backend(), (double) Float.BYTES * c.layers() * capacity * c.qkvDim(),
                String.format(Locale.ROOT, "a KV cache of %,d tokens needs", capacity));
        this.capacity = capacity;
        this.layers = new Tensor[c.layers()];
        for (int l = 0; l < layers.length; l++) {
            layers[l] = model.backend().allocateActivation((long) capacity * c.qkvDim());
        }
    }
}
