package io.tinyllamaj.trainer.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.model.Checkpoints;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ReferenceLlama;
import io.tinyllamaj.trainer.cli.CliRun;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code tinyllama eval} end to end on a random-weight model with the Llama 2 vocabulary: every
 * choice's log-likelihood against the float64 reference model's sum over exactly the
 * continuation tokens, each sequence scored alone (no batching, no shared rows).
 */
class EvalCommandTest {

    @TempDir
    static Path temp;

    private static ReferenceLlama ref;
    private static Path checkpoint;
    private static final LlamaTokenizer LLAMA2 = LlamaTokenizer.llama2();

    /** One item per task, in each dataset's schema; requests as the harness builds them, written here by hand. */
    private static final Map<String, String> ROWS = Map.of(
            "hellaswag", """
                    {"activity_label": "Baking", "ctx_a": "A woman mixes flour.", "ctx_b": "she", \
                    "endings": ["pours milk in.", "sings loudly.", "bakes the bowl."], "label": "0"}""",
            "piqa", """
                    {"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Freeze it.", "label": 0}""",
            "arc_easy", """
                    {"question": "Which is hot?", "choices": {"text": ["ice", "fire"], "label": ["A", "B"]}, "answerKey": "B"}""",
            "arc_challenge", """
                    {"question": "What melts?", "choices": {"text": ["rock", "ice", "glass"], "label": ["1", "2", "3"]}, "answerKey": "2"}""",
            "winogrande", """
                    {"sentence": "The cup fell on the plate and _ broke.", "option1": "the cup", "option2": "the plate", "answer": "2"}""",
            "boolq", """
                    {"passage": "Cats purr when happy.", "question": "do cats purr", "label": 1}""",
            "openbookqa", """
                    {"question_stem": "The sun is a", "choices": {"text": ["star", "moon"], "label": ["A", "B"]}, "answerKey": "A"}""");

    /** The same items' requests: {context, continuation} per choice. */
    private static final Map<String, String[][]> REQUESTS = Map.of(
            "hellaswag", new String[][] {{"Baking: A woman mixes flour. She", " pours milk in."},
                    {"Baking: A woman mixes flour. She", " sings loudly."}, {"Baking: A woman mixes flour. She", " bakes the bowl."}},
            "piqa", new String[][] {{"Question: Open a jar\nAnswer:", " Twist the lid."}, {"Question: Open a jar\nAnswer:", " Freeze it."}},
            "arc_easy", new String[][] {{"Question: Which is hot?\nAnswer:", " ice"}, {"Question: Which is hot?\nAnswer:", " fire"}},
            "arc_challenge", new String[][] {{"Question: What melts?\nAnswer:", " rock"}, {"Question: What melts?\nAnswer:", " ice"},
                    {"Question: What melts?\nAnswer:", " glass"}},
            "winogrande", new String[][] {{"The cup fell on the plate and the cup", " broke."},
                    {"The cup fell on the plate and the plate", " broke."}},
            "boolq", new String[][] {{"Cats purr when happy.\nQuestion: do cats purr?\nAnswer:", " no"},
                    {"Cats purr when happy.\nQuestion: do cats purr?\nAnswer:", " yes"}},
            "openbookqa", new String[][] {{"The sun is a", " star"}, {"The sun is a", " moon"}});

    @BeforeAll
    static void model() throws IOException {
        LlamaConfig config = new LlamaConfig("custom", 32000, 16, 2, 2, 1, 32, 1e-5f, 10000f, 128, false);
        ref = new ReferenceLlama(config, 11);
        checkpoint = Checkpoints.write(ref, temp.resolve("hf"));
    }

    private static double referenceLoglikelihood(String context, String continuation) {
        return HarnessReference.loglikelihood(ref, LLAMA2, context, continuation);
    }

    private static Path data(String name, Map<String, String> rows) throws IOException {
        Path dir = temp.resolve(name);
        Files.createDirectories(dir);
        for (Map.Entry<String, String> row : rows.entrySet()) {
            Files.writeString(dir.resolve(row.getKey() + ".jsonl"), row.getValue() + "\n");
        }
        return dir;
    }

    @Test
    void everyChoiceScoresAsTheFloat64ReferenceDoes() throws IOException {
        Path data = data("all", ROWS);
        Path out = temp.resolve("out-all");
        String tasks = String.join(",", ROWS.keySet());
        CliRun run = CliRun.of("eval", "--checkpoint", checkpoint.toString(), "--tokenizer", "llama2", "--tasks", tasks,
                "--data", data.toString(), "--out", out.toString(), "--batch-tokens", "40");
        assertEquals(0, run.exitCode(), run.err());
        JsonNode results = new ObjectMapper().readTree(out.resolve("results.json").toFile()).get("results");
        for (String task : ROWS.keySet()) {
            JsonNode sample = new ObjectMapper().readTree(Files.readString(out.resolve("samples-" + task + ".jsonl")));
            String[][] requests = REQUESTS.get(task);
            assertEquals(requests.length, sample.get("loglikelihoods").size(), task);
            int best = 0;
            double[] expected = new double[requests.length];
            for (int c = 0; c < requests.length; c++) {
                expected[c] = referenceLoglikelihood(requests[c][0], requests[c][1]);
                assertEquals(expected[c], sample.get("loglikelihoods").get(c).asDouble(), 1e-5, task + " choice " + c);
                best = expected[c] > expected[best] ? c : best;
            }
            int gold = sample.get("gold").asInt();
            assertEquals(best == gold ? 1.0 : 0.0, results.get(task).get("acc").asDouble(), task);
            assertEquals(1, results.get(task).get("n").asInt(), task);
        }
        assertTrue(run.out().contains("|hellaswag    |     1|acc     |"), run.out());
        assertTrue(run.err().contains("items/s"), run.err());
    }

