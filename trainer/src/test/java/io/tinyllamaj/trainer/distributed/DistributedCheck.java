package io.tinyllamaj.trainer.distributed;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.kernels.cpu.CpuTensor;
import io.tinyllamaj.kernels.mpi.Launch;
import io.tinyllamaj.kernels.mpi.Mpi;
import io.tinyllamaj.model.Initialization;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The rank side of {@link DistributedTest}, run as {@code mpirun -np 2 java ... DistributedCheck MODE}:
 * <ul>
 *   <li>{@code all OUT}: collectives against hand-computed values (two chunk sizes), the NCCL
 *       unique-id bootstrap over MPI, loss curves of every strategy (rank 0 writes them to
 *       OUT/PRESET-STRATEGY.txt), replicas equal afterwards, and the non-finite skip;</li>
 *   <li>{@code hang SECONDS}: rank 1 never reaches the all-reduce; rank 0's watchdog must end it;</li>
 *   <li>{@code hang-started SECONDS}: rank 1 never starts the broadcast rank 0 started and completes;</li>
 *   <li>{@code kill}: rank 1 SIGKILLs itself before the all-reduce.</li>
 * </ul>
 * Any failed check throws, the process exits non-zero and mpirun ends the job.
 */
public final class DistributedCheck {

    static final List<String> PRESETS = List.of("test-tiny", "test-small");
    /**
     * Strategies; hybrid-N has N ranks per node (hybrid-1: two simulated nodes of one rank);
     * fsdp-keep is fsdp with distributed.reshard_after_forward false (one buffer per unit).
     */
    static final List<String> STRATEGIES = List.of("ddp", "fsdp", "fsdp-keep", "hybrid-1", "hybrid-2");

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "all" -> all(Path.of(args[1]));
            case "hang" -> hang(Duration.ofMillis((long) (Double.parseDouble(args[1]) * 1000)), false);
            case "hang-started" -> hang(Duration.ofMillis((long) (Double.parseDouble(args[1]) * 1000)), true);
            case "kill" -> kill();
            default -> throw new IllegalArgumentException("unknown mode " + args[0]);
        }
    }

    private static void all(Path out) throws IOException {
        Mpi mpi = Mpi.initialize();
        CpuBackend backend = new CpuBackend();
        int rank;
        for (int chunk : new int[] {3, MpiCollectives.DEFAULT_CHUNK_FLOATS}) {
            try (MpiCollectives world = new MpiCollectives(mpi, mpi.world(), false, backend, chunk)) {
                collectives(world);
            }
        }
        try (MpiCollectives world = new MpiCollectives(mpi, mpi.world(), false, backend, 64)) {
            rank = world.rank();
            bootstrap(world);
        }
        for (String preset : PRESETS) {
            for (String name : STRATEGIES) {
                try (Strategy strategy = strategy(mpi, backend, name)) {
                    double[] curve = LossCurves.train(strategy, preset, 2);
                    if (rank == 0) {
                        Files.writeString(out.resolve(preset + "-" + name + ".txt"),
                                Arrays.stream(curve).mapToObj(Double::toString).collect(Collectors.joining("\n")));
                    }
                }
            }
        }
        for (String name : STRATEGIES) {
            try (Strategy strategy = strategy(mpi, backend, name)) {
                nonFiniteOnOneRank(strategy, backend, false);
                nonFiniteOnOneRank(strategy, backend, true);
            }
        }
        mpi.finish();
        System.out.println("rank " + rank + ": all distributed checks passed");
    }

    /** A fresh world for each strategy; MPI stays up (the test finalizes it once at the end). */
    private static Strategy strategy(Mpi mpi, CpuBackend backend, String name) {
        Watchdog watchdog = new Watchdog(mpi.rank(mpi.world()), Duration.ofSeconds(60), System.err);
        Collectives world = watchdog.watch(new MpiCollectives(mpi, mpi.world(), false, backend, 1000), "world");
        Ranks ranks = new Ranks(world, null, watchdog, System.err);
        if (name.equals("fsdp-keep")) {
            return Distributed.create("fsdp", ranks, 1, Distributed.options(false, "fp32"));
        }
        String[] parts = name.split("-");
        int ranksPerNode = parts.length > 1 ? Integer.parseInt(parts[1]) : 1;
        return Distributed.create(parts[0], ranks, ranksPerNode);
    }

    // ---- collectives against values computed by hand ----

    private static void collectives(MpiCollectives c) {
        int r = c.rank(), w = c.size();
        require(w == 2, "these checks expect 2 ranks, got " + w);

        float[] sum = new float[10];
        for (int i = 0; i < 10; i++) {
            sum[i] = (float) i * (r + 1);
        }
        c.allReduceSum(new CpuTensor(sum, 0, 10));
        for (int i = 0; i < 10; i++) {
            require(sum[i] == 3f * i, "allReduceSum[" + i + "] = " + sum[i] + ", expected " + 3f * i);
        }

        float[] slice = new float[14];
        Arrays.fill(slice, -7f);
        for (int i = 0; i < 10; i++) {
            slice[2 + i] = i + 1;
        }
        c.allReduceSum(new CpuTensor(slice, 2, 10));
        require(slice[0] == -7f && slice[1] == -7f && slice[12] == -7f && slice[13] == -7f,
                "allReduceSum wrote outside its range: " + Arrays.toString(slice));
        require(slice[2] == 2f && slice[11] == 20f, "allReduceSum of a slice: " + Arrays.toString(slice));

        int n = 11; // 2 x 5 + a remainder of 1: rank 0 owns [0, 5), rank 1 owns [5, 11)
        Shard own = c.shard(n);
        require(own.equals(r == 0 ? new Shard(0, 5) : new Shard(5, 6)), "shard of rank " + r + " is " + own);
        float[] scatter = new float[n];
        for (int i = 0; i < n; i++) {
            scatter[i] = i + 100f * r;
        }
        c.reduceScatterSum(new CpuTensor(scatter, 0, n));
        for (long i = own.offset(); i < own.offset() + own.length(); i++) {
            require(scatter[(int) i] == 2f * i + 100f, "reduceScatterSum[" + i + "] on rank " + r + " = " + scatter[(int) i]);
        }

        // started collectives: two in flight at once, each slice's neighbours untouched, results only after completion
        float[] fromRoot1 = new float[9];
        float[] toRoot0 = new float[9];
        Arrays.fill(fromRoot1, -5f);
        Arrays.fill(toRoot0, -5f);
        for (int i = 1; i < 8; i++) {
            fromRoot1[i] = r == 1 ? 10f * i : -1f;
            toRoot0[i] = i * (r + 1);
        }
        Collectives.Pending startedBroadcast = c.broadcastAsync(new CpuTensor(fromRoot1, 1, 7), 1);
        Collectives.Pending startedReduce = c.reduceSumAsync(new CpuTensor(toRoot0, 1, 7), 0);
        require(r == 1 || fromRoot1[1] == -1f, "broadcastAsync wrote into the tensor before its completion");
        startedBroadcast.complete();
        startedReduce.complete();
        for (int i = 1; i < 8; i++) {
            require(fromRoot1[i] == 10f * i, "broadcastAsync[" + i + "] on rank " + r + " = " + fromRoot1[i]);
            float expected = r == 0 ? 3f * i : i * 2f; // the root gets the sum, the other rank keeps its own values
            require(toRoot0[i] == expected, "reduceSumAsync[" + i + "] on rank " + r + " = " + toRoot0[i] + ", expected " + expected);
        }
        require(fromRoot1[0] == -5f && fromRoot1[8] == -5f && toRoot0[0] == -5f && toRoot0[8] == -5f,
                "a started collective wrote outside its range");

        float[] gather = new float[n];
        Arrays.fill(gather, -1f);
        for (long i = own.offset(); i < own.offset() + own.length(); i++) {
            gather[(int) i] = (r + 1) * 1000f + i;
        }
        c.allGather(new CpuTensor(gather, 0, n));
        for (int i = 0; i < n; i++) {
            float expected = (i < 5 ? 1000f : 2000f) + i;
            require(gather[i] == expected, "allGather[" + i + "] on rank " + r + " = " + gather[i] + ", expected " + expected);
        }

        float[] broadcast = new float[7];
        if (r == 1) {
            for (int i = 0; i < 7; i++) {
                broadcast[i] = 7f * i;
            }
        }
        c.broadcast(new CpuTensor(broadcast, 0, 7), 1);
        for (int i = 0; i < 7; i++) {
            require(broadcast[i] == 7f * i, "broadcast[" + i + "] on rank " + r + " = " + broadcast[i]);
        }

        c.barrier();
        require(c.allReduceSum(r + 1.5) == 4.0, "scalar sum");
        require(c.allReduceMax(r == 0 ? 5.0 : -2.0) == 5.0, "scalar max");
        require(Double.isNaN(c.allReduceSum(r == 1 ? Double.NaN : 1.0)), "a NaN on one rank must make the sum NaN");

        try (MpiCollectives alone = c.split(r, 0)) {
            require(alone.size() == 1 && alone.rank() == 0, "split by rank gives groups of one");
            float[] mine = {r + 1f};
            alone.allReduceSum(new CpuTensor(mine, 0, 1));
            require(mine[0] == r + 1f, "all-reduce in a group of one changes nothing");
        }
        try (MpiCollectives both = c.split(0, -r)) {
            require(both.size() == 2 && both.rank() == 1 - r, "split with key -rank reverses the order");
        }
    }

    /** Rank 0's id reaches every rank intact (the id generator stands in for ncclGetUniqueId). */
    private static void bootstrap(MpiCollectives world) {
        byte[] expected = new byte[128];
        for (int i = 0; i < 128; i++) {
            expected[i] = (byte) (31 * i + 7);
        }
        byte[] id = NcclCollectives.shareUniqueId(world, expected::clone);
        require(Arrays.equals(id, expected), "rank " + world.rank() + " got another NCCL unique id: " + Arrays.toString(id));
    }

    // ---- a non-finite value on one rank only ----

    private static void nonFiniteOnOneRank(Strategy strategy, CpuBackend backend, boolean lossOnly) {
        LlamaModel model = new LlamaModel(backend, LlamaConfig.preset("test-tiny"));
        Initialization.initialize(model, LossCurves.SEED);
        strategy.prepare(model); // fsdp, hybrid: model.parameters() is this rank's range from here on
        Shard own = strategy.optimizerShard(model.layout().total());
        CpuTensor m = (CpuTensor) backend.allocate(own.length()), v = (CpuTensor) backend.allocate(own.length());
        int seqLen = 8;
        int[] tokens = new int[seqLen], targets = new int[seqLen];
        for (int i = 0; i < seqLen; i++) {
            tokens[i] = (5 * i + strategy.rank()) % 61;
            targets[i] = (7 * i + 3) % 61;
        }
        float[] before = backend.download(model.parameters());
        model.zeroGradients();
        double localLoss = model.forwardBackward(tokens, targets, 1, seqLen, 1f / seqLen) / seqLen;
        if (strategy.rank() == 1) {
            if (lossOnly) {
                localLoss = Double.NaN;
            } else {
                CpuTensor g = (CpuTensor) model.gradients();
                g.data()[g.offset() + g.length32() / 3] = Float.POSITIVE_INFINITY;
            }
        }
        double normSquared = strategy.afterBackward(model);
        boolean skip = strategy.anyRank(!Double.isFinite(localLoss) || !Double.isFinite(normSquared));
        require(skip, strategy.name() + ": rank " + strategy.rank() + " did not agree to skip (lossOnly " + lossOnly + ")");
        if (!skip) {
            strategy.step(model, m, v, new AdamWStep(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1f));
        }
        require(Arrays.equals(before, backend.download(model.parameters())), strategy.name() + ": weights changed");

        model.zeroGradients();
        model.forwardBackward(tokens, targets, 1, seqLen, 1f / seqLen);
        double finite = strategy.afterBackward(model);
        require(!strategy.anyRank(!Double.isFinite(finite)), strategy.name() + ": a clean step was flagged");
        strategy.step(model, m, v, new AdamWStep(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1f));
        float[] after = backend.download(model.parameters());
        require(!Arrays.equals(before, after), strategy.name() + ": a clean step left the weights unchanged");
        require(strategy.optimizerShards() > 1 || replicasEqual(strategy, after),
                strategy.name() + ": ranks hold different weights after a step");
    }

    /** The same parameter bits on every rank: a 52-bit hash compared by max and -max (min). */
    static boolean replicasEqual(Strategy strategy, float[] parameters) {
        long hash = 1469598103934665603L;
        for (float p : parameters) {
            hash = (hash ^ Float.floatToRawIntBits(p)) * 1099511628211L;
        }
        double h = hash & ((1L << 52) - 1);
        return strategy.world().allReduceMax(h) == -strategy.world().allReduceMax(-h);
    }

    // ---- a rank stuck or killed ----

    private static void hang(Duration timeout, boolean started) throws InterruptedException {
        CpuBackend backend = new CpuBackend();
        try (Strategy strategy = Distributed.open("ddp", Launch.detect().worldSize(), 1, timeout, backend, System.err)) {
            strategy.world().barrier();
            if (strategy.rank() == 1) {
                Thread.sleep(Duration.ofSeconds(120));
            }
            if (started) {
                strategy.world().broadcastAsync(backend.allocate(700), 1).complete();
            }
            strategy.world().allReduceSum(backend.allocate(1000));
        }
    }

    private static void kill() throws IOException, InterruptedException {
        CpuBackend backend = new CpuBackend();
        try (Strategy strategy = Distributed.open("ddp", Launch.detect().worldSize(), 1, Duration.ofSeconds(60), backend, System.err)) {
            strategy.world().barrier();
            if (strategy.rank() == 1) {
                Thread.sleep(500);
                new ProcessBuilder("kill", "-9", Long.toString(ProcessHandle.current().pid())).inheritIO().start().waitFor();
                Thread.sleep(Duration.ofSeconds(120));
            }
            strategy.world().allReduceSum(backend.allocate(1000));
        }
    }

    private static void require(boolean condition, String message) {
        if (!condition) {
            throw new AssertionError(message);
        }
    }

    private DistributedCheck() {
    }
}
