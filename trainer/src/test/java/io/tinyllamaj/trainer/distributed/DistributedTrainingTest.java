package io.tinyllamaj.trainer.distributed;

import com.fasterxml.jackson.databind.JsonNode;
import io.tinyllamaj.trainer.TestRuns;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.run.MetricsLog;
import io.tinyllamaj.trainer.run.RankMemory;
import io.tinyllamaj.trainer.run.Trainer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real launcher under {@code mpirun --oversubscribe -np 2} (CPU ranks), against the same
 * recipe trained on one rank in this JVM (resharding, a stop signal to one rank, 1 rank vs 2):
 * <ul>
 *   <li>ddp and fsdp on 2 ranks (micro-batch 2) give the 1-rank (micro-batch 4) losses, at step 1 and over the run, within
 *       {@link #TOLERANCE} relative (the same global batch, summed in another order);</li>
 *   <li>the 2-rank fsdp run resumed from its step-8 checkpoint on 2 ranks equals the
 *       uninterrupted one bit for bit; resumed on 1 rank (moments resharded from two files
 *       into one range) it continues within {@link #TOLERANCE};</li>
 *   <li>the memory records: fsdp's AdamW moments are half the one rank's on each of the two ranks, ddp's whole;</li>
 *   <li>SIGTERM to one rank: both finish the step, write one complete checkpoint and exit 0;
 *       the resumed run equals the uninterrupted one bit for bit.</li>
 * </ul>
 * Skipped only when mpirun is not installed.
 */
class DistributedTrainingTest {

    static final double TOLERANCE = 1e-5;
    static final int STEPS = 16;
    /**
     * One rank takes micro-batches of 4 where two take 2 each, keeping A = 2 and the global batch
     * of 8, so the runs compare under either train.lr_schedule (per_micro_batch depends on A;
     * docs/distributed.md, "Resharding").
     */
    static final String ONE_RANK_MICRO_BATCH = "train.micro_batch_size=4";

    @TempDir
    static Path shared;
    static Path recipe;
    static Path single;
    static boolean mpirun;

    @BeforeAll
    static void oneRankReference() throws Exception {
        mpirun = TestRuns.onPath("mpirun");
        if (!mpirun) {
            System.out.println("DistributedTrainingTest: mpirun not found on PATH; skipping (install openmpi-bin, as .ci/run does)");
            return;
        }
        recipe = TestRuns.writeRecipe(shared, "test-small", 256, 64, 2, 8, STEPS, "");
        single = shared.resolve("single");
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, single, null, ONE_RANK_MICRO_BATCH, "checkpoint.keep_last=10"));
    }

    @Test
    void twoRanksMatchOneRankAndResumeExactlyOnTwoOrReshardedOnOne(@TempDir Path dir) throws Exception {
        Assumptions.assumeTrue(mpirun, "mpirun not found on PATH (install openmpi-bin)");
        Path ddp = dir.resolve("ddp");
        Launched run = launch(dir, "--out", ddp.toString(), "--set", "distributed.strategy=ddp",
                "--set", "distributed.world_size=2", "--set", "checkpoint.keep_last=10");
        assertEquals(0, run.exitCode(), run.output());
        assertTrue(run.output().contains("launch: mpirun (Open MPI): rank 0 of 2, local rank 0"), run.output());
        assertClose("ddp, 2 ranks vs 1", single, ddp, 1);
        assertMemory(single, 1, 1, false);
        assertMemory(ddp, 2, 1, false);

        Path fsdp = dir.resolve("fsdp");
        run = launch(dir, "--out", fsdp.toString(), "--set", "distributed.strategy=fsdp", "--set", "checkpoint.keep_last=10");
        assertEquals(0, run.exitCode(), run.output());
        assertClose("fsdp, 2 ranks vs 1", single, fsdp, 1);
        assertMemory(fsdp, 2, 2, true); // half of the one rank's parameters, gradients, m and v on each rank
        Path step8 = fsdp.resolve("checkpoints").resolve(CheckpointStore.name(8));
        assertTrue(Files.exists(step8.resolve("adam_m-rank00001.f32")), "fsdp writes one moment shard per rank");

        Path hybrid = dir.resolve("hybrid");
        run = launch(dir, "--out", hybrid.toString(), "--set", "distributed.strategy=hybrid", "--set", "distributed.ranks_per_node=1");
        assertEquals(0, run.exitCode(), run.output());
        assertClose("hybrid (2 simulated nodes of 1 rank), 2 ranks vs 1", single, hybrid, 1);

        Path onTwo = TestRuns.copyUpTo(fsdp, dir.resolve("fsdp-resumed-on-2"), 8);
        run = launch(dir, "--out", onTwo.toString(), "--resume", "auto", "--set", "distributed.strategy=fsdp",
                "--set", "checkpoint.keep_last=10");
        assertEquals(0, run.exitCode(), run.output());
        assertTrue(run.output().contains("resumed from") && run.output().contains("at step 8"), run.output());
        TestRuns.assertSameRun(fsdp, onTwo);

        Path onOne = TestRuns.copyUpTo(fsdp, dir.resolve("fsdp-resumed-on-1"), 8);
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, onOne, "auto", ONE_RANK_MICRO_BATCH, "distributed.strategy=fsdp",
                "checkpoint.keep_last=10"));
        assertClose("fsdp 2 ranks -> resumed on 1 at step 8, vs 2 ranks uninterrupted", fsdp, onOne, 9);
    }

    /**
     * Three ranks: test-small with a 257-token vocabulary has parameters that do not divide by 3
     * (the last rank's shard is longer),
     * and the 4 held-out blocks make 2 validation micro-batches, so rank 2 has none and runs a
     * padding forward to keep the fully sharded forwards collective. Against one rank with the
     * same 6 sequences a step.
     */
    @Test
    void threeRanksWithUnevenShardsAndAShortValidationRankMatchOneRank(@TempDir Path dir) throws Exception {
        Assumptions.assumeTrue(mpirun, "mpirun not found on PATH (install openmpi-bin)");
        long parameters = TEST_SMALL_PARAMETERS + 2 * 64; // a 257th token in the embedding and the head
        assertTrue(parameters % 3 != 0, "the shards are uneven");
        Path one = dir.resolve("one");
        assertEquals(Trainer.Outcome.FINISHED, TestRuns.pretrain(recipe, one, null, "model.vocab_size=257",
                "train.global_batch_size=6", "train.micro_batch_size=6"));
        Path three = dir.resolve("three");
        Launched run = launch(dir, 3, "--out", three.toString(), "--set", "distributed.strategy=fsdp", "--set", "model.vocab_size=257",
                "--set", "train.global_batch_size=6", "--set", "distributed.collective_timeout_s=60");
        assertEquals(0, run.exitCode(), run.output());
        assertClose("fsdp, 3 ranks vs 1", one, three, 1);
        assertMemory(three, 3, 3, true, parameters);
    }

    @Test
    void sigtermToOneRankStopsBothWithOneCheckpointAndTheRunResumesExactly(@TempDir Path dir) throws Exception {
        Assumptions.assumeTrue(mpirun, "mpirun not found on PATH (install openmpi-bin)");
        Path reference = dir.resolve("reference");
        Launched run = launch(dir, "--out", reference.toString(), "--set", "distributed.strategy=ddp");
        assertEquals(0, run.exitCode(), run.output());

        Path stopped = dir.resolve("stopped");
        Process mpirunProcess = start(dir, "--out", stopped.toString(), "--set", "distributed.strategy=ddp");
        Path log = dir.resolve("mpirun.log");
        assertTrue(TestRuns.awaitStep(mpirunProcess, stopped, 2, 60_000), "reached step 2: " + Files.readString(log));
        List<ProcessHandle> ranks = mpirunProcess.descendants().filter(p -> p.info().command().orElse("").endsWith("java")).toList();
        assertEquals(2, ranks.size(), "two java ranks under mpirun: " + ranks);
        ranks.getLast().destroy(); // SIGTERM to one rank only
        assertTrue(mpirunProcess.waitFor(60, TimeUnit.SECONDS), "the job ended");
        String output = Files.readString(log);
        assertEquals(0, mpirunProcess.exitValue(), output);
        long last = MetricsLog.read(stopped.resolve(MetricsLog.FILE)).getLast().path("step").asLong();
        assertTrue(last < STEPS, "stopped before the end: " + output);
        String latest = Files.readString(stopped.resolve("checkpoints/latest")).trim();
        assertEquals(CheckpointStore.name(last), latest, "one checkpoint, at the step where both ranks stopped");
        CheckpointStore.verify(stopped.resolve("checkpoints").resolve(latest));
        assertTrue(output.contains("saving a checkpoint at step " + last), output);

        run = launch(dir, "--out", stopped.toString(), "--resume", "auto", "--set", "distributed.strategy=ddp");
        assertEquals(0, run.exitCode(), run.output());
        TestRuns.assertSameRun(reference, stopped);
    }

    // ---- helpers ----

    /**
     * test-small's parameters: embed and lm_head 256 x 64 each; a block: 2 norms of 64, qkv (8 + 2 x 2) x 8 = 96 rows
     * x 64, attn_out 64 x 64, gate_up 320 x 64, down 64 x 160; the final norm 64. Even, so two shards are equal.
     */
    static final long TEST_SMALL_PARAMETERS = 2 * 256 * 64 + 2 * (2 * 64 + 96 * 64 + 64 * 64 + 320 * 64 + 64 * 160) + 64;

    /** test-small's largest unit: a block (norms, qkv, attn_out, gate_up, down; the embedding and the head are smaller). */
    static final long TEST_SMALL_BLOCK = 2 * 64 + 96 * 64 + 64 * 64 + 320 * 64 + 64 * 160;

    /**
     * Each rank's memory record (rank 0 writes all of them after the first step). Replicated: every
     * rank holds all parameters and gradients (4 bytes a parameter each), and m and v (8 bytes) split
     * over {@code shards}. Fully sharded over {@code shards} ranks: parameters, gradients and m, v of
     * the rank's range only (1/shards, the last rank the remainder), and as gathered blocks two
     * parameter buffers and one gradient buffer of the largest unit.
     */
    static void assertMemory(Path run, int ranks, int shards, boolean fullySharded) throws IOException {
        assertMemory(run, ranks, shards, fullySharded, TEST_SMALL_PARAMETERS);
    }

    /** {@link #assertMemory(Path, int, int, boolean)} for test-small with another vocabulary: {@code parameters} in all. */
    static void assertMemory(Path run, int ranks, int shards, boolean fullySharded, long parameters) throws IOException {
        List<JsonNode> records = MetricsLog.readMemory(run.resolve(MetricsLog.FILE));
        assertEquals(ranks, records.size(), run + ": one memory record per rank");
        for (int rank = 0; rank < ranks; rank++) {
            RankMemory memory = RankMemory.fromRecord(records.get(rank));
            assertEquals(rank, records.get(rank).path("rank").asInt());
            long q = parameters / shards;
            long own = rank % shards == shards - 1 ? parameters - (shards - 1) * q : q;
            assertEquals(own * 8, memory.optimizer(), run + ", rank " + rank);
            assertEquals(shards, memory.optimizerShards(), run + ", rank " + rank);
            long held = fullySharded ? own : parameters;
            assertEquals(held * 4, memory.parameters(), run + ", rank " + rank);
            assertEquals(held * 4, memory.gradients(), run + ", rank " + rank);
            assertEquals(fullySharded ? 5 * TEST_SMALL_BLOCK * 4 : 0, memory.gatheredBlocks(), run + ", rank " + rank);
        }
    }

    /** Losses (and validation losses) of two runs agree within the tolerance from {@code fromStep} on. */
    private static void assertClose(String what, Path expected, Path actual, long fromStep) throws IOException {
        List<JsonNode> a = MetricsLog.read(expected.resolve(MetricsLog.FILE)), b = MetricsLog.read(actual.resolve(MetricsLog.FILE));
        List<JsonNode> x = a.stream().filter(r -> r.path("step").asLong() >= fromStep).toList();
        List<JsonNode> y = b.stream().filter(r -> r.path("step").asLong() >= fromStep).toList();
        assertEquals(STEPS - fromStep + 1, x.size(), what);
        assertEquals(x.size(), y.size(), what);
        double worst = 0;
        for (int i = 0; i < x.size(); i++) {
            assertEquals(x.get(i).path("step").asLong(), y.get(i).path("step").asLong(), what);
            assertEquals(x.get(i).path("first_token"), y.get(i).path("first_token"), what + ": the same data");
            assertEquals(x.get(i).path("tokens_per_source"), y.get(i).path("tokens_per_source"), what + ": the same data");
            for (String key : new String[] {"loss", "val_loss"}) {
                if (!x.get(i).has(key)) {
                    continue;
                }
                double e = x.get(i).path(key).asDouble(), g = y.get(i).path(key).asDouble();
                double relative = Math.abs(g - e) / Math.abs(e);
                worst = Math.max(worst, relative);
                assertTrue(relative <= TOLERANCE, String.format(Locale.ROOT, "%s: step %d %s %.9f vs %.9f (relative %.2e)",
                        what, x.get(i).path("step").asLong(), key, e, g, relative));
            }
        }
        assertTrue(x.getLast().path("loss").asDouble() < x.getFirst().path("loss").asDouble() - 0.05,
                what + ": the loss must fall, or the comparison proves little");
        System.out.printf(Locale.ROOT, "%s: steps %d-%d, worst relative loss difference %.2e%n", what, fromStep, STEPS, worst);
    }

    record Launched(int exitCode, String output) {
    }

    private static Process start(Path dir, String... args) throws IOException {
        return start(dir, 2, args);
    }

    private static Process start(Path dir, int ranks, String... args) throws IOException {
        List<String> all = new ArrayList<>(List.of("--config", recipe.toString()));
        all.addAll(List.of(args));
        return TestRuns.mpirunPretrain(dir.resolve("mpirun.log"), ranks, all.toArray(String[]::new)).start();
    }

    private static Launched launch(Path dir, String... args) throws IOException, InterruptedException {
        return launch(dir, 2, args);
    }

    private static Launched launch(Path dir, int ranks, String... args) throws IOException, InterruptedException {
        Process process = start(dir, ranks, args);
        Path log = dir.resolve("mpirun.log");
        if (!process.waitFor(120, TimeUnit.SECONDS)) {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly().waitFor();
            return new Launched(-1, "timed out:\n" + Files.readString(log, StandardCharsets.UTF_8));
        }
        String output = Files.readString(log, StandardCharsets.UTF_8);
        assertFalse(output.isEmpty() && process.exitValue() != 0, "mpirun printed nothing");
        return new Launched(process.exitValue(), output);
    }
}
