package io.tinyllamaj.trainer.eval;

import io.tinyllamaj.data.eval.EvalTask;

import java.util.List;
import java.util.function.Predicate;

/**
 * A task's metrics as lm-evaluation-harness aggregates them: the mean over items, and its
 * standard error, the sample standard deviation (n - 1) over sqrt(n); NaN for a single item.
 * accNorm and accNormStderr are NaN where the harness reports no acc_norm (WinoGrande, BoolQ).
 */
public record TaskResult(EvalTask task, int n, double acc, double accStderr, double accNorm, double accNormStderr,
                         double seconds) {

    public static TaskResult of(EvalTask task, List<ItemScore> items, double seconds) {
        double[] acc = mean(items, ItemScore::correct);
        double[] norm = task.hasAccNorm() ? mean(items, ItemScore::correctNormalized) : new double[] {Double.NaN, Double.NaN};
        return new TaskResult(task, items.size(), acc[0], acc[1], norm[0], norm[1], seconds);
    }

    /** {mean, standard error of the mean} of a 0/1 value per item. */
    static double[] mean(List<ItemScore> items, Predicate<ItemScore> value) {
        int n = items.size();
        double sum = 0;
        for (ItemScore item : items) {
            sum += value.test(item) ? 1 : 0;
        }
        double mean = sum / n, squares = 0;
        for (ItemScore item : items) {
            double d = (value.test(item) ? 1 : 0) - mean;
            squares += d * d;
        }
        double stderr = n > 1 ? Math.sqrt(squares / (n - 1)) / Math.sqrt(n) : Double.NaN;
        return new double[] {mean, stderr};
    }
}
