package io.tinyllamaj.trainer.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.model.Checkpoints;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ReferenceLlama;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** score and generate through the CLI, against the float64 reference model. */
class ScoreAndGenerateCommandTest {

    @TempDir
    Path temp;

    @Test
    void scorePrintsLogprobsThatMatchTheFloat64Reference() throws Exception {
        ReferenceLlama ref = new ReferenceLlama(LlamaConfig.preset("test-small"), 21);
        Path dir = Checkpoints.write(ref, temp.resolve("hf"));
        int[] tokens = {1, 200, 17, 17, 5, 255, 0, 42, 99, 3};
        String list = java.util.Arrays.stream(tokens).mapToObj(Integer::toString).reduce((a, b) -> a + "," + b).orElseThrow();
        CliRun run = CliRun.of("score", "--checkpoint", dir.toString(), "--tokens", list);
        assertEquals(0, run.exitCode(), run.err());
        JsonNode json = new ObjectMapper().readTree(run.out());
        double[] logits = ref.logits(tokens, 1, tokens.length);
        int v = ref.c.vocabSize();
        double sum = 0;
        for (int i = 0; i + 1 < tokens.length; i++) {
            double max = Double.NEGATIVE_INFINITY, z = 0;
            for (int j = 0; j < v; j++) {
                max = Math.max(max, logits[i * v + j]);
            }
            for (int j = 0; j < v; j++) {
                z += Math.exp(logits[i * v + j] - max);
            }
            double expected = logits[i * v + tokens[i + 1]] - max - Math.log(z);
            assertEquals(expected, json.get("logprobs").get(i).asDouble(), 1e-4, "logprob " + i);
            sum -= expected;
        }
        assertEquals(tokens.length - 1, json.get("logprobs").size());
        assertEquals(sum / (tokens.length - 1), json.get("loss").asDouble(), 1e-4);
    }

    @Test
    void generateWithTokenPromptPrintsTheNewIds() throws Exception {
        Path dir = Checkpoints.write(new ReferenceLlama(LlamaConfig.preset("test-small"), 2), temp.resolve("hf"));
        CliRun run = CliRun.of("generate", "--checkpoint", dir.toString(), "--prompt-tokens", "1,5,9",
                "--max-new-tokens", "6", "--temperature", "0", "--ignore-eos");
        assertEquals(0, run.exitCode(), run.err());
        assertEquals(6, new ObjectMapper().readTree(run.out()).get("tokens").size());
    }

    @Test
    void badInputGetsOneLineAndNonZeroExit() throws Exception {
        Path dir = Checkpoints.write(new ReferenceLlama(LlamaConfig.preset("test-small"), 2), temp.resolve("hf"));
        assertOneLineError(CliRun.of("score", "--checkpoint", dir.toString(), "--tokens", "1,2,256"),
                "tinyllama: error: --tokens: token id 256 at position 2 is outside the model's vocabulary [0, 256)");
        assertOneLineError(CliRun.of("score", "--checkpoint", dir.toString(), "--tokens", "1,x"),
                "tinyllama: error: --tokens: 'x' at position 1 is not a token id (expected comma-separated integers)");
        assertOneLineError(CliRun.of("score", "--checkpoint", temp.resolve("missing").toString(), "--tokens", "1,2"),
                "tinyllama: error: " + temp.resolve("missing") + ": checkpoint directory not found");
        Files.write(dir.resolve("model.safetensors"), new byte[20]);
        CliRun corrupt = CliRun.of("generate", "--checkpoint", dir.toString(), "--prompt-tokens", "1");
        assertEquals(1, corrupt.exitCode());
        assertEquals(1, corrupt.err().strip().lines().count(), corrupt.err());
        assertTrue(corrupt.err().contains(dir.resolve("model.safetensors").toString()), corrupt.err());
    }

    private static void assertOneLineError(CliRun run, String expected) {
        assertEquals(1, run.exitCode());
        assertEquals(expected, run.err().strip());
    }
}
