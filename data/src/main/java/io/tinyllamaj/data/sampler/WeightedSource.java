package io.tinyllamaj.data.sampler;

import io.tinyllamaj.data.shards.TokenSource;

/** One corpus in the mixture and its share of the blocks drawn (TinyLlama: 0.7 and 0.3). */
public record WeightedSource(String name, TokenSource tokens, double weight) {
    public WeightedSource {
        if (!(weight > 0) || Double.isInfinite(weight)) {
            throw new IllegalArgumentException("source " + name + ": weight must be positive, got " + weight);
        }
    }
}
