package io.tinyllamaj.trainer.config;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonSetter;
import com.fasterxml.jackson.annotation.Nulls;
import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.cfg.CoercionAction;
import com.fasterxml.jackson.databind.cfg.CoercionInputShape;
import com.fasterxml.jackson.databind.exc.InvalidFormatException;
import com.fasterxml.jackson.databind.exc.InvalidNullException;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.type.LogicalType;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLGenerator;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.tinyllamaj.data.corpus.CorpusSource;
import io.tinyllamaj.data.eval.EvalTask;
import io.tinyllamaj.kernels.mpi.Launch;
import io.tinyllamaj.model.LlamaConfig;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * YAML recipe in, validated {@link TrainingConfig} out. Strict on purpose: an unknown key, a
 * value of the wrong type or an impossible combination stops the run before any work, with
 * one line naming the key ({@code config.yaml: unknown key train.foo}). {@code --set} overrides
 * use the same dotted paths ({@code train.lr=3e-4}, {@code data.sources.0.weight=0.5}) and are
 * applied to the YAML tree before it is bound, so they are checked by the same rules. The text
 * itself is read by {@link ConfigText} (size, encoding, duplicate keys, non-finite numbers).
 */
public final class ConfigLoader {

    /** The embedded default recipe: {@code tinyllama pretrain} without {@code --config}. */
    public static final String DEMO_RESOURCE = "/io/tinyllamaj/trainer/demo-cpu.yaml";

