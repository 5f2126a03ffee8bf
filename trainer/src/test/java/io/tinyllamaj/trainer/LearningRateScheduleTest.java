package io.tinyllamaj.trainer;

import io.tinyllamaj.trainer.config.ConfigLoader;
import io.tinyllamaj.trainer.config.RunShape;
import io.tinyllamaj.trainer.run.LearningRateSchedule;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The 3T recipe's LR against TinyLlama's get_lr evaluated by hand. With 1024 sequences per
 * step on 16 GPUs at micro-batch 8, A = 1024 / (16 x 8) = 8 accumulation steps; the warmup
 * covers 2000 x 8 = 16000 iterations and the decay 1430512 x 8 = 11444096; optimizer step s
 * uses iteration s x 8 + 7. The expected values below are written out from that formula,
 * not computed by the code under test; so are those of {@code per_step}, the default elsewhere.
 */
class LearningRateScheduleTest {

    private static final ConfigLoader.Loaded RECIPE =
            ConfigLoader.load(Path.of("..", "configs", "tinyllama-1.1b-3t.yaml"), List.of());
    private static final LearningRateSchedule LR = LearningRateSchedule.of(RECIPE.config().train(), RECIPE.shape());

    @Test
    void recipeHasTinyLlamasShape() {
        assertEquals(8, RECIPE.shape().accumulation());
        assertEquals(1430512, RECIPE.shape().maxSteps());
        assertEquals(1024L * 2048, RECIPE.shape().tokensPerStep());
    }

    @Test
    void warmup() {
        assertEquals(4e-4 * 7 / 16000, LR.at(0), 0);              // iteration 7
        assertEquals(4e-4 * 15 / 16000, LR.at(1), 0);             // iteration 15
        assertEquals(4e-4 * 15999 / 16000, LR.at(1999), 0);       // iteration 15999, the last of the warmup
    }

    @Test
    void cosine() {
        // step 2000: iteration 16007, 7 iterations into a decay of 11444096 - 16000 = 11428096
        double r2000 = 7.0 / 11428096.0;
        assertEquals(4e-5 + 0.5 * (1 + Math.cos(Math.PI * r2000)) * (4e-4 - 4e-5), LR.at(2000), 1e-18);
        // step 715256: iteration 5722055; (5722055 - 16000) / 11428096 = 5706055 / 11428096, just under one half
        double rMid = 5706055.0 / 11428096.0;
        assertEquals(4e-5 + 0.5 * (1 + Math.cos(Math.PI * rMid)) * (4e-4 - 4e-5), LR.at(715256), 1e-18);
        assertEquals(2.2e-4, LR.at(715256), 1e-6);                // about halfway between 4e-4 and 4e-5
        // the last step: iteration 11444095, one short of the end of the decay
        double rEnd = 11428095.0 / 11428096.0;
        assertEquals(4e-5 + 0.5 * (1 + Math.cos(Math.PI * rEnd)) * (4e-4 - 4e-5), LR.at(1430511), 1e-18);
        assertEquals(4e-5, LR.at(1430511), 1e-15);
    }

    @Test
    void theRecipeKeepsTinyLlamasPerMicroBatchScheduleAndTheDemoCountsSteps() {
        assertEquals("per_micro_batch", RECIPE.config().train().lrSchedule());
        assertEquals("per_step", ConfigLoader.parse("demo", ConfigLoader.demoYaml(), List.of()).config().train().lrSchedule());
    }

    @Test
    void perStepIsTheSameCurveWhateverTheAccumulation() {
        // per_step on the 3T shape: warmup over 2000 steps, decay over 1430512, step s at position s + 1
        LearningRateSchedule a8 = schedule("per_step", "distributed.world_size=16");
        LearningRateSchedule a1 = schedule("per_step", "distributed.world_size=128");
        assertEquals(8, a8.accumulation());
        assertEquals(1, a1.accumulation());
        for (LearningRateSchedule lr : List.of(a8, a1)) {
            assertEquals(4e-4 * 1 / 2000, lr.at(0), 0);           // the first step is not at 0
            assertEquals(4e-4 * 2 / 2000, lr.at(1), 0);
            assertEquals(4e-4, lr.at(1999), 0);                    // position 2000: the warmup's end, exactly the peak
            double r2000 = 1.0 / 1428512.0;                        // position 2001 of a decay of 1430512 - 2000
            assertEquals(4e-5 + 0.5 * (1 + Math.cos(Math.PI * r2000)) * (4e-4 - 4e-5), lr.at(2000), 1e-18);
            assertEquals(4e-5, lr.at(1430511), 0);                 // position 1430512: the end of the decay, exactly min_lr
        }
    }

    @Test
    void perMicroBatchWithOneMicroBatchPerStepStartsAtZero() {
        // 1024 sequences on 128 ranks of micro-batch 8: A = 1, step s at iteration s
        LearningRateSchedule lr = schedule("per_micro_batch", "distributed.world_size=128");
        assertEquals(1, lr.accumulation());
        assertEquals(0.0, lr.at(0), 0);
        assertEquals(4e-4 * 1999 / 2000, lr.at(1999), 0);
        assertEquals(4e-4, lr.at(2000), 0);
    }

    @Test
    void aDecayOfNoLengthHoldsThePeak() {
        // warmup_steps = max_steps: position max_steps is the end of both, not 0 / 0
        LearningRateSchedule lr = new LearningRateSchedule(1e-3, 1e-4, 10, 10, 1, true, false);
        assertEquals(1e-3 * 9 / 10, lr.at(8), 0);
        assertEquals(1e-3, lr.at(9), 0);
    }

    private static LearningRateSchedule schedule(String kind, String worldSize) {
        ConfigLoader.Loaded loaded = ConfigLoader.load(Path.of("..", "configs", "tinyllama-1.1b-3t.yaml"),
                List.of("train.lr_schedule=" + kind, worldSize));
        return LearningRateSchedule.of(loaded.config().train(), loaded.shape());
    }

    @Test
    void iterationCountsThatWouldWrapAroundAreRefused() {
        RunShape s = RECIPE.shape();
        // 2^61 steps x A = 8 is 2^64 iterations: past a long, so no schedule, rather than a negative one
        RunShape tooLong = new RunShape(s.model(), s.seqLen(), s.microBatch(), s.worldSize(), s.accumulation(),
                s.globalBatchSequences(), 1L << 61);
        assertThrows(ArithmeticException.class, () -> LearningRateSchedule.of(RECIPE.config().train(), tooLong));
        assertThrows(ArithmeticException.class, () -> LR.at(1L << 61));
    }
}
