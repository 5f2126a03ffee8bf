package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.data.tokenizer.LlamaTokenizer;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ReferenceLlama;
import io.tinyllamaj.trainer.TestRuns;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.cli.CliRun;
import io.tinyllamaj.trainer.eval.HarnessReference;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * eval.tasks during pretraining: at each evaluation step the tasks' per-choice log-likelihoods
 * equal the float64 reference model's with that step's checkpoint weights, and acc/acc_norm in
 * metrics.jsonl are the argmaxes computed here by hand; on two fully sharded ranks too, where the
 * ranks score different items with different numbers of forwards.
 */
class TrainingTasksTest {

    private static final LlamaTokenizer LLAMA2 = LlamaTokenizer.llama2();
    /** test-small with the Llama 2 vocabulary, so the built-in tokenizer fits. */
    private static final LlamaConfig MODEL = new LlamaConfig("reference", 32000, 64, 2, 8, 2, 160, 1e-5f, 10000f, 64, false);

    /**
     * PIQA items 0 and 2 are long (one row a forward at 64 tokens a batch), item 1 short: with two
     * ranks rank 0 runs four forwards, rank 1 one and three padding forwards.
     */
    private static final String[] GOALS = {
            "Keep a cast iron pan from rusting after washing it in the kitchen sink with warm water and a little soap",
            "Open a jar",
            "Make a paper airplane fly farther across the school gym during the afternoon contest with friends"};
    private static final String[][] SOLUTIONS = {{"Dry it on the stove.", "Leave it wet."}, {"Twist the lid.", "Freeze it."},
            {"Fold the wings evenly.", "Soak it in water."}};
    private static final String[][] BOOLQ = {{"Cats purr when happy.", "do cats purr", "1"}, {"Fish live in water.", "do fish fly", "0"}};

    @TempDir
    static Path shared;
    static Path recipe;
    static Path taskData;

    @BeforeAll
    static void data() throws IOException {
        recipe = TestRuns.writeRecipe(shared, "test-small", 256, 64, 2, 8, 4, "");
        taskData = Files.createDirectories(shared.resolve("tasks"));
        StringBuilder piqa = new StringBuilder();
        for (int i = 0; i < GOALS.length; i++) {
            piqa.append(new ObjectMapper().writeValueAsString(java.util.Map.of("goal", GOALS[i], "sol1", SOLUTIONS[i][0],
                    "sol2", SOLUTIONS[i][1], "label", i % 2))).append('\n');
        }
        Files.writeString(taskData.resolve("piqa.jsonl"), piqa);
        StringBuilder boolq = new StringBuilder();
        for (String[] item : BOOLQ) {
            boolq.append(new ObjectMapper().writeValueAsString(java.util.Map.of("passage", item[0], "question", item[1],
                    "label", Integer.parseInt(item[2])))).append('\n');
        }
        Files.writeString(taskData.resolve("boolq.jsonl"), boolq);
    }

    private static String[] overrides(String... more) {
        List<String> all = new java.util.ArrayList<>(List.of("model.vocab_size=32000", "eval.interval=2", "eval.tasks=[piqa, boolq]",
                "eval.task_data=" + taskData, "checkpoint.interval=2", "checkpoint.keep_last=5"));
        all.addAll(List.of(more));
        return all.toArray(String[]::new);
    }

