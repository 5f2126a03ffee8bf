package io.tinyllamaj.trainer;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.trainer.cli.Main;
import io.tinyllamaj.trainer.run.MetricsLog;
import io.tinyllamaj.trainer.run.PretrainRun;
import io.tinyllamaj.trainer.run.StopSignal;
import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code --init-from}: a run exported to the Hugging Face layout at step 8 seeds a new run at
 * {@code train.start_step=8}. The new run starts from those weights (its first loss is that of
 * a trained model, not of a fresh initialisation) and continues the schedule: its learning rates
 * equal the uninterrupted run's at the same steps.
 */
class InitFromTest {

    @TempDir
    Path dir;

    @Test
    void initFromHuggingFaceContinuesTheScheduleFromTrainedWeights() throws Exception {
        Path recipe = TestRuns.writeRecipe(dir, "test-tiny", 61, 16, 2, 4, 16, "");
        Path full = dir.resolve("full");
        TestRuns.pretrain(recipe, full, null, "checkpoint.keep_last=10");
        Path hf = dir.resolve("hf");
        assertEquals(0, Main.run("export", "--checkpoint", full.resolve("checkpoints/step-00000008").toString(),
                "--out", hf.toString()));

        Path seeded = dir.resolve("seeded");
        Path fresh = dir.resolve("fresh");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        new PretrainRun(recipe, List.of("train.start_step=8"), seeded, null, hf)
                .execute(StopSignal.none(), Trainer.Hooks.NONE, new PrintStream(log, true));
        TestRuns.pretrain(recipe, fresh, null);

        List<JsonNode> reference = MetricsLog.read(full.resolve(MetricsLog.FILE));
        List<JsonNode> continued = MetricsLog.read(seeded.resolve(MetricsLog.FILE));
        List<JsonNode> scratch = MetricsLog.read(fresh.resolve(MetricsLog.FILE));
        assertEquals(9, continued.getFirst().path("step").asLong(), "the first step after start_step 8");
        assertEquals(16, continued.getLast().path("step").asLong());
        for (JsonNode record : continued) {
            JsonNode same = reference.get((int) record.path("step").asLong() - 1);
            assertEquals(same.path("lr").asDouble(), record.path("lr").asDouble(), 0.0, "lr at step " + record.path("step"));
        }
        double seededLoss = continued.getFirst().path("loss").asDouble();
        double freshLoss = scratch.getFirst().path("loss").asDouble();
        assertTrue(seededLoss < freshLoss - 0.3, "started from trained weights: first loss " + seededLoss
                + " against " + freshLoss + " from a fresh initialisation");
        assertTrue(log.toString().contains("weights from " + hf), log.toString());
    }
}
