package io.tinyllamaj.trainer.run;

import java.util.ArrayDeque;
import java.util.List;

/**
 * The loss-spike guard ({@code train.spike_window}, {@code spike_sigma}, {@code spike_max_in_row}):
 * a step whose loss exceeds the mean of the last {@code window} applied steps' losses by
 * {@code sigma} standard deviations (population) is a spike, and its update is skipped. Only
 * applied steps enter the window, so a spike does not raise the bar for the next one; the guard
 * judges nothing until the window is full. Every rank sees the same mean loss, so every rank
 * decides alike. The window and counters are part of a checkpoint ({@link State}), so a
 * resumed run judges its next step exactly as the uninterrupted one would.
 */
public final class SpikeGuard {

    /**
     * What a checkpoint keeps: the window's losses (oldest first), the spikes in a row just
     * before the checkpoint, and all spikes so far.
     */
    public record State(List<Double> losses, int inRow, long total) {
        public static final State EMPTY = new State(List.of(), 0, 0);

        public State {
            losses = List.copyOf(losses);
            for (Double loss : losses) {
                if (!Double.isFinite(loss)) {
                    throw new IllegalArgumentException("a window loss is " + loss + ", not a finite number");
                }
            }
            if (inRow < 0 || total < inRow) {
                throw new IllegalArgumentException("in a row " + inRow + " and total " + total + " do not fit");
            }
        }
    }

    /** Why a step's loss was judged a spike, for the run's message. */
    public record Verdict(boolean spike, double mean, double std) {
        static final Verdict NONE = new Verdict(false, Double.NaN, Double.NaN);
    }

    private final int window;
    private final double sigma;
    private final ArrayDeque<Double> recent = new ArrayDeque<>();
    private int inRow;
    private long total;

    /** @param window 0: off (nothing is judged or kept) */
    public SpikeGuard(int window, double sigma) {
        this.window = window;
        this.sigma = sigma;
    }

    public boolean enabled() {
        return window > 0;
    }

    /** Judges a finite loss against the window; not a spike while the guard is off or the window not yet full. */
    public Verdict judge(double loss) {
        if (!enabled() || recent.size() < window) {
            return Verdict.NONE;
        }
        double sum = 0;
        for (double l : recent) {
            sum += l;
        }
        double mean = sum / window;
        double squares = 0;
        for (double l : recent) {
            squares += (l - mean) * (l - mean);
        }
        double std = Math.sqrt(squares / window);
        return new Verdict(loss > mean + sigma * std, mean, std);
    }

    /** A step judged a spike: its update was skipped. */
    public void spiked() {
        inRow++;
        total++;
    }

    /** A step whose update was applied: its loss joins the window. */
    public void applied(double loss) {
        inRow = 0;
        if (enabled()) {
            recent.addLast(loss);
            while (recent.size() > window) {
                recent.removeFirst();
            }
        }
    }

    public int inRow() {
        return inRow;
    }

    public long total() {
        return total;
    }

    public State state() {
        return new State(List.copyOf(recent), inRow, total);
    }

    /** Continues from a checkpoint; a window saved longer than this run's keeps its newest losses. */
    public void restore(State state) {
        recent.clear();
        List<Double> losses = state.losses();
        int keep = Math.min(losses.size(), window);
        recent.addAll(losses.subList(losses.size() - keep, losses.size()));
        inRow = state.inRow();
        total = state.total();
    }
}