    @Test
    void tasksScoreAsTheFloat64ReferenceAtEachEvaluation(@TempDir Path dir) throws Exception {
        Path run = dir.resolve("run");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, null, StopSignal.none(), Trainer.Hooks.NONE, log,
                overrides()));
        String output = log.toString(StandardCharsets.UTF_8);
        assertTrue(output.contains("step 2: tasks piqa acc_norm "), output);
        assertTrue(output.contains(", boolq acc "), output);
        assertTasksMatchReference(run, dir, List.of(2L, 4L));
        assertTrue(Files.size(run.resolve("plots").resolve("tasks.png")) > 0, "the tasks' chart");
    }

    @Test
    void twoFullyShardedRanksShareTheItemsAndScoreAsTheReference(@TempDir Path dir) throws Exception {
        Assumptions.assumeTrue(TestRuns.onPath("mpirun"), "mpirun not found on PATH (install openmpi-bin)");
        Path run = dir.resolve("fsdp");
        Path logFile = dir.resolve("mpirun.log");
        List<String> args = new java.util.ArrayList<>(List.of("--config", recipe.toString(), "--out", run.toString()));
        for (String o : overrides("distributed.strategy=fsdp", "distributed.collective_timeout_s=60")) {
            args.addAll(List.of("--set", o));
        }
        Process process = TestRuns.mpirunPretrain(logFile, 2, args.toArray(String[]::new)).start();
        boolean ended = process.waitFor(180, TimeUnit.SECONDS);
        if (!ended) {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly().waitFor();
        }
        String output = Files.readString(logFile);
        assertTrue(ended, "timed out (a rank waiting in a forward the other never ran?):\n" + output);
        assertEquals(0, process.exitValue(), output);
        assertTasksMatchReference(run, dir, List.of(2L, 4L));
    }

    /** SIGTERM during the step before an evaluation: the tasks are skipped and the checkpoint comes at once. */
    @Test
    void aStopRequestedBeforeTheTasksSkipsThemAndCheckpoints(@TempDir Path dir) throws Exception {
        Path run = dir.resolve("run");
        StopSignal stop = StopSignal.none();
        Trainer.Hooks sigtermInStep2 = (step, model) -> {
            if (step == 1) { // 0-based: the step that ends at 2, an evaluation step
                stop.request("SIGTERM");
            }
        };
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertEquals(Trainer.Outcome.STOPPED, TestRuns.pretrain(recipe, run, null, stop, sigtermInStep2, log, overrides()));
        String output = log.toString(StandardCharsets.UTF_8);
        assertTrue(output.contains("step 2: task evaluation abandoned: a stop was requested"), output);
        assertFalse(output.contains("step 2: tasks "), output);
        JsonNode step2 = MetricsLog.read(run.resolve(MetricsLog.FILE)).getLast();
        assertEquals(2, step2.get("step").asInt());
        assertFalse(step2.has("task_acc"), step2.toString());
        assertTrue(step2.has("val_loss"), "validation still ran");
        assertEquals(CheckpointStore.name(2), Files.readString(run.resolve("checkpoints").resolve(CheckpointStore.LATEST)).trim());
        assertFalse(Files.exists(run.resolve(TrainingTasks.DIRECTORY).resolve(CheckpointStore.name(2))), "no report for step 2");
    }

    @Test
    void aBadTaskRowStopsTheRunBeforeItsFirstStep(@TempDir Path dir) throws IOException {
        Path bad = Files.createDirectories(dir.resolve("bad"));
        Files.writeString(bad.resolve("piqa.jsonl"), "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 0}\n{\"goal\": \"g\"}\n");
        Path run = dir.resolve("run");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TestRuns.pretrain(recipe, run, null,
                "model.vocab_size=32000", "eval.tasks=[piqa]", "eval.task_data=" + bad));
        assertEquals(bad.resolve("piqa.jsonl") + ":2: field 'sol1' is missing", e.getMessage());
        assertFalse(Files.exists(run.resolve(MetricsLog.FILE)), "nothing trained");
        assertFalse(Files.exists(run.resolve("checkpoints")), "nothing trained");

        e = assertThrows(IllegalArgumentException.class, () -> TestRuns.pretrain(recipe, dir.resolve("small-vocab"), null,
                "eval.tasks=[piqa]", "eval.task_data=" + bad));
        assertEquals("eval.tasks: data.tokenizer llama2 has 32000 pieces but the model's vocabulary has 256 ids", e.getMessage());
    }

    /**
     * At each step: the checkpoint's weights in the float64 reference score every request alone;
     * samples match to 1e-5 and acc/acc_norm in metrics.jsonl and results.json are the argmaxes
     * (acc_norm per character of the choice, as the harness divides).
     */
    private static void assertTasksMatchReference(Path run, Path dir, List<Long> steps) throws IOException {
        List<JsonNode> records = MetricsLog.read(run.resolve(MetricsLog.FILE));
        for (long step : steps) {
            Path hf = dir.resolve("hf-" + step);
            CliRun export = CliRun.of("export", "--checkpoint", run.resolve("checkpoints").resolve(CheckpointStore.name(step)).toString(),
                    "--out", hf.toString());
            assertEquals(0, export.exitCode(), export.err());
            ReferenceLlama ref = new ReferenceLlama(MODEL, 0);
            HarnessReference.loadWeights(ref, hf.resolve("model.safetensors"));
            JsonNode record = records.stream().filter(r -> r.path("step").asLong() == step && r.has("task_acc")).findFirst().orElseThrow();
            Path reports = run.resolve(TrainingTasks.DIRECTORY).resolve(CheckpointStore.name(step));
            JsonNode results = new ObjectMapper().readTree(reports.resolve("results.json").toFile()).get("results");

            double[][] piqa = new double[GOALS.length][];
            for (int i = 0; i < GOALS.length; i++) {
                String context = "Question: " + GOALS[i] + "\nAnswer:";
                piqa[i] = new double[] {HarnessReference.loglikelihood(ref, LLAMA2, context, " " + SOLUTIONS[i][0]),
                        HarnessReference.loglikelihood(ref, LLAMA2, context, " " + SOLUTIONS[i][1])};
            }
            assertSamples(reports.resolve("samples-piqa.jsonl"), piqa);
            double acc = 0, accNorm = 0;
            for (int i = 0; i < GOALS.length; i++) {
                int gold = i % 2;
                acc += (piqa[i][1] > piqa[i][0] ? 1 : 0) == gold ? 1 : 0;
                boolean second = piqa[i][1] / SOLUTIONS[i][1].length() > piqa[i][0] / SOLUTIONS[i][0].length();
                accNorm += (second ? 1 : 0) == gold ? 1 : 0;
            }
            assertEquals(acc / GOALS.length, record.get("task_acc").get("piqa").asDouble(), 1e-12, "piqa acc at step " + step);
            assertEquals(accNorm / GOALS.length, record.get("task_acc_norm").get("piqa").asDouble(), 1e-12, "piqa acc_norm at " + step);
            assertEquals(acc / GOALS.length, results.get("piqa").get("acc").asDouble(), 1e-12);
            assertEquals(GOALS.length, results.get("piqa").get("n").asInt());

            double[][] boolq = new double[BOOLQ.length][];
            double boolqAcc = 0;
            for (int i = 0; i < BOOLQ.length; i++) {
                String context = BOOLQ[i][0] + "\nQuestion: " + BOOLQ[i][1] + "?\nAnswer:";
                boolq[i] = new double[] {HarnessReference.loglikelihood(ref, LLAMA2, context, " no"),
                        HarnessReference.loglikelihood(ref, LLAMA2, context, " yes")};
                boolqAcc += (boolq[i][1] > boolq[i][0] ? 1 : 0) == Integer.parseInt(BOOLQ[i][2]) ? 1 : 0;
            }
            assertSamples(reports.resolve("samples-boolq.jsonl"), boolq);
            assertEquals(boolqAcc / BOOLQ.length, record.get("task_acc").get("boolq").asDouble(), 1e-12, "boolq acc at step " + step);
            assertFalse(record.get("task_acc_norm").has("boolq"), "the harness reports no acc_norm for boolq");
        }
    }

    private static void assertSamples(Path samples, double[][] expected) throws IOException {
        List<String> lines = Files.readAllLines(samples);
        assertEquals(expected.length, lines.size(), samples.toString());
        for (int i = 0; i < expected.length; i++) {
            JsonNode line = new ObjectMapper().readTree(lines.get(i));
            for (int c = 0; c < expected[i].length; c++) {
                assertEquals(expected[i][c], line.get("loglikelihoods").get(c).asDouble(), 1e-5, samples + " item " + i + " choice " + c);
            }
        }
    }
}
