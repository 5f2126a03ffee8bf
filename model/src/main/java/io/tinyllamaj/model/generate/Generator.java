package io.tinyllamaj.model.generate;

import io.tinyllamaj.model.KvCache;
import io.tinyllamaj.model.LlamaModel;

import java.util.Arrays;
import java.util.function.IntConsumer;

/** Autoregressive generation with a KV cache: one prefill of the prompt, then one token per step. */
public final class Generator {

    private final LlamaModel model;

    public Generator(LlamaModel model) {
        this.model = model;
    }

    /** New tokens that fit after a prompt of {@code promptLength} tokens in the model's context (max_seq_len). */
    public int room(int promptLength) {
        return model.config().maxSeqLen() - promptLength;
    }

    /**
     * Generates up to {@code maxNewTokens} tokens after {@code prompt}, and never past the model's
     * context ({@link #room}), stopping early at {@code stopToken} (negative: never). Each new
     * token is passed to {@code onToken} as it is produced. Returns the new tokens.
     */
    public int[] generate(int[] prompt, int maxNewTokens, Sampler sampler, int stopToken, IntConsumer onToken) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("the prompt needs at least one token");
        }
        if (maxNewTokens <= 0) {
            throw new IllegalArgumentException("the number of new tokens must be positive, got " + maxNewTokens);
        }
        int vocab = model.config().vocabSize();
        for (int i = 0; i < prompt.length; i++) {
            if (prompt[i] < 0 || prompt[i] >= vocab) {
                throw new IllegalArgumentException("prompt token " + prompt[i] + " at position " + i
                        + " is outside the vocabulary [0, " + vocab + ")");
            }
        }
        if (room(prompt.length) <= 0) {
            throw new IllegalArgumentException("the prompt (" + prompt.length + " tokens) leaves no room in the model's context of "
                    + model.config().maxSeqLen());
        }
        // Clamped before anything is sized by it: the count may be up to 2^31 - 1.
        int newTokens = Math.min(maxNewTokens, room(prompt.length));
        KvCache cache = new KvCache(model, prompt.length + newTokens - 1); // the last new token is never fed back
        float[] logits = model.backend().download(model.decode(prompt, prompt.length, cache));
        int[] out = new int[newTokens];
        int produced = 0;
        int[] next = new int[1];
        while (true) {
            requireFinite(logits, prompt.length + produced);
            next[0] = sampler.sample(logits);
            out[produced++] = next[0];
            onToken.accept(next[0]);
            if (next[0] == stopToken || produced == newTokens) {
                break;
            }
            logits = model.backend().download(model.decode(next, 1, cache));
        }
        return Arrays.copyOf(out, produced);
    }

    /** NaN logits would sample the same id forever (no comparison holds); they mean weights that are not finite. */
    private static void requireFinite(float[] logits, int position) {
        for (int i = 0; i < logits.length; i++) {
            if (!Float.isFinite(logits[i])) {
                throw new IllegalStateException("the logits after " + position + " tokens hold " + logits[i] + " (id " + i
                        + "): the checkpoint's weights are not finite or overflow");
            }
        }
    }
}
