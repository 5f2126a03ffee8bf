package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.trainer.TestRuns;
import io.tinyllamaj.kernels.mpi.Launch;
import io.tinyllamaj.kernels.nccl.Nccl;
import io.tinyllamaj.kernels.nccl.NcclException;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Two MPI ranks on this machine (mpirun --oversubscribe -np 2, CPU backend): collectives,
 * 1 rank vs 2 ranks loss curves for ddp, fsdp and hybrid, the agreed non-finite skip
 * on every rank, and a stuck or killed rank ending the job. Skipped only when mpirun is
 * not installed (.ci/run installs openmpi-bin).
 */
class DistributedTest {

    /** 1 vs 2 ranks: the same global batch, summed in another order; fp32 rounding only. */
    static final double CURVE_TOLERANCE = 1e-5;
    static final double HANG_TIMEOUT_S = 2.0;

    static boolean mpirun;

    @BeforeAll
    static void findMpirun() {
        mpirun = TestRuns.onPath("mpirun");
        if (!mpirun) {
            System.out.println("DistributedTest: mpirun not found on PATH; skipping the multi-rank tests "
                    + "(install openmpi-bin, as .ci/run does)");
        }
    }

    @Test
    void collectivesAndLossCurvesMatchOneRank(@TempDir Path out) throws Exception {
        Assumptions.assumeTrue(mpirun, "mpirun not found on PATH (install openmpi-bin)");
        Result result = launch(120, "all", out.toString());
        assertEquals(0, result.exitCode, "mpirun -np 2 DistributedCheck all failed:\n" + result.output);
        assertTrue(result.output.contains("rank 0: all distributed checks passed")
                && result.output.contains("rank 1: all distributed checks passed"), result.output);

        for (String preset : DistributedCheck.PRESETS) {
            double[] reference;
            try (Strategy single = Distributed.create("none", Ranks.single(), 1)) {
                reference = LossCurves.train(single, preset, 2);
            }
            assertTrue(reference[LossCurves.STEPS - 1] < reference[0] - 0.05,
                    preset + ": the loss must fall over the run, or the comparison proves little: " + reference[0] + " -> "
                            + reference[LossCurves.STEPS - 1]);
            for (String strategy : DistributedCheck.STRATEGIES) {
                List<String> lines = Files.readAllLines(out.resolve(preset + "-" + strategy + ".txt"));
                assertEquals(LossCurves.STEPS, lines.size());
                double worst = 0;
                for (int step = 0; step < LossCurves.STEPS; step++) {
                    double two = Double.parseDouble(lines.get(step));
                    double relative = Math.abs(two - reference[step]) / Math.abs(reference[step]);
                    worst = Math.max(worst, relative);
                    assertTrue(relative <= CURVE_TOLERANCE, String.format(Locale.ROOT,
                            "%s %s step %d: 2 ranks %.9f, 1 rank %.9f (relative %.2e)", preset, strategy, step, two,
                            reference[step], relative));
                }
                System.out.printf(Locale.ROOT, "%s %s: 2 ranks vs 1 rank over %d steps, worst relative loss difference %.2e%n",
                        preset, strategy, LossCurves.STEPS, worst);
            }
        }
    }

    @Test
    void aStuckRankEndsTheJobNamingTheCollective() throws Exception {
        Assumptions.assumeTrue(mpirun, "mpirun not found on PATH (install openmpi-bin)");
        long start = System.nanoTime();
        Result result = launch(60, "hang", Double.toString(HANG_TIMEOUT_S));
        double seconds = (System.nanoTime() - start) / 1e9;
        assertNotEquals(0, result.exitCode, result.output);
        assertTrue(result.output.contains("rank 0: collective #") && result.output.contains("allReduceSum on world (1000 values)")
                && result.output.contains("did not finish within 2.0 s"), result.output);
        assertTrue(seconds < 30, "the job took " + seconds + " s to end");
    }

    /** A prefetched gather whose peer never comes: the wait for its completion is what the watchdog names. */
    @Test
    void aStuckRankEndsTheJobInsideAStartedCollective() throws Exception {
        Assumptions.assumeTrue(mpirun, "mpirun not found on PATH (install openmpi-bin)");
        Result result = launch(60, "hang-started", Double.toString(HANG_TIMEOUT_S));
        assertNotEquals(0, result.exitCode, result.output);
        assertTrue(result.output.contains("rank 0: collective #") && result.output.contains("completing #")
                && result.output.contains("broadcast on world (700 values)") && result.output.contains("did not finish within 2.0 s"),
                result.output);
    }

    @Test
    void aKilledRankEndsTheJobNamingTheCollective() throws Exception {
        Assumptions.assumeTrue(mpirun, "mpirun not found on PATH (install openmpi-bin)");
        long start = System.nanoTime();
        Result result = launch(60, "kill");
        double seconds = (System.nanoTime() - start) / 1e9;
        assertNotEquals(0, result.exitCode, result.output);
        assertTrue(result.output.contains("rank 0: terminated inside collective") && result.output.contains("allReduceSum on world"),
                result.output);
        assertTrue(seconds < 30, "the job took " + seconds + " s to end");
    }

    @Test
    void oneProcessNeverStartsMpi() {
        Assumptions.assumeFalse(Launch.detect().distributed(), "this JVM itself runs under mpirun");
        try (Strategy strategy = Distributed.open("fsdp", 1, 1, Duration.ofSeconds(1), new CpuBackend(), System.err)) {
            assertEquals(1, strategy.worldSize());
            assertEquals(new Shard(0, 100), strategy.optimizerShard(100));
            assertTrue(strategy.anyRank(true));
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Distributed.open("ddp", 2, 1, Duration.ofSeconds(1), new CpuBackend(), System.err));
        assertTrue(e.getMessage().contains("not started by mpirun"), e.getMessage());
    }

    @Test
    void shardsCoverTheBufferContiguously() {
        for (int ranks = 1; ranks <= 5; ranks++) {
            for (long length : new long[] {0, 1, 4, 11, 1_000_003}) {
                long next = 0;
                for (int r = 0; r < ranks; r++) {
                    Shard s = Shard.of(length, r, ranks);
                    assertEquals(next, s.offset());
                    next += s.length();
                }
                assertEquals(length, next);
            }
        }
    }

    @Test
    void missingNcclIsOneClearLine() {
        Nccl nccl;
        try {
            nccl = Nccl.load();
        } catch (NcclException e) {
            assertTrue(e.getMessage().startsWith("NCCL unavailable: libnccl.so.2 is not installed"), e.getMessage());
            assertTrue(!e.getMessage().contains("\n"), e.getMessage());
            return;
        }
        System.out.println("NCCL " + nccl.version() + " is installed here; the missing-library message is not checked");
    }

    // ---- launching ranks ----

    record Result(int exitCode, String output) {
    }

    static Result launch(int timeoutSeconds, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xmx512m", "-XX:+UseSerialGC",
                "-cp", System.getProperty("java.class.path"), DistributedCheck.class.getName()));
        command.addAll(List.of(args));
        Path log = Files.createTempFile("mpirun", ".log");
        Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        try {
            if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly().waitFor();
                return new Result(-1, "timed out after " + timeoutSeconds + " s:\n" + Files.readString(log));
            }
            return new Result(process.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
