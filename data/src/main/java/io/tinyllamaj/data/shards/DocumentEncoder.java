package io.tinyllamaj.data.shards;

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
}
