package io.tinyllamaj.trainer.plan;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.tinyllamaj.model.LlamaConfig;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Locale;
import java.util.Map;

/**
 * A measured single-GPU training step (docs/bench/gpu-train.json, written by scripts/bench-gpu):
 * {@code accumulate} micro-batches' forward and backward (1 when the file does not say) plus the
 * optimizer, split into the time of one micro-batch's tensor-core ops (matmuls and attention: they
 * scale with the GPU's bf16 peak), one micro-batch's other ops (memory-bound: they scale with its
 * HBM bandwidth) and the optimizer (AdamW and the gradient norm: memory-bound, once a step, over
 * this rank's share of the parameters). A step measured at the recipe's accumulation carries what
 * happens once a step besides the optimizer at its true weight: fp8-mixed casts its weights to FP8
 * in the first micro-batch of a step only.
 *
 * <p>The split comes from the per-op GPU times ({@code ops_ms}) when the file has them, as their
 * shares of the step's median time ({@code step_ms}, which also holds the host's gaps between
 * ops); without them from {@link #FALLBACK_SHARES}.
 *
 * @param gpu          the table's GPU the step was measured on
 * @param precision    the step's train.precision: bf16-mixed, or fp8-mixed (its FP8 matmuls are counted
 *                     with the tensor-core ops); bf16-mixed for a file that does not say
 * @param accumulation the micro-batches of the measured step
 * @param stepMs       the measured step: accumulation micro-batches and the optimizer
 * @param tensorCoreMs one micro-batch's matmuls and attention
 * @param memoryBoundMs one micro-batch's other ops
 * @param optimizerMs  the optimizer, once a step
 * @param peakMemBytes device memory in use at the end of the run (with the CUDA context); 0 if not recorded
 */
