package io.tinyllamaj.trainer.plan;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.trainer.run.RankMemory;

import java.io.PrintStream;
import java.util.Locale;

/** A {@link ClusterPlan} as {@code tinyllama plan --cluster} prints it: lines for people, or one JSON object for scripts. */
public final class ClusterReport {

    /** What every report says about itself. */
    static final String MODEL_NOTE = "a model, not a measurement: measured per-op times scaled by peak and bandwidth ratios, "
            + "ring collectives at the given bus bandwidths (docs/cluster-planning.md says what it leaves out)";
    static final String STRATEGIES_NOTE = "fsdp and hybrid: full sharding (every state split over the group, each unit gathered before "
            + "its use); the matmul weights are gathered in bf16, the norms and the embedding (counted as bf16 here) in fp32";

    private static final ObjectMapper JSON = new ObjectMapper();

    private ClusterReport() {
    }

    public static void print(ClusterPlan p, PrintStream out) {
        Cluster c = p.cluster();
        GpuSpec gpu = c.gpu();
        BenchProfile b = p.bench();
        out.printf(Locale.ROOT, "cluster      %s: %.0f TFLOP/s bf16, %.0f GB/s HBM, %.0f GiB each; collectives at %s GB/s inside a node "
                        + "(%s Gb/s), %s Gb/s of network a node%s%n", c.describe(), gpu.peakTflops(), gpu.hbmGBps(), gpu.memoryGiB(),
                number(c.intraNodeGbps() / 8), number(c.intraNodeGbps()), number(c.interNodeGbps()),
                c.nodes() == 1 ? "" : " (" + number(c.worldBytesPerSecond() / 1e9) + " GB/s bus bandwidth for a ring over all GPUs)");
        out.printf(Locale.ROOT, "recipe       %s, micro-batch %d x %d, %d micro-batch%s a step on each GPU (global batch %,d sequences)%n",
                p.model().name(), p.microBatch(), p.seqLen(), p.accumulation(), p.accumulation() == 1 ? "" : "es", p.globalBatch());
        out.printf(Locale.ROOT, "measured     %s: %s in %s at %d x %d on %s (%s), %.1f ms a step of %d micro-batch%s: a micro-batch's "
                        + "matmuls and attention %.1f ms and other ops %.1f ms, the optimizer %.1f ms (%s)%n", b.file(), b.model().name(),
                b.precision(), b.microBatch(), b.seqLen(), b.device(), b.gpu().name(), b.stepMs(), b.accumulation(),
                b.accumulation() == 1 ? "" : "es", b.tensorCoreMs(), b.memoryBoundMs(), b.optimizerMs(), b.perOp() ? "split by its per-op times"
                        : "no per-op times (ops_ms) in it: split by the shares of the H100 profile in docs/perf-notes.md");
        ClusterPlan.MicroBatch m = p.compute();
        out.printf(Locale.ROOT, "compute      one micro-batch on the %s: %s; matmuls and attention %s (x %.3g: %.0f / %.0f TFLOP/s), "
                        + "other ops %s (x %.3g: %.0f / %.0f GB/s), x %.4g the measured micro-batch's FLOPs; forward 1/3, backward 2/3%n",
                gpu.name(), time(m.ms()), time(m.tensorCoreMs()), b.gpu().peakTflops() / gpu.peakTflops(), b.gpu().peakTflops(),
                gpu.peakTflops(), time(m.memoryBoundMs()), b.gpu().hbmGBps() / gpu.hbmGBps(), b.gpu().hbmGBps(), gpu.hbmGBps(),
                m.flopRatio());
        out.printf(Locale.ROOT, "workspace    %s a GPU: %s%n", RankMemory.format(p.workspace()), b.peakMemBytes() > 0
                ? "the measured run's device memory in use (CUDA context, cuBLASLt and staging included) beyond its tensors"
                : "none recorded (no peak_mem_gib in the benchmark)");
        out.println();
        out.printf(Locale.ROOT, "%-12s %10s %10s %10s %10s %10s %11s %10s %10s  fits %s GiB%n", "memory/GPU", "parameters", "operands",
                "gradients", "optimizer", "gathered", "activations", "workspace", "total", number(gpu.memoryGiB()));
        for (ClusterPlan.StrategyPlan s : p.strategies()) {
            RankMemory r = s.memory();
            out.printf(Locale.ROOT, "  %-10s %10s %10s %10s %10s %10s %11s %10s %10s  %s%n", s.sharding().name(), RankMemory.format(r.parameters()),
                    RankMemory.format(r.operands()), RankMemory.format(r.gradients()), RankMemory.format(r.optimizer()),
                    RankMemory.format(r.gatheredBlocks()), RankMemory.format(r.activations()), RankMemory.format(r.workspace()),
                    RankMemory.format(r.total()), s.fits() ? "yes" : "no");
        }
        out.println();
        out.printf(Locale.ROOT, "%-12s %12s %10s | %-8s %10s %7s | %-8s %10s %7s%n", "step/GPU", "collectives", "optimizer",
                "serial", "tokens/s", "MFU", "overlap", "tokens/s", "MFU");
        for (ClusterPlan.StrategyPlan s : p.strategies()) {
            out.printf(Locale.ROOT, "  %-10s %12s %10s | %-8s %10s %6.1f%% | %-8s %10s %6.1f%%%n", s.sharding().name(),
                    time(communicationMs(p, s)), time(s.optimizerMs()), time(s.stepMs()), tokens(p.tokensPerGpuSecond(s.stepMs())),
                    100 * p.mfu(s.stepMs()), time(s.overlappedStepMs()), tokens(p.tokensPerGpuSecond(s.overlappedStepMs())),
                    100 * p.mfu(s.overlappedStepMs()));
        }
        for (ClusterPlan.StrategyPlan s : p.strategies()) {
            out.printf(Locale.ROOT, "  %-10s %s%n", s.sharding().name() + ":", s.communication().what());
        }
        out.println("note         " + STRATEGIES_NOTE);
        out.println("note         " + MODEL_NOTE);
    }

