package io.tinyllamaj.trainer.run;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.tinyllamaj.data.sampler.MixtureSampler;
import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.model.Initialization;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.hf.HfCheckpoint;
import io.tinyllamaj.trainer.checkpoint.CheckpointStore;
import io.tinyllamaj.trainer.config.ConfigLoader;
import io.tinyllamaj.trainer.config.RunShape;
import io.tinyllamaj.trainer.config.TrainingConfig;
import io.tinyllamaj.trainer.distributed.Shard;
import io.tinyllamaj.trainer.distributed.Strategy;

import java.io.IOException;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * The pretraining loop, TinyLlama's recipe, on one rank or on each of W ranks. Each optimizer step:
 * <pre>
 *   lr = schedule(step)                          TinyLlama's per-iteration warmup + cosine
 *   zero gradients
 *   repeat A times: this rank's next micro-batch; forward + backward, gradients accumulate
 *                   (dloss/dlogits scaled by 1/this rank's tokens of the step: its mean loss)
 *   norm = ||gradients of the global mean loss||_2     strategy.afterBackward (all-reduce or
 *                                                      reduce-scatter, then / W)
 *   if any rank's loss or the norm is not finite: skip the update on every rank, count it
 *   else AdamW(lr, gradients * min(1, clip / (norm + 1e-6)))   (torch's clip_grad_norm_), through
 *        strategy.step: all moments (ddp) or this rank's shard of them (fsdp, hybrid)
 * </pre>
 * then, at their intervals, a metrics line (rank 0), a validation pass over held-out blocks and
 * a checkpoint. SIGTERM/SIGINT on any rank end the run on every rank at the next step boundary
 * with one checkpoint. Every decision (skip, stop, clip) is taken from values all ranks share.
 *
 * <p>Everything that decides the next step lives in a checkpoint: the fp32 weights, the
 * AdamW moments, the counters below and the sampler position. The loop draws no random
 * numbers of its own (no dropout), so on the CPU backend a resumed run repeats the
 * uninterrupted one bit for bit.
 */
public final class Trainer {

    /** Test seam: runs after the backward pass of every step, before the norm is taken. */
    public interface Hooks {
        Hooks NONE = (step, model) -> { };

        void afterBackward(long step, LlamaModel model);
    }

    public enum Outcome { FINISHED, STOPPED }

    private static final ObjectMapper JSON = new ObjectMapper();

    private final TrainingConfig config;
    private final RunShape shape;
    private final LlamaModel model;
    private final Backend backend;
    private final MixtureSampler sampler;
    private final CheckpointStore checkpoints;
    private final Progress progress;
    private final StopSignal stop;
    private final Hooks hooks;
    private final Strategy strategy;
    private final LearningRateSchedule schedule;
    private final Shard optimizerShard;
    private final Tensor adamM;
    private final Tensor adamV;
    private final Double peakFlops;

    private final int[] block;
    private final int[] tokens;
    private final int[] targets;

    // The run's position; all of it is saved in a checkpoint.
    private long step;
    private long updates;
    private long tokensSeen;
    private long skippedSteps;
    private int consecutiveSkipped;
    private long lastCheckpointStep = -1;
    private boolean memoryReported; // this process's first step has printed and logged the memory account

    public Trainer(TrainingConfig config, RunShape shape, LlamaModel model, MixtureSampler sampler,
                   CheckpointStore checkpoints, Progress progress, StopSignal stop, Hooks hooks, Strategy strategy) {
        this.config = config;
        this.shape = shape;
        this.model = model;
        this.backend = model.backend();
        this.sampler = sampler;
        this.checkpoints = checkpoints;
        this.progress = progress;
        this.stop = stop;
        this.hooks = hooks;
        this.strategy = strategy;
        if (strategy.worldSize() != shape.worldSize()) {
            throw new IllegalArgumentException("the strategy has " + strategy.worldSize() + " ranks, the config "
                    + shape.worldSize());
        }
        this.schedule = LearningRateSchedule.of(config.train(), shape);
        this.optimizerShard = strategy.optimizerShard(model.layout().total());
        this.adamM = backend.allocate(optimizerShard.length());
        this.adamV = backend.allocate(optimizerShard.length());
        this.peakFlops = peakFlops(config);
        this.block = new int[shape.seqLen() + 1];
        this.tokens = new int[shape.microBatch() * shape.seqLen()];
        this.targets = new int[tokens.length];
        this.step = config.train().startStep();
    }

    // ---- where the run starts ----

    /** A new model with TinyLlama's initialisation, seeded by train.seed. */
    public void initializeWeights() {
        Initialization.initialize(model, config.train().seed());
    }

    /** Weights from a Hugging Face checkpoint; the optimizer starts fresh at train.start_step. */
    public void loadHuggingFace(Path directory) throws IOException {
        HfCheckpoint.loadWeights(directory, model);
    }

    /**
     * Continues from a checkpoint that the caller chose, verified on rank 0 and found
     * compatible ({@link TrainState#requireCompatible}). A checkpoint saved at another world
     * size reshards: the weights are whole, the moments are read for this rank's range of the
     * flat buffer from whichever files hold it, and the data position is global
     * ({@link MixtureSampler}).
     */
    void resume(Path checkpoint, TrainState saved) throws IOException {
        int savedAccumulation = saved.accumulation().orElse(shape.accumulation());
        if (savedAccumulation != shape.accumulation()) {
            progress.message(String.format(Locale.ROOT, "warning: the checkpoint was trained with %d accumulation steps (%d ranks), "
                            + "this run takes %d; TinyLlama's schedule counts micro-batch iterations, so the learning rate shifts "
                            + "slightly (keep train.micro_batch_size x world size constant to avoid it)", savedAccumulation,
                    saved.worldSize().orElse(1), shape.accumulation()));
        }
        CheckpointStore.readTensor(checkpoint.resolve(CheckpointStore.PARAMS), backend, model.parameters());
        CheckpointStore.readMoments(checkpoint, CheckpointStore.ADAM_M, optimizerShard.offset(), backend, adamM);
        CheckpointStore.readMoments(checkpoint, CheckpointStore.ADAM_V, optimizerShard.offset(), backend, adamV);
        step = saved.step();
        updates = saved.updates();
        tokensSeen = saved.tokensSeen();
        skippedSteps = saved.skippedSteps();
        consecutiveSkipped = saved.consecutiveSkipped();
        sampler.restore(saved.sampler());
        lastCheckpointStep = step;
    }

    /** The config values a checkpoint is only valid for. */
    public static Map<String, String> fingerprint(TrainingConfig config, RunShape shape) {
        LlamaConfig m = shape.model();
        Map<String, String> parts = new LinkedHashMap<>();
        parts.put("model", String.format(Locale.ROOT, "vocab_size=%d dim=%d layers=%d heads=%d kv_heads=%d intermediate=%d "
                        + "norm_eps=%s rope_theta=%s tie_embeddings=%s", m.vocabSize(), m.dim(), m.layers(), m.heads(),
                m.kvHeads(), m.intermediate(), m.normEps(), m.ropeTheta(), m.tieEmbeddings()));
        parts.put("train.seq_len", Integer.toString(shape.seqLen()));
        parts.put("train.global_batch_size", Long.toString(shape.globalBatchSequences()));
        parts.put("train.seed", Long.toString(config.train().seed()));
        StringBuilder sources = new StringBuilder();
        for (TrainingConfig.Source s : config.data().sources()) {
            sources.append(sources.isEmpty() ? "" : ", ").append(s.name()).append(':').append(s.weight());
        }
        parts.put("data.sources", sources.toString());
        parts.put("data.val_blocks", Integer.toString(config.data().valBlocks()));
        parts.put("data.shuffle", Boolean.toString(config.data().shuffle()));
        return parts;
    }

    /** SHA-256 of {@link #fingerprint}, shown in logs and saved with every checkpoint. */
    public static String configHash(TrainingConfig config, RunShape shape) {
        try {
            byte[] bytes = JSON.writeValueAsBytes(fingerprint(config, shape));
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes)).substring(0, 16);
        } catch (JsonProcessingException | NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    // ---- the loop ----

    /** Trains to train.max_steps or a stop signal; {@code metrics} takes the logged steps. */
    public Outcome run(MetricsLog metrics) throws IOException {
        long maxSteps = shape.maxSteps();
        long logInterval = config.logging().interval();
        long evalInterval = config.eval().interval();
        long checkpointInterval = config.checkpoint().interval();
        long windowStart = System.nanoTime();
        long windowTokens = 0;
        strategy.prepare(model); // the weights are set: full sharding keeps this rank's range from here on
        while (step < maxSteps) {
            boolean stopHere = stop.requested();
            if (strategy.anyRank(stopHere)) {
                progress.message((stopHere ? stop.reason() + " received" : "a stop signal reached another rank")
                        + ": saving a checkpoint at step " + step);
                saveCheckpoint();
                return Outcome.STOPPED;
            }
            StepResult result = trainStep();
            windowTokens += shape.tokensPerStep();
            if (!memoryReported) { // the activations exist only after a first step
                reportMemory(metrics);
                memoryReported = true;
            }

            boolean last = step == maxSteps;
            boolean logged = step % logInterval == 0 || last;
            Double valLoss = (evalInterval > 0 && step % evalInterval == 0) || (last && config.data().valBlocks() > 0)
                    ? evaluate() : null;
            double seconds = (System.nanoTime() - windowStart) / 1e9;
            double tokensPerSecond = windowTokens / Math.max(seconds, 1e-9);
            progress.step(step, result.loss, result.lr, result.gradNorm, tokensPerSecond, logged);
            if (logged || valLoss != null) {
                metrics.write(metricsRecord(result, tokensPerSecond, valLoss));
                windowStart = System.nanoTime();
                windowTokens = 0;
            }
            if (valLoss != null) {
                progress.message(String.format(Locale.ROOT, "step %d: val_loss %.4f", step, valLoss));
            }
            if (result.skipped) {
                progress.message(String.format(Locale.ROOT, "step %d: non-finite %s; update skipped (%d in a row, %d in total)",
                        step, Double.isFinite(result.loss) ? "gradient norm" : "loss", consecutiveSkipped, skippedSteps));
                if (consecutiveSkipped >= config.train().maxSkippedSteps()) {
                    throw new IllegalStateException("stopping: " + consecutiveSkipped + " steps in a row (up to step " + step
                            + ") had a non-finite loss or gradient norm; the last checkpoint, "
                            + (lastCheckpointStep >= 0 ? checkpoints.directory().resolve(CheckpointStore.name(lastCheckpointStep))
                            : "none yet") + ", is intact (lower train.lr or check the data, then --resume auto)");
                }
            }
            if ((checkpointInterval > 0 && step % checkpointInterval == 0) || last) {
                saveCheckpoint();
            }
        }
        return Outcome.FINISHED;
    }

    private record StepResult(double loss, double gradNorm, double lr, int firstToken, boolean skipped) {
    }

    private StepResult trainStep() {
        TrainingConfig.Train t = config.train();
        double lr = schedule.at(step);
        int microBatch = shape.microBatch(), seqLen = shape.seqLen();
        float gradScale = (float) (1.0 / shape.tokensPerRankStep());
        model.zeroGradients();
        double lossSum = 0;
        int firstToken = -1;
        for (int micro = 0; micro < shape.accumulation(); micro++) {
            for (int row = 0; row < microBatch; row++) {
                sampler.nextBlock(block);
                System.arraycopy(block, 0, tokens, row * seqLen, seqLen);
                System.arraycopy(block, 1, targets, row * seqLen, seqLen);
            }
            if (micro == 0) {
                firstToken = tokens[0];
            }
            lossSum += model.forwardBackward(tokens, targets, microBatch, seqLen, gradScale);
        }
        hooks.afterBackward(step, model);
        double localLoss = lossSum / shape.tokensPerRankStep();
        double gradNorm = Math.sqrt(strategy.afterBackward(model));
        double loss = strategy.meanOverRanks(localLoss);
        boolean skipped = strategy.anyRank(!Double.isFinite(localLoss) || !Double.isFinite(gradNorm));
        if (skipped) {
            skippedSteps++;
            consecutiveSkipped++;
        } else {
            consecutiveSkipped = 0;
            float clip = t.gradClip() > 0 ? (float) Math.min(1.0, t.gradClip() / (gradNorm + 1e-6)) : 1f;
            updates++;
            strategy.step(model, adamM, adamV,
                    new AdamWStep((float) lr, t.beta1().floatValue(), t.beta2().floatValue(), t.eps().floatValue(),
                            t.weightDecay().floatValue(), Math.toIntExact(updates), clip));
        }
        step++;
        tokensSeen += shape.tokensPerStep();
        return new StepResult(loss, gradNorm, lr, firstToken, skipped);
    }

    /**
     * Mean loss over the held-out blocks, in micro-batches of the training shape (padding rows
     * are ignored); rank r evaluates the micro-batches r, r+W, ... and the sums are combined.
     */
    private double evaluate() {
        Integer limit = config.eval().blocks();
        List<int[]> blocks = sampler.validationBlocks(limit == null ? Integer.MAX_VALUE : limit);
        int microBatch = shape.microBatch(), seqLen = shape.seqLen();
        double sum = 0;
        long count = 0;
        for (int first = strategy.rank() * microBatch; first < blocks.size(); first += strategy.worldSize() * microBatch) {
            int rows = Math.min(microBatch, blocks.size() - first);
            for (int row = 0; row < microBatch; row++) {
                int[] source = blocks.get(first + Math.min(row, rows - 1));
                System.arraycopy(source, 0, tokens, row * seqLen, seqLen);
                if (row < rows) {
                    System.arraycopy(source, 1, targets, row * seqLen, seqLen);
                } else {
                    java.util.Arrays.fill(targets, row * seqLen, (row + 1) * seqLen, -1);
                }
            }
            float[] losses = model.losses(tokens, targets, microBatch, seqLen);
            for (int i = 0; i < rows * seqLen; i++) {
                sum += losses[i];
            }
            count += (long) rows * seqLen;
        }
        if (strategy.worldSize() > 1) {
            sum = strategy.world().allReduceSum(sum);
            count = Math.round(strategy.world().allReduceSum(count));
        }
        return sum / count;
    }

    /** Every rank's memory account: rank 0's printed, each rank's a {@code memory} record of metrics.jsonl. */
    private void reportMemory(MetricsLog metrics) {
        RankMemory own = RankMemory.measure(model, strategy, adamM, adamV);
        List<RankMemory> ranks = strategy.worldSize() == 1 ? List.of(own) : RankMemory.gather(strategy.world(), own);
        progress.message(ranks.getFirst().line() + (ranks.size() == 1 ? ""
                : " (rank 0 of " + ranks.size() + "; every rank's is in " + MetricsLog.FILE + ")"));
        for (int rank = 0; rank < ranks.size(); rank++) {
            metrics.write(ranks.get(rank).record(rank, step));
        }
    }

    private ObjectNode metricsRecord(StepResult r, double tokensPerSecond, Double valLoss) {
        ObjectNode record = MetricsLog.newRecord();
        record.put("step", step);
        record.put("loss", r.loss);
        if (valLoss != null) {
            record.put("val_loss", valLoss);
        }
        record.put("lr", r.lr);
        record.put("grad_norm", r.gradNorm);
        record.put("tokens", tokensSeen);
        record.put("tokens_per_s", tokensPerSecond);
        if (peakFlops != null) {
            record.put("mfu", tokensPerSecond * shape.model().trainingFlopsPerToken(shape.seqLen()) / (peakFlops * shape.worldSize()));
        } else {
            record.putNull("mfu");
        }
        ObjectNode perSource = record.putObject("tokens_per_source");
        sampler.tokensPerSource().forEach(perSource::put);
        record.put("first_token", r.firstToken);
        record.put("skipped", r.skipped);
        record.put("skipped_steps", skippedSteps);
        return record;
    }

    private static Double peakFlops(TrainingConfig config) {
        Double tflops = config.logging().peakTflops();
        if (tflops == null && config.train().device().equals("cuda")) {
            tflops = 989.0;
        }
        return tflops == null ? null : tflops * 1e12;
    }

    // ---- checkpoints ----

    /**
     * One complete checkpoint, written by all ranks together (docs/training.md): rank 0 the
     * weights and the state, each rank holding a distinct moment shard that shard, in parallel;
     * rank 0 writes the manifest last, after a barrier, and moves {@code latest}.
     */
    public Path saveCheckpoint() throws IOException {
        if (lastCheckpointStep == step) {
            return checkpoints.directory().resolve(CheckpointStore.name(step));
        }
        MixtureSampler.State position = sampler.state();
        requireSamePositionOnEveryRank(position);
        TrainState state = new TrainState(step, updates, tokensSeen, skippedSteps, consecutiveSkipped, sampler.tokensPerSource(),
                position, OptionalInt.of(strategy.worldSize()), OptionalInt.of(shape.accumulation()), Optional.of(strategy.name()),
                configHash(config, shape), fingerprint(config, shape), shape.model(), ConfigLoader.toTree(config));
        CheckpointStore.Writer writer = strategy.worldSize() == 1 ? CheckpointStore.Writer.SINGLE
                : new CheckpointStore.Writer(strategy.rank(), strategy.savesOptimizerShard(), strategy.world()::barrier);
        Tensor params = strategy.parametersForCheckpoint(model);
        Path saved;
        try {
            saved = checkpoints.save(step, backend, params, adamM, adamV, optimizerShard.offset(), writer,
                    state.toJson(), config.checkpoint().retention());
        } finally {
            if (params != model.parameters()) {
                backend.release(params);
            }
        }
        lastCheckpointStep = step;
        progress.message("checkpoint " + saved);
        return saved;
    }

    /**
     * The data position is global, so every rank holds the same one and rank 0 saves it for
     * all; a rank that disagrees (a bug, or data that differs between nodes) stops the run
     * before a checkpoint could hide it.
     */
    private void requireSamePositionOnEveryRank(MixtureSampler.State position) throws JsonProcessingException {
        if (strategy.worldSize() == 1) {
            return;
        }
        double hash = JSON.writeValueAsString(position.sources()).hashCode();
        if (strategy.world().allReduceMax(hash) != -strategy.world().allReduceMax(-hash)) {
            throw new IllegalStateException("the ranks' data positions differ at step " + step
                    + " (do all nodes read the same data files?); not saving a checkpoint");
        }
    }

    // ---- read-only views for the command and tests ----

    public long step() {
        return step;
    }

    public long skippedSteps() {
        return skippedSteps;
    }

    public long tokensSeen() {
        return tokensSeen;
    }
}
