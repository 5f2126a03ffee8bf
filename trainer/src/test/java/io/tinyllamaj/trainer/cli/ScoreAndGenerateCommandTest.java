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

    /** Greedy generation prints the ids that the float64 reference's argmax picks, one full forward per token. */
    @Test
    void generateWithTokenPromptPrintsTheReferencesGreedyIds() throws Exception {
        ReferenceLlama ref = new ReferenceLlama(LlamaConfig.preset("test-small"), 2);
        Path dir = Checkpoints.write(ref, temp.resolve("hf"));
        CliRun run = CliRun.of("generate", "--checkpoint", dir.toString(), "--prompt-tokens", "1,5,9",
                "--max-new-tokens", "6", "--temperature", "0", "--ignore-eos");
        assertEquals(0, run.exitCode(), run.err());
        JsonNode printed = new ObjectMapper().readTree(run.out()).get("tokens");
        int v = ref.c.vocabSize();
        int[] sequence = {1, 5, 9};
        for (int i = 0; i < 6; i++) {
            double[] logits = ref.logits(sequence, 1, sequence.length);
            int last = (sequence.length - 1) * v, best = 0;
            for (int j = 1; j < v; j++) {
                best = logits[last + j] > logits[last + best] ? j : best;
            }
            double runnerUp = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < v; j++) {
                runnerUp = j == best ? runnerUp : Math.max(runnerUp, logits[last + j]);
            }
            assertTrue(logits[last + best] - runnerUp > 1e-4, "no near tie at token " + i + " (fp32 may pick either)");
            assertEquals(best, printed.get(i).asInt(), "token " + i + " of " + printed);
            sequence = java.util.Arrays.copyOf(sequence, sequence.length + 1);
            sequence[sequence.length - 1] = best;
        }
        assertEquals(6, printed.size());
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

    private Path testSmall() throws Exception {
        return Checkpoints.write(new ReferenceLlama(LlamaConfig.preset("test-small"), 2), temp.resolve("hf"));
    }

    @Test
    void moreNewTokensThanTheContextHoldsAreClampedWithAWarning() throws Exception {
        Path dir = testSmall(); // max_seq_len 64, a prompt of 3 tokens: 61 new tokens fit
        for (String asked : new String[]{"2147483640", "2147483647"}) {
            CliRun run = CliRun.of("generate", "--checkpoint", dir.toString(), "--prompt-tokens", "1,5,9",
                    "--max-new-tokens", asked, "--temperature", "0", "--ignore-eos");
            assertEquals(0, run.exitCode(), run.err());
            assertEquals(61, new ObjectMapper().readTree(run.out()).get("tokens").size());
            assertEquals("warning: --max-new-tokens " + asked + " is more than the 61 tokens left in the model's context "
                    + "(max_seq_len 64, prompt 3 tokens); generating at most 61", run.err().strip());
        }
    }

    @Test
    void generationSettingsOutsideTheirRangeGetOneLine() throws Exception {
        Path dir = testSmall();
        String[] base = {"generate", "--checkpoint", dir.toString(), "--prompt-tokens", "1,5"};
        assertOneLineError(CliRun.of(concat(base, "--max-new-tokens", "0")),
                "tinyllama: error: --max-new-tokens must be positive, got 0");
        assertOneLineError(CliRun.of(concat(base, "--max-new-tokens", "-3")),
                "tinyllama: error: --max-new-tokens must be positive, got -3");
        assertOneLineError(CliRun.of(concat(base, "--temperature", "NaN")),
                "tinyllama: error: temperature must be a finite number >= 0 (0: greedy), got NaN");
        assertOneLineError(CliRun.of(concat(base, "--top-p", "1.5")),
                "tinyllama: error: top-p must be in (0, 1], got 1.5");
        assertOneLineError(CliRun.of(concat(base, "--top-k", "-1")),
                "tinyllama: error: top-k must be >= 0 (0: all tokens), got -1");
        assertOneLineError(CliRun.of("generate", "--checkpoint", dir.toString(), "--prompt-tokens", String.join(",", java.util.Collections.nCopies(64, "7"))),
                "tinyllama: error: the prompt (64 tokens) leaves no room in the model's context of 64");
    }

    private static String[] concat(String[] base, String... more) {
        String[] all = java.util.Arrays.copyOf(base, base.length + more.length);
        System.arraycopy(more, 0, all, base.length, more.length);
        return all;
    }

    @Test
    void scoreRefusesTokensLongerThanTheContext() throws Exception {
        Path dir = testSmall();
        assertOneLineError(CliRun.of("score", "--checkpoint", dir.toString(), "--tokens", String.join(",", java.util.Collections.nCopies(65, "7"))),
                "tinyllama: error: --tokens: 65 tokens exceed the model's context of 64");
    }

    @Test
    void aHostileConfigIsRefusedInOneLineBeforeAnythingIsBuilt() throws Exception {
        Path dir = testSmall();
        Path config = dir.resolve("config.json");
        String original = Files.readString(config);
        Files.writeString(config, original.replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1e8"));
        CliRun run = CliRun.of("score", "--checkpoint", dir.toString(), "--tokens", "1,2");
        assertEquals(1, run.exitCode());
        // test-small's blocks: 2 x 64 + 96 x 64 + 64 x 64 + 3 x 160 x 64 = 41,088 parameters; 1e8 of them
        // with the embeddings (2 x 256 x 64) and the final norm: 4,108,800,032,832, 7.5 TiB in 16 bits
        assertTrue(run.err().startsWith("tinyllama: error: " + config + ": the shape (vocab 256, dim 64, 100,000,000 layers, "
                + "8 heads, 2 kv heads, intermediate 160) has 4,108,800,032,832 parameters, at least 7.5 TiB in 16 bits, "
                + "but the weight files hold "), run.err());
        assertEquals(1, run.err().strip().lines().count(), run.err());
        Files.writeString(config, original.replace("\"hidden_size\": 64", "\"hidden_size\": 1099511627776"));
        assertOneLineError(CliRun.of("generate", "--checkpoint", dir.toString(), "--prompt-tokens", "1"),
                "tinyllama: error: " + config + ": hidden_size 1099511627776 is out of range (1 to 2147483647)");
    }

    @Test
    void aTokenizerLargerThanTheModelsVocabularyIsRefused() throws Exception {
        Path dir = testSmall(); // 256 ids; the built-in tokenizer has 32,000 pieces
        assertOneLineError(CliRun.of("generate", "--checkpoint", dir.toString(), "--prompt", "Hello"),
                "tinyllama: error: the tokenizer llama2 has 32000 pieces but the model's vocabulary has 256 ids: they do not belong "
                        + "together (pass the checkpoint's own tokenizer with --tokenizer)");
    }

    @Test
    void aPaddedVocabularyNeverYieldsIdsTheTokenizerCannotDecode() throws Exception {
        // 64 padding ids past the tokenizer's 32,000; lm_head makes every real id's logit exactly 0 and
        // leaves the padding rows random, so an unrestricted argmax picks a padding id (one of 64 is positive)
        LlamaConfig padded = new LlamaConfig("padded", 32064, 16, 1, 4, 2, 24, 1e-5f, 10000f, 16, false);
        ReferenceLlama ref = new ReferenceLlama(padded, 3);
        double[] head = ref.w.get("lm_head.weight");
        java.util.Arrays.fill(head, 0, 32000 * 16, 0.0);
        Path dir = Checkpoints.write(ref, temp.resolve("padded"));
        CliRun run = CliRun.of("generate", "--checkpoint", dir.toString(), "--prompt", "Hello", "--max-new-tokens", "3",
                "--temperature", "0", "--ignore-eos");
        assertEquals(0, run.exitCode(), run.err());
        // every real id ties at 0, so greedy takes the first, <unk> (id 0), which decodes to " \u2047 "
        assertEquals("Hello \u2047  \u2047  \u2047 \n", run.out());
    }

    private static void assertOneLineError(CliRun run, String expected) {
        assertEquals(1, run.exitCode());
        assertEquals(expected, run.err().strip());
    }
}
