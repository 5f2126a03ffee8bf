package io.tinyllamaj.trainer.config;

import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.trainer.checkpoint.Retention;

import java.util.List;

/**
 * A pretraining run, as written in a YAML recipe under {@code configs/}. Every section is an
 * immutable record; a key left out takes the default given in its record's compact
 * constructor, so the effective config printed at start-up (and saved as
 * {@code <out>/config.yaml}) always shows every value the run used. YAML keys are the
 * snake_case forms of the component names ({@code micro_batch_size}). {@link ConfigLoader}
 * reads, overrides and validates; docs/training.md is the reference.
 */
public record TrainingConfig(Model model, Data data, Train train, Eval eval, Checkpoint checkpoint,
                             Logging logging, Distributed distributed) {

    public TrainingConfig {
        model = model != null ? model : new Model(null, null, null, null, null, null, null, null, null, null, null);
        data = data != null ? data : new Data(null, null, null, null);
        train = train != null ? train : Train.DEFAULTS;
        eval = eval != null ? eval : new Eval(null, null, null, null, null);
        checkpoint = checkpoint != null ? checkpoint : new Checkpoint(null, null, null);
        logging = logging != null ? logging : new Logging(null, null, null);
        distributed = distributed != null ? distributed : new Distributed(null, null, null, null, null, null, null);
    }

    /**
     * The model: a preset ({@link LlamaConfig#PRESETS}) whose fields may be overridden one by
     * one, or every shape field given with no preset.
     */
    public record Model(String preset, Integer vocabSize, Integer dim, Integer layers, Integer heads, Integer kvHeads,
                       Integer intermediate, Float normEps, Float ropeTheta, Integer maxSeqLen, Boolean tieEmbeddings) {

        public LlamaConfig toLlamaConfig() {
            if (preset == null) {
                require("vocab_size", vocabSize);
                require("dim", dim);
                require("layers", layers);
                require("heads", heads);
                require("intermediate", intermediate);
                require("max_seq_len", maxSeqLen);
            }
            LlamaConfig base = preset != null ? LlamaConfig.preset(preset) : null;
            boolean custom = base == null || vocabSize != null || dim != null || layers != null || heads != null
                    || kvHeads != null || intermediate != null || normEps != null || ropeTheta != null
                    || maxSeqLen != null || tieEmbeddings != null;
            return new LlamaConfig(
                    custom ? (base == null ? "custom" : base.name() + "-custom") : base.name(),
                    or(vocabSize, base == null ? 0 : base.vocabSize()),
                    or(dim, base == null ? 0 : base.dim()),
                    or(layers, base == null ? 0 : base.layers()),
                    or(heads, base == null ? 0 : base.heads()),
                    or(kvHeads, base == null ? or(heads, 0) : base.kvHeads()),
                    or(intermediate, base == null ? 0 : base.intermediate()),
                    normEps != null ? normEps : base == null ? 1e-5f : base.normEps(),
                    ropeTheta != null ? ropeTheta : base == null ? 10000f : base.ropeTheta(),
                    or(maxSeqLen, base == null ? 0 : base.maxSeqLen()),
                    tieEmbeddings != null ? tieEmbeddings : base != null && base.tieEmbeddings());
        }

        private static void require(String key, Object value) {
            if (value == null) {
                throw new IllegalArgumentException("model." + key + " is required when model.preset is not given");
            }
        }

        private static int or(Integer value, int fallback) {
            return value != null ? value : fallback;
        }
    }

    /**
     * The training data: weighted sources mixed block by block; the last {@code valBlocks} blocks
     * of each source are held out for validation and never trained on.
     */
    public record Data(String tokenizer, List<Source> sources, Integer valBlocks, Boolean shuffle) {
        public Data {
            tokenizer = tokenizer != null ? tokenizer : "llama2";
            sources = sources != null ? List.copyOf(sources) : List.of();
            valBlocks = valBlocks != null ? valBlocks : 8;
            shuffle = shuffle != null ? shuffle : true;
        }
    }

    /**
     * One corpus: {@code path} is a directory written by {@code tinyllama prepare}, or lit-gpt
     * {@code .bin} chunks (a directory or a glob). With {@code prepare}, a missing or stale
     * {@code path} is prepared from the raw files first.
     */
    public record Source(String name, String path, Double weight, Prepare prepare) {
        public Source {
            weight = weight != null ? weight : 1.0;
        }
    }

    /** How to make a source's shards from raw corpus files: format slimpajama|starcoder|jsonl|text. */
    public record Prepare(String format, List<String> inputs) {
        public Prepare {
            inputs = inputs != null ? List.copyOf(inputs) : List.of();
        }
    }

    /**
     * The optimisation: batch, length, schedule and AdamW. The global batch is given in
     * sequences ({@code globalBatchSize}) or tokens ({@code globalBatchTokens}); the length in
     * optimizer steps ({@code maxSteps}) or tokens ({@code maxTokens}). {@code lrSchedule}:
     * {@code per_step} (the LR is a function of the optimizer step alone) or {@code per_micro_batch}
     * (TinyLlama's, of the micro-batch iteration; see {@code LearningRateSchedule}). The
     * loss-spike guard ({@code spikeWindow} 0: off) skips a step whose loss exceeds the mean of
     * the last {@code spikeWindow} applied steps by {@code spikeSigma} standard deviations, and
     * {@code spikeMaxInRow} such steps in a row stop the run. {@code zLoss}: the coefficient of PaLM's
     * auxiliary loss zLoss * logsumexp(logits)^2 per token (0: off; the reported loss stays the
     * cross-entropy). Under {@code precision} fp8-mixed, {@code fp8Projections} names the block
     * projections that run in FP8 (qkv, attention_output, gate_up, down) and {@code fp8Gradients}
     * their output gradients' format (e5m2, the hybrid recipe, or e4m3); other precisions ignore both.
     */
    public record Train(Integer globalBatchSize, Long globalBatchTokens, Integer microBatchSize, Integer seqLen,
                        Long maxSteps, Long maxTokens, Double lr, Double minLr, Long warmupSteps, String decay,
                        Double beta1, Double beta2, Double eps, Double weightDecay, Double gradClip,
                        String precision, String attention, Long seed, String device, Long startStep, Integer maxSkippedSteps,
                        String lrSchedule, Integer spikeWindow, Double spikeSigma, Integer spikeMaxInRow, Double zLoss,
                        List<String> fp8Projections, String fp8Gradients) {

        static final Train DEFAULTS = new Train(null, null, null, null, null, null, null, null, null, null,
                null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null);

        public Train {
            microBatchSize = microBatchSize != null ? microBatchSize : 1;
            seqLen = seqLen != null ? seqLen : 2048;
            lr = lr != null ? lr : 4e-4;
            minLr = minLr != null ? minLr : 4e-5;
            warmupSteps = warmupSteps != null ? warmupSteps : 2000L;
            decay = decay != null ? decay : "cosine";
            beta1 = beta1 != null ? beta1 : 0.9;
            beta2 = beta2 != null ? beta2 : 0.95;
            eps = eps != null ? eps : 1e-8;
            weightDecay = weightDecay != null ? weightDecay : 0.1;
            gradClip = gradClip != null ? gradClip : 1.0;
            precision = precision != null ? precision : "auto";
            attention = attention != null ? attention : "auto";
            seed = seed != null ? seed : 3407L;
            device = device != null ? device : "cpu";
            startStep = startStep != null ? startStep : 0L;
            maxSkippedSteps = maxSkippedSteps != null ? maxSkippedSteps : 5;
            lrSchedule = lrSchedule != null ? lrSchedule : "per_step";
            spikeWindow = spikeWindow != null ? spikeWindow : 0;
            spikeSigma = spikeSigma != null ? spikeSigma : 6.0;
            spikeMaxInRow = spikeMaxInRow != null ? spikeMaxInRow : 5;
            zLoss = zLoss != null ? zLoss : 0.0;
            // the attention output projection (2048 x 2048 in TinyLlama) gains nothing in FP8 on an H100
            fp8Projections = fp8Projections != null ? List.copyOf(fp8Projections) : List.of("qkv", "gate_up", "down");
            fp8Gradients = fp8Gradients != null ? fp8Gradients : "e5m2";
        }

        /** The arithmetic the device runs: {@code auto} is fp32 on the CPU and bf16-mixed on cuda, the one each supports. */
        public String effectivePrecision() {
            return !precision.equals("auto") ? precision : device.equals("cuda") ? "bf16-mixed" : "fp32";
        }
    }

    /**
     * Evaluation every {@code interval} steps (0: only at the end): the validation loss over
     * {@code blocks} held-out blocks (null: all), and the zero-shot {@code tasks} (docs/eval.md)
     * on the first {@code taskLimit} items (null: all) of each task's file in {@code taskData},
     * tokenized with data.tokenizer.
     */
    public record Eval(Long interval, Integer blocks, List<String> tasks, String taskData, Integer taskLimit) {
        public Eval {
            interval = interval != null ? interval : 0L;
            tasks = tasks != null ? List.copyOf(tasks) : List.of();
        }
    }

    /**
     * A checkpoint every {@code interval} steps (0: only at the end) and on SIGTERM; the newest
     * {@code keepLast} are kept, and those at multiples of {@code keepEvery} steps (0: none) forever.
     */
    public record Checkpoint(Long interval, Integer keepLast, Long keepEvery) {
        public Checkpoint {
            interval = interval != null ? interval : 1000L;
            keepLast = keepLast != null ? keepLast : 3;
            keepEvery = keepEvery != null ? keepEvery : 0L;
        }

        public Retention retention() {
            return new Retention(keepLast, keepEvery);
        }
    }

    /**
     * A metrics line every {@code interval} steps; MFU is reported against {@code peakTflops}
     * (null: 989 on cuda, the H100 bf16 dense peak; none on cpu). {@code tensorboard}: also write
     * each metrics record as TensorBoard scalars under {@code <run>/tb/}.
     */
    public record Logging(Long interval, Double peakTflops, Boolean tensorboard) {
        public Logging {
            interval = interval != null ? interval : 10L;
            tensorboard = tensorboard != null ? tensorboard : false;
        }
    }

    /**
     * How ranks split the work (docs/distributed.md). {@code worldSize} left out (or
     * {@code auto} in YAML) is the number of ranks mpirun started, 1 without mpirun; a number
     * must equal it. {@code ranksPerNode}: the shard group of hybrid (one node of GPUs).
     * {@code collectiveTimeoutS}: a collective waiting longer ends the job, naming itself.
     * {@code reshardAfterForward} (fsdp, hybrid; null: true): gather each unit again for the
     * backward, or keep the forward's gathered units. {@code reduceDtype} (fsdp, hybrid): fp32, or
     * bf16 (on the CPU each gradient value is rounded to bf16 before the fp32 sum).
     * {@code transport} (null: nccl on cuda, mpi on cpu): mpi carries CUDA tensors through host
     * memory, so several ranks can share one GPU (NCCL refuses that).
     */
    public record Distributed(String strategy, Integer worldSize, Integer ranksPerNode, Integer collectiveTimeoutS,
                              Boolean reshardAfterForward, String reduceDtype, String transport) {
        public Distributed {
            strategy = strategy != null ? strategy : "none";
            worldSize = worldSize != null ? worldSize : 1;
            ranksPerNode = ranksPerNode != null ? ranksPerNode : 8;
            collectiveTimeoutS = collectiveTimeoutS != null ? collectiveTimeoutS : 600;
            reduceDtype = reduceDtype != null ? reduceDtype : "fp32";
        }

        /** reshard_after_forward as it applies: true unless set to false. */
        public boolean reshards() {
            return reshardAfterForward == null || reshardAfterForward;
        }

        /** The transport as it applies on {@code device}: as set, else nccl on cuda and mpi elsewhere. */
        public String transportOn(String device) {
            return transport != null ? transport : device.equals("cuda") ? "nccl" : "mpi";
        }
    }
}
