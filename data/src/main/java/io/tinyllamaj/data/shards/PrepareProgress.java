package io.tinyllamaj.data.shards;

/** Receives progress from {@link PreparePipeline}; called on the pipeline's own thread. */
public interface PrepareProgress extends AutoCloseable {

    /** How far reading has got: bytes of input files (as stored, compressed or not) and text. */
    void update(long inputBytesDone, long inputBytesTotal, long textBytes, long tokens);

    /** A shard is on disk under its final name. */
    default void shardCommitted(ShardManifest.Shard shard) {
    }

    @Override
    default void close() {
    }

    PrepareProgress NONE = (inputBytesDone, inputBytesTotal, textBytes, tokens) -> { };
}
