package io.tinyllamaj.model.generate;

import io.tinyllamaj.model.KvCache;
import io.tinyllamaj.model.LlamaModel;

import java.util.function.IntConsumer;

/** Autoregressive generation with a KV cache: one prefill of the prompt, then one token per step. */
public final class Generator {

    private final LlamaModel model;

    public Generator(LlamaModel model) {
        this.model = model;
    }

    /**
     * Generates up to {@code maxNewTokens} tokens after {@code prompt}, stopping early at
     * {@code stopToken} (negative: never). Each new token is passed to {@code onToken} as it
     * is produced. Returns the new tokens.
     */
    public int[] generate(int[] prompt, int maxNewTokens, Sampler sampler, int stopToken, IntConsumer onToken) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("the prompt needs at least one token");
        }
        int vocab = model.config().vocabSize();
        for (int i = 0; i < prompt.length; i++) {
            if (prompt[i] < 0 || prompt[i] >= vocab) {
                throw new IllegalArgumentException("prompt token " + prompt[i] + " at position " + i
                        + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        int capacity = Math.min(model.config().maxSeqLen(), prompt.length + maxNewTokens);
        if (prompt.length >= capacity && maxNewTokens > 0) {
            throw new IllegalArgumentException("the prompt (" + prompt.length + " tokens) leaves no room in the model's context of "
                    + model.config().maxSeqLen());
        }
        KvCache cache = new KvCache(model, capacity);
        float[] logits = model.backend().download(model.decode(prompt, prompt.length, cache));
        int[] out = new int[maxNewTokens];
        int produced = 0;
        int[] next = new int[1];
        while (produced < maxNewTokens) {
            next[0] = sampler.sample(logits);
            out[produced++] = next[0];
            onToken.accept(next[0]);
            if (next[0] == stopToken || cache.length() >= cache.capacity()) {
                break;
            }
            logits = model.backend().download(model.decode(next, 1, cache));
        }
        return java.util.Arrays.copyOf(out, produced);
    }
}