public record BenchProfile(Path file, String device, GpuSpec gpu, LlamaConfig model, String precision, int microBatch, int accumulation,
                           int seqLen, double stepMs, double tensorCoreMs, double memoryBoundMs, double optimizerMs, boolean perOp,
                           long peakMemBytes) {

    /**
     * The split of a step of one micro-batch without per-op times: the shares of the H100 profile of
     * 2026-11-23 (docs/perf-notes.md, "Per op family"): matmuls 139 + attention 46.1 ms, other ops
     * 35.6 ms, AdamW 11.6 + the gradient norm 1.6 ms, of 233.9 ms.
     */
    static final double[] FALLBACK_SHARES = {185.1 / 233.9, 35.6 / 233.9, 13.2 / 233.9};

    /** Where the default benchmark lives in the checkout. */
    public static final String DEFAULT_FILE = "docs/bench/gpu-train.json";
    /** The default for a recipe in train.precision fp8-mixed. */
    public static final String DEFAULT_FP8_FILE = "docs/bench/fp8/step-fp8-mixed.json";

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Reads a gpu-train.json; a missing file, key or value out of place is refused in one line naming it. */
    public static BenchProfile read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("no GPU benchmark at " + file + " (pass --bench FILE: a gpu-train.json of scripts/bench-gpu)");
        }
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (JacksonException e) {
            throw new IllegalArgumentException(file + " is not JSON: " + e.getOriginalMessage());
        }
        String device = text(root, file, "device");
        GpuSpec gpu = GpuSpec.describedBy(device).orElseThrow(() -> new IllegalArgumentException(file + ": measured on '" + device
                + "', a GPU the planner does not know (known: " + GpuSpec.known() + ")"));
        String modelName = text(root, file, "model");
        if (!LlamaConfig.PRESETS.containsKey(modelName)) {
            throw new IllegalArgumentException(file + ": model '" + modelName + "' is not a preset (known: "
                    + String.join(", ", LlamaConfig.PRESETS.keySet()) + ")");
        }
        // its first word: scripts/bench-gpu's report adds a description after it ("bf16-mixed (fp32 master weights, ...)")
        JsonNode precisionNode = root.path("precision");
        String precision = precisionNode.isMissingNode() ? "bf16-mixed" : precisionNode.asText().strip().split("\\s+", 2)[0];
        if (!precision.equals("bf16-mixed") && !precision.equals("fp8-mixed")) {
            throw new IllegalArgumentException(file + ": precision must be bf16-mixed or fp8-mixed, got " + precisionNode);
        }
        int micro = count(root, file, "micro_batch");
        int accumulation = root.has("accumulate") ? count(root, file, "accumulate") : 1;
        int seq = count(root, file, "seq_len");
        double stepMs = positive(root, file, "step_ms", Double.MAX_VALUE);
        double[] shares = shares(root.path("ops_ms"), file);
        boolean perOp = shares != null;
        if (!perOp) {
            shares = FALLBACK_SHARES;
        }
        JsonNode peak = root.path("peak_mem_gib");
        long peakBytes = peak.isNumber() && peak.asDouble() > 0 ? Math.round(peak.asDouble() * (1L << 30)) : 0;
        double[] split = split(stepMs, shares, accumulation, perOp);
        return new BenchProfile(file, device, gpu, LlamaConfig.preset(modelName), precision, micro, accumulation, seq, stepMs, split[0],
                split[1], split[2], perOp, peakBytes);
    }

    /**
     * One micro-batch's tensor-core and other ops and the step's optimizer, in ms, from a step of
     * {@code accumulation} micro-batches. Per-op shares are of the whole step, so the micro-batch's
     * parts are their times over the accumulation. The fallback shares are of a step of one
     * micro-batch m and the optimizer o = f (m + o), so o = m f / (1 - f) and the step is
     * accumulation m + o.
     */
    static double[] split(double stepMs, double[] shares, int accumulation, boolean perOp) {
        if (perOp) {
            return new double[] {stepMs * shares[0] / accumulation, stepMs * shares[1] / accumulation, stepMs * shares[2]};
        }
        double optimizerPerMicroBatch = shares[2] / (1 - shares[2]);
        double micro = stepMs / (accumulation + optimizerPerMicroBatch);
        double tensorCoreShare = shares[0] / (shares[0] + shares[1]);
        return new double[] {micro * tensorCoreShare, micro * (1 - tensorCoreShare), micro * optimizerPerMicroBatch};
    }

    private static String text(JsonNode root, Path file, String key) {
        JsonNode value = root.get(key);
        if (value == null || !value.isTextual() || value.asText().isBlank()) {
            throw new IllegalArgumentException(file + ": no " + key + " (a string)");
        }
        return value.asText();
    }

    private static int count(JsonNode root, Path file, String key) {
        JsonNode value = root.get(key);
        if (value == null || !value.isIntegralNumber() || !value.canConvertToInt() || value.asInt() < 1) {
            throw new IllegalArgumentException(file + ": " + key + " must be a positive whole number, got " + value);
        }
        return value.asInt();
    }

    private static double positive(JsonNode root, Path file, String key, double max) {
        JsonNode value = root.get(key);
        if (value == null || !value.isNumber() || !(value.asDouble() > 0) || value.asDouble() > max) {
            throw new IllegalArgumentException(file + ": " + key + " must be a positive number, got " + value);
        }
        return value.asDouble();
    }

    /** The kind of op a profiled op's name says it is. */
    enum Kind { TENSOR_CORE, MEMORY_BOUND, OPTIMIZER }

    /**
     * By name, as TimedBackend keys them ("matmul fwd c=2048 oc=2560", "attention bwd", "adamw",
     * "sumOfSquares", or the Backend method's name): the optimizer's ops run once a step; matmuls
     * and attention run on tensor cores; the rest, "matmul operand" too (a bf16 cast of a weight),
     * move memory.
     */
    static Kind kind(String op) {
        String name = op.toLowerCase(Locale.ROOT);
        if (name.startsWith("adamw") || name.startsWith("sumofsquares")) {
            return Kind.OPTIMIZER;
        }
        if ((name.startsWith("matmul") && !name.contains("operand")) || name.startsWith("attention")) {
            return Kind.TENSOR_CORE;
        }
        return Kind.MEMORY_BOUND;
    }

    /** Each kind's share of the summed op times, in {@link Kind} order; null when there are no op times. */
    private static double[] shares(JsonNode ops, Path file) {
        if (!ops.isObject() || ops.isEmpty()) {
            return null;
        }
        double[] ms = new double[Kind.values().length];
        for (Iterator<Map.Entry<String, JsonNode>> it = ops.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> op = it.next();
            JsonNode time = op.getValue().path("ms");
            if (!time.isNumber() || !(time.asDouble() >= 0)) {
                throw new IllegalArgumentException(file + ": ops_ms." + op.getKey() + ".ms must be a number of milliseconds, got " + time);
            }
            ms[kind(op.getKey()).ordinal()] += time.asDouble();
        }
        double total = ms[0] + ms[1] + ms[2];
        if (!(total > 0)) {
            throw new IllegalArgumentException(file + ": the op times of ops_ms add up to " + total + " ms");
        }
        return new double[] {ms[0] / total, ms[1] / total, ms[2] / total};
    }
}
