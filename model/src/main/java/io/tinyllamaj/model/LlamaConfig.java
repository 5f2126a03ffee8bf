package io.tinyllamaj.model;

import java.math.BigInteger;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The shape of a Llama model. Derived sizes (head size, parameter counts, FLOPs) are methods,
 * never stored, so they cannot disagree with the fields.
 *
 * @param name             preset name, or "custom"
 * @param vocabSize        number of token ids
 * @param dim              hidden size (residual width)
 * @param layers           number of transformer blocks
 * @param heads            query heads
 * @param kvHeads          key/value heads (grouped-query attention: heads / kvHeads queries share one)
 * @param intermediate     SwiGLU hidden size
 * @param normEps          RMSNorm epsilon
 * @param ropeTheta        RoPE base
 * @param maxSeqLen        longest sequence the model is used with
 * @param tieEmbeddings    lm_head shares the input embedding matrix
 */
public record LlamaConfig(String name, int vocabSize, int dim, int layers, int heads, int kvHeads,
                          int intermediate, float normEps, float ropeTheta, int maxSeqLen, boolean tieEmbeddings) {

    public static final Map<String, LlamaConfig> PRESETS = presets();

    /** The most values one tensor may hold: the largest Java array, as tensors pass through float[] (upload, checkpoints, export). */
    private static final long MAX_TENSOR_VALUES = Integer.MAX_VALUE - 8;

    /**
     * The most parameters a shape may have. Far beyond any machine, and it keeps every count
     * derived from the shape (bytes of parameters, gradients and moments included) exact in a
     * long and in a double.
     */
    private static final double MAX_PARAMETERS = 0x1p53;

    /**
     * Checks each field before any arithmetic on it: positive, the divisions the layout needs,
     * every tensor within one array, and the total countable, so that derived sizes cannot overflow.
     */
    public LlamaConfig {
        positive("vocab_size", vocabSize);
        positive("dim", dim);
        positive("layers", layers);
        positive("heads", heads);
        positive("kv_heads", kvHeads);
        positive("intermediate", intermediate);
        positive("max_seq_len", maxSeqLen);
        if (dim % heads != 0) {
            throw new IllegalArgumentException("model shape: dim " + dim + " is not divisible by heads " + heads);
        }
        if (heads % kvHeads != 0) {
            throw new IllegalArgumentException("model shape: heads " + heads + " is not divisible by kv_heads " + kvHeads);
        }
        if ((dim / heads) % 2 != 0) {
            throw new IllegalArgumentException("model shape: head size " + dim / heads + " must be even for RoPE");
        }
        finitePositive("norm_eps", normEps);
        finitePositive("rope_theta", ropeTheta);
        fitsOneTensor("the embedding (vocab_size x dim)", vocabSize, dim);
        fitsOneTensor("the q/k/v projection ((heads + 2 kv_heads) x head size by dim)", (heads + 2L * kvHeads) * (dim / heads), dim);
        fitsOneTensor("the attention output projection (dim x dim)", dim, dim);
        fitsOneTensor("the gate/up projection (2 intermediate x dim)", 2L * intermediate, dim);
        double parameters = parameters(vocabSize, dim, layers, heads, kvHeads, intermediate, tieEmbeddings);
        if (parameters > MAX_PARAMETERS) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "model shape (%s) has %.2e parameters, more than the %.2e (2^53) "
                    + "this program counts", describe(vocabSize, dim, layers, heads, kvHeads, intermediate), parameters, MAX_PARAMETERS));
        }
    }

    private static void positive(String key, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException("model shape: " + key + " must be positive, got " + value);
        }
    }

    private static void finitePositive(String key, float value) {
        if (!(value > 0) || Float.isInfinite(value)) {
            throw new IllegalArgumentException("model shape: " + key + " must be a finite positive number, got " + value);
        }
    }

    /** In BigInteger: the q/k/v rows of an extreme shape times dim overflow a long. */
    private static void fitsOneTensor(String what, long rows, long cols) {
        BigInteger values = BigInteger.valueOf(rows).multiply(BigInteger.valueOf(cols));
        if (values.compareTo(BigInteger.valueOf(MAX_TENSOR_VALUES)) > 0) {
            throw new IllegalArgumentException(String.format(Locale.ROOT, "model shape: %s is %d x %d = %,d values; one tensor holds at most %,d",
                    what, rows, cols, values, MAX_TENSOR_VALUES));
        }
    }

    private static String describe(int vocabSize, int dim, int layers, int heads, int kvHeads, int intermediate) {
        return String.format(Locale.ROOT, "vocab %,d, dim %,d, %,d layers, %,d heads, %,d kv heads, intermediate %,d",
                vocabSize, dim, layers, heads, kvHeads, intermediate);
    }

    /** The shape in words, for messages: "vocab 32,000, dim 2,048, 22 layers, ...". */
    public String describe() {
        return describe(vocabSize, dim, layers, heads, kvHeads, intermediate);
    }

    /** Each tensor is below 2^31 values when this runs, so the long sum is exact. */
    private static long layerParameters(int dim, int heads, int kvHeads, int intermediate) {
        long qkvRows = (heads + 2L * kvHeads) * (dim / heads);
        return 2L * dim + qkvRows * dim + (long) dim * dim + 3L * intermediate * dim;
    }

    /** In double: no shape overflows it, and it is exact up to 2^53, which every accepted shape is below. */
    private static double parameters(int vocabSize, int dim, int layers, int heads, int kvHeads, int intermediate, boolean tied) {
        return (double) vocabSize * dim * (tied ? 1 : 2) + (double) layers * layerParameters(dim, heads, kvHeads, intermediate) + dim;
    }

    public static LlamaConfig preset(String name) {
        LlamaConfig config = PRESETS.get(name);
        if (config == null) {
            throw new IllegalArgumentException("unknown model preset '" + name + "'; known: " + String.join(", ", PRESETS.keySet()));
        }
        return config;
    }

    private static Map<String, LlamaConfig> presets() {
        Map<String, LlamaConfig> presets = new LinkedHashMap<>();
        // TinyLlama's tiny_LLaMA_1b (its lit-gpt config).
        presets.put("tinyllama-1.1b", new LlamaConfig("tinyllama-1.1b", 32000, 2048, 22, 32, 4, 5632, 1e-5f, 10000f, 2048, false));
        // The CPU demo: Llama 2 vocabulary, a few million parameters, trains on 2 cores in minutes.
        presets.put("demo-9m", new LlamaConfig("demo-9m", 32000, 128, 4, 4, 2, 352, 1e-5f, 10000f, 256, false));
        // Test shapes: small enough for float64 finite differences.
        presets.put("test-tiny", new LlamaConfig("test-tiny", 61, 16, 2, 4, 2, 24, 1e-5f, 10000f, 16, false));
        presets.put("test-small", new LlamaConfig("test-small", 256, 64, 2, 8, 2, 160, 1e-5f, 10000f, 64, false));
        return Map.copyOf(presets);
    }

    public int headSize() {
        return dim / heads;
    }

    /** Query heads per key/value head. */
    public int groupSize() {
        return heads / kvHeads;
    }

    /** Width of a fused q, k, v row. */
    public int qkvDim() {
        return (heads + 2 * kvHeads) * headSize();
    }

    public long layerParameters() {
        return layerParameters(dim, heads, kvHeads, intermediate);
    }

    public long parameterCount() {
        return (long) parameters(vocabSize, dim, layers, heads, kvHeads, intermediate, tieEmbeddings);
    }

    /** Parameters that take part in a matmul: every linear layer and lm_head, not the input embedding. */
    public long matmulParameters() {
        return layers * ((long) qkvDim() * dim + (long) dim * dim + 3L * intermediate * dim) + (long) vocabSize * dim;
    }

    /** Training FLOPs per token as TinyLlama and PaLM count them: 6 N + 12 L T d. */
    public double trainingFlopsPerToken(int seqLen) {
        return 6.0 * matmulParameters() + 12.0 * layers * seqLen * (double) heads * headSize();
    }

    public LlamaConfig withName(String newName) {
        return new LlamaConfig(newName, vocabSize, dim, layers, heads, kvHeads, intermediate, normEps, ropeTheta, maxSeqLen, tieEmbeddings);
    }
}
