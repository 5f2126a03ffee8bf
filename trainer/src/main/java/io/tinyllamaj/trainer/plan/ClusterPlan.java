package io.tinyllamaj.trainer.plan;

import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.ModelMemory;
import io.tinyllamaj.trainer.run.RankMemory;

import java.util.List;
import java.util.Locale;

/**
 * What a recipe would take on a cluster, per GPU: memory by category for each strategy, whether
 * it fits, and the step time and tokens/s from a measured single-GPU step scaled to the GPU and
 * the collectives' bytes over the cluster's bandwidths, with and without overlap. A model, not a
 * measurement (docs/cluster-planning.md says what it leaves out).
 *
 * <p>Compute: the measured micro-batch's tensor-core time scales by the ratio of bf16 peaks, its
 * other ops by the ratio of HBM bandwidths, both by the ratio of FLOPs per micro-batch (6 N + 12 L
 * T d per token) when the recipe's model or shape differ from the measured one; forward and
 * backward take 1/3 and 2/3 (their FLOPs). The optimizer scales by HBM bandwidth and by this
 * GPU's share of the parameters.
 *
 * <p>Communication: ring collectives as nccl-tests counts them: an all-gather or reduce-scatter
 * of a buffer of S bytes over g ranks moves S (g - 1) / g per rank, an all-reduce twice that,
 * at the bus bandwidth of the group (Cluster). Gathered parameters travel as the matmuls read them
 * (bf16, 2 bytes); gradients are reduced in fp32 (4 bytes), except that fsdp's and hybrid's unit
 * reductions move 2 under {@code distributed.reduce_dtype: bf16} (hybrid's cross-node all-reduce of
 * the fp32 shard stays at 4).
 *
 * @param accumulation micro-batches of each GPU in one optimizer step
 * @param workspace    the backend's memory beyond the counted tensors, as measured on the
 *                     benchmark's GPU: its device memory in use minus the categories of its shape
 */
