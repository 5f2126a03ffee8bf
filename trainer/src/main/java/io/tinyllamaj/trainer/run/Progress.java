package io.tinyllamaj.trainer.run;

import me.tongfei.progressbar.ProgressBar;
import me.tongfei.progressbar.ProgressBarBuilder;
import me.tongfei.progressbar.ProgressBarStyle;

import java.io.PrintStream;
import java.time.Duration;
import java.util.Locale;

/**
 * What the user watches: on a terminal a progress bar (steps, loss, tokens/s, ETA), otherwise
 * (a log file, CI) one plain line per logged step. Messages (validation, checkpoints) go
 * through here so they do not tear the bar.
 */
public interface Progress extends AutoCloseable {

    /**
     * After every optimizer step; {@code window} holds the losses since the last metrics record,
     * this step's included; {@code logged} is true on the steps written to metrics.jsonl.
     */
    void step(long step, double loss, LossWindow window, double lr, double gradNorm, double tokensPerSecond, boolean logged);

    void message(String line);

    @Override
    void close();

    static Progress create(long startStep, long maxSteps, PrintStream out) {
        boolean terminal = System.console() != null && System.console().isTerminal() && out == System.out;
        return terminal ? new Bar(startStep, maxSteps) : new Lines(maxSteps, out);
    }

    /**
     * Plain lines: {@code step 120/800 | loss 5.1234 | loss_mean 5.2345 | lr 3.00e-04 | ...}, with
     * loss_mean (the metrics record's) where the line stands for more than one step.
     */
    final class Lines implements Progress {
        private final long maxSteps;
        private final PrintStream out;
        private final long started = System.nanoTime();

        public Lines(long maxSteps, PrintStream out) {
            this.maxSteps = maxSteps;
            this.out = out;
        }

        @Override
        public void step(long step, double loss, LossWindow window, double lr, double gradNorm, double tokensPerSecond, boolean logged) {
            if (logged) {
                String mean = window.steps() > 1 ? String.format(Locale.ROOT, " | loss_mean %.4f", window.mean()) : "";
                out.println(String.format(Locale.ROOT, "step %d/%d | loss %.4f%s | lr %.3e | grad_norm %.3f | %,.0f tok/s | %s",
                        step, maxSteps, loss, mean, lr, gradNorm, tokensPerSecond,
                        formatDuration(Duration.ofNanos(System.nanoTime() - started))));
                out.flush();
            }
        }

        @Override
        public void message(String line) {
            out.println(line);
            out.flush();
        }

        @Override
        public void close() {
            out.flush();
        }
    }

    /** The terminal bar; its ETA counts only the steps of this process. */
    final class Bar implements Progress {
        private final ProgressBar bar;

        Bar(long startStep, long maxSteps) {
            bar = new ProgressBarBuilder().setTaskName("pretrain").setInitialMax(maxSteps)
                    .setStyle(ProgressBarStyle.ASCII).setUpdateIntervalMillis(500).showSpeed(new java.text.DecimalFormat("0.00"))
                    .setUnit(" steps", 1).startsFrom(startStep, Duration.ZERO).build();
        }

        @Override
        public void step(long step, double loss, LossWindow window, double lr, double gradNorm, double tokensPerSecond, boolean logged) {
            bar.stepTo(step);
            bar.setExtraMessage(String.format(Locale.ROOT, " | loss %.4f lr %.2e %,.0f tok/s", loss, lr, tokensPerSecond));
        }

        @Override
        public void message(String line) {
            System.err.print("\r\033[2K");
            System.err.println(line);
        }

        @Override
        public void close() {
            bar.close();
        }
    }

    static String formatDuration(Duration d) {
        long s = d.toSeconds();
        return s >= 3600 ? String.format(Locale.ROOT, "%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60)
                : String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
    }
}
