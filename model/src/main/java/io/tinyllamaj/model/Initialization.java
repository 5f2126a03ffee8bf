package io.tinyllamaj.model;

import io.tinyllamaj.kernels.Backend;

import java.util.stream.IntStream;

/**
 * TinyLlama's initialisation (GPT-NeoX "small init", lit-gpt's _init_weights):
 * embeddings and linear weights ~ N(0, sqrt(2 / (5 d))); the attention output and MLP down
 * projections ~ N(0, 1 / sqrt(d) / n_layer); norm weights 1. Values are drawn on the host
 * from one seeded stream per tensor (java.util.SplittableRandom's, two draws a value), so every
 * backend starts from the same bits. Each tensor is filled in chunks on all cores, each chunk
 * entering the stream at its own position: the bits of one sequential pass, which takes one core
 * about 40 s for TinyLlama-1.1B (Box-Muller's log and cosine, 1.1 billion times).
 */
public final class Initialization {

    private Initialization() {
    }

    /** Values a chunk: large enough that entering the stream costs nothing, small enough to spread. */
    private static final int CHUNK = 1 << 20;

    public static void initialize(LlamaModel model, long seed) {
        LlamaConfig c = model.config();
        Backend backend = model.backend();
        double small = Math.sqrt(2.0 / (5.0 * c.dim()));
        double output = 1.0 / Math.sqrt(c.dim()) / c.layers();
        for (ParameterLayout.Entry e : model.layout().stored()) {
            float[] values = new float[Math.toIntExact(e.size())];
            if (e.name().endsWith("norm")) {
                java.util.Arrays.fill(values, 1f);
            } else {
                double std = e.name().endsWith("attn_out") || e.name().endsWith("down") ? output : small;
                long streamSeed = seed ^ e.name().hashCode() * 0x9E3779B97F4A7C15L;
                int chunks = (values.length + CHUNK - 1) / CHUNK;
                IntStream.range(0, chunks).parallel().forEach(chunk -> {
                    int from = chunk * CHUNK, to = Math.min(values.length, from + CHUNK);
                    SeededStream random = SeededStream.at(streamSeed, 2L * from);
                    for (int i = from; i < to; i++) {
                        values[i] = (float) (gaussian(random) * std);
                    }
                });
            }
            backend.upload(model.parameter(e.name()), values, 0, values.length);
        }
    }

    /** Box-Muller: a fixed formula, so the stream is the same on every JVM. */
    private static double gaussian(SeededStream random) {
        double u1 = random.nextDouble();
        double u2 = random.nextDouble();
        return Math.sqrt(-2.0 * Math.log1p(-u1)) * Math.cos(2 * Math.PI * u2);
    }
}
