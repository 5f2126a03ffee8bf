package io.tinyllamaj.trainer.cli;

import io.tinyllamaj.data.shards.ShardManifest;
import io.tinyllamaj.trainer.config.ConfigLoader;
import io.tinyllamaj.trainer.config.RunShape;
import io.tinyllamaj.trainer.config.TrainingConfig;
import io.tinyllamaj.trainer.data.ProjectPaths;
import io.tinyllamaj.trainer.plan.BenchProfile;
import io.tinyllamaj.trainer.plan.Cluster;
import io.tinyllamaj.trainer.plan.ClusterPlan;
import io.tinyllamaj.trainer.plan.ClusterReport;
import io.tinyllamaj.trainer.run.LearningRateSchedule;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;
import java.util.concurrent.Callable;

/**
 * {@code tinyllama plan}: what a recipe commits to before it runs: steps and tokens, epochs
 * of each source (from the prepared manifests when present), the LR at milestones, and the
 * wall-clock and GPU-hours a given per-GPU throughput implies. With {@code --cluster}, also the
 * memory per GPU of each strategy and the step time predicted for that cluster ({@link ClusterPlan}).
 */
@Command(name = "plan", mixinStandardHelpOptions = true,
        description = "Print the steps, tokens, epochs per source, LR milestones, wall-clock and GPU-hours of a recipe; "
                + "with --cluster, its memory per GPU and predicted speed on a cluster.")
public final class PlanCommand implements Callable<Integer> {

    @Option(names = "--config", paramLabel = "FILE", description = "YAML recipe (default: the built-in CPU demo).")
    private Path config;

    @Option(names = "--set", paramLabel = "KEY=VALUE", description = "Override one config value (repeatable).")
    private List<String> overrides = new ArrayList<>();

    @Option(names = "--gpus", paramLabel = "N", description = "GPUs (default: distributed.world_size).")
    private Integer gpus;

    @Option(names = "--tokens-per-gpu-s", paramLabel = "X", defaultValue = "24000",
            description = "Training throughput of one GPU (default: ${DEFAULT-VALUE}, TinyLlama's A100-40G figure).")
    private double tokensPerGpuSecond;

    @Option(names = "--cluster", paramLabel = "NxGPU",
            description = "Plan for a cluster, e.g. 16xA100-40G or 8xH100-80G (GPUs: A100-40G, A100-80G, H100-80G, H200): memory per GPU "
                    + "by strategy, whether it fits, and the predicted step time and tokens/s per GPU.")
    private String cluster;

    @Option(names = "--nodes", paramLabel = "N", description = "Nodes the cluster's GPUs are split into (default: nodes of up to 8 GPUs).")
    private Integer nodes;

    @Option(names = "--intra-node-gbps", paramLabel = "X",
            description = "Bus bandwidth of a collective inside a node, Gb/s (default: NVLink's, 240 GB/s = 1920 Gb/s on A100, 360 GB/s on H100/H200).")
    private Double intraNodeGbps;

    @Option(names = "--inter-node-gbps", paramLabel = "X", description = "Network bandwidth of one node, Gb/s (default: 100).")
    private Double interNodeGbps;

    @Option(names = "--bench", paramLabel = "FILE",
            description = "The measured GPU step the prediction scales, in the recipe's precision (default: docs/bench/gpu-train.json "
                    + "of the checkout; docs/bench/fp8/step-fp8-mixed.json for train.precision fp8-mixed).")
    private Path bench;

    @Option(names = "--json", description = "With --cluster: print the cluster plan as one JSON object, nothing else.")
    private boolean json;

    @Override
    public Integer call() throws Exception {
        if (gpus != null && gpus < 1) {
            throw new IllegalArgumentException("--gpus must be at least 1, got " + gpus);
        }
        // bounds far outside any GPU (an H100 trains a 1B model at about 1e5 tokens/s), so the times printed stay finite numbers
        if (!(tokensPerGpuSecond >= 1e-3 && tokensPerGpuSecond <= 1e12)) {
            throw new IllegalArgumentException("--tokens-per-gpu-s must lie in [0.001, 1e12], got " + tokensPerGpuSecond);
        }
        Cluster machines = cluster(); // the flags' one-line refusals before the config is read
        List<String> settings = new ArrayList<>(overrides);
        if (gpus != null) {
            // the GPUs are the run's ranks: accumulation and the per-micro-batch schedule follow them, as in the run
            settings.add("distributed.world_size=" + gpus);
        }
        ConfigLoader.Loaded loaded = config != null ? ConfigLoader.load(config, settings)
                : ConfigLoader.parse("demo-cpu.yaml (built in)", ConfigLoader.demoYaml(), settings);
        if (machines == null) {
            print(loaded.config(), loaded.shape(), gpus != null ? gpus : loaded.shape().worldSize(), tokensPerGpuSecond, System.out);
            return 0;
        }
        RunShape s = loaded.shape();
        // a cluster trains on GPUs: fp8-mixed as the recipe says, any other precision as bf16-mixed
        boolean fp8 = loaded.config().train().precision().equals("fp8-mixed");
        BenchProfile measured = BenchProfile.read(bench != null ? bench
                : ProjectPaths.resolveOutput(fp8 ? BenchProfile.DEFAULT_FP8_FILE : BenchProfile.DEFAULT_FILE));
        String planned = fp8 ? "fp8-mixed" : "bf16-mixed";
        if (!measured.precision().equals(planned)) {
            throw new IllegalArgumentException(measured.file() + " measured a step in " + measured.precision() + " and the recipe trains in "
                    + planned + ": pass --bench with a step measured in " + planned + " (" + (fp8 ? BenchProfile.DEFAULT_FP8_FILE
                    : BenchProfile.DEFAULT_FILE) + "), or --set train.precision");
        }
        ClusterPlan plan = ClusterPlan.of(machines, s.model(), s.microBatch(), s.seqLen(), s.globalBatchSequences(),
                loaded.config().distributed().reduceDtype().equals("bf16"), measured);
        if (json) {
            System.out.println(ClusterReport.json(plan).toPrettyString());
            return 0;
        }
        print(loaded.config(), s, machines.gpus(), tokensPerGpuSecond, System.out);
        System.out.println();
        ClusterReport.print(plan, System.out);
        printPredictedTime(loaded.config(), s, plan, System.out);
        return 0;
    }

