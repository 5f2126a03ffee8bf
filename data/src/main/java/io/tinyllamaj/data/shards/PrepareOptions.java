package io.tinyllamaj.data.shards;

import io.tinyllamaj.data.corpus.CorpusSource;
import java.nio.file.Path;
import java.util.List;

/**
 * What {@code prepare} reads and writes. {@code shardTokens} is a target: a shard is closed at
 * the first document boundary at or past it, so documents never straddle shards.
 */
public record PrepareOptions(CorpusSource source, List<String> inputs, Path out, int workers, boolean strict,
                             long shardTokens) {

    /** 16 Mi tokens: 32 MiB uint16 shards, large enough that file count stays modest at 1T tokens. */
    public static final long DEFAULT_SHARD_TOKENS = 1L << 24;
    /**
     * Tokenizer threads: far more than any machine's cores (each thread also keeps two batches of
     * up to 256 KiB characters in flight), and small enough that counts of batches in flight
     * cannot overflow.
     */
    public static final int MAX_WORKERS = 4096;

    public PrepareOptions {
        inputs = List.copyOf(inputs);
        if (inputs.isEmpty()) {
            throw new IllegalArgumentException("no --input given");
        }
        if (workers < 1) {
            throw new IllegalArgumentException("--workers must be at least 1, got " + workers);
        }
        if (workers > MAX_WORKERS) {
            throw new IllegalArgumentException("--workers must be at most " + MAX_WORKERS + ", got " + workers);
        }
        if (shardTokens < 1 || shardTokens > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("--shard-tokens must be between 1 and " + (Integer.MAX_VALUE - 8)
                    + ", got " + shardTokens);
        }
    }
}