    private void refused(String expectedMessage, Path data, String tasks) {
        Path out = temp.resolve("out-refused");
        CliRun run = CliRun.of("eval", "--checkpoint", checkpoint.toString(), "--tokenizer", "llama2", "--tasks", tasks,
                "--data", data.toString(), "--out", out.toString());
        assertEquals(1, run.exitCode(), run.err());
        assertEquals(List.of("tinyllama: error: " + expectedMessage), run.err().lines().toList());
        assertFalse(Files.exists(out), "nothing written for a refused run");
    }

    @Test
    void badInputIsOneLineNamingFileLineAndField() throws IOException {
        Path data = data("bad", Map.of("piqa", ROWS.get("piqa") + "\n{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 2}",
                "boolq", "{\"passage\": \"p\", \"label\": 1}"));
        refused(data.resolve("piqa.jsonl") + ":2: field 'label' is 2, out of range for 2 choices", data, "piqa");
        refused(data.resolve("boolq.jsonl") + ":1: field 'question' is missing", data, "boolq");
        Path trailing = data("trailing", Map.of("piqa", ROWS.get("piqa") + " garbage"));
        refused(trailing.resolve("piqa.jsonl") + ":1: malformed JSON: text after the object", trailing, "piqa");
        refused("unknown task 'mmlu' (expected one of hellaswag, piqa, arc_easy, arc_challenge, winogrande, boolq, openbookqa)",
                data, "piqa,mmlu");
        CliRun missing = CliRun.of("eval", "--checkpoint", checkpoint.toString(), "--tokenizer", "llama2", "--tasks", "arc_easy",
                "--data", data.toString(), "--out", temp.resolve("out-missing").toString());
        assertEquals(1, missing.exitCode());
        assertTrue(missing.err().contains("neither arc_easy.jsonl nor arc_easy.parquet in " + data), missing.err());
        CliRun noTokenizer = CliRun.of("eval", "--checkpoint", checkpoint.toString(), "--tasks", "piqa",
                "--data", data.toString(), "--out", temp.resolve("out-missing").toString());
        assertEquals(List.of("tinyllama: error: " + checkpoint + " has no tokenizer.json or tokenizer.model: pass --tokenizer FILE|llama2"),
                noTokenizer.err().lines().toList());
    }

    @Test
    void limitsBelowOneAndAnOutputThatIsAFileAreRefusedBeforeAnyScoring() throws IOException {
        Path data = data("limits", Map.of("piqa", ROWS.get("piqa")));
        for (String limit : List.of("-1", "0")) {
            CliRun run = CliRun.of("eval", "--checkpoint", checkpoint.toString(), "--tokenizer", "llama2", "--tasks", "piqa",
                    "--data", data.toString(), "--out", temp.resolve("out-limit").toString(), "--limit", limit);
            assertEquals(List.of("tinyllama: error: --limit must be positive, got " + limit), run.err().lines().toList());
        }
        Path file = Files.writeString(temp.resolve("a-file"), "keep");
        CliRun run = CliRun.of("eval", "--checkpoint", checkpoint.toString(), "--tokenizer", "llama2", "--tasks", "piqa",
                "--data", data.toString(), "--out", file.toString());
        assertEquals(List.of("tinyllama: error: cannot create directory " + file + ": " + file + " is a file"), run.err().lines().toList());
        assertTrue(run.err().lines().noneMatch(l -> l.contains("items/s")), "refused before scoring: " + run.err());
        assertEquals("keep", Files.readString(file));
    }

    /** Rows packed several to a forward and shared between requests give what one request per forward gives. */
    @Test
    void batchingAndSharedRowsDoNotChangeScores() throws IOException {
        Path data = data("batching", Map.of("boolq", ROWS.get("boolq") + "\n" + ROWS.get("boolq").replace("happy", "content")));
        List<String> lines = new ArrayList<>();
        for (String tokens : List.of("1", "4096")) {
            Path out = temp.resolve("out-batch-" + tokens);
            CliRun run = CliRun.of("eval", "--checkpoint", checkpoint.toString(), "--tokenizer", "llama2", "--tasks", "boolq",
                    "--data", data.toString(), "--out", out.toString(), "--batch-tokens", tokens);
            assertEquals(0, run.exitCode(), run.err());
            lines.add(Files.readString(out.resolve("samples-boolq.jsonl")));
        }
        JsonNode alone = new ObjectMapper().readTree(lines.get(0).lines().toList().get(1));
        JsonNode packed = new ObjectMapper().readTree(lines.get(1).lines().toList().get(1));
        for (int c = 0; c < 2; c++) {
            assertEquals(alone.get("loglikelihoods").get(c).asDouble(), packed.get("loglikelihoods").get(c).asDouble(), 1e-5);
        }
    }
}
