package io.tinyllamaj.data.shards;

import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

/** A redrawn progress bar for an interactive terminal: input MB done, MB/s and ETA. */
public final class TerminalProgress implements PrepareProgress {
    private static final long MB = 1_000_000;
    private final ProgressBar bar;
    private final long startNanos = System.nanoTime();

    public TerminalProgress(long inputBytesTotal) {
        bar = new ProgressBarBuilder()
                .setTaskName("prepare")
                .setInitialMax(Math.max(1, inputBytesTotal))
                .setUnit(" MB", MB)
                .setStyle(ProgressBarStyle.COLORFUL_UNICODE_BLOCK)
                .showSpeed()
                .build();
    }

    @Override
    public void update(long inputBytesDone, long inputBytesTotal, long textBytes, long tokens) {
        bar.stepTo(inputBytesDone);
        double seconds = Math.max(1e-9, (System.nanoTime() - startNanos) / 1e9);
        bar.setExtraMessage(String.format(" | %.1f MB/s text, %,d tokens", textBytes / 1e6 / seconds, tokens));
    }

    @Override
    public void close() {
        bar.close();
    }
}
