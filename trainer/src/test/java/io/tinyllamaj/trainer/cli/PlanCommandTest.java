package io.tinyllamaj.trainer.cli;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code tinyllama plan} on the built-in demo: 16 sequences x 128 tokens = 2048 tokens a step, A = 2. */
class PlanCommandTest {

    private static void assertRefused(String message, String... args) {
        CliRun run = CliRun.of(args);
        assertEquals(1, run.exitCode(), run.out() + run.err());
        assertEquals("tinyllama: error: " + message + "\n", run.err());
    }

    @Test
    void optionsMustBePositiveAndFinite() {
        assertRefused("--tokens-per-gpu-s must lie in [0.001, 1e12], got Infinity", "plan", "--tokens-per-gpu-s", "Infinity");
        assertRefused("--tokens-per-gpu-s must lie in [0.001, 1e12], got NaN", "plan", "--tokens-per-gpu-s", "NaN");
        assertRefused("--tokens-per-gpu-s must lie in [0.001, 1e12], got -1.0", "plan", "--tokens-per-gpu-s", "-1");
        // a rate that is positive but tiny gave "Infinity days"
        assertRefused("--tokens-per-gpu-s must lie in [0.001, 1e12], got 1.0E-300", "plan", "--tokens-per-gpu-s", "1e-300");
        assertRefused("--gpus must be at least 1, got 0", "plan", "--gpus", "0");
    }

    @Test
    void countsPastTheLimitsAreRefusedNotWrapped() {
        assertRefused("demo-cpu.yaml (built in): train.warmup_steps 9223372036854775000 is more than 2147483647, "
                + "the most steps a run can have", "plan", "--set", "train.warmup_steps=9223372036854775000");
        assertRefused("demo-cpu.yaml (built in): train.max_steps 4611686018427387904 is more than 2147483647, "
                + "the most steps a run can have", "plan", "--set", "train.max_steps=4611686018427387904");
    }

    @Test
    void theLongestRunIsPlannedExactly() {
        CliRun run = CliRun.of("plan", "--set", "train.max_steps=2147483647", "--set", "train.warmup_steps=2147483647",
                "--tokens-per-gpu-s", "1e12", "--set", "train.lr_schedule=per_micro_batch");
        assertEquals(0, run.exitCode(), run.err());
        // 2147483647 steps x 2048 tokens = 4398046509056 tokens
        assertTrue(run.out().contains("length       2,147,483,647 steps (from step 0), 4,398,046,509,056 tokens (4.398 T)"), run.out());
        // the warmup: 2147483647 steps x A = 2 iterations
        assertTrue(run.out().contains("warmup 2,147,483,647 steps (4,294,967,294 micro-batch iterations)"), run.out());
        // milestones at 0, (2^31 - 1) / 4, / 2, x 3 / 4 (floor 1610612735.25) and the last step
        for (String step : new String[] {"536,870,911", "1,073,741,823", "1,610,612,735", "2,147,483,646"}) {
            assertTrue(run.out().contains("lr at step " + " ".repeat(Math.max(0, 12 - step.length())) + step), step + " in " + run.out());
        }
    }
}
