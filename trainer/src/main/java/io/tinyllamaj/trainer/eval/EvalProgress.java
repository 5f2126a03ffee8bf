package io.tinyllamaj.trainer.eval;

import java.io.PrintStream;
import java.util.Locale;

/**
 * The progress line of a task: items scored, items/s; redrawn in place on a terminal, a line
 * every few seconds otherwise (logs, CI).
 */
public final class EvalProgress {

    private static final long PLAIN_INTERVAL_NANOS = 5_000_000_000L;

    private final PrintStream out;
    private final boolean terminal;
    private String task;
    private int total;
    private int done;
    private long started;
    private long lastShown;

    public EvalProgress(PrintStream out, boolean terminal) {
        this.out = out;
        this.terminal = terminal;
    }

    /** Nothing shown: evaluation during training reports its results only. */
    public static EvalProgress quiet() {
        return new EvalProgress(null, false);
    }

    void start(String task, int total) {
        this.task = task;
        this.total = total;
        this.done = 0;
        this.started = System.nanoTime();
        this.lastShown = started;
    }

    void itemDone() {
        done++;
        long now = System.nanoTime();
        if (out != null && (terminal ? now - lastShown > 200_000_000L : now - lastShown > PLAIN_INTERVAL_NANOS)) {
            lastShown = now;
            show(now, false, 0);
        }
    }

    void finish(long tokens) {
        if (out != null) {
            show(System.nanoTime(), true, tokens);
        }
    }

    private void show(long now, boolean last, long tokens) {
        double seconds = Math.max(1e-9, (now - started) / 1e9);
        int width = 30, filled = total == 0 ? width : (int) ((long) width * done / total);
        String line = String.format(Locale.ROOT, "%-13s [%s%s] %d/%d items | %.1f items/s", task, "=".repeat(filled),
                " ".repeat(width - filled), done, total, done / seconds);
        if (last) {
            line += String.format(Locale.ROOT, " | %,.0f tokens/s | %.1fs", tokens / seconds, seconds);
        }
        if (terminal) {
            out.print("\r\033[2K" + line + (last ? "\n" : ""));
        } else {
            out.println(line);
        }
        out.flush();
    }
}
