package io.tinyllamaj.trainer.run;

/**
 * The train losses of the steps since the last metrics record, summed in step order, for the
 * record's {@code loss_mean}: at {@code logging.interval} k a record's {@code loss} is one
 * step's loss over one batch, its {@code loss_mean} the mean over the k batches (as Megatron-LM
 * logs its loss), so a curve drawn from the records is about sqrt(k) times less noisy. A non-finite loss is
 * left out (its step is skipped and reported). Part of a checkpoint, so a resumed run writes the
 * uninterrupted run's records.
 *
 * @param sum   the finite losses added since the last record
 * @param steps how many there were
 */
public record LossWindow(double sum, long steps) {
    public static final LossWindow EMPTY = new LossWindow(0, 0);

    public LossWindow {
        if (!Double.isFinite(sum) || steps < 0 || (steps == 0 && sum != 0)) {
            throw new IllegalArgumentException("a loss window of sum " + sum + " over " + steps + " steps does not fit");
        }
    }

    /** This window with {@code loss} added, or unchanged where the loss is not finite. */
    public LossWindow add(double loss) {
        return Double.isFinite(loss) ? new LossWindow(sum + loss, steps + 1) : this;
    }

    /** The mean loss of the window; NaN when no step of it had a finite loss. */
    public double mean() {
        return steps == 0 ? Double.NaN : sum / steps;
    }
}
