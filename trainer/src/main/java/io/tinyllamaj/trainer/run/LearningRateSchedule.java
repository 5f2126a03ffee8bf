package io.tinyllamaj.trainer.run;

import io.tinyllamaj.trainer.config.RunShape;
import io.tinyllamaj.trainer.config.TrainingConfig;

/**
 * The learning rate: linear warmup, then cosine decay to {@code min_lr} (or, with
 * {@code decay: constant}, {@code lr} held), TinyLlama's {@code get_lr} curve
 * ({@code pretrain/tinyllama.py}) over a position {@code n}:
 * <pre>
 *   curve(n) = lr * n / W                                           if n &lt; W
 *            = min_lr                                               if n &gt; D
 *            = min_lr + 0.5 (1 + cos(pi r)) (lr - min_lr),  r = (n - W) / (D - W)
 * </pre>
 * What {@code n}, W and D count is {@code train.lr_schedule}:
 * <ul>
 * <li>{@code per_micro_batch}, TinyLlama's: micro-batch iterations, W = warmup_steps x A,
 *     D = max_steps x A (A = accumulation steps). The loop sets the LR before every micro-batch
 *     and the optimizer steps after the A-th, so step s (from 0) runs with {@code curve(s A + A - 1)}.
 *     The first step's LR is therefore not 0 unless A = 1, the warmup never reaches exactly
 *     {@code lr}, and the same global batch on another number of ranks (another A) shifts it:
 *     the original's arithmetic, kept to reproduce it.</li>
 * <li>{@code per_step}: optimizer steps, W = warmup_steps, D = max_steps, and step s runs with
 *     {@code curve(s + 1)}: the first step at {@code lr / W}, step W - 1 at exactly {@code lr},
 *     the last at exactly {@code min_lr}, whatever the world size and accumulation.</li>
 * </ul>
 * Either way the LR is a function of the step alone, so a resumed run continues the schedule exactly.
 *
 * @param perMicroBatch true: positions are micro-batch iterations; false: optimizer steps
 */
public record LearningRateSchedule(double peak, double min, long warmup, long decay, int accumulation, boolean cosine,
                                   boolean perMicroBatch) {

    /** Iteration counts that would not fit a long throw {@link ArithmeticException} rather than wrap around. */
    public static LearningRateSchedule of(TrainingConfig.Train train, RunShape shape) {
        boolean perMicroBatch = train.lrSchedule().equals("per_micro_batch");
        int a = perMicroBatch ? shape.accumulation() : 1;
        return new LearningRateSchedule(train.lr(), train.minLr(), Math.multiplyExact(train.warmupSteps(), a),
                Math.multiplyExact(shape.maxSteps(), a), shape.accumulation(), train.decay().equals("cosine"), perMicroBatch);
    }

    /** The LR of optimizer step {@code step} (counting from 0). */
    public double at(long step) {
        return curve(perMicroBatch
                ? Math.addExact(Math.multiplyExact(step, accumulation), accumulation - 1)
                : Math.addExact(step, 1));
    }

    /** TinyLlama's {@code get_lr} at position {@code n} (a micro-batch iteration, or a step count). */
    public double curve(long n) {
        if (n < warmup) {
            return peak * n / warmup;
        }
        if (!cosine) {
            return peak;
        }
        if (n > decay) {
            return min;
        }
        // n == W == D: the decay has no length; the warmup has just reached its peak
        double ratio = decay == warmup ? 0 : (double) (n - warmup) / (decay - warmup);
        double coefficient = 0.5 * (1.0 + Math.cos(Math.PI * ratio));
        return min + coefficient * (peak - min);
    }
}
