package io.tinyllamaj.trainer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.files.DurableFiles;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.checkpoint.CorruptCheckpointException;
import io.tinyllamaj.trainer.run.LossWindow;
import io.tinyllamaj.trainer.run.MetricsLog;
import io.tinyllamaj.trainer.run.PretrainRun;
import io.tinyllamaj.trainer.run.SpikeGuard;
import io.tinyllamaj.trainer.run.StopSignal;
import io.tinyllamaj.trainer.run.TrainState;
import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * In-process runs of test-tiny (12 steps, 2 micro-batches per step, validation and a
 * checkpoint every 4 steps) against one uninterrupted reference run: exact resume, the
 * checkpoint round trip, corrupt and torn checkpoints, and non-finite steps.
 */
class TrainingRunTest extends ReferenceRunBase {

    static final int STEPS = 12;
    static final ObjectMapper JSON = new ObjectMapper();

    @BeforeAll
    static void uninterruptedRun() throws Exception {
        runReference("test-tiny", 61, 16, 2, 4, STEPS);
        List<JsonNode> metrics = MetricsLog.read(reference.resolve(MetricsLog.FILE));
        assertEquals(STEPS, metrics.size());
        assertTrue(metrics.getLast().path("loss").asDouble() < metrics.getFirst().path("loss").asDouble(),
                "the loss falls on learnable data");
        assertTrue(metrics.getLast().has("val_loss"));
    }

    /**
     * Each source holds out the same number of blocks (2 of seq_len tokens), so the mixture's
     * validation loss is the plain mean of the two sources' losses; the sources differ in data,
     * so their losses differ.
     */
    @Test
    void validationLossIsReportedPerSourceBesideTheMixture() throws Exception {
        for (JsonNode record : MetricsLog.read(reference.resolve(MetricsLog.FILE))) {
            if (record.has("val_loss")) {
                JsonNode perSource = record.get("val_loss_per_source");
                List<String> names = new java.util.ArrayList<>();
                perSource.fieldNames().forEachRemaining(names::add);
                assertEquals(List.of("prose", "code"), names);
                double prose = perSource.get("prose").asDouble(), code = perSource.get("code").asDouble();
                assertEquals((prose + code) / 2, record.get("val_loss").asDouble(), 1e-6, "step " + record.get("step"));
                assertTrue(Math.abs(prose - code) > 1e-6, "step " + record.get("step"));
            } else {
                assertTrue(!record.has("val_loss_per_source"));
            }
        }
    }