    private static final YAMLMapper YAML = YAMLMapper.builder(YAMLFactory.builder()
                    .disable(YAMLGenerator.Feature.WRITE_DOC_START_MARKER)
                    .enable(YAMLGenerator.Feature.MINIMIZE_QUOTES)
                    .build())
            .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE)
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
            .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
            .serializationInclusion(JsonInclude.Include.NON_NULL)
            // A null list entry (`sources: [~]`) is refused by its key, not handed to a record.
            .defaultSetterInfo(JsonSetter.Value.forContentNulls(Nulls.FAIL))
            .build();

    /** AdamW counts its updates (for bias correction) in an int. */
    static final long MAX_STEPS = Integer.MAX_VALUE;

    private static final String STEP_LIMIT = MAX_STEPS + ", the most steps a run can have";
    private static final String FLOAT32_LIMIT = "beyond float32 (" + Float.MAX_VALUE + " at most)";

    static {
        // Numbers and booleans are not silently taken as strings either (device: 5).
        YAML.coercionConfigFor(LogicalType.Textual)
                .setCoercion(CoercionInputShape.Integer, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Float, CoercionAction.Fail)
                .setCoercion(CoercionInputShape.Boolean, CoercionAction.Fail);
    }

    /** A validated config and the numbers derived from it. */
    public record Loaded(TrainingConfig config, RunShape shape) {
    }

    private ConfigLoader() {
    }

    /** Reads a recipe file, applies {@code --set} overrides, validates. */
    public static Loaded load(Path file, List<String> overrides) {
        return parse(file.getFileName().toString(), ConfigText.read(file), overrides);
    }

    /** The embedded demo recipe. */
    public static String demoYaml() {
        try (InputStream in = ConfigLoader.class.getResourceAsStream(DEMO_RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("classpath resource " + DEMO_RESOURCE + " is missing");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** @param origin how messages name the text, usually its file name */
    public static Loaded parse(String origin, String yamlText, List<String> overrides) {
        JsonNode tree;
        try {
            tree = ConfigText.parse(yamlText);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(origin + ": " + e.getMessage(), e);
        }
        if (tree.isNull()) {
            tree = JsonNodeFactory.instance.objectNode();
        }
        if (!tree.isObject()) {
            throw new IllegalArgumentException(origin + ": the top level must be a mapping of sections (model, data, train, ...)");
        }
        Set<String> overridden = new HashSet<>();
        for (String override : overrides) {
            overridden.add(applyOverride((ObjectNode) tree, override));
        }
        resolveWorldSize((ObjectNode) tree);
        TrainingConfig config;
        try {
            config = YAML.treeToValue(tree, TrainingConfig.class);
        } catch (JsonMappingException e) {
            String key = keyPath(e);
            String message = describe(e, key, valueAt(tree, e));
            if (overridden.contains(key)) {
                message = "--set " + (message.startsWith(key) ? message : key + ": " + message);
            } else {
                message = origin + ": " + message;
            }
            throw new IllegalArgumentException(message, e);
        } catch (JacksonException e) {
            throw new IllegalArgumentException(origin + ": " + e.getOriginalMessage(), e);
        }
        Loaded loaded = new Loaded(config, validate(config, origin));
        // saved as <run>/config.yaml and in every state.json, which a resume reads back under the same limit
        int saved = toYaml(config).getBytes(StandardCharsets.UTF_8).length;
        if (saved > ConfigText.MAX_LENGTH) {
            throw new IllegalArgumentException(origin + (overrides.isEmpty() ? "" : " with its --set values") + ": the config comes to "
                    + saved + " bytes written out; a config may be at most " + ConfigText.MAX_LENGTH + ", and a run saved past it "
                    + "could not be resumed");
        }
        return loaded;
    }

    /** The config as YAML, every value shown (defaults included). */
    public static String toYaml(TrainingConfig config) {
        try {
            return YAML.writeValueAsString(config);
        } catch (JacksonException e) {
            throw new IllegalStateException("cannot write the config as YAML", e);
        }
    }

    /** The config as a tree, for checkpoints. */
    public static JsonNode toTree(TrainingConfig config) {
        return YAML.valueToTree(config);
    }

    /**
     * {@code distributed.world_size} left out or {@code auto}: the number of ranks the launcher
     * started (mpirun or srun, {@link Launch}), 1 without one. A number stays as given and is
     * checked against the launcher's when the run starts.
     */
    static void resolveWorldSize(ObjectNode root) {
        JsonNode section = root.get("distributed");
        JsonNode given = section == null ? null : section.get("world_size");
        if (given != null && !given.isNull() && !(given.isTextual() && given.asText().equals("auto"))) {
            return;
        }
        if (section == null || section.isNull()) {
            section = root.putObject("distributed");
        }
        if (section instanceof ObjectNode object) {
            object.put("world_size", launchedWorldSize());
        }
    }

    private static int launchedWorldSize() {
        Launch launch = Launch.detect();
        if (launch.worldSize() == 0) {
            throw new IllegalArgumentException("distributed.world_size is auto but the " + launch.launcher().label()
                    + " names no world size in the environment: set distributed.world_size to the number of ranks");
        }
        return launch.worldSize();
    }

    // ---- overrides ----

    /** Applies {@code key.path=value} (value parsed as YAML) and returns the normalised key. */
    static String applyOverride(ObjectNode root, String override) {
        int eq = override.indexOf('=');
        if (eq <= 0) {
            throw new IllegalArgumentException("--set " + override + ": expected key.path=value");
        }
        String key = override.substring(0, eq).trim();
        String text = override.substring(eq + 1);
        JsonNode value;
        try {
            value = ConfigText.parse(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--set " + key + ": " + e.getMessage(), e);
        }
        List<String> parts = List.of(key.replace("[", ".").replace("]", "").split("\\."));
        JsonNode node = root;
        String path = "";
        for (int i = 0; i < parts.size(); i++) {
            String part = parts.get(i);
            if (part.isEmpty()) {
                throw new IllegalArgumentException("--set " + key + ": empty path segment");
            }
            boolean last = i == parts.size() - 1;
            if (node instanceof ObjectNode object) {
                path = childKey(path, part, false);
                if (last) {
                    object.set(part, value);
                } else {
                    JsonNode child = object.get(part);
                    if (child == null || child.isNull()) {
                        child = object.putObject(part);
                    }
                    node = child;
                }
            } else if (node instanceof ArrayNode array) {
                int index = parseIndex(key, path, part, array.size());
                path = childKey(path, part, true);
                if (last) {
                    array.set(index, value);
                } else {
                    node = array.get(index);
                }
            } else {
                throw new IllegalArgumentException("--set " + key + ": " + path + " is a value, not a section");
            }
        }
        return path;
    }

    private static int parseIndex(String key, CharSequence path, String part, int size) {
        try {
            int index = Integer.parseInt(part);
            if (index >= 0 && index < size) {
                return index;
            }
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new IllegalArgumentException("--set " + key + ": " + path + " is a list of " + size
                + " entries; expected an index 0.." + (size - 1) + ", got '" + part + "'");
    }

    /** {@code parent.part}, or {@code parent[part]} for a list index: how messages name a key. */
    static String childKey(String parent, String part, boolean index) {
        if (index) {
            return parent + "[" + part + "]";
        }
        return parent.isEmpty() ? part : parent + "." + part;
    }

    // ---- Jackson errors as one line ----

    private static String keyPath(JsonMappingException e) {
        String path = "";
        for (JsonMappingException.Reference ref : e.getPath()) {
            if (ref.getFieldName() != null) {
                path = childKey(path, ref.getFieldName(), false);
            } else if (ref.getIndex() >= 0) {
                path = childKey(path, Integer.toString(ref.getIndex()), true);
            }
        }
        return path;
    }

    /** The offending value, for messages: the node at the exception's path, if it is a scalar. */
    private static String valueAt(JsonNode tree, JsonMappingException e) {
        JsonNode node = tree;
        for (JsonMappingException.Reference ref : e.getPath()) {
            node = ref.getFieldName() != null ? node.path(ref.getFieldName()) : node.path(ref.getIndex());
        }
        return node.isValueNode() ? node.asText() : null;
    }

    private static String describe(JsonMappingException e, String key, String value) {
        if (e instanceof UnrecognizedPropertyException unknown) {
            Set<String> known = new TreeSet<>();
            if (unknown.getKnownPropertyIds() != null) {
                unknown.getKnownPropertyIds().forEach(id -> known.add(id.toString()));
            }
            return "unknown key " + key + (known.isEmpty() ? "" : " (known here: " + String.join(", ", known) + ")");
        }
        if (e instanceof InvalidNullException) {
            return key + " is empty (null); give it a value or remove it";
        }
        String expected = expectedType(e);
        if (e instanceof InvalidFormatException invalid) {
            return key + ": expected " + expected + ", got '" + invalid.getValue() + "'";
        }
        if (e instanceof MismatchedInputException) {
            return key + ": expected " + expected + (value != null ? ", got '" + value + "'" : "");
        }
        return key + ": " + e.getOriginalMessage().replace('\n', ' ');
    }

    private static String expectedType(JsonMappingException e) {
        Class<?> type = e instanceof MismatchedInputException m ? m.getTargetType() : null;
        if (type == null) {
            return "a different value";
        }
        if (type == Integer.class || type == int.class || type == Long.class || type == long.class) {
            return "an integer";
        }
        if (type == Double.class || type == double.class || type == Float.class || type == float.class) {
            return "a number";
        }
        if (type == Boolean.class || type == boolean.class) {
            return "true or false";
        }
        if (type == String.class) {
            return "a string";
        }
        if (List.class.isAssignableFrom(type)) {
            return "a list";
        }
        return "a section (a mapping of keys)";
    }

    // ---- combinations ----

    /** Checks what a type cannot: ranges and combinations. Every message names its key. */
    public static RunShape validate(TrainingConfig c, String origin) {
        Checks check = new Checks(origin);
        // a float key binds 1e39 as Infinity: named here, before the model's own shape checks
        check.that(c.model().normEps() == null || Float.isFinite(c.model().normEps()), "model.norm_eps", "is " + FLOAT32_LIMIT);
        check.that(c.model().ropeTheta() == null || Float.isFinite(c.model().ropeTheta()), "model.rope_theta", "is " + FLOAT32_LIMIT);
        LlamaConfig model;
        try {
            model = c.model().toLlamaConfig();
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(origin + ": " + (e.getMessage().startsWith("model") ? "" : "model: ") + e.getMessage());
        }

        TrainingConfig.Distributed dist = c.distributed();
        check.oneOf("distributed.strategy", dist.strategy(), "none", "ddp", "fsdp", "hybrid");
        check.that(dist.worldSize() >= 1, "distributed.world_size", "must be at least 1, got " + dist.worldSize());
        check.that(!dist.strategy().equals("none") || dist.worldSize() == 1, "distributed.world_size",
                "is " + dist.worldSize() + " but distributed.strategy is none (use ddp, fsdp or hybrid)");
        check.that(!dist.strategy().equals("hybrid") || (dist.ranksPerNode() >= 1 && dist.worldSize() % dist.ranksPerNode() == 0),
                "distributed.ranks_per_node", dist.ranksPerNode() + " must divide distributed.world_size " + dist.worldSize()
                        + " for the hybrid strategy");
        boolean sharded = dist.strategy().equals("fsdp") || dist.strategy().equals("hybrid");
        check.that(sharded || dist.reshardAfterForward() == null, "distributed.reshard_after_forward",
                "applies to fsdp and hybrid only; distributed.strategy is " + dist.strategy());
        check.oneOf("distributed.reduce_dtype", dist.reduceDtype(), "fp32", "bf16");
        check.that(sharded || dist.reduceDtype().equals("fp32"), "distributed.reduce_dtype",
                "bf16 applies to fsdp and hybrid only; distributed.strategy is " + dist.strategy());
        if (dist.transport() != null) {
            check.oneOf("distributed.transport", dist.transport(), "nccl", "mpi");
            check.that(!dist.transport().equals("nccl") || "cuda".equals(c.train().device()), "distributed.transport",
                    "nccl carries CUDA tensors only; train.device is " + c.train().device() + " (use mpi, or leave it out)");
        }
        check.that(dist.collectiveTimeoutS() >= 1, "distributed.collective_timeout_s",
                "must be at least 1 second, got " + dist.collectiveTimeoutS());

        TrainingConfig.Train t = c.train();
        check.that(t.microBatchSize() >= 1, "train.micro_batch_size", "must be at least 1, got " + t.microBatchSize());
        check.that(t.seqLen() >= 1, "train.seq_len", "must be at least 1, got " + t.seqLen());
        check.that(t.seqLen() <= model.maxSeqLen(), "train.seq_len",
                t.seqLen() + " exceeds the model's max_seq_len " + model.maxSeqLen());
        // a micro-batch's tokens, and a block of seq_len + 1, are int-indexed arrays
        check.that((long) t.microBatchSize() * t.seqLen() < Integer.MAX_VALUE, "train.micro_batch_size x train.seq_len",
                "= " + t.microBatchSize() + " x " + t.seqLen() + " tokens is more than one micro-batch holds ("
                        + (Integer.MAX_VALUE - 1) + ")");
        check.that((t.globalBatchSize() == null) != (t.globalBatchTokens() == null), "train.global_batch_size",
                "give exactly one of train.global_batch_size (sequences) and train.global_batch_tokens");
        long sequences;
        if (t.globalBatchTokens() != null) {
            check.that(t.globalBatchTokens() > 0 && t.globalBatchTokens() % t.seqLen() == 0, "train.global_batch_tokens",
                    t.globalBatchTokens() + " is not a positive multiple of train.seq_len " + t.seqLen());
            sequences = t.globalBatchTokens() / t.seqLen();
            check.that(sequences <= Integer.MAX_VALUE, "train.global_batch_tokens", t.globalBatchTokens() + " is " + sequences
                    + " sequences of train.seq_len " + t.seqLen() + ", more than " + Integer.MAX_VALUE + " a step");
        } else {
            check.that(t.globalBatchSize() >= 1, "train.global_batch_size", "must be at least 1, got " + t.globalBatchSize());
            sequences = t.globalBatchSize();
        }
        long perStep = (long) t.microBatchSize() * dist.worldSize();
        check.that(sequences % perStep == 0, t.globalBatchTokens() != null ? "train.global_batch_tokens" : "train.global_batch_size",
                sequences + " sequences per step is not divisible by train.micro_batch_size x distributed.world_size = "
                        + t.microBatchSize() + " x " + dist.worldSize());
        int accumulation = Math.toIntExact(sequences / perStep);
        long tokensPerStep = sequences * t.seqLen();

        check.that((t.maxSteps() == null) != (t.maxTokens() == null), "train.max_steps",
                "give exactly one of train.max_steps and train.max_tokens");
        long maxSteps;
        if (t.maxTokens() != null) {
            check.that(t.maxTokens() > 0, "train.max_tokens", "must be positive, got " + t.maxTokens());
            maxSteps = Math.ceilDiv(t.maxTokens(), tokensPerStep);
            check.that(maxSteps <= MAX_STEPS, "train.max_tokens", t.maxTokens() + " is " + maxSteps + " steps of "
                    + tokensPerStep + " tokens, more than " + STEP_LIMIT);
        } else {
            check.that(t.maxSteps() >= 1, "train.max_steps", "must be at least 1, got " + t.maxSteps());
            maxSteps = t.maxSteps();
            check.that(maxSteps <= MAX_STEPS, "train.max_steps", maxSteps + " is more than " + STEP_LIMIT);
        }
        check.that(maxSteps <= Long.MAX_VALUE / tokensPerStep, t.maxTokens() != null ? "train.max_tokens" : "train.max_steps",
                "gives " + maxSteps + " steps x " + tokensPerStep + " tokens a step, more than " + Long.MAX_VALUE + " tokens");
        check.that(t.lr() > 0 && Double.isFinite(t.lr()), "train.lr", "must be positive, got " + t.lr());
        check.float32("train.lr", t.lr());
        check.that(t.minLr() >= 0 && t.minLr() <= t.lr(), "train.min_lr", "must be between 0 and train.lr " + t.lr() + ", got " + t.minLr());
        check.that(t.warmupSteps() >= 0, "train.warmup_steps", "must not be negative, got " + t.warmupSteps());
        check.that(t.warmupSteps() <= MAX_STEPS, "train.warmup_steps", t.warmupSteps() + " is more than " + STEP_LIMIT);
        check.oneOf("train.decay", t.decay(), "cosine", "constant");
        check.oneOf("train.lr_schedule", t.lrSchedule(), "per_step", "per_micro_batch");
        // AdamW computes in float32: a beta that rounds to 1 zeroes the bias correction, an eps that rounds to 0 divides by 0
        check.that(t.beta1() >= 0 && t.beta1().floatValue() < 1, "train.beta1", "must be in [0, 1) as a float32, got " + t.beta1());
        check.that(t.beta2() >= 0 && t.beta2().floatValue() < 1, "train.beta2", "must be in [0, 1) as a float32, got " + t.beta2());
        check.that(t.eps().floatValue() > 0, "train.eps", "must be positive as a float32, got " + t.eps());
        check.float32("train.eps", t.eps());
        check.that(t.weightDecay() >= 0, "train.weight_decay", "must not be negative, got " + t.weightDecay());
        check.float32("train.weight_decay", t.weightDecay());
        check.that(t.gradClip() >= 0, "train.grad_clip", "must not be negative (0 turns clipping off), got " + t.gradClip());
        check.oneOf("train.device", t.device(), "cpu", "cuda");
        check.oneOf("train.precision", t.precision(), "auto", "fp32", "bf16-mixed", "fp8-mixed");
        check.that(!t.device().equals("cpu") || !t.precision().endsWith("-mixed"), "train.precision",
                t.precision() + " needs train.device cuda (the CPU backend is fp32)");
        check.that(!t.device().equals("cuda") || !t.precision().equals("fp32"), "train.precision",
                "fp32 is not available on cuda (its matmuls multiply bf16 operands); use bf16-mixed, or auto");
        check.oneOf("train.attention", t.attention(), "auto", "plain", "mma", "wgmma", "cudnn");
        check.that(!t.fp8Projections().isEmpty(), "train.fp8_projections",
                "is empty: name at least one of qkv, attention_output, gate_up, down (with none, use train.precision bf16-mixed)");
        Set<String> fp8Projections = new HashSet<>();
        for (int i = 0; i < t.fp8Projections().size(); i++) {
            String projection = t.fp8Projections().get(i);
            check.oneOf("train.fp8_projections[" + i + "]", projection, "qkv", "attention_output", "gate_up", "down");
            check.that(fp8Projections.add(projection), "train.fp8_projections[" + i + "]", "'" + projection + "' is listed twice");
        }
        check.oneOf("train.fp8_gradients", t.fp8Gradients(), "e5m2", "e4m3");
        check.that(!t.device().equals("cpu") || t.attention().equals("auto") || t.attention().equals("plain"), "train.attention",
                t.attention() + " is a CUDA kernel; the CPU backend has one attention (auto or plain)");
        check.that(t.startStep() >= 0 && t.startStep() < maxSteps, "train.start_step",
                "must be in [0, " + maxSteps + "), got " + t.startStep());
        check.that(t.maxSkippedSteps() >= 1, "train.max_skipped_steps", "must be at least 1, got " + t.maxSkippedSteps());
        // one loss has no spread: every later rise would be a spike
        check.that(t.spikeWindow() == 0 || t.spikeWindow() >= 2, "train.spike_window",
                "must be 0 (off) or at least 2 steps, got " + t.spikeWindow());
        check.that(t.spikeSigma() > 0 && Double.isFinite(t.spikeSigma()), "train.spike_sigma", "must be positive, got " + t.spikeSigma());
        check.that(t.spikeMaxInRow() >= 1, "train.spike_max_in_row", "must be at least 1, got " + t.spikeMaxInRow());
        check.that(t.zLoss() >= 0 && Double.isFinite(t.zLoss()), "train.z_loss", "must be 0 (off) or positive, got " + t.zLoss());
        check.float32("train.z_loss", t.zLoss());
        check.that(t.zLoss() == 0 || t.device().equals("cpu"), "train.z_loss",
                "is computed by the CPU backend's cross-entropy only so far; set it to 0 on cuda");

        TrainingConfig.Data d = c.data();
        check.that(!d.sources().isEmpty(), "data.sources", "at least one source is required");
        Set<String> names = new HashSet<>();
        for (int i = 0; i < d.sources().size(); i++) {
            TrainingConfig.Source s = d.sources().get(i);
            String key = "data.sources[" + i + "]";
            check.that(s.name() != null && !s.name().isBlank(), key + ".name", "is required");
            check.that(names.add(s.name()), key + ".name", "'" + s.name() + "' is used by two sources");
            check.that(s.path() != null && !s.path().isBlank(), key + ".path", "is required");
            check.that(s.weight() > 0 && Double.isFinite(s.weight()), key + ".weight", "must be positive, got " + s.weight());
            if (s.prepare() != null) {
                try {
                    CorpusSource.parse(String.valueOf(s.prepare().format()));
                } catch (IllegalArgumentException e) {
                    check.that(false, key + ".prepare.format", e.getMessage());
                }
                check.that(!s.prepare().inputs().isEmpty(), key + ".prepare.inputs", "at least one file or glob is required");
            }
        }
        check.that(Double.isFinite(d.sources().stream().mapToDouble(TrainingConfig.Source::weight).sum()), "data.sources",
                "weights add up to more than a double holds; scale them down");
        check.that(d.valBlocks() >= 0, "data.val_blocks", "must not be negative, got " + d.valBlocks());

        TrainingConfig.Eval e = c.eval();
        check.that(e.interval() >= 0, "eval.interval", "must not be negative, got " + e.interval());
        check.that(e.interval() == 0 || d.valBlocks() > 0 || !e.tasks().isEmpty(), "eval.interval",
                "is set but there is nothing to evaluate (data.val_blocks is 0 and eval.tasks is empty)");
        Set<String> tasks = new HashSet<>();
        for (int i = 0; i < e.tasks().size(); i++) {
            String task = e.tasks().get(i);
            try {
                EvalTask.of(String.valueOf(task));
            } catch (IllegalArgumentException unknown) {
                check.that(false, "eval.tasks[" + i + "]", unknown.getMessage());
            }
            check.that(tasks.add(task), "eval.tasks[" + i + "]", "'" + task + "' is listed twice");
        }
        check.that(e.tasks().isEmpty() || (e.taskData() != null && !e.taskData().isBlank()), "eval.task_data",
                "is required with eval.tasks: the directory of <task>.jsonl or <task>.parquet files");
        check.that(!e.tasks().isEmpty() || e.taskData() == null, "eval.task_data", "is set but eval.tasks is empty");
        check.that(e.taskLimit() == null || e.taskLimit() >= 1, "eval.task_limit", "must be at least 1, got " + e.taskLimit());
        check.that(e.taskLimit() == null || !e.tasks().isEmpty(), "eval.task_limit", "is set but eval.tasks is empty");
        long heldOut = (long) d.valBlocks() * d.sources().size();
        check.that(e.blocks() == null || (e.blocks() >= 1 && e.blocks() <= heldOut), "eval.blocks",
                "must be between 1 and the " + heldOut + " held-out blocks (data.val_blocks per source), got " + e.blocks());
        check.that(c.checkpoint().interval() >= 0, "checkpoint.interval", "must not be negative, got " + c.checkpoint().interval());
        check.that(c.checkpoint().keepLast() >= 1, "checkpoint.keep_last", "must be at least 1, got " + c.checkpoint().keepLast());
        long every = c.checkpoint().keepEvery(), interval = c.checkpoint().interval();
        check.that(every >= 0, "checkpoint.keep_every", "must not be negative, got " + every);
        // a milestone no checkpoint lands on would silently keep nothing
        check.that(every == 0 || interval == 0 || every % interval == 0, "checkpoint.keep_every",
                "must be a multiple of checkpoint.interval (" + interval + "), got " + every);
        check.that(c.logging().interval() >= 1, "logging.interval", "must be at least 1, got " + c.logging().interval());
        check.that(c.logging().peakTflops() == null || c.logging().peakTflops() > 0, "logging.peak_tflops",
                "must be positive, got " + c.logging().peakTflops());

        return new RunShape(model, t.seqLen(), t.microBatchSize(), dist.worldSize(), accumulation, sequences, maxSteps);
    }

    private record Checks(String origin) {
        void that(boolean ok, String key, String message) {
            if (!ok) {
                throw new IllegalArgumentException(origin + ": " + key + " " + message);
            }
        }

        /** A double the optimizer uses as a float32 must stay finite there. */
        void float32(String key, double value) {
            that(Float.isFinite((float) value), key, value + " is " + FLOAT32_LIMIT);
        }

        void oneOf(String key, String value, String... allowed) {
            that(List.of(allowed).contains(value), key,
                    "must be one of " + String.join(", ", allowed) + ", got '" + value + "'");
        }
    }
}
