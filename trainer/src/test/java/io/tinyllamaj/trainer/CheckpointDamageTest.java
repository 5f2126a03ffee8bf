package io.tinyllamaj.trainer;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.checkpoint.CorruptCheckpointException;
import io.tinyllamaj.trainer.run.PretrainRun;
import io.tinyllamaj.trainer.run.StopSignal;
import io.tinyllamaj.trainer.run.TrainState;
import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Checkpoints damaged in ways their checksums cannot see (a file rewritten together with its
 * manifest entry, a pipe or a link to /dev/zero in a file's place, a step that disagrees with its
 * directory) and run directories resumed without their recipe: each refused naming the file, and
 * --resume auto falls back to the newest clean checkpoint, ending equal to the uninterrupted run.
 */
class CheckpointDamageTest extends ReferenceRunBase {

    private static final int STEPS = 12;
    private static final ObjectMapper JSON = new ObjectMapper();

    @BeforeAll
    static void uninterruptedRun() throws Exception {
        runReference("test-tiny", 61, 16, 2, 4, STEPS);
    }

    private Path copyOfReference() throws Exception {
        Path run = dir.resolve("run");
        TrainingRunTest.copyTree(reference, run);
        return run;
    }

    /** Writes {@code file}'s current size and SHA-256 into its checkpoint's manifest, as a forger would. */
    private static void rehash(Path checkpoint, String file) throws Exception {
        Path manifestFile = checkpoint.resolve(CheckpointStore.MANIFEST);
        ObjectNode manifest = (ObjectNode) JSON.readTree(manifestFile.toFile());
        byte[] bytes = Files.readAllBytes(checkpoint.resolve(file));
        ((ObjectNode) manifest.get("files").get(file)).put("bytes", bytes.length)
                .put("sha256", HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)));
        Files.write(manifestFile, JSON.writeValueAsBytes(manifest));
    }

    private static String resumeAuto(Path run) throws Exception {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto", StopSignal.none(), Trainer.Hooks.NONE, log));
        return log.toString(StandardCharsets.UTF_8);
    }

    @Test
    void aNonFiniteValueUnderAValidChecksumIsRefusedAndAutoFallsBack() throws Exception {
        Path run = copyOfReference();
        Path newest = run.resolve("checkpoints/step-00000012");
        for (String file : List.of(CheckpointStore.PARAMS, CheckpointStore.ADAM_V)) {
            try (var channel = Files.newByteChannel(newest.resolve(file), StandardOpenOption.WRITE)) {
                channel.position(25L * Float.BYTES);
                channel.write(ByteBuffer.allocate(Float.BYTES).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, Float.NaN));
            }
            rehash(newest, file);
            CorruptCheckpointException e = assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(newest));
            assertEquals("checkpoint file " + newest.resolve(file) + " holds NaN at value 25 (damaged: training never writes a value "
                    + "that is not finite)", e.getMessage());
            TrainingRunTest.copyTree(reference.resolve("checkpoints/step-00000012"), newest);
        }
        try (var channel = Files.newByteChannel(newest.resolve(CheckpointStore.ADAM_M), StandardOpenOption.WRITE)) {
            channel.position(7L * Float.BYTES);
            channel.write(ByteBuffer.allocate(Float.BYTES).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, Float.NEGATIVE_INFINITY));
        }
        rehash(newest, CheckpointStore.ADAM_M);
        // resumed from, the NaN would have spread into every later checkpoint while retention pruned the clean ones
        String log = resumeAuto(run);
        assertTrue(log.contains("warning: checkpoint file " + newest.resolve(CheckpointStore.ADAM_M) + " holds -Infinity at value 7"), log);
        assertTrue(log.contains("resumed from " + run.resolve("checkpoints/step-00000008")), log);
        TestRuns.assertSameRun(reference, run);
    }

    @Test
    void aLatestPointerThatIsAPipeOrEndlessIsPassedOverWithoutReadingIt() throws Exception {
        Path run = copyOfReference();
        Path latest = run.resolve("checkpoints/latest");
        CheckpointStore store = new CheckpointStore(run);
        Files.delete(latest);
        assertEquals(0, new ProcessBuilder("mkfifo", latest.toString()).start().waitFor());
        // reading a pipe nobody writes would block the resume (and hold the run's lock) for good
        assertEquals(run.resolve("checkpoints/step-00000012"),
                assertTimeoutPreemptively(Duration.ofSeconds(20), () -> store.findResumable(w -> { })).orElseThrow());
        Files.delete(latest);
        Files.createSymbolicLink(latest, Path.of("/dev/zero"));
        assertEquals(run.resolve("checkpoints/step-00000012"),
                assertTimeoutPreemptively(Duration.ofSeconds(20), () -> store.findResumable(w -> { })).orElseThrow());
    }

    @Test
    void aManifestThatIsNotASmallRegularFileIsDamageAndAutoFallsBack() throws Exception {
        Path run = copyOfReference();
        Path newest = run.resolve("checkpoints/step-00000012");
        Files.delete(newest.resolve(CheckpointStore.MANIFEST));
        Files.createSymbolicLink(newest.resolve(CheckpointStore.MANIFEST), Path.of("/dev/zero"));
        CorruptCheckpointException e = assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(newest));
        assertEquals("checkpoint file " + newest.resolve(CheckpointStore.MANIFEST) + " is not a regular file", e.getMessage());
        String log = resumeAuto(run);
        assertTrue(log.contains("resumed from " + run.resolve("checkpoints/step-00000008")), log);
        TestRuns.assertSameRun(reference, run);
    }

    @Test
    void stepsThatDisagreeWithTheirDirectoryOrCountsBelowZeroAreRefused() throws Exception {
        Path run = copyOfReference();
        Path newest = run.resolve("checkpoints/step-00000012");
        Path manifestFile = newest.resolve(CheckpointStore.MANIFEST);
        String manifest = Files.readString(manifestFile);
        Files.writeString(manifestFile, manifest.replace("\"step\" : 12,", "\"step\" : 4611686018427387904,"));
        CorruptCheckpointException e = assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(newest));
        assertEquals("checkpoint file " + manifestFile + ": step is 4611686018427387904 in a directory named step-00000012",
                e.getMessage());
        Files.writeString(manifestFile, manifest);

        Path stateFile = newest.resolve(CheckpointStore.STATE);
        String state = Files.readString(stateFile);
        Files.writeString(stateFile, state.replace("\"step\" : 12", "\"step\" : 2"));
        rehash(newest, CheckpointStore.STATE);
        e = assertThrows(CorruptCheckpointException.class, () -> TrainState.read(newest));
        assertEquals("checkpoint file " + stateFile + ": step is 2 in a directory named step-00000012", e.getMessage());

        String negative = state.replaceFirst("\"blocksDrawn\" : \\d+", "\"blocksDrawn\" : -5");
        assertFalse(negative.equals(state), "the state names blocksDrawn");
        Files.writeString(stateFile, negative);
        rehash(newest, CheckpointStore.STATE);
        e = assertThrows(CorruptCheckpointException.class, () -> TrainState.read(newest));
        assertTrue(e.getMessage().startsWith("checkpoint file " + stateFile + ": sampler is not a data position ("), e.getMessage());
        assertTrue(e.getMessage().contains("blocksDrawn -5"), e.getMessage());
    }

    @Test
    void unsplitMomentsOfAnotherSizeThanTheWeightsAreRefused() throws Exception {
        Path run = copyOfReference();
        Path newest = run.resolve("checkpoints/step-00000012");
        Files.write(newest.resolve(CheckpointStore.ADAM_M), new byte[3], StandardOpenOption.APPEND);
        rehash(newest, CheckpointStore.ADAM_M);
        CorruptCheckpointException e = assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(newest));
        long params = Files.size(newest.resolve(CheckpointStore.PARAMS));
        assertEquals("checkpoint file " + newest.resolve(CheckpointStore.MANIFEST) + ": adam_m.f32 has " + (params + 3)
                + " bytes where params.f32 has " + params, e.getMessage());
    }

    @Test
    void aStepDirectoryPastALongIsNotTakenForACheckpoint() throws Exception {
        Path run = copyOfReference();
        Path huge = Files.createDirectories(run.resolve("checkpoints/step-99999999999999999999"));
        Files.writeString(huge.resolve(CheckpointStore.MANIFEST), "{}");
        List<String> warnings = new ArrayList<>();
        assertEquals(run.resolve("checkpoints/step-00000012"), new CheckpointStore(run).findResumable(warnings::add).orElseThrow());
        assertEquals(List.of(), warnings);
    }

    @Test
    void aRunResumedWithoutItsRecipeIsRefusedRatherThanGivenTheDemos() throws Exception {
        Path run = copyOfReference();
        Files.delete(run.resolve("config.yaml"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new PretrainRun(null, List.of(), run, "auto", null)
                .execute(StopSignal.none(), Trainer.Hooks.NONE, new PrintStream(new ByteArrayOutputStream())));
        assertEquals("cannot resume " + run + ": its config.yaml is missing or not a regular file; pass the run's recipe with "
                + "--config FILE", e.getMessage());
        assertEquals(TestRuns.fileDigests(reference.resolve("checkpoints")), TestRuns.fileDigests(run.resolve("checkpoints")));
    }

    @Test
    void aDirectoryInPlaceOfLatestIsRefusedBeforeAnyStepRuns() throws Exception {
        Path run = copyOfReference();
        Path latest = run.resolve("checkpoints/latest");
        Files.delete(latest);
        Files.createDirectories(latest.resolve("inside"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TestRuns.pretrain(recipe, run, "auto", "train.max_steps=16"));
        assertEquals(latest + " is a directory where the run keeps a one-line pointer file; move it away", e.getMessage());
        assertEquals(TestRuns.deterministicMetrics(reference), TestRuns.deterministicMetrics(run), "no step ran");
    }

    @Test
    void inspectOfADirectoryThatIsNeitherARunNorACheckpointSaysSo() throws Exception {
        Path plain = Files.createDirectories(dir.resolve("notes"));
        var run = io.tinyllamaj.trainer.cli.CliRun.of("inspect", plain.toString());
        assertEquals(1, run.exitCode());
        assertEquals("tinyllama: error: " + plain + " is neither a run directory (it has no checkpoints/) nor a checkpoint "
                + "(a directory named like step-00001000)", run.err().strip());
        // a run whose metrics.jsonl is damaged still inspects: the loss beside the checkpoint is a convenience
        Path damaged = copyOfReference();
        Files.writeString(damaged.resolve("metrics.jsonl"), "junk\n" + Files.readString(damaged.resolve("metrics.jsonl")));
        var inspected = io.tinyllamaj.trainer.cli.CliRun.of("inspect", damaged.toString());
        assertEquals(0, inspected.exitCode(), inspected.err());
        assertTrue(inspected.out().contains("last loss unknown (no readable metrics.jsonl beside the checkpoints)"), inspected.out());
    }

    @Test
    void aResumePastTheRunsStepsSaysThereIsNothingToTrain() throws Exception {
        Path run = copyOfReference();
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        TestRuns.pretrain(recipe, run, "auto", StopSignal.none(), Trainer.Hooks.NONE, log, "train.max_steps=8");
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("warning: the checkpoint is at step 12, at or past the run's 8 steps: nothing to train "
                + "(raise train.max_steps to continue)"), text);
    }

    @Test
    void aFileInPlaceOfCheckpointsIsRefusedBeforeAnyStepRuns() throws Exception {
        Path run = Files.createDirectories(dir.resolve("fresh"));
        Files.writeString(run.resolve("checkpoints"), "not a folder");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TestRuns.pretrain(recipe, run, null));
        assertEquals(run.resolve("checkpoints") + " is a file where the run keeps its checkpoints; move it away", e.getMessage());
        assertFalse(Files.exists(run.resolve("metrics.jsonl")), "no step ran");
    }

    @Test
    void aResumeOfADirectoryThatDoesNotExistSaysSo() {
        Path missing = dir.resolve("nonexistent");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> TestRuns.pretrain(recipe, dir.resolve("out"), missing.toString()));
        assertEquals("--resume " + missing + ": no such checkpoint or run directory", e.getMessage());
    }

    @Test
    void aResumeDirectoryThatIsNeitherARunNorACheckpointIsNamed() throws Exception {
        for (String given : List.of("/", dir.toString())) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> TestRuns.pretrain(recipe, dir.resolve("out"), given));
            assertEquals("--resume " + given + " is neither a run directory (it has no checkpoints/) nor a checkpoint "
                    + "(a directory named like step-00001000)", e.getMessage());
        }
    }
}
