package io.tinyllamaj.model;

import java.util.LinkedHashMap;
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
        if (!(normEps > 0) || !(ropeTheta > 0)) {
            throw new IllegalArgumentException("model shape: norm_eps and rope_theta must be positive");
        }
    }

    private static void positive(String key, int value) {
        if (value <= 0) {
            throw new IllegalArgumentException("model shape: " + key + " must be positive, got " + value);
        }
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
        return 2L * dim + (long) qkvDim() * dim + (long) dim * dim + 3L * intermediate * dim;
    }

    public long parameterCount() {
        long embeddings = (long) vocabSize * dim * (tieEmbeddings ? 1 : 2);
        return embeddings + layers * layerParameters() + dim;
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