    /** Every collective of a step one after another: what the serial step adds to the compute. */
    static double communicationMs(ClusterPlan p, ClusterPlan.StrategyPlan s) {
        ClusterPlan.Communication c = s.communication();
        return p.accumulation() * (c.forwardMs() + c.backwardMs()) + c.stepOverlappableMs() + c.stepExposedMs();
    }

    public static ObjectNode json(ClusterPlan p) {
        Cluster c = p.cluster();
        ObjectNode root = JSON.createObjectNode();
        ObjectNode cluster = root.putObject("cluster");
        cluster.put("gpus", c.gpus());
        cluster.put("gpu", c.gpu().name());
        cluster.put("nodes", c.nodes());
        cluster.put("gpus_per_node", c.gpusPerNode());
        cluster.put("peak_tflops", c.gpu().peakTflops());
        cluster.put("hbm_gb_s", c.gpu().hbmGBps());
        cluster.put("memory_bytes", c.gpu().memoryBytes());
        cluster.put("intra_node_gbps", c.intraNodeGbps());
        cluster.put("inter_node_gbps", c.interNodeGbps());
        cluster.put("world_bus_gb_s", c.worldBytesPerSecond() / 1e9);
        ObjectNode recipe = root.putObject("recipe");
        recipe.put("model", p.model().name());
        recipe.put("parameters", p.model().parameterCount());
        recipe.put("micro_batch", p.microBatch());
        recipe.put("seq_len", p.seqLen());
        recipe.put("global_batch", p.globalBatch());
        recipe.put("accumulation", p.accumulation());
        BenchProfile b = p.bench();
        ObjectNode bench = root.putObject("bench");
        bench.put("file", b.file().toString());
        bench.put("device", b.device());
        bench.put("gpu", b.gpu().name());
        bench.put("precision", b.precision());
        bench.put("step_ms", b.stepMs());
        bench.put("accumulation", b.accumulation());
        bench.put("per_op", b.perOp());
        bench.put("tensor_core_ms", b.tensorCoreMs());
        bench.put("memory_bound_ms", b.memoryBoundMs());
        bench.put("optimizer_ms", b.optimizerMs());
        ObjectNode micro = root.putObject("micro_batch_ms");
        micro.put("tensor_core", p.compute().tensorCoreMs());
        micro.put("memory_bound", p.compute().memoryBoundMs());
        micro.put("total", p.compute().ms());
        micro.put("flop_ratio", p.compute().flopRatio());
        root.put("workspace_bytes", p.workspace());
        ArrayNode strategies = root.putArray("strategies");
        for (ClusterPlan.StrategyPlan s : p.strategies()) {
            ObjectNode node = strategies.addObject();
            node.put("name", s.sharding().name());
            ObjectNode memory = node.putObject("memory");
            long[] bytes = s.memory().categories();
            for (int k = 0; k < bytes.length; k++) {
                memory.put(RankMemory.KEYS.get(k), bytes[k]);
            }
            memory.put("total", s.memory().total());
            node.put("fits", s.fits());
            node.put("reduce_dtype", s.sharding().reduceDtype());
            ObjectNode comm = node.putObject("communication_ms");
            comm.put("forward_per_micro_batch", s.communication().forwardMs());
            comm.put("backward_per_micro_batch", s.communication().backwardMs());
            comm.put("step_overlappable", s.communication().stepOverlappableMs());
            comm.put("step_exposed", s.communication().stepExposedMs());
            comm.put("step_total", communicationMs(p, s));
            node.put("optimizer_ms", s.optimizerMs());
            step(node.putObject("serial"), p, s.stepMs());
            step(node.putObject("overlap"), p, s.overlappedStepMs());
        }
        root.put("note", MODEL_NOTE);
        return root;
    }

    private static void step(ObjectNode node, ClusterPlan p, double stepMs) {
        node.put("step_ms", stepMs);
        node.put("tokens_per_s_per_gpu", p.tokensPerGpuSecond(stepMs));
        node.put("mfu", p.mfu(stepMs));
    }

    /** "652 ms", "5.88 s". */
    static String time(double ms) {
        return ms >= 1000 ? String.format(Locale.ROOT, "%.2f s", ms / 1e3)
                : ms >= 10 ? String.format(Locale.ROOT, "%.0f ms", ms) : String.format(Locale.ROOT, "%.2f ms", ms);
    }

    /** "24.1k", "850". */
    static String tokens(double perSecond) {
        return perSecond >= 1e4 ? String.format(Locale.ROOT, "%.1fk", perSecond / 1e3) : String.format(Locale.ROOT, "%,.0f", perSecond);
    }

    /** 240 as "240", 12.5 as "12.5". */
    static String number(double value) {
        return value == Math.rint(value) ? String.format(Locale.ROOT, "%.0f", value) : String.format(Locale.ROOT, "%.4g", value);
    }
}
