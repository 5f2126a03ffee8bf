package io.tinyllamaj.model.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from logits: greedy (argmax) at temperature 0, otherwise softmax at the
 * temperature, restricted to the top-k tokens and then to the smallest set whose probability
 * reaches top-p, sampled with a seeded generator so a run is reproducible. Only the first
 * {@code candidates} ids are ever picked: a vocabulary padded past its tokenizer's has rows no
 * text decodes to.
 */
public final class Sampler {

    private final float temperature;
    private final int topK;
    private final float topP;
    private final long seed;
    private final int candidates;
    private final SplittableRandom random;

    public Sampler(float temperature, int topK, float topP, long seed) {
        this(temperature, topK, topP, seed, Integer.MAX_VALUE);
    }

    private Sampler(float temperature, int topK, float topP, long seed, int candidates) {
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0 (0: greedy), got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("top-k must be >= 0 (0: all tokens), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("top-p must be in (0, 1], got " + topP);
        }
        if (candidates < 1) {
            throw new IllegalArgumentException("a sampler must allow at least one token id, got " + candidates);
        }
        this.temperature = temperature;
        this.topK = topK;
        this.topP = topP;
        this.seed = seed;
        this.candidates = candidates;
        this.random = new SplittableRandom(seed);
    }

    /** The same settings and seed (a fresh generator), never picking an id of {@code ids} or above. */
    public Sampler limitedTo(int ids) {
        return new Sampler(temperature, topK, topP, seed, ids);
    }

    public static int argmax(float[] logits) {
        return argmax(logits, logits.length);
    }

    private static int argmax(float[] logits, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) {
            if (logits[i] > logits[best]) {
                best = i;
            }
        }
        return best;
    }

    public int sample(float[] logits) {
        int n = Math.min(candidates, logits.length);
        if (temperature == 0) {
            return argmax(logits, n);
        }
        Integer[] order = new Integer[n];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> Float.compare(logits[y], logits[x]));
        int keep = topK == 0 ? n : Math.min(topK, n);
        double max = logits[order[0]];
        double[] weights = new double[keep];
        double total = 0;
        for (int i = 0; i < keep; i++) {
            weights[i] = Math.exp((logits[order[i]] - max) / temperature);
            total += weights[i];
        }
        double cumulative = 0;
        int nucleus = keep;
        for (int i = 0; i < keep; i++) {
            cumulative += weights[i] / total;
            if (cumulative >= topP) {
                nucleus = i + 1;
                break;
            }
        }
        double mass = 0;
        for (int i = 0; i < nucleus; i++) {
            mass += weights[i];
        }
        double r = random.nextDouble() * mass;
        for (int i = 0; i < nucleus; i++) {
            r -= weights[i];
            if (r < 0) {
                return order[i];
            }
        }
        return order[nucleus - 1];
    }
}