    /** The cluster of --cluster and its companions; null without --cluster, where the companions are refused. */
    private Cluster cluster() {
        if (cluster == null) {
            for (var given : new Object[][] {{"--nodes", nodes}, {"--intra-node-gbps", intraNodeGbps}, {"--inter-node-gbps", interNodeGbps},
                    {"--bench", bench}, {"--json", json ? true : null}}) {
                if (given[1] != null) {
                    throw new IllegalArgumentException(given[0] + " plans a cluster: pass --cluster NxGPU with it");
                }
            }
            return null;
        }
        if (gpus != null) {
            throw new IllegalArgumentException("--gpus and --cluster both give the GPU count; pass one");
        }
        return Cluster.parse(cluster, nodes, intraNodeGbps, interNodeGbps);
    }

    /** The run's length at the predicted rate of the recipe's strategy (ddp for none), overlapped: what the cluster would take. */
    static void printPredictedTime(TrainingConfig c, RunShape s, ClusterPlan plan, PrintStream out) {
        String strategy = c.distributed().strategy().equals("none") ? "ddp" : c.distributed().strategy();
        ClusterPlan.StrategyPlan chosen = plan.strategy(strategy);
        double perGpu = plan.tokensPerGpuSecond(chosen.overlappedStepMs());
        double seconds = s.maxSteps() * s.tokensPerStep() / (plan.cluster().gpus() * perGpu);
        out.printf(Locale.ROOT, "predicted    %s (the recipe's strategy%s), overlapped: %,.0f tokens/s per GPU: %.1f days wall-clock, "
                        + "%,.0f GPU-hours%n", strategy, strategy.equals(c.distributed().strategy()) ? "" : " none: one rank, as ddp",
                perGpu, seconds / 86400, seconds * plan.cluster().gpus() / 3600);
    }

    /** Counts are those of a validated config: steps x tokens a step fits a long. */
    static void print(TrainingConfig c, RunShape s, int gpus, double tokensPerGpuSecond, PrintStream out) throws Exception {
        long tokens = s.maxSteps() * s.tokensPerStep();
        out.printf(Locale.ROOT, "model        %s, %,d parameters, %.3g GFLOP per token (6N + 12 L T d at seq %d)%n",
                s.model().name(), s.model().parameterCount(), s.model().trainingFlopsPerToken(s.seqLen()) / 1e9, s.seqLen());
        out.printf(Locale.ROOT, "batch        %,d sequences x %d tokens = %,d tokens per step; micro-batch %d x %d accumulation x %d ranks%n",
                s.globalBatchSequences(), s.seqLen(), s.tokensPerStep(), s.microBatch(), s.accumulation(), s.worldSize());
        out.printf(Locale.ROOT, "length       %,d steps (from step %,d), %,d tokens (%.4g T)%n", s.maxSteps(),
                c.train().startStep(), tokens, tokens / 1e12);
        double weights = c.data().sources().stream().mapToDouble(TrainingConfig.Source::weight).sum();
        for (TrainingConfig.Source source : c.data().sources()) {
            long share = Math.round(tokens * source.weight() / weights);
            Path dir = ProjectPaths.resolveOutput(source.path());
            String epochs = "epochs unknown (no " + ShardManifest.FILE_NAME + " at " + dir + ")";
            if (Files.isRegularFile(dir.resolve(ShardManifest.FILE_NAME))) {
                long available = ShardManifest.read(dir).tokens();
                epochs = String.format(Locale.ROOT, "%.3f epochs of %,d tokens", (double) share / available, available);
            }
            out.printf(Locale.ROOT, "source       %-12s weight %.6f: %,d tokens, %s%n", source.name(), source.weight() / weights, share, epochs);
        }
        LearningRateSchedule lr = LearningRateSchedule.of(c.train(), s);
        out.printf(Locale.ROOT, "schedule     %s %s, warmup %,d steps%s, peak %.3g, min %.3g%n", c.train().decay(),
                c.train().lrSchedule(), c.train().warmupSteps(),
                lr.perMicroBatch() ? String.format(Locale.ROOT, " (%,d micro-batch iterations)", lr.warmup()) : "",
                c.train().lr(), c.train().minLr());
        TreeSet<Long> milestones = new TreeSet<>(List.of(0L, Math.min(c.train().warmupSteps(), s.maxSteps() - 1),
                s.maxSteps() / 4, s.maxSteps() / 2, 3 * s.maxSteps() / 4, s.maxSteps() - 1));
        for (long step : milestones) {
            out.printf(Locale.ROOT, "  lr at step %,12d  %.6e%n", step, lr.at(step));
        }
        double seconds = tokens / (gpus * tokensPerGpuSecond);
        out.printf(Locale.ROOT, "time         %,d GPUs at %,.0f tokens/s each: %.1f days wall-clock, %,.0f GPU-hours%n",
                gpus, tokensPerGpuSecond, seconds / 86400, seconds * gpus / 3600);
    }
}
