package io.tinyllamaj.trainer;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.trainer.run.MetricsLog;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The golden loss curve, single-rank part: 30 steps of a one-layer model with the Llama 2
 * vocabulary on the shipped samples (prepared by the real pipeline) must reproduce
 * {@code golden/sample-losses.txt} bit for bit.
 *
 * <p>Be clear about what this proves: the golden file was captured once from this code, so
 * it is NOT an independent reference. It is a regression guard that catches any change to
 * the numerics of tokenizing, sampling, the model, AdamW or the schedule; the correctness of
 * those parts rests on their own tests (the float64 reference of the model, the hand-computed
 * LR values, exact resume). The CPU backend's reductions use a fixed split, so the file holds
 * on any core count. After an intended numerics change,
 * regenerate with {@code -Dgolden.update=true} and say why in the commit.
 */
class GoldenLossTest {

    static final Path GOLDEN = Path.of("src", "test", "resources", "golden", "sample-losses.txt");

    @TempDir
    Path dir;

    @Test
    void sampleRunMatchesTheGoldenLosses() throws Exception {
        Path samples = Path.of("..", "samples").toAbsolutePath().normalize();
        Path recipe = dir.resolve("golden.yaml");
        Files.writeString(recipe, """
                model: {preset: demo-9m, dim: 32, layers: 1, heads: 2, kv_heads: 1, intermediate: 64, max_seq_len: 32}
                data:
                  val_blocks: 2
                  sources:
                    - name: slimpajama
                      path: %s
                      weight: 0.693584
                      prepare: {format: slimpajama, inputs: [%s]}
                    - name: starcoder
                      path: %s
                      weight: 0.306416
                      prepare: {format: starcoder, inputs: [%s]}
                train: {seq_len: 32, micro_batch_size: 2, global_batch_size: 4, max_steps: 30, lr: 3.0e-3,
                        min_lr: 3.0e-4, warmup_steps: 5, grad_clip: 0, lr_schedule: per_micro_batch}
                eval: {interval: 10}
                checkpoint: {interval: 0}
                logging: {interval: 1}
                """.formatted(dir.resolve("slimpajama"), samples.resolve("slimpajama"), dir.resolve("starcoder"),
                samples.resolve("starcoder")));
        Path run = dir.resolve("run");
        TestRuns.pretrain(recipe, run, null);
        List<String> lines = new ArrayList<>();
        for (JsonNode r : MetricsLog.read(run.resolve(MetricsLog.FILE))) {
            double loss = r.path("loss").asDouble();
            lines.add(String.format(Locale.ROOT, "%d %s %.6f first_token=%d%s", r.path("step").asLong(),
                    Long.toHexString(Double.doubleToRawLongBits(loss)), loss, r.path("first_token").asInt(),
                    r.has("val_loss") ? " val_loss=" + Long.toHexString(Double.doubleToRawLongBits(r.path("val_loss").asDouble())) : ""));
        }
        if (Boolean.getBoolean("golden.update")) {
            Files.createDirectories(GOLDEN.getParent());
            Files.write(GOLDEN, lines);
        }
        assertTrue(Files.exists(GOLDEN), "no golden file; create it with -Dgolden.update=true");
        assertEquals(String.join("\n", Files.readAllLines(GOLDEN)), String.join("\n", lines),
                "the sample run no longer reproduces " + GOLDEN);
    }
}
