package io.tinyllamaj.data.shards;

/**
 * A read-only stream of token ids addressed by position: the concatenation of every document
 * (its ids, then EOS). Implementations map their files rather than load them, so a source may
 * be far larger than memory; {@link #read} is safe to call from several threads.
 */
public interface TokenSource extends AutoCloseable {

    /** Number of tokens in the stream. */
    long tokenCount();

    /** Copies tokens {@code [offset, offset + length)} into {@code dst[dstOffset...]}. */
    void read(long offset, int[] dst, int dstOffset, int length);

    /** Where the tokens come from (a directory or file), for messages. */
    String name();

    @Override
    void close();
}
