package io.tinyllamaj.trainer;

import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * Tests whose interrupted runs must end equal to one uninterrupted run of the same recipe,
 * made once per test class (in its {@code @BeforeAll}, by {@link #runReference}) and shared by
 * its tests; each test works in its own {@link #dir}.
 */
abstract class ReferenceRunBase {

    @TempDir
    static Path shared;
    static Path recipe;
    static Path reference;

    @TempDir
    Path dir;

    /** Writes the recipe into {@link #shared} and runs it to the end into {@code shared/reference}. */
    static void runReference(String preset, int vocab, int seqLen, int microBatch, int globalBatch, int steps)
            throws IOException {
        recipe = TestRuns.writeRecipe(shared, preset, vocab, seqLen, microBatch, globalBatch, steps, "");
        reference = shared.resolve("reference");
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, reference, null));
    }
}
