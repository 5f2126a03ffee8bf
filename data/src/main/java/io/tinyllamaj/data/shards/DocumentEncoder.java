package io.tinyllamaj.data.shards;

import io.tinyllamaj.data.tokenizer.LlamaTokenizer;

/**
 * The tokenizer as {@code prepare} needs it. The pipeline adds the framing itself (ids, then
 * EOS, no BOS), so {@link #encode} returns the bare ids. Implementations must be safe to call
 * from several threads at once.
 */
public interface DocumentEncoder {
    int[] encode(String text);

    int vocabSize();

    int eosId();

    /** Identifies the vocabulary and merges; recorded in the manifest and checked on resume. */
    String checksum();

    /** A Llama tokenizer giving bare ids (no BOS, no EOS): the pipeline frames documents. */
    static DocumentEncoder of(LlamaTokenizer tokenizer) {
        return new DocumentEncoder() {
            @Override
            public int[] encode(String text) {
                return tokenizer.encode(text, false, false);
            }

            @Override
            public int vocabSize() {
                return tokenizer.vocabSize();
            }

            @Override
            public int eosId() {
                return tokenizer.eosId();
            }

            @Override
            public String checksum() {
                return tokenizer.checksum();
            }
        };
    }
}
