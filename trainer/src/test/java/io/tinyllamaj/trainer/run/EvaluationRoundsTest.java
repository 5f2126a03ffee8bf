package io.tinyllamaj.trainer.run;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Every rank runs the same number of validation forwards, however the blocks divide. */
class EvaluationRoundsTest {

    @Test
    void roundsCoverEveryMicroBatchAndAreTheSameOnEveryRank() {
        assertEquals(1, Trainer.evaluationRounds(8, 8, 2), "one micro-batch: rank 1 runs one of padding");
        assertEquals(1, Trainer.evaluationRounds(4, 2, 2));
        assertEquals(2, Trainer.evaluationRounds(5, 2, 2), "3 micro-batches over 2 ranks");
        assertEquals(3, Trainer.evaluationRounds(5, 2, 1));
        assertEquals(0, Trainer.evaluationRounds(0, 4, 2));
        assertEquals(1, Trainer.evaluationRounds(1, 8, 16));
    }
}