    /**
     * train.z_loss: the first step's reported loss is the cross-entropy at the same initial
     * weights, so it equals the reference's bit for bit; the z-loss term changes the gradient, so
     * later losses differ; every record carries a positive z_loss.
     */
    @Test
    void zLossIsLoggedApartAndChangesTheUpdates() throws Exception {
        Path run = dir.resolve("z-loss");
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, null, "train.z_loss=0.01", "train.max_steps=4"));
        List<JsonNode> withZ = MetricsLog.read(run.resolve(MetricsLog.FILE)), without = MetricsLog.read(reference.resolve(MetricsLog.FILE));
        assertEquals(without.getFirst().get("loss").asDouble(), withZ.getFirst().get("loss").asDouble(), 0.0, "step 1: the same forward");
        assertTrue(withZ.get(2).get("loss").asDouble() != without.get(2).get("loss").asDouble(), "step 3 follows other updates");
        for (JsonNode record : withZ) {
            double z = record.get("z_loss").asDouble();
            assertTrue(z > 0 && Double.isFinite(z), "z_loss at step " + record.get("step") + ": " + z);
        }
        assertFalse(without.getFirst().has("z_loss"), "no z_loss field when it is off");
    }

    /** A hook that asks the run to stop during the given 0-based step; the run stops after finishing it. */
    private static Trainer.Hooks stopDuring(StopSignal stop, long step) {
        return (s, model) -> {
            if (s == step) {
                stop.request("SIGTERM");
            }
        };
    }

    @Test
    void stopAndResumeTwiceEqualsTheUninterruptedRun() throws Exception {
        Path run = dir.resolve("run");
        StopSignal first = StopSignal.none();
        assertEquals(Trainer.Outcome.STOPPED, TestRuns.pretrain(recipe, run, null, first, stopDuring(first, 4),
                new ByteArrayOutputStream()));
        assertEquals("step-00000005", Files.readString(run.resolve("checkpoints/latest")).trim());
        StopSignal second = StopSignal.none();
        assertEquals(Trainer.Outcome.STOPPED, TestRuns.pretrain(recipe, run, "auto", second, stopDuring(second, 8),
                new ByteArrayOutputStream()));
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto"));
        TestRuns.assertSameRun(reference, run);
    }

    /**
     * logging.interval 5 writes records at steps 4 and 8 (evaluations), 5, 10 and 12 (the last):
     * each record's loss_mean is the plain mean of the reference's per-step losses (interval 1,
     * the same training) since the record before, summed here by hand; stopped at step 7, inside
     * the window 6..8, and resumed, the run writes the same records bit for bit.
     */
    @Test
    void lossMeanAveragesTheStepsSinceTheLastRecordAcrossAResume() throws Exception {
        List<JsonNode> perStep = MetricsLog.read(reference.resolve(MetricsLog.FILE));
        Path whole = dir.resolve("whole"), resumed = dir.resolve("resumed");
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, whole, null, "logging.interval=5"));
        StopSignal stop = StopSignal.none();
        assertEquals(Trainer.Outcome.STOPPED, TestRuns.pretrain(recipe, resumed, null, stop, stopDuring(stop, 6),
                new ByteArrayOutputStream(), "logging.interval=5"));
        assertEquals("step-00000007", Files.readString(resumed.resolve("checkpoints/latest")).trim());
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, resumed, "auto", StopSignal.none(), Trainer.Hooks.NONE,
                new ByteArrayOutputStream(), "logging.interval=5"));
        TestRuns.assertSameRun(whole, resumed);

        List<JsonNode> records = MetricsLog.read(whole.resolve(MetricsLog.FILE));
        assertEquals(List.of(4L, 5L, 8L, 10L, 12L), records.stream().map(r -> r.get("step").asLong()).toList());
        long previous = 0;
        for (JsonNode record : records) {
            long step = record.get("step").asLong();
            double sum = 0;
            for (long s = previous + 1; s <= step; s++) {
                sum += perStep.get((int) s - 1).get("loss").asDouble();
            }
            assertEquals(perStep.get((int) step - 1).get("loss").asDouble(), record.get("loss").asDouble(), 0.0, "step " + step);
            assertEquals(sum / (step - previous), record.get("loss_mean").asDouble(), 1e-15, "loss_mean at step " + step);
            previous = step;
        }
        for (JsonNode record : perStep) {
            assertEquals(record.get("loss").asDouble(), record.get("loss_mean").asDouble(), 0.0, "interval 1: the step's own loss");
        }
    }

    /**
     * The reference (default per_step; warmup 3, 12 steps, lr 1e-2 to 1e-3) at each step, by
     * hand: step s at position s + 1, warmup to position 3, cosine over positions 3..12. The
     * resumed runs above equal it bit for bit, so they continue this schedule exactly.
     */
    @Test
    void perStepScheduleByHand() throws Exception {
        double[] expected = new double[STEPS];
        expected[0] = 1e-2 * 1 / 3;
        expected[1] = 1e-2 * 2 / 3;
        for (int s = 2; s < STEPS; s++) {
            expected[s] = 1e-3 + 0.5 * (1 + Math.cos(Math.PI * (s + 1 - 3) / 9.0)) * 9e-3;
        }
        assertEquals(1e-2, expected[2], 1e-17);
        assertEquals(1e-3, expected[STEPS - 1], 1e-18);
        assertLearningRates(expected, reference);
    }

    /** TinyLlama's per_micro_batch with A = 2: step s at iteration 2s + 1, warmup 6 and decay 24 iterations; resumed mid-way. */
    @Test
    void perMicroBatchScheduleByHandAcrossAResume() throws Exception {
        Path run = dir.resolve("run");
        StopSignal stop = StopSignal.none();
        assertEquals(Trainer.Outcome.STOPPED, TestRuns.pretrain(recipe, run, null, stop, stopDuring(stop, 4),
                new ByteArrayOutputStream(), "train.lr_schedule=per_micro_batch"));
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto", StopSignal.none(), Trainer.Hooks.NONE,
                new ByteArrayOutputStream(), "train.lr_schedule=per_micro_batch"));
        double[] expected = new double[STEPS];
        expected[0] = 1e-2 * 1 / 6;
        expected[1] = 1e-2 * 3 / 6;
        expected[2] = 1e-2 * 5 / 6;
        for (int s = 3; s < STEPS; s++) {
            expected[s] = 1e-3 + 0.5 * (1 + Math.cos(Math.PI * (2 * s + 1 - 6) / 18.0)) * 9e-3;
        }
        assertLearningRates(expected, run);
    }

    private static void assertLearningRates(double[] expected, Path run) throws Exception {
        List<JsonNode> metrics = MetricsLog.read(run.resolve(MetricsLog.FILE));
        assertEquals(expected.length, metrics.size());
        for (int s = 0; s < expected.length; s++) {
            assertEquals(s + 1, metrics.get(s).path("step").asLong()); // a record's step counts the steps done
            assertEquals(expected[s], metrics.get(s).path("lr").asDouble(), 1e-17, "lr of step " + s);
        }
    }

    @Test
    void saveLoadRoundTripIsBitwise() throws Exception {
        Path checkpoint = reference.resolve("checkpoints/step-00000008");
        Backend backend = new CpuBackend();
        LlamaModel model = new LlamaModel(backend, io.tinyllamaj.model.LlamaConfig.preset("test-tiny"));
        Tensor m = backend.allocate(model.layout().total()), v = backend.allocate(model.layout().total());
        CheckpointStore.Loaded loaded = CheckpointStore.load(checkpoint, backend, model.parameters(), m, v);
        // the state goes through TrainState both ways: what it writes is byte for byte what it read
        Path copy = new CheckpointStore(dir).save(8, backend, model.parameters(), m, v, TrainState.read(checkpoint).toJson(), 2);
        for (String file : List.of(CheckpointStore.PARAMS, CheckpointStore.ADAM_M, CheckpointStore.ADAM_V, CheckpointStore.STATE)) {
            assertArrayEquals(Files.readAllBytes(checkpoint.resolve(file)), Files.readAllBytes(copy.resolve(file)), file);
        }
        // one more step from the reloaded state gives the same loss as the original run: resume from it
        Path run = dir.resolve("resumed");
        Files.createDirectories(run.resolve("checkpoints"));
        copyTree(checkpoint, run.resolve("checkpoints/step-00000008"));
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto"));
        assertEquals(TestRuns.deterministicMetrics(reference).subList(8, STEPS), TestRuns.deterministicMetrics(run));
    }

    @Test
    void corruptCheckpointIsRefusedAndAutoFallsBack() throws Exception {
        Path run = dir.resolve("run");
        copyTree(reference, run);
        Path newest = run.resolve("checkpoints/step-00000012");
        // a zeroed stretch inside the moments: same size, different bytes
        try (var channel = Files.newByteChannel(newest.resolve(CheckpointStore.ADAM_M), StandardOpenOption.WRITE)) {
            channel.position(100);
            channel.write(java.nio.ByteBuffer.allocate(16));
        }
        CorruptCheckpointException refused = assertThrows(CorruptCheckpointException.class,
                () -> TestRuns.pretrain(recipe, run, newest.toString()));
        assertTrue(refused.getMessage().contains("adam_m.f32 fails its SHA-256 check"), refused.getMessage());
        assertTrue(refused.getMessage().contains("the previous complete checkpoint is " + run.resolve("checkpoints/step-00000008").toAbsolutePath()),
                refused.getMessage());

        // a truncated file is refused by its size
        Files.write(run.resolve("checkpoints/step-00000008/params.f32"), new byte[12]);
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(run.resolve("checkpoints/step-00000008")));
        copyTree(reference.resolve("checkpoints/step-00000008"), run.resolve("checkpoints/step-00000008"));

        // auto skips the damaged newest one, resumes at step 8 and repeats steps 9..12 exactly
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TestRuns.pretrain(recipe, run, "auto", StopSignal.none(), Trainer.Hooks.NONE, log);
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("warning: checkpoint file " + newest.resolve(CheckpointStore.ADAM_M)), text);
        assertTrue(text.contains("resumed from " + run.resolve("checkpoints/step-00000008")), text);
        TestRuns.assertSameRun(reference, run);
    }

    @Test
    void tornLatestPointerFallsBackToNewestComplete() throws Exception {
        Path run = dir.resolve("run");
        copyTree(reference, run);
        Files.writeString(run.resolve("checkpoints/latest"), "step-000");
        CheckpointStore store = new CheckpointStore(run);
        List<String> warnings = new ArrayList<>();
        assertEquals(run.resolve("checkpoints/step-00000012"), store.findResumable(warnings::add).orElseThrow());
        assertEquals(1, warnings.size());
        Files.delete(run.resolve("checkpoints/latest"));
        assertEquals(run.resolve("checkpoints/step-00000012"), store.findResumable(w -> { }).orElseThrow());
    }

    @Test
    void latestNamingADeletedCheckpointFallsBackToTheNewestComplete() throws Exception {
        Path run = dir.resolve("run");
        copyTree(reference, run);
        // rolled back by hand: the newest checkpoint removed, latest still names it
        deleteTree(run.resolve("checkpoints/step-00000012"));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto", StopSignal.none(), Trainer.Hooks.NONE, log));
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("warning: " + run.resolve("checkpoints/latest") + " names step-00000012, which does not exist"),
                text);
        assertTrue(text.contains("resumed from " + run.resolve("checkpoints/step-00000008") + " at step 8"), text);
        TestRuns.assertSameRun(reference, run);
    }

    @Test
    void outThatIsAFileIsRefusedInOneLine() throws Exception {
        Path file = dir.resolve("notes.txt");
        Files.writeString(file, "not a run");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TestRuns.pretrain(recipe, file, null));
        assertEquals("run directory " + file + " is an existing file, not a directory (choose another --out)", e.getMessage());
        java.io.IOException below = assertThrows(java.io.IOException.class, () -> TestRuns.pretrain(recipe, file.resolve("run"), null));
        assertEquals("cannot create directory " + file.resolve("run") + ": " + file + " is a file", below.getMessage());
        assertEquals("not a run", Files.readString(file));
    }

    /** A shape no machine could hold is refused in one line before the data is prepared or anything is built. */
    @Test
    void anAbsurdModelIsRefusedBeforeTheDataIsPrepared() throws Exception {
        Path corpus = dir.resolve("corpus");
        Files.createDirectories(corpus);
        Files.writeString(corpus.resolve("a.txt"), "one small document");
        Path prepared = dir.resolve("prepared");
        long started = System.nanoTime();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TestRuns.pretrain(recipe, dir.resolve("run"),
                null, "model.layers=100000000", "data.sources=[{name: text, path: " + prepared + ", prepare: {format: text, inputs: ["
                        + corpus + "]}}]"));
        assertTrue(e.getMessage().startsWith("model shape (") && e.getMessage().contains("100,000,000 layers")
                && e.getMessage().contains("and the cpu backend holds at most"), e.getMessage());
        assertTrue(Files.notExists(prepared), "nothing was prepared");
        assertTrue(Files.notExists(dir.resolve("run").resolve("config.yaml")), "nothing was written");
        assertTrue(System.nanoTime() - started < 20e9, "refused at once");
    }

    @Test
    void junkStateJsonIsRefusedNamingTheFileAndTheKey() throws Exception {
        ObjectNode good = (ObjectNode) JSON.readTree(reference.resolve("checkpoints/step-00000012/state.json").toFile());
        Map<String, String> junk = new LinkedHashMap<>();
        junk.put("{\"step\": 12,", " is not valid JSON");
        junk.put("[12]", " is not a JSON object");
        junk.put(good.deepCopy().without("updates").toString(), ": updates is missing");
        junk.put(good.deepCopy().put("step", "twelve").toString(), ": step is not a whole number >= 0 (got \"twelve\")");
        junk.put(good.deepCopy().put("tokens_seen", -5).toString(), ": tokens_seen is not a whole number >= 0 (got -5)");
        junk.put(good.deepCopy().put("skipped_steps", 1.5).toString(), ": skipped_steps is not a whole number >= 0 (got 1.5)");
        junk.put(good.deepCopy().set("sampler", JSON.createObjectNode().put("seed", 3407)).toString(), ": sampler is not a data position");
        junk.put(good.deepCopy().without("config_hash").toString(), ": config_hash is missing");
        junk.put(good.deepCopy().without("model").toString(), ": model is missing");
        ObjectNode badCount = good.deepCopy();
        ((ObjectNode) badCount.path("tokens_per_source")).put("prose", "many");
        junk.put(badCount.toString(), ": tokens_per_source.prose is not a whole number >= 0 (got \"many\")");
        ObjectNode badWindow = good.deepCopy();
        ((ObjectNode) badWindow.path("spike_guard")).putArray("losses").add(1.0).add("x");
        junk.put(badWindow.toString(), ": spike_guard is not a loss-spike window");
        ObjectNode badCounts = good.deepCopy();
        ((ObjectNode) badCounts.path("spike_guard")).put("inRow", 3).put("total", 1);
        junk.put(badCounts.toString(), ": spike_guard is not a loss-spike window");
        junk.put(good.deepCopy().set("loss_window", JSON.createObjectNode().put("sum", 2.5).put("steps", -1)).toString(),
                ": loss_window is not a loss window");
        int n = 0;
        for (Map.Entry<String, String> entry : junk.entrySet()) {
            Path run = dir.resolve("run" + n++);
            copyTree(reference, run);
            Path state = run.resolve("checkpoints/step-00000012/state.json");
            // a hostile file: its manifest entry agrees with it, so only the reader can refuse it
            replaceListedFile(state, entry.getKey());
            java.io.IOException e = assertThrows(java.io.IOException.class, () -> TestRuns.pretrain(recipe, run, "auto"));
            assertTrue(e.getMessage().startsWith("checkpoint file " + state + entry.getValue()), entry.getKey() + " -> " + e.getMessage());
            assertFalse(e.getMessage().contains("\n") || e.getMessage().toLowerCase().contains("jackson"), e.getMessage());
        }
    }

    @Test
    void aCheckpointFromBeforeTheSpikeGuardAndTheLossWindowStillResumes() throws Exception {
        Path run = referenceAtStep8();
        Path state = run.resolve("checkpoints/step-00000008/state.json");
        ObjectNode old = (ObjectNode) JSON.readTree(state.toFile());
        replaceListedFile(state, old.without(List.of("spike_guard", "loss_window")).toString());
        assertEquals(SpikeGuard.State.EMPTY, TrainState.read(run.resolve("checkpoints/step-00000008")).spikes());
        assertEquals(LossWindow.EMPTY, TrainState.read(run.resolve("checkpoints/step-00000008")).lossWindow());
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto"));
        TestRuns.assertSameRun(reference, run); // the guard is off here: nothing else in the run depends on it
    }

    @Test
    void manifestWithAMissingSizeOrAPathOutsideTheCheckpointIsRefused() throws Exception {
        Path checkpoint = dir.resolve("step-00000012");
        copyTree(reference.resolve("checkpoints/step-00000012"), checkpoint);
        Path manifestFile = checkpoint.resolve(CheckpointStore.MANIFEST);
        ObjectNode manifest = (ObjectNode) JSON.readTree(manifestFile.toFile());
        ((ObjectNode) manifest.path("files").path("params.f32")).remove("bytes");
        Files.writeString(manifestFile, manifest.toString());
        CorruptCheckpointException missing = assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(checkpoint));
        assertEquals("checkpoint file " + manifestFile + ": files.params.f32.bytes is missing", missing.getMessage());

        ((ObjectNode) manifest.path("files")).putObject("../outside.f32").put("bytes", 0).put("sha256", "");
        ((ObjectNode) manifest.path("files").path("params.f32")).put("bytes", 16);
        Files.writeString(manifestFile, manifest.toString());
        CorruptCheckpointException outside = assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(checkpoint));
        assertEquals("checkpoint file " + manifestFile + ": files lists ../outside.f32, which is not a file name inside the checkpoint",
                outside.getMessage());
    }

    @Test
    void refusedResumeChangesNothingInTheRunDirectory() throws Exception {
        Path run = referenceAtStep8(); // an accepted resume would also cut metrics.jsonl back
        Map<Path, String> before = TestRuns.fileDigests(run);
        IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                () -> TestRuns.pretrain(null, run, "auto", "model.layers=3"));
        assertTrue(refused.getMessage().contains("the config changed where it must not: model was vocab_size=61 dim=16 layers=2"),
                refused.getMessage());
        Map<Path, String> after = TestRuns.fileDigests(run);
        after.remove(Path.of(".lock")); // taken by the refused run itself: the one file it may touch
        before.remove(Path.of(".lock"));
        assertEquals(before, after);
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(null, run, "auto"));
        TestRuns.assertSameRun(reference, run);
    }

    @Test
    void fullDiskDuringACheckpointNamesFileStepAndSpaceAndResumeContinues() throws Exception {
        Path run = dir.resolve("run");
        Path failing = run.resolve("checkpoints/step-00000008.tmp/params.f32");
        DurableFiles full = new DurableFiles((file, options) -> {
            if (file.equals(failing)) {
                throw new java.io.IOException("No space left on device");
            }
            return FileChannel.open(file, options);
        });
        java.io.IOException e = assertThrows(java.io.IOException.class, () -> pretrainThrough(full, run, null));
        assertTrue(e.getMessage().matches(Pattern.quote("checkpoint step 8: writing " + failing + " failed: No space left on device; ")
                + "\\d+(\\.\\d)? (bytes|KiB|MiB|GiB|TiB|PiB|EiB) free on .+"), e.getMessage());
        assertFalse(Files.exists(failing.getParent()), "the failed write's directory is removed at the failure");
        assertEquals("step-00000004", Files.readString(run.resolve("checkpoints/latest")).trim());
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto"));
        TestRuns.assertSameRun(reference, run);
    }

    @Test
    void leftoversOfAKilledWriteAreRemovedBeforeAnythingIsWritten() throws Exception {
        Path run = referenceAtStep8();
        // killed while writing step 12: its temporary directory and the small files' temporaries are left
        List<Path> leftovers = List.of(run.resolve("checkpoints/step-00000012.tmp"), run.resolve("checkpoints/latest.tmp"),
                run.resolve("config.yaml.tmp"), run.resolve("metrics.jsonl.tmp"));
        Files.createDirectories(leftovers.getFirst());
        Files.write(leftovers.getFirst().resolve("params.f32"), new byte[64]);
        for (Path file : leftovers.subList(1, leftovers.size())) {
            Files.writeString(file, "torn");
        }
        List<String> firstWrite = new ArrayList<>();
        DurableFiles watching = new DurableFiles((file, options) -> {
            if (firstWrite.isEmpty()) {
                firstWrite.add(run.relativize(file) + " with leftovers " + leftovers.stream().filter(Files::exists).toList());
            }
            return FileChannel.open(file, options);
        });
        assertEquals(Trainer.Outcome.FINISHED, pretrainThrough(watching, run, "auto"));
        assertEquals(List.of("config.yaml.tmp with leftovers []"), firstWrite);
        assertEquals(List.of(), leftovers.stream().filter(Files::exists).toList());
        TestRuns.assertSameRun(reference, run);
    }

    @Test
    void changedShapeIsRefusedOnResume() throws Exception {
        Path run = dir.resolve("run");
        copyTree(reference, run);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TestRuns.pretrain(recipe, run, "auto", "train.seq_len=8", "train.seed=1"));
        assertTrue(e.getMessage().contains("train.seq_len was 16, now 8; train.seed was 3407, now 1"), e.getMessage());
        IllegalArgumentException existing = assertThrows(IllegalArgumentException.class, () -> TestRuns.pretrain(recipe, run, null));
        assertTrue(existing.getMessage().contains("already holds checkpoints"), existing.getMessage());
    }

    @Test
    void nonFiniteGradientSkipsTheUpdate() throws Exception {
        Path run = dir.resolve("run");
        List<float[]> parametersAtHook = new ArrayList<>();
        Trainer.Hooks poison = (step, model) -> {
            parametersAtHook.add(model.backend().download(model.parameters()));
            if (step == 5) {
                model.backend().upload(model.gradients().slice(7, 1), new float[] {Float.NaN}, 0, 1);
            }
        };
        TestRuns.pretrain(recipe, run, null, StopSignal.none(), poison, new ByteArrayOutputStream());
        // step 5 was skipped: the weights going into step 6 are bitwise those going into step 5
        assertTrue(Arrays.equals(parametersAtHook.get(5), parametersAtHook.get(6)), "weights changed on a skipped step");
        assertFalse(Arrays.equals(parametersAtHook.get(4), parametersAtHook.get(5)), "weights change on normal steps");
        List<JsonNode> metrics = MetricsLog.read(run.resolve(MetricsLog.FILE));
        assertTrue(metrics.get(5).path("skipped").asBoolean());
        assertEquals(1, metrics.getLast().path("skipped_steps").asLong());
        // the skip counter survives a checkpoint
        assertEquals(1, TrainState.read(run.resolve("checkpoints/step-00000012")).skippedSteps());
    }

    @Test
    void tooManyNonFiniteStepsInARowStopTheRun() throws Exception {
        Path run = dir.resolve("run");
        Trainer.Hooks poison = (step, model) -> {
            if (step >= 5) {
                model.backend().upload(model.gradients().slice(0, 1), new float[] {Float.POSITIVE_INFINITY}, 0, 1);
            }
        };
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> TestRuns.pretrain(recipe, run, null,
                StopSignal.none(), poison, new ByteArrayOutputStream(), "train.max_skipped_steps=3"));
        assertTrue(e.getMessage().startsWith("stopping: 3 steps in a row (up to step 8) had a non-finite loss or gradient norm"),
                e.getMessage());
        assertTrue(e.getMessage().contains("the last checkpoint, " + run.resolve("checkpoints/step-00000004") + ", is intact"),
                e.getMessage());
        assertEquals("step-00000004", Files.readString(run.resolve("checkpoints/latest")).trim());
        CheckpointStore.verify(run.resolve("checkpoints/step-00000004"));
    }

    /** Multiplies the loss of the given 0-based steps by 10 (a spike) and keeps the weights going into every step. */
    private static Trainer.Hooks spikesAt(List<float[]> weights, long... steps) {
        return new Trainer.Hooks() {
            @Override
            public void afterBackward(long step, LlamaModel model) {
                weights.add(model.backend().download(model.parameters()));
            }

            @Override
            public double loss(long step, double loss) {
                return Arrays.stream(steps).anyMatch(s -> s == step) ? loss * 10 : loss;
            }
        };
    }

    private static final String[] GUARD = {"train.spike_window=4", "train.spike_sigma=3"};

    @Test
    void aLossSpikeSkipsTheUpdateAndTheGuardsWindowSurvivesAResume() throws Exception {
        Path run = dir.resolve("run");
        List<float[]> weights = new ArrayList<>();
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        // spikes at steps 7 and 10; the second comes 2 steps after a resume at 9, before a window of 4 could refill
        TestRuns.pretrain(recipe, run, null, StopSignal.none(), spikesAt(weights, 7, 10), log, GUARD);
        assertTrue(Arrays.equals(weights.get(7), weights.get(8)), "weights changed on a spike");
        assertFalse(Arrays.equals(weights.get(6), weights.get(7)), "weights change on normal steps");
        List<JsonNode> metrics = MetricsLog.read(run.resolve(MetricsLog.FILE));
        for (int s = 0; s < STEPS; s++) {
            assertEquals(s == 7 || s == 10, metrics.get(s).path("spike").asBoolean(), "spike at step " + s);
            assertEquals(s == 7 || s == 10, metrics.get(s).path("skipped").asBoolean(), "skipped at step " + s);
        }
        assertEquals(2, metrics.getLast().path("spike_steps").asLong());
        assertEquals(2, metrics.getLast().path("skipped_steps").asLong());
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("step 8: loss "), log.toString(StandardCharsets.UTF_8));
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("is a spike (above "), log.toString(StandardCharsets.UTF_8));

        Path resumed = dir.resolve("resumed");
        StopSignal stop = StopSignal.none();
        List<float[]> ignored = new ArrayList<>();
        Trainer.Hooks first = spikesAt(ignored, 7, 10);
        Trainer.Hooks stopping = new Trainer.Hooks() {
            @Override
            public void afterBackward(long step, LlamaModel model) {
                if (step == 8) {
                    stop.request("SIGTERM");
                }
            }

            @Override
            public double loss(long step, double loss) {
                return first.loss(step, loss);
            }
        };
        assertEquals(Trainer.Outcome.STOPPED, TestRuns.pretrain(recipe, resumed, null, stop, stopping, new ByteArrayOutputStream(), GUARD));
        SpikeGuard.State saved = TrainState.read(resumed.resolve("checkpoints/step-00000009")).spikes();
        assertEquals(4, saved.losses().size());
        assertEquals(1, saved.total());
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, resumed, "auto", StopSignal.none(), spikesAt(ignored, 7, 10),
                new ByteArrayOutputStream(), GUARD));
        TestRuns.assertSameRun(run, resumed);
        assertEquals(2, MetricsLog.read(resumed.resolve(MetricsLog.FILE)).getLast().path("spike_steps").asLong());
    }

    @Test
    void tooManySpikesInARowStopTheRunNamingTheStep() throws Exception {
        Path run = dir.resolve("run");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> TestRuns.pretrain(recipe, run, null,
                StopSignal.none(), spikesAt(new ArrayList<>(), 6, 7, 8, 9, 10, 11), new ByteArrayOutputStream(),
                "train.spike_window=4", "train.spike_sigma=3", "train.spike_max_in_row=2"));
        assertTrue(e.getMessage().startsWith("stopping: 2 loss spikes in a row (up to step 8, train.spike_max_in_row 2); "
                + "the last checkpoint, " + run.resolve("checkpoints/step-00000004") + ", is intact"), e.getMessage());
    }

    /** A copy of the reference run taken back to its step-8 checkpoint, as a rollback by hand would leave it. */
    private Path referenceAtStep8() throws Exception {
        Path run = dir.resolve("run");
        copyTree(reference, run);
        deleteTree(run.resolve("checkpoints/step-00000012"));
        Files.writeString(run.resolve("checkpoints/latest"), "step-00000008\n");
        return run;
    }

    private static Trainer.Outcome pretrainThrough(DurableFiles disk, Path run, String resume) throws Exception {
        return new PretrainRun(recipe, List.of(), run, resume, null)
                .execute(StopSignal.none(), Trainer.Hooks.NONE, new PrintStream(OutputStream.nullOutputStream()), disk);
    }

    /** Writes {@code text} to a checkpoint file and lists its new size and SHA-256 in the manifest. */
    static void replaceListedFile(Path file, String text) throws Exception {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        Files.write(file, bytes);
        Path manifestFile = file.resolveSibling(CheckpointStore.MANIFEST);
        ObjectNode manifest = (ObjectNode) JSON.readTree(manifestFile.toFile());
        ((ObjectNode) manifest.path("files").path(file.getFileName().toString())).put("bytes", bytes.length)
                .put("sha256", java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("SHA-256").digest(bytes)));
        Files.writeString(manifestFile, manifest.toString());
    }

    static void deleteTree(Path root) throws Exception {
        try (var walk = Files.walk(root)) {
            for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(p);
            }
        }
    }

    static void copyTree(Path from, Path to) throws Exception {
        try (var walk = Files.walk(from)) {
            for (Path p : walk.toList()) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
    }
}
