package io.tinyllamaj.data.shards;

import java.io.PrintStream;
import java.time.Duration;

/** Plain lines every few seconds, for logs and pipes where a redrawn bar would be noise. */
public final class LogProgress implements PrepareProgress {
    private final PrintStream out;
    private final long intervalNanos;
    private final long startNanos = System.nanoTime();
    private long lastNanos = startNanos;

    public LogProgress(PrintStream out, Duration interval) {
        this.out = out;
        this.intervalNanos = interval.toNanos();
    }

    @Override
    public void update(long inputBytesDone, long inputBytesTotal, long textBytes, long tokens) {
        long now = System.nanoTime();
        if (now - lastNanos < intervalNanos) {
            return;
        }
        lastNanos = now;
        double seconds = (now - startNanos) / 1e9;
        double fraction = inputBytesTotal == 0 ? 1 : (double) inputBytesDone / inputBytesTotal;
        long etaSeconds = fraction <= 0 ? -1 : Math.round(seconds * (1 - fraction) / fraction);
        out.printf("prepare: %.1f%% of %.1f MB input, %.1f MB/s text, %,d tokens, ETA %s%n",
                100 * fraction, inputBytesTotal / 1e6, textBytes / 1e6 / seconds, tokens,
                etaSeconds < 0 ? "?" : Duration.ofSeconds(etaSeconds).toString().substring(2).toLowerCase());
    }

    @Override
    public void shardCommitted(ShardManifest.Shard shard) {
        out.printf("prepare: wrote %s (%,d documents, %,d tokens)%n", shard.file(), shard.documents(), shard.tokens());
    }
}
