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
import io.tinyllamaj.model.ParameterLayout;
import io.tinyllamaj.model.hf.HfCheckpoint;
import io.tinyllamaj.model.hf.LitGptCheckpoint;
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
import java.util.ArrayList;
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
 *   lr = schedule(step)                          warmup + cosine, per step or per micro-batch iteration
 *   zero gradients
 *   repeat A times: this rank's next micro-batch; forward + backward, gradients accumulate
 *                   (dloss/dlogits scaled by 1/this rank's tokens of the step: its mean loss;
 *                   with train.z_loss the objective adds z_loss * logsumexp(logits)^2 per token)
 *   norm = ||gradients of the global mean loss||_2     strategy.afterBackward (all-reduce or
 *                                                      reduce-scatter, then / W)
 *   if any rank's loss or the norm is not finite: skip the update on every rank, count it
 *   if the mean loss is a spike (SpikeGuard, train.spike_*): skip the update likewise
 *   else AdamW(lr, gradients * min(1, clip / (norm + 1e-6)))   (torch's clip_grad_norm_), through
 *        strategy.step: all moments (ddp) or this rank's shard of them (fsdp, hybrid)
 * </pre>
 * then, at their intervals, a metrics line (rank 0), a validation pass over held-out blocks, the
 * zero-shot tasks of eval.tasks ({@link TrainingTasks}) and a checkpoint. SIGTERM/SIGINT on any rank end the run on every rank at the next step boundary
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

        /** The step's loss on this rank as the loop goes on to use it (a test injects a spike here). */
        default double loss(long step, double loss) {
            return loss;
        }
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
    private final SpikeGuard spikes;
    private LossWindow lossWindow = LossWindow.EMPTY;
    private final TrainingTasks tasks;

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
                   CheckpointStore checkpoints, Progress progress, StopSignal stop, Hooks hooks, Strategy strategy, TrainingTasks tasks) {
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
        this.tasks = tasks;
        if (strategy.worldSize() != shape.worldSize()) {
            throw new IllegalArgumentException("the strategy has " + strategy.worldSize() + " ranks, the config "
                    + shape.worldSize());
        }
        this.schedule = LearningRateSchedule.of(config.train(), shape);
        this.optimizerShard = strategy.optimizerShard(model.layout().total());
        this.adamM = backend.allocate(optimizerShard.length());
        this.adamV = backend.allocate(optimizerShard.length());
        this.peakFlops = peakFlops(config);
        this.spikes = new SpikeGuard(config.train().spikeWindow(), config.train().spikeSigma());
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
        // the directory's config.json is checked as score reads it, and must describe the recipe's model: its
        // tensor shapes alone pass a different RoPE base, norm epsilon or tying, which train another model
        LlamaConfig theirs = HfCheckpoint.readConfig(directory), ours = model.config();
        List<String> differences = new ArrayList<>();
        differ(differences, "vocab_size", theirs.vocabSize(), ours.vocabSize());
        differ(differences, "hidden_size", theirs.dim(), ours.dim());
        differ(differences, "num_hidden_layers", theirs.layers(), ours.layers());
        differ(differences, "num_attention_heads", theirs.heads(), ours.heads());
        differ(differences, "num_key_value_heads", theirs.kvHeads(), ours.kvHeads());
        differ(differences, "intermediate_size", theirs.intermediate(), ours.intermediate());
        differ(differences, "rms_norm_eps", theirs.normEps(), ours.normEps());
        differ(differences, "rope_theta", theirs.ropeTheta(), ours.ropeTheta());
        differ(differences, "tie_word_embeddings", theirs.tieEmbeddings(), ours.tieEmbeddings());
        if (!differences.isEmpty()) {
            throw new IllegalArgumentException("--init-from " + directory + ": its config.json describes another model than the "
                    + "recipe's (" + String.join("; ", differences) + ")");
        }
        HfCheckpoint.loadWeights(directory, model);
    }

    private static void differ(List<String> differences, String key, Object theirs, Object ours) {
        if (!theirs.equals(ours)) {
            differences.add(key + " " + theirs + " there, " + ours + " in the recipe");
        }
    }

    /**
     * Continues a lit-gpt run (TinyLlama's pretrain script): weights, AdamW's moments for this
     * rank's range, the step from step_count and AdamW's update count from its state. The data
     * position is not in the file (TinyLlama replayed its loader), so the sampler starts afresh.
     * Returns a summary of what was taken.
     */
    public List<String> initFromLitGpt(Path file) throws IOException {
        List<String> summary = new ArrayList<>();
        try (LitGptCheckpoint lit = LitGptCheckpoint.open(file)) {
            LlamaConfig c = model.config();
            Optional<LlamaConfig> named = lit.configFromHparams();
            if (named.isPresent() && !named.get().withName("x").equals(c.withName("x"))) {
                throw new IOException(file + ": its hparams name " + lit.modelName() + " (" + named.get().describe()
                        + "), the config's model is " + c.describe());
            }
            lit.loadWeights(model);
            summary.add("weights (" + model.layout().stored().size() + " tensors)");
            if (!(lit.top().get("step_count") instanceof Long stepCount) || stepCount < 0) {
                throw new IOException(file + ": step_count is absent or not a non-negative integer");
            }
            if (lit.top().containsKey("optimizer")) {
                LitGptOptimizerState state = LitGptOptimizerState.read(lit, c);
                for (String key : List.of("exp_avg", "exp_avg_sq")) {
                    readMoments(lit, state, key, key.equals("exp_avg") ? adamM : adamV);
                }
                updates = state.updates().orElse(stepCount);
                summary.add("AdamW moments (" + state.byName().size() + " parameters, " + updates + " updates)");
            } else {
                summary.add("no optimizer state in the file: AdamW starts fresh");
            }
            step = stepCount;
            summary.add(String.format(Locale.ROOT, "step %d (step_count; LR %.6g there)", step, schedule.at(step)));
            summary.add("not taken: the data position (TinyLlama replayed its loader; this run's sampler starts afresh) "
                    + "and the tokens-seen count");
        }
        return summary;
    }

    private void readMoments(LitGptCheckpoint lit, LitGptOptimizerState state, String key, Tensor into) throws IOException {
        long from = optimizerShard.offset(), to = from + optimizerShard.length();
        for (ParameterLayout.Entry e : model.layout().stored()) {
            long start = Math.max(from, e.offset()), end = Math.min(to, e.offset() + e.size());
            if (start >= end) {
                continue;
            }
            float[] values = LitGptCheckpoint.assemble(model.config(), e.name(),
                    (name, rows, cols) -> lit.read(state.moment(name, key), name + " " + key, "the optimizer state", rows, cols));
            backend.upload(into.slice(start - from, end - start), values, Math.toIntExact(start - e.offset()), Math.toIntExact(end - start));
        }
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
        if (savedAccumulation != shape.accumulation() && schedule.perMicroBatch()) {
            progress.message(String.format(Locale.ROOT, "warning: the checkpoint was trained with %d accumulation steps (%d ranks), "
                            + "this run takes %d; train.lr_schedule per_micro_batch counts micro-batch iterations, so the learning "
                            + "rate shifts slightly (keep train.micro_batch_size x world size constant, or use per_step)", savedAccumulation,
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
        spikes.restore(saved.spikes());
        lossWindow = saved.lossWindow();
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
            lossWindow = lossWindow.add(result.loss);
            windowTokens += shape.tokensPerStep();
            if (!memoryReported) { // the activations exist only after a first step
                reportMemory(metrics);
                memoryReported = true;
            }

            boolean last = step == maxSteps;
            boolean logged = step % logInterval == 0 || last;
            // throughput counts training alone: the window closes before any evaluation
            double seconds = (System.nanoTime() - windowStart) / 1e9;
            double tokensPerSecond = windowTokens / Math.max(seconds, 1e-9);
            boolean evaluating = (evalInterval > 0 && step % evalInterval == 0) || last;
            Validation validation = evaluating && config.data().valBlocks() > 0 ? evaluate() : null;
            TrainingTasks.Scores taskScores = null;
            if (evaluating && tasks.enabled()) {
                taskScores = tasks.evaluate(model, strategy, shape.seqLen(), step, () -> strategy.anyRank(stop.requested())).orElse(null);
                if (taskScores == null) {
                    progress.message("step " + step + ": task evaluation abandoned: a stop was requested");
                }
            }
            progress.step(step, result.loss, lossWindow, result.lr, result.gradNorm, tokensPerSecond, logged);
            if (logged || validation != null || taskScores != null) {
                metrics.write(metricsRecord(result, tokensPerSecond, validation, taskScores));
                lossWindow = LossWindow.EMPTY;
                windowStart = System.nanoTime();
                windowTokens = 0;
            }
            if (validation != null) {
                progress.message(String.format(Locale.ROOT, "step %d: val_loss %.4f", step, validation.loss()) + validation.perSourceText());
            }
            if (taskScores != null) {
                progress.message(taskScores.text(step));
            }
            if (result.spike.spike()) {
                progress.message(String.format(Locale.ROOT, "step %d: loss %.4f is a spike (above %.4f + %s x %.4f, the mean and "
                                + "standard deviation of the last %d steps); update skipped (%d in a row, %d in total)", step,
                        result.loss, result.spike.mean(), config.train().spikeSigma(), result.spike.std(),
                        config.train().spikeWindow(), spikes.inRow(), spikes.total()));
                if (spikes.inRow() >= config.train().spikeMaxInRow()) {
                    throw new IllegalStateException("stopping: " + spikes.inRow() + " loss spikes in a row (up to step " + step
                            + ", train.spike_max_in_row " + config.train().spikeMaxInRow() + "); the last checkpoint, "
                            + lastCheckpointText() + ", is intact (lower train.lr, raise train.spike_sigma or check the data, "
                            + "then --resume auto)");
                }
            } else if (result.skipped) {
                progress.message(String.format(Locale.ROOT, "step %d: non-finite %s; update skipped (%d in a row, %d in total)",
                        step, Double.isFinite(result.loss) ? "gradient norm" : "loss", consecutiveSkipped, skippedSteps));
                if (consecutiveSkipped >= config.train().maxSkippedSteps()) {
                    throw new IllegalStateException("stopping: " + consecutiveSkipped + " steps in a row (up to step " + step
                            + ") had a non-finite loss or gradient norm; the last checkpoint, "
                            + lastCheckpointText() + ", is intact (lower train.lr or check the data, then --resume auto)");
                }
            }
            if ((checkpointInterval > 0 && step % checkpointInterval == 0) || last) {
                saveCheckpoint();
            }
        }
        return Outcome.FINISHED;
    }

    private String lastCheckpointText() {
        return lastCheckpointStep >= 0 ? checkpoints.directory().resolve(CheckpointStore.name(lastCheckpointStep)).toString()
                : "none yet";
    }

    /**
     * @param loss  the mean cross-entropy
     * @param zLoss the mean z-loss term (NaN when train.z_loss is off)
     * @param spike the guard's verdict on the step (not a spike when the step was non-finite)
     */
    private record StepResult(double loss, double zLoss, double gradNorm, double lr, int firstToken, boolean skipped, SpikeGuard.Verdict spike) {
    }

    private StepResult trainStep() {
        TrainingConfig.Train t = config.train();
        double lr = schedule.at(step);
        int microBatch = shape.microBatch(), seqLen = shape.seqLen();
        float gradScale = (float) (1.0 / shape.tokensPerRankStep());
        model.zeroGradients();
        double lossSum = 0, zLossSum = 0;
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
            // queued: the next micro-batch is drawn while the device runs this one
            model.queueForwardBackward(tokens, targets, microBatch, seqLen, gradScale, t.zLoss().floatValue());
        }
        List<LlamaModel.Losses> microLosses = model.takeLosses();
        if (microLosses.size() != shape.accumulation()) {
            throw new IllegalStateException(microLosses.size() + " micro-batch losses queued for a step of " + shape.accumulation());
        }
        for (LlamaModel.Losses losses : microLosses) {
            lossSum += losses.crossEntropy();
            zLossSum += losses.zLoss();
        }
        hooks.afterBackward(step, model);
        double localLoss = hooks.loss(step, lossSum / shape.tokensPerRankStep());
        double gradNorm = Math.sqrt(strategy.afterBackward(model));
        double loss = strategy.meanOverRanks(localLoss);
        double zLoss = t.zLoss() > 0 ? strategy.meanOverRanks(zLossSum / shape.tokensPerRankStep()) : Double.NaN;
        boolean nonFinite = strategy.anyRank(!Double.isFinite(localLoss) || !Double.isFinite(gradNorm));
        SpikeGuard.Verdict spike = nonFinite ? SpikeGuard.Verdict.NONE : spikes.judge(loss);
        boolean skipped = nonFinite || spike.spike();
        if (nonFinite) {
            skippedSteps++;
            consecutiveSkipped++;
        } else if (spike.spike()) {
            skippedSteps++;
            consecutiveSkipped = 0; // counts non-finite steps in a row; spikes have their own count
            spikes.spiked();
        } else {
            consecutiveSkipped = 0;
            spikes.applied(loss);
            float clip = t.gradClip() > 0 ? (float) Math.min(1.0, t.gradClip() / (gradNorm + 1e-6)) : 1f;
            updates++;
            strategy.step(model, adamM, adamV,
                    new AdamWStep((float) lr, t.beta1().floatValue(), t.beta2().floatValue(), t.eps().floatValue(),
                            t.weightDecay().floatValue(), Math.toIntExact(updates), clip));
        }
        step++;
        tokensSeen += shape.tokensPerStep();
        return new StepResult(loss, zLoss, gradNorm, lr, firstToken, skipped, spike);
    }

    /**
     * The mean loss over the held-out blocks (the mixture's), and over each source's alone.
     * Map order is the sources' order; a source with no held-out block scored is left out.
     */
    record Validation(double loss, Map<String, Double> perSource) {
        String perSourceText() {
            if (perSource.size() < 2) {
                return "";
            }
            StringBuilder text = new StringBuilder(" (");
            perSource.forEach((name, loss) -> text.append(text.length() > 2 ? ", " : "")
                    .append(String.format(Locale.ROOT, "%s %.4f", name, loss)));
            return text.append(')').toString();
        }
    }

    /**
     * Mean loss over the held-out blocks, in micro-batches of the training shape (padding rows
     * are ignored); rank r evaluates the micro-batches r, r+W, ... and the sums are combined.
     * Each row's loss also adds to its source's sum.
     * Every rank runs the same number of forwards ({@link #evaluationRounds}), a rank past the
     * last block one of padding alone: a fully sharded forward is collective.
     */
    private Validation evaluate() {
        Integer limit = config.eval().blocks();
        int max = limit == null ? Integer.MAX_VALUE : limit;
        List<int[]> blocks = sampler.validationBlocks(max);
        List<String> blockSources = sampler.validationBlockSources(max);
        List<String> names = blockSources.stream().distinct().toList();
        double[] sourceSums = new double[names.size() * 2]; // per source: sum of losses, then token count
        int microBatch = shape.microBatch(), seqLen = shape.seqLen();
        double sum = 0;
        long count = 0;
        int rounds = evaluationRounds(blocks.size(), microBatch, strategy.worldSize());
        for (int round = 0; round < rounds; round++) {
            int first = (round * strategy.worldSize() + strategy.rank()) * microBatch;
            int rows = Math.max(0, Math.min(microBatch, blocks.size() - first));
            first = Math.min(first, blocks.size() - 1); // a padding-only micro-batch repeats the last block, all targets ignored
            for (int row = 0; row < microBatch; row++) {
                int[] source = blocks.get(first + Math.max(0, Math.min(row, rows - 1)));
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
            for (int row = 0; row < rows; row++) {
                int s = names.indexOf(blockSources.get(first + row));
                for (int i = row * seqLen; i < (row + 1) * seqLen; i++) {
                    sourceSums[2 * s] += losses[i];
                }
                sourceSums[2 * s + 1] += seqLen;
            }
        }
        if (strategy.worldSize() > 1) {
            sum = strategy.world().allReduceSum(sum);
            count = Math.round(strategy.world().allReduceSum(count));
            for (int i = 0; i < sourceSums.length; i++) {
                sourceSums[i] = strategy.world().allReduceSum(sourceSums[i]);
            }
        }
        Map<String, Double> perSource = new LinkedHashMap<>();
        for (int s = 0; s < names.size(); s++) {
            if (sourceSums[2 * s + 1] > 0) {
                perSource.put(names.get(s), sourceSums[2 * s] / sourceSums[2 * s + 1]);
            }
        }
        return new Validation(sum / count, perSource);
    }

    /** Forwards each rank runs to evaluate {@code blocks} blocks: the micro-batches dealt round-robin, rounded up. */
    static int evaluationRounds(int blocks, int microBatch, int worldSize) {
        int microBatches = (blocks + microBatch - 1) / microBatch;
        return (microBatches + worldSize - 1) / worldSize;
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

    private ObjectNode metricsRecord(StepResult r, double tokensPerSecond, Validation validation, TrainingTasks.Scores taskScores) {
        ObjectNode record = MetricsLog.newRecord();
        record.put("step", step);
        record.put("loss", r.loss);
        record.put("loss_mean", lossWindow.mean());
        if (validation != null) {
            record.put("val_loss", validation.loss());
            ObjectNode perSource = record.putObject("val_loss_per_source");
            validation.perSource().forEach(perSource::put);
        }
        if (taskScores != null) {
            taskScores.addTo(record);
        }
        if (config.train().zLoss() > 0) {
            record.put("z_loss", r.zLoss);
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
        if (spikes.enabled()) {
            record.put("spike", r.spike.spike());
            record.put("spike_steps", spikes.total());
        }
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
                configHash(config, shape), fingerprint(config, shape), shape.model(), ConfigLoader.toTree(config), spikes.state(),
                lossWindow);
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
