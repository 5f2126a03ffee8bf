package io.tinyllamaj.trainer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.hf.HfCheckpoint;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.run.PretrainRun;
import io.tinyllamaj.trainer.run.StopSignal;
import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code pretrain --init-from FILE.pth} on lit-gpt checkpoints that make_fixtures.py (model test
 * resources) wrote, AdamW's state keyed by parameter index and by name. A stop requested before
 * the first step saves at once what was taken; weights and moments must equal the same values
 * that the script wrote as safetensors in Hugging Face names (q/k/v packed per group in the .pth).
 */
class LitGptInitFromTest {

    @TempDir
    Path dir;

    @ParameterizedTest
    @ValueSource(strings = {"lit-index-keyed.pth", "lit-name-keyed.pth"})
    void weightsMomentsAndStepAreTakenAndTheDataPositionIsNot(String file) throws Exception {
        Path recipe = TestRuns.writeRecipe(dir, "test-tiny", 32, 16, 2, 4, 130, "");
        Path pth = copy("/torch/" + file, dir.resolve(file));
        Path run = dir.resolve("run");
        StopSignal stop = StopSignal.none();
        stop.request("test");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        new PretrainRun(recipe, List.of("model.vocab_size=32"), run, null, pth)
                .execute(stop, Trainer.Hooks.NONE, new PrintStream(log, true));
        String printed = log.toString();
        assertTrue(printed.contains("from lit-gpt checkpoint " + pth + ": weights (") && printed.contains("AdamW moments (")
                && printed.contains("step 120 (step_count; LR ") && printed.contains("not taken: the data position"), printed);

        Path checkpoint = run.resolve("checkpoints/" + CheckpointStore.name(120));
        JsonNode state = new ObjectMapper().readTree(checkpoint.resolve("state.json").toFile());
        assertEquals(120, state.path("step").asLong());
        assertEquals(120, state.path("updates").asLong(), state.toString());
        assertEquals(reference("ref-fp32"), stored(checkpoint, CheckpointStore.PARAMS));
        assertEquals(reference("ref-lit-exp_avg"), stored(checkpoint, CheckpointStore.ADAM_M));
        assertEquals(reference("ref-lit-exp_avg_sq"), stored(checkpoint, CheckpointStore.ADAM_V));
    }

    /** A Hugging Face directory from the fixtures, as our flat parameter buffer. */
    private List<Float> reference(String name) throws IOException {
        Path hf = dir.resolve(name);
        Files.createDirectories(hf);
        copy("/torch/" + name + "/config.json", hf.resolve("config.json"));
        copy("/torch/" + name + "/model.safetensors", hf.resolve("model.safetensors"));
        try (CpuBackend backend = new CpuBackend()) {
            return boxed(backend.download(HfCheckpoint.load(hf, backend).parameters()));
        }
    }

    private static List<Float> stored(Path checkpoint, String file) throws IOException {
        try (CpuBackend backend = new CpuBackend()) {
            long n = Files.size(checkpoint.resolve(CheckpointStore.PARAMS)) / 4;
            Tensor t = backend.allocate(n);
            if (file.equals(CheckpointStore.PARAMS)) {
                CheckpointStore.readTensor(checkpoint.resolve(file), backend, t);
            } else {
                CheckpointStore.readMoments(checkpoint, file, 0, backend, t);
            }
            return boxed(backend.download(t));
        }
    }

    private static List<Float> boxed(float[] values) {
        Float[] out = new Float[values.length];
        for (int i = 0; i < values.length; i++) {
            out[i] = values[i];
        }
        return List.of(out);
    }

    private static Path copy(String resource, Path to) throws IOException {
        try (InputStream in = LitGptInitFromTest.class.getResourceAsStream(resource)) {
            assertTrue(in != null, resource);
            Files.copy(in, to);
        }
        return to;
    }
}
