package io.tinyllamaj.trainer.run;

import io.tinyllamaj.trainer.config.RunShape;
import io.tinyllamaj.trainer.config.TrainingConfig;

/**
 * TinyLlama's learning rate ({@code pretrain/tinyllama.py}, {@code get_lr}), which is a
 * function of the micro-batch iteration, not of the optimizer step:
 * <pre>
 *   warmup_iters   = warmup_steps * A          (A = gradient accumulation steps)
 *   lr_decay_iters = max_step * A
 *   get_lr(it) = lr * it / warmup_iters                              if it &lt; warmup_iters
 *              = min_lr                                              if it &gt; lr_decay_iters
 *              = min_lr + 0.5 (1 + cos(pi r)) (lr - min_lr),  r = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
 * </pre>
 * The loop sets the LR before every micro-batch and the optimizer steps after the A-th, so
 * optimizer step s (from 0) runs with {@code get_lr(s * A + A - 1)}. Note that the first
 * step's LR is not 0 and the warmup never reaches exactly {@code lr}: that is the original's
 * arithmetic and we keep it. {@code decay: constant} keeps the warmup and then holds {@code lr}.
 */
public record LearningRateSchedule(double peak, double min, long warmupIterations, long decayIterations,
                                   int accumulation, boolean cosine) {

    /** Iteration counts that would not fit a long throw {@link ArithmeticException} rather than wrap around. */
    public static LearningRateSchedule of(TrainingConfig.Train train, RunShape shape) {
        int a = shape.accumulation();
        return new LearningRateSchedule(train.lr(), train.minLr(), Math.multiplyExact(train.warmupSteps(), a),
                Math.multiplyExact(shape.maxSteps(), a), a, train.decay().equals("cosine"));
    }

    /** The LR of optimizer step {@code step} (counting from 0). */
    public double at(long step) {
        return atIteration(Math.addExact(Math.multiplyExact(step, accumulation), accumulation - 1));
    }

    /** The LR of micro-batch iteration {@code it}, TinyLlama's {@code get_lr}. */
    public double atIteration(long it) {
        if (it < warmupIterations) {
            return peak * it / warmupIterations;
        }
        if (!cosine) {
            return peak;
        }
        if (it > decayIterations) {
            return min;
        }
        double ratio = (double) (it - warmupIterations) / (decayIterations - warmupIterations);
        double coefficient = 0.5 * (1.0 + Math.cos(Math.PI * ratio));
        return min + coefficient * (peak - min);
    }
}
