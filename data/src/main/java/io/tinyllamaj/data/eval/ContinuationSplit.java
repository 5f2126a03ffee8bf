package io.tinyllamaj.data.eval;

import io.tinyllamaj.data.tokenizer.LlamaTokenizer;

import java.util.Arrays;

/**
 * Tokenizes a request as lm-evaluation-harness does for causal models: trailing spaces of the
 * context move to the front of the continuation, context and continuation are encoded together,
 * and the continuation is what follows the context's own tokens. The model reads the context's
 * tokens then the continuation's, so a merge across the boundary never hides a context token.
 */
public final class ContinuationSplit {

    private ContinuationSplit() {
    }

    /** Token ids of a context and of its continuation. */
    public record Tokens(int[] context, int[] continuation) {
    }

    public static Tokens encode(LlamaTokenizer tokenizer, String context, String continuation, boolean bos) {
        int kept = context.length();
        while (kept > 0 && Character.isWhitespace(context.charAt(kept - 1))) {
            kept--;
        }
        continuation = context.substring(kept) + continuation;
        context = context.substring(0, kept);
        if (context.isEmpty()) { // the harness scores an empty context after the end-of-text token
            return new Tokens(new int[] {tokenizer.eosId()}, tokenizer.encode(continuation, bos, false));
        }
        int[] whole = tokenizer.encode(context + continuation, bos, false);
        int[] contextTokens = tokenizer.encode(context, bos, false);
        int split = Math.min(contextTokens.length, whole.length);
        return new Tokens(contextTokens, Arrays.copyOfRange(whole, split, whole.length));
    }
}
