package io.tinyllamaj.trainer.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.trainer.TestRuns;
import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code inspect} on a real 10-step CPU run, against the run's own files read independently and a hand-computed LR. */
class InspectCommandTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path dir;
    static Path run;

    @BeforeAll
    static void train() throws Exception {
        // test-tiny, 16 tokens x micro-batch 2, global batch 4: accumulation A = 2; checkpoints at 4, 8 and the end (10)
        Path recipe = TestRuns.writeRecipe(dir, "test-tiny", 61, 16, 2, 4, 10, "");
        run = dir.resolve("run");
        // the hand-computed LRs below follow TinyLlama's per-micro-batch schedule
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, null, "train.lr_schedule=per_micro_batch"));
    }

    @Test
    void summarisesTheLatestCheckpoint() throws Exception {
        CliRun result = CliRun.of("inspect", run.toString(), "--json");
        assertEquals(0, result.exitCode(), result.err());
        JsonNode report = JSON.readTree(result.out());
        Path checkpoint = run.resolve("checkpoints/step-00000010");
        JsonNode state = JSON.readTree(checkpoint.resolve("state.json").toFile());
        List<String> metricLines = Files.readAllLines(run.resolve("metrics.jsonl"));
        JsonNode lastRecord = null;
        for (String line : metricLines) {
            JsonNode record = JSON.readTree(line);
            if (record.has("loss")) {
                lastRecord = record;
            }
        }
        assertEquals(checkpoint.toString(), report.get("checkpoint").asText());
        assertEquals(10, report.get("step").asLong());
        assertEquals(10, report.get("max_steps").asLong());
        assertEquals(10 * 4 * 16, report.get("tokens_seen").asLong()); // steps x sequences x seq_len
        assertEquals(state.get("tokens_seen").asLong(), report.get("tokens_seen").asLong());
        assertEquals(state.get("tokens_per_source"), report.get("tokens_per_source"));
        // per source the blocks read, seq_len + 1 tokens each (the inputs and the next token)
        assertEquals(10 * 4 * 17, report.get("tokens_per_source").get("prose").asLong() + report.get("tokens_per_source").get("code").asLong());
        assertEquals(state.get("config_hash").asText(), report.get("config_hash").asText());
        assertEquals(10, lastRecord.get("step").asLong());
        assertEquals(lastRecord.get("loss").asDouble(), report.get("last_loss").asDouble());
        // TinyLlama's get_lr at micro-batch iteration it = s A + A - 1 for step s (from 0): the 10th step is s = 9, it = 19;
        // warmup 3 x 2 = 6 iterations, decay to 10 x 2 = 20: r = 13/14
        double expected = 1e-3 + 0.5 * (1 + Math.cos(Math.PI * 13.0 / 14.0)) * (1e-2 - 1e-3);
        assertEquals(expected, report.get("lr").asDouble(), 1e-15);
        assertEquals(lastRecord.get("lr").asDouble(), report.get("lr").asDouble());
        assertEquals(1e-3, report.get("next_lr").asDouble(), 1e-15); // it = 21 > 20: min_lr
        JsonNode files = report.get("files");
        assertEquals(4, files.size(), files.toString()); // params, adam_m, adam_v, state
        for (JsonNode file : files) {
            Path path = checkpoint.resolve(file.get("name").asText());
            assertEquals(Files.size(path), file.get("bytes").asLong());
            assertEquals(java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(path))),
                    file.get("sha256").asText());
        }
    }

    @Test
    void anOlderCheckpointAndThePlainForm() throws Exception {
        CliRun result = CliRun.of("inspect", run.resolve("checkpoints/step-00000008").toString());
        assertEquals(0, result.exitCode(), result.err());
        assertTrue(result.out().contains("step 8 of 10 (8 updates, 0 skipped)"), result.out());
        assertTrue(result.out().contains("tokens seen 512 (prose "), result.out());
        // step 8 is s = 7: it = 15, r = 9/14
        double expected = 1e-3 + 0.5 * (1 + Math.cos(Math.PI * 9.0 / 14.0)) * (1e-2 - 1e-3);
        assertTrue(result.out().contains(String.format(java.util.Locale.ROOT, "lr %.6e at step 8", expected)), result.out());
        assertTrue(result.out().contains("files: 4 verified against their SHA-256"), result.out());
    }

    @Test
    void aCorruptFileIsNamedInOneLine(@TempDir Path copyRoot) throws Exception {
        Path copy = copyRoot.resolve("step-00000008");
        Files.createDirectories(copy);
        try (var files = Files.list(run.resolve("checkpoints/step-00000008"))) {
            for (Path file : files.toList()) {
                Files.copy(file, copy.resolve(file.getFileName()));
            }
        }
        try (RandomAccessFile file = new RandomAccessFile(copy.resolve("adam_v.f32").toFile(), "rw")) {
            file.seek(100);
            int b = file.read();
            file.seek(100);
            file.write(b ^ 0x01);
        }
        CliRun result = CliRun.of("inspect", copy.toString());
        assertEquals(1, result.exitCode());
        assertEquals("", result.out());
        String line = result.err().strip();
        assertEquals(1, line.lines().count(), line);
        assertTrue(line.startsWith("tinyllama: error: checkpoint file " + copy.resolve("adam_v.f32") + " fails its SHA-256 check"), line);

        CliRun missing = CliRun.of("inspect", copyRoot.resolve("nothing").toString());
        assertEquals(1, missing.exitCode());
        assertEquals(1, missing.err().strip().lines().count(), missing.err());
        assertTrue(missing.err().contains("nothing"), missing.err());
    }
}
