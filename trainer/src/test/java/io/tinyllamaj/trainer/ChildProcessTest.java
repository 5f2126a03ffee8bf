package io.tinyllamaj.trainer;

import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.run.MetricsLog;
import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Crash, stop and resume on one rank with real processes: a child JVM runs
 * {@code tinyllama pretrain} on test-small and is SIGKILLed, SIGTERMed, or halted inside a
 * checkpoint write; the resumed run must equal the uninterrupted one to the last bit.
 */
class ChildProcessTest extends ReferenceRunBase {

    static final int STEPS = 120;

    @BeforeAll
    static void uninterruptedRun() throws Exception {
        runReference("test-small", 256, 64, 4, 8, STEPS);
    }

    private Process start(Path run, String resume, String crash) throws Exception {
        ProcessBuilder builder = resume == null
                ? TestRuns.childPretrain(dir.resolve("child.log"), "--config", recipe.toString(), "--out", run.toString())
                : TestRuns.childPretrain(dir.resolve("child.log"), "--config", recipe.toString(), "--out", run.toString(), "--resume", resume);
        if (crash != null) {
            builder.environment().put("TINYLLAMA_TEST_CRASH_IN_CHECKPOINT", crash);
        }
        return builder.start();
    }

    /** A fresh child training into {@code run}, once it has reached {@code step}. */
    private Process startAndAwait(Path run, long step) throws Exception {
        Process child = start(run, null, null);
        assertTrue(TestRuns.awaitStep(child, run, step, 60_000), "the child reached step " + step + ": " + childLog());
        return child;
    }

    /** SIGTERM: the child saves a checkpoint where it stands and exits 0. */
    private void stopWithSigterm(Process child) throws Exception {
        child.destroy();
        assertTrue(child.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, child.exitValue(), childLog());
    }

    private String childLog() throws Exception {
        return Files.readString(dir.resolve("child.log"));
    }

    @Test
    void sigkillTwiceThenResumeEqualsTheUninterruptedRun() throws Exception {
        Path run = dir.resolve("run");
        Process first = startAndAwait(run, 30);
        first.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        Process second = start(run, "auto", null);
        assertTrue(TestRuns.awaitStep(second, run, 75, 60_000), "the resumed child reached step 75: " + childLog());
        second.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto"));
        TestRuns.assertSameRun(reference, run);
    }

    @Test
    void sigtermSavesACheckpointAndExitsZero() throws Exception {
        Path run = dir.resolve("run");
        stopWithSigterm(startAndAwait(run, 21));
        long last = MetricsLog.read(run.resolve(MetricsLog.FILE)).getLast().path("step").asLong();
        assertTrue(last < STEPS, "stopped before the end");
        String latest = Files.readString(run.resolve("checkpoints/latest")).trim();
        assertEquals(CheckpointStore.name(last), latest, "the checkpoint is taken at the step boundary where it stopped");
        CheckpointStore.verify(run.resolve("checkpoints").resolve(latest));
        assertTrue(childLog().contains("SIGTERM received: saving a checkpoint at step " + last), childLog());
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto"));
        TestRuns.assertSameRun(reference, run);
    }

    @Test
    void aSecondPretrainOnALiveRunIsRefusedBeforeItWritesAnything() throws Exception {
        Path run = dir.resolve("run");
        Process first = startAndAwait(run, 10);
        signal("STOP", first); // holds still, lock and all, while the others try
        try {
            Map<Path, String> before = TestRuns.fileDigests(run);
            String holder = "pid " + first.pid() + " on host " + InetAddress.getLocalHost().getHostName();
            for (String resume : new String[] {null, "auto"}) {
                IllegalStateException refused = assertThrows(IllegalStateException.class,
                        () -> TestRuns.pretrain(recipe, run, resume, "train.max_steps=7"));
                assertEquals("run directory " + run + " is in use: " + holder + " holds " + run.resolve(".lock")
                        + " (one live pretrain per run directory: wait for it to end or stop it, or choose another --out)",
                        refused.getMessage());
            }
            assertEquals(before, TestRuns.fileDigests(run), "the refused runs changed nothing, the lock file included");
        } finally {
            signal("CONT", first);
        }
        stopWithSigterm(first);
        // its files are its own: its config, and metrics that follow the uninterrupted run so far
        assertTrue(Files.readString(run.resolve("config.yaml")).contains("max_steps: 120"));
        List<String> metrics = TestRuns.deterministicMetrics(run);
        assertEquals(TestRuns.deterministicMetrics(reference).subList(0, metrics.size()), metrics);
        // the lock went with the process: this one may take the run over
        long stoppedAt = MetricsLog.read(run.resolve(MetricsLog.FILE)).getLast().path("step").asLong();
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto", "train.max_steps=" + stoppedAt));
    }

    private static void signal(String signal, Process process) throws Exception {
        Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(process.pid())).inheritIO().start();
        assertEquals(0, kill.waitFor());
    }

    @Test
    void killDuringCheckpointWritesResumesFromTheLastCompleteOne() throws Exception {
        // halted: mid-shards at step 8, before the manifest at step 8, and while pruning at step 12
        for (String crash : new String[] {"mid-shards:8", "before-manifest:8", "while-pruning:12"}) {
            Path run = dir.resolve(crash.replace(':', '-'));
            Process child = start(run, null, crash);
            assertTrue(child.waitFor(60, TimeUnit.SECONDS));
            assertEquals(86, child.exitValue(), crash + ": " + childLog());
            CheckpointStore store = new CheckpointStore(run);
            long expectedStep = crash.startsWith("while-pruning") ? 12 : 4;
            assertEquals(run.resolve("checkpoints").resolve(CheckpointStore.name(expectedStep)),
                    store.findResumable(w -> { }).orElseThrow(), crash);
            if (!crash.startsWith("while-pruning")) {
                assertFalse(Files.exists(run.resolve("checkpoints/step-00000008")), crash + ": no torn checkpoint under a final name");
            }
            assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, run, "auto"), crash);
            TestRuns.assertSameRun(reference, run);
        }
    }
}
