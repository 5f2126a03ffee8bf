package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.trainer.TestRuns;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.run.MetricsLog;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ranks started by Slurm: a one-node cluster on this host ({@link LocalSlurm}) runs
 * {@code srun -n 2 --mpi=pmix} of pretrain with fsdp. Its run equals {@code mpirun -np 2}'s bit
 * for bit, and {@code scancel --signal=TERM} mid-run ends both ranks with one checkpoint from
 * which {@code --resume auto} (under srun again) finishes the uninterrupted run exactly.
 */
class SlurmLaunchTest {

    static final int STEPS = 12;

    @TempDir
    static Path shared;
    static Path recipe;
    static LocalSlurm slurm;
    static String notStarted;

    @BeforeAll
    static void cluster() throws Exception {
        Optional<String> unavailable = LocalSlurm.unavailable();
        if (unavailable.isPresent()) {
            System.out.println("SlurmLaunchTest: skipping: " + unavailable.get());
            return;
        }
        recipe = TestRuns.writeRecipe(shared, "test-small", 256, 64, 2, 8, STEPS, "");
        try {
            slurm = LocalSlurm.start(Files.createDirectories(shared.resolve("slurm")));
        } catch (AssertionError | IOException e) {
            // the daemons are the machine's, not ours: say loudly why, and leave launch detection to LaunchWorldTest
            notStarted = e.getMessage();
            System.out.println("SlurmLaunchTest: skipping: a local Slurm did not start: " + notStarted);
        }
    }

    private static void assumeCluster() {
        Assumptions.assumeTrue(slurm != null, () -> "no Slurm here: " + LocalSlurm.unavailable().orElse(notStarted));
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (slurm != null) {
            slurm.close();
        }
    }

    private static String[] args(Path out, String... more) {
        List<String> all = new ArrayList<>(List.of("--config", recipe.toString(), "--out", out.toString(),
                "--set", "distributed.strategy=fsdp", "--set", "distributed.collective_timeout_s=60"));
        all.addAll(List.of(more));
        return all.toArray(String[]::new);
    }

    private record Ended(int exitCode, String output) {
    }

    private static Ended await(Process process, Path log) throws Exception {
        if (!process.waitFor(180, TimeUnit.SECONDS)) {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly().waitFor();
            return new Ended(-1, "timed out:\n" + Files.readString(log) + slurm.logs());
        }
        return new Ended(process.exitValue(), Files.readString(log));
    }

    private static Process srun(Path log, String jobName, String... args) throws IOException {
        return slurm.srun(2, jobName, TestRuns.rankPretrain(args)).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    @Test
    void srunRanksFormOneWorldAndTrainAsMpirunRanksBitForBit(@TempDir Path dir) throws Exception {
        assumeCluster();
        Assumptions.assumeTrue(TestRuns.onPath("mpirun"), "mpirun not found on PATH (install openmpi-bin)");
        Path viaMpirun = dir.resolve("mpirun");
        Ended mpirun = await(TestRuns.mpirunPretrain(dir.resolve("mpirun.log"), 2, args(viaMpirun)).start(), dir.resolve("mpirun.log"));
        assertEquals(0, mpirun.exitCode(), mpirun.output());

        Path viaSrun = dir.resolve("srun");
        Ended srun = await(srun(dir.resolve("srun.log"), "tl-bitwise", args(viaSrun)), dir.resolve("srun.log"));
        assertEquals(0, srun.exitCode(), srun.output());
        assertTrue(srun.output().lines().anyMatch(l -> l.startsWith("launch: srun (Slurm) with PMIx, Slurm job ")
                && l.endsWith(": rank 0 of 2, local rank 0")), srun.output());
        TestRuns.assertSameRun(viaMpirun, viaSrun);
    }

    @Test
    void scancelSignalTermLeavesACheckpointThatResumesExactly(@TempDir Path dir) throws Exception {
        assumeCluster();
        Path reference = dir.resolve("reference");
        Ended whole = await(srun(dir.resolve("reference.log"), "tl-reference", args(reference)), dir.resolve("reference.log"));
        assertEquals(0, whole.exitCode(), whole.output());

        Path stopped = dir.resolve("stopped");
        Path log = dir.resolve("stopped.log");
        Process job = srun(log, "tl-preempted", args(stopped, "--set", "checkpoint.interval=0"));
        assertTrue(TestRuns.awaitStep(job, stopped, 3, 120_000), "reached step 3: " + Files.readString(log));
        slurm.scancel("tl-preempted", "TERM");
        Ended ended = await(job, log);
        assertEquals(0, ended.exitCode(), ended.output());
        long last = MetricsLog.read(stopped.resolve(MetricsLog.FILE)).getLast().path("step").asLong();
        assertTrue(last < STEPS, "stopped before the end: " + ended.output());
        System.out.println("SlurmLaunchTest: scancel --signal=TERM after step 3; both ranks stopped at step " + last);
        assertTrue(ended.output().contains(": saving a checkpoint at step " + last), ended.output());
        String latest = Files.readString(stopped.resolve("checkpoints").resolve(CheckpointStore.LATEST)).trim();
        assertEquals(CheckpointStore.name(last), latest, "one checkpoint, at the step where both ranks stopped");
        CheckpointStore.verify(stopped.resolve("checkpoints").resolve(latest));

        Ended resumed = await(srun(dir.resolve("resumed.log"), "tl-resumed", args(stopped, "--resume", "auto")), dir.resolve("resumed.log"));
        assertEquals(0, resumed.exitCode(), resumed.output());
        assertTrue(resumed.output().contains("resumed from"), resumed.output());
        TestRuns.assertSameRun(reference, stopped);
    }
}