public record ClusterPlan(Cluster cluster, LlamaConfig model, int microBatch, int seqLen, long globalBatch, int accumulation,
                         BenchProfile bench, MicroBatch compute, long workspace, List<StrategyPlan> strategies) {

    /** Bytes per value gathered: parameters as the matmuls read them. */
    static final int GATHER_BYTES = 2;

    /** One micro-batch's compute on the cluster's GPU, in ms: the tensor-core and memory-bound parts, forward and backward. */
    public record MicroBatch(double tensorCoreMs, double memoryBoundMs, double flopRatio) {
        public double ms() {
            return tensorCoreMs + memoryBoundMs;
        }

        public double forwardMs() {
            return ms() / 3;
        }

        public double backwardMs() {
            return 2 * ms() / 3;
        }
    }

    /**
     * A strategy's communication, in ms: per micro-batch during the forward and during the
     * backward; once a step either beside the last micro-batch's backward (overlappable) or after
     * the optimizer (exposed: nothing left to hide it behind). {@code what} says which collectives.
     */
    public record Communication(double forwardMs, double backwardMs, double stepOverlappableMs, double stepExposedMs, String what) {
    }

    /** One strategy on the cluster: memory per GPU, whether it fits, and the step with and without overlap. */
    public record StrategyPlan(Sharding sharding, RankMemory memory, boolean fits, Communication communication, double optimizerMs,
                               double stepMs, double overlappedStepMs) {
    }

    /**
     * The plan of a recipe (model, micro-batch b x t, global batch in sequences, whether fsdp and
     * hybrid reduce in bf16) on a cluster from a benchmark; a global batch the cluster's GPUs
     * cannot split into whole micro-batches is refused in one line.
     */
    public static ClusterPlan of(Cluster cluster, LlamaConfig model, int b, int t, long globalBatch, boolean bf16Reduce,
                                 BenchProfile bench) {
        if (bench.precision().equals("fp8-mixed") && !cluster.gpu().fp8()) {
            throw new IllegalArgumentException("train.precision fp8-mixed needs FP8 tensor cores, which the " + cluster.gpu().name()
                    + " does not have; plan it in bf16-mixed (--set train.precision=bf16-mixed)");
        }
        long perStep = (long) b * cluster.gpus();
        if (globalBatch % perStep != 0) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "the global batch of %,d sequences is not a multiple of "
                    + "micro-batch %d x %d GPUs; choose train.micro_batch_size or the GPU count so that it is", globalBatch, b, cluster.gpus()));
        }
        int accumulation = Math.toIntExact(globalBatch / perStep);
        MicroBatch compute = microBatch(cluster.gpu(), model, b, t, bench);
        long workspace = Math.max(0, bench.peakMemBytes() - Sharding.replicated("bench")
                .memory(bench.model(), bench.microBatch(), bench.seqLen(), bench.accumulation(), ModelMemory.Storage.BF16_MIXED, 0).total());
        int w = cluster.gpus();
        List<Sharding> shardings = List.of(Sharding.replicated("ddp"), Sharding.full("fsdp", w, bf16Reduce),
                Sharding.full("hybrid", cluster.gpusPerNode(), bf16Reduce));
        List<StrategyPlan> plans = shardings.stream().map(s -> {
            RankMemory memory = s.memory(model, b, t, accumulation, ModelMemory.Storage.BF16_MIXED, workspace);
            Communication comm = communication(s, cluster, model.parameterCount());
            double optimizerMs = bench.optimizerMs() * (bench.gpu().hbmGBps() / cluster.gpu().hbmGBps())
                    * Sharding.largestShard(model.parameterCount(), s.optimizerShards()) / bench.model().parameterCount();
            return new StrategyPlan(s, memory, memory.total() <= cluster.gpu().memoryBytes(), comm, optimizerMs,
                    stepMs(compute, comm, optimizerMs, accumulation), overlappedStepMs(compute, comm, optimizerMs, accumulation));
        }).toList();
        return new ClusterPlan(cluster, model, b, t, globalBatch, accumulation, bench, compute, workspace, plans);
    }

    /** The measured micro-batch on the cluster's GPU: each part by its hardware ratio, both by the ratio of FLOPs. */
    static MicroBatch microBatch(GpuSpec gpu, LlamaConfig model, int b, int t, BenchProfile bench) {
        double flopRatio = model.trainingFlopsPerToken(t) * b * t
                / (bench.model().trainingFlopsPerToken(bench.seqLen()) * bench.microBatch() * bench.seqLen());
        return new MicroBatch(bench.tensorCoreMs() * bench.gpu().peakTflops() / gpu.peakTflops() * flopRatio,
                bench.memoryBoundMs() * bench.gpu().hbmGBps() / gpu.hbmGBps() * flopRatio, flopRatio);
    }

    /** ms of an all-gather or reduce-scatter of {@code bytes} over {@code ranks} at {@code busBytesPerSecond}. */
    static double gatherMs(double bytes, int ranks, double busBytesPerSecond) {
        return bytes * (ranks - 1) / ranks / busBytesPerSecond * 1e3;
    }

    /** ms of an all-reduce: twice the bytes of a reduce-scatter (a reduce-scatter, then an all-gather). */
    static double allReduceMs(double bytes, int ranks, double busBytesPerSecond) {
        return 2 * gatherMs(bytes, ranks, busBytesPerSecond);
    }

    /** The collectives of a strategy for {@code n} parameters. */
    static Communication communication(Sharding s, Cluster c, long n) {
        int w = c.gpus(), r = c.gpusPerNode(), nodes = c.nodes();
        double world = c.worldBytesPerSecond(), node = c.intraNodeBytesPerSecond();
        double gathered = (double) GATHER_BYTES * n, fp32 = (double) Float.BYTES * n, units = (double) s.reduceBytes() * n;
        return switch (s.name()) {
            case "ddp" -> new Communication(0, 0, allReduceMs(fp32, w, world), 0,
                    "all-reduce of the fp32 gradients once a step");
            case "fsdp" -> new Communication(gatherMs(gathered, w, world), gatherMs(gathered, w, world) + gatherMs(units, w, world), 0, 0,
                    "each micro-batch: all-gather of the bf16 parameters in the forward and again in the backward, "
                            + "reduce-scatter of the " + s.reduceDtype() + " gradients");
            case "hybrid" -> new Communication(gatherMs(gathered, r, node), gatherMs(gathered, r, node) + gatherMs(units, r, node),
                    // each GPU all-reduces its fp32 1/r shard with its peers on the other nodes; the node's r GPUs share its network
                    nodes == 1 ? 0 : allReduceMs(fp32 / r, nodes, c.interNodeBytesPerSecond() / r), 0,
                    "fsdp's collectives inside each node (" + s.reduceDtype() + " gradients); once a step all-reduce of each GPU's fp32 "
                            + "gradient shard across the nodes");
            default -> throw new IllegalArgumentException("no communication model for strategy " + s.name());
        };
    }

    /** Every collective after the compute it serves. */
    static double stepMs(MicroBatch m, Communication c, double optimizerMs, int accumulation) {
        return accumulation * (m.ms() + c.forwardMs() + c.backwardMs()) + c.stepOverlappableMs() + c.stepExposedMs() + optimizerMs;
    }

    /**
     * Each collective beside the compute it can hide behind: the forward's gathers behind the
     * forward, the backward's behind the backward, the once-a-step reduction behind the last
     * micro-batch's backward; whichever is longer sets the time. The first block's gather, which
     * nothing precedes, is left out.
     */
    static double overlappedStepMs(MicroBatch m, Communication c, double optimizerMs, int accumulation) {
        double forward = Math.max(m.forwardMs(), c.forwardMs());
        double backward = Math.max(m.backwardMs(), c.backwardMs());
        double lastBackward = Math.max(m.backwardMs(), c.backwardMs() + c.stepOverlappableMs());
        return accumulation * forward + (accumulation - 1) * backward + lastBackward + c.stepExposedMs() + optimizerMs;
    }

    /** Tokens each GPU trains per second in a step of {@code stepMs}. */
    public double tokensPerGpuSecond(double stepMs) {
        return (double) accumulation * microBatch * seqLen / (stepMs / 1e3);
    }

    /** Model FLOPs utilisation at {@code stepMs}: 6 N + 12 L T d per token over the GPU's bf16 peak. */
    public double mfu(double stepMs) {
        return tokensPerGpuSecond(stepMs) * model.trainingFlopsPerToken(seqLen) / (cluster.gpu().peakTflops() * 1e12);
    }

    /** The plan of a strategy by name (ddp, fsdp, hybrid). */
    public StrategyPlan strategy(String name) {
        return strategies.stream().filter(s -> s.sharding().name().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no plan for strategy " + name));
    }
}
