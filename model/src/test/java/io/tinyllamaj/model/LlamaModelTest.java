package io.tinyllamaj.model;

import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Projection;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.model.generate.Generator;
import io.tinyllamaj.model.generate.Sampler;
import io.tinyllamaj.model.hf.HfCheckpoint;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The whole model against the independent float64 {@link ReferenceLlama}. */
class LlamaModelTest {

    @TempDir
    Path temp;

    private static LlamaConfig tiny(boolean tied) {
        LlamaConfig t = LlamaConfig.preset("test-tiny");
        return new LlamaConfig("t", t.vocabSize(), t.dim(), t.layers(), t.heads(), t.kvHeads(), t.intermediate(),
                t.normEps(), t.ropeTheta(), t.maxSeqLen(), tied);
    }

    /** The model loaded on the CPU backend from the reference's weights, written as a Hugging Face checkpoint. */
    private LlamaModel onCpu(ReferenceLlama ref) throws Exception {
        return HfCheckpoint.load(Checkpoints.write(ref, temp.resolve("hf")), new CpuBackend());
    }

    private static int[] tokens(int n, int vocab, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = r.nextInt(vocab);
        }
        return t;
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void logitsAndLossMatchFloat64Reference(boolean tied) throws Exception {
        LlamaConfig c = tiny(tied);
        ReferenceLlama ref = new ReferenceLlama(c, 7);
        LlamaModel model = onCpu(ref);
        int b = 2, t = 9;
        int[] in = tokens(b * t, c.vocabSize(), 1), targets = tokens(b * t, c.vocabSize(), 2);
        targets[3] = -1;
        double[] expected = ref.logits(in, b, t);
        float[] actual = model.backend().download(model.logits(in, b, t));
        assertRelative(expected, actual, 1e-5, "logits");
        float[] losses = model.losses(in, targets, b, t);
        double mean = 0;
        for (float l : losses) {
            mean += l;
        }
        mean /= b * t - 1;
        assertEquals(ref.loss(in, targets, b, t), mean, 1e-5 * Math.abs(mean));
    }

    /**
     * score(): one forward read against two target sets; per position the cross-entropy and the
     * margin as the float64 reference's log-softmax and largest logit give them. Set 1 asks for the
     * reference's argmax at every read position, so its margins are 0 (greedy) there.
     */
    @Test
    void scoreGivesEachTargetSetsLossesAndMarginsAsTheFloat64Reference() throws Exception {
        LlamaConfig c = tiny(false);
        ReferenceLlama ref = new ReferenceLlama(c, 19);
        LlamaModel model = onCpu(ref);
        int b = 2, t = 7, v = c.vocabSize(), n = b * t;
        int[] in = tokens(n, v, 5), random = tokens(n, v, 6), argmax = new int[n];
        double[] logits = ref.logits(in, b, t);
        for (int p = 0; p < n; p++) {
            for (int j = 1; j < v; j++) {
                argmax[p] = logits[p * v + j] > logits[p * v + argmax[p]] ? j : argmax[p];
            }
        }
        random[2] = -1;
        argmax[5] = -1;
        LlamaModel.PositionScores scores = model.score(in, new int[][] {random, argmax}, b, t);
        int[][] sets = {random, argmax};
        for (int k = 0; k < 2; k++) {
            for (int p = 0; p < n; p++) {
                int target = sets[k][p];
                if (target < 0) {
                    assertEquals(0f, scores.losses()[k][p]);
                    assertEquals(0f, scores.margins()[k][p]);
                    continue;
                }
                double max = Double.NEGATIVE_INFINITY, z = 0;
                for (int j = 0; j < v; j++) {
                    max = Math.max(max, logits[p * v + j]);
                }
                for (int j = 0; j < v; j++) {
                    z += Math.exp(logits[p * v + j] - max);
                }
                double loss = max + Math.log(z) - logits[p * v + target];
                assertEquals(loss, scores.losses()[k][p], 1e-5 * Math.max(1, loss), "set " + k + " position " + p);
                assertEquals(max - logits[p * v + target], scores.margins()[k][p], 1e-5, "set " + k + " position " + p);
                if (k == 1) {
                    assertEquals(0f, scores.margins()[k][p], "the argmax's margin, position " + p);
                }
            }
        }
    }

    /** Every weight's gradient of the mean loss (plus, with a z-loss coefficient, that times the mean lse^2). */
    @ParameterizedTest
    @CsvSource({"false, 0", "true, 0", "false, 0.05"})
    void everyGradientMatchesFiniteDifferencesOfTheReference(boolean tied, double zLoss) throws Exception {
        LlamaConfig c = tiny(tied);
        ReferenceLlama ref = new ReferenceLlama(c, 11);
        LlamaModel model = onCpu(ref);
        int b = 2, t = 5;
        int[] in = tokens(b * t, c.vocabSize(), 3), targets = tokens(b * t, c.vocabSize(), 4);
        targets[7] = -1;
        model.zeroGradients();
        LlamaModel.Losses losses = model.forwardBackward(in, targets, b, t, 1f / (b * t - 1), (float) zLoss);
        assertEquals(ref.loss(in, targets, b, t), losses.crossEntropy() / (b * t - 1), 1e-5);
        assertEquals(zLoss * ref.meanSquaredLogZ(in, targets, b, t), losses.zLoss() / (b * t - 1), 1e-6 * (1 + zLoss * 100));
        java.util.function.ToDoubleFunction<ReferenceLlama> objective = r -> r.loss(in, targets, b, t)
                + (zLoss == 0 ? 0 : zLoss * r.meanSquaredLogZ(in, targets, b, t));
        float[] grads = model.backend().download(model.gradients());
        int q = c.heads() * c.headSize(), kv = c.kvHeads() * c.headSize();
        for (String name : ref.w.keySet()) {
            double[] w = ref.w.get(name);
            double[] numeric = new double[w.length];
            for (int i = 0; i < w.length; i++) {
                double saved = w[i], h = 1e-5;
                w[i] = saved + h;
                double plus = objective.applyAsDouble(ref);
                w[i] = saved - h;
                double minus = objective.applyAsDouble(ref);
                w[i] = saved;
                numeric[i] = (plus - minus) / (2 * h);
            }
            // where this HF tensor lives in our layout: q, k, v stack into qkv; gate, up into gate_up
            String[] parts = name.split("\\.");
            long offset;
            if (name.startsWith("model.layers.")) {
                int l = Integer.parseInt(parts[2]);
                String block = "layers." + l + ".";
                ParameterLayout layout = model.layout();
                offset = switch (parts[3] + "." + parts[4]) {
                    case "input_layernorm.weight" -> layout.get(block + "attn_norm").offset();
                    case "self_attn.q_proj" -> layout.get(block + "qkv").offset();
                    case "self_attn.k_proj" -> layout.get(block + "qkv").offset() + (long) q * c.dim();
                    case "self_attn.v_proj" -> layout.get(block + "qkv").offset() + (long) (q + kv) * c.dim();
                    case "self_attn.o_proj" -> layout.get(block + "attn_out").offset();
                    case "post_attention_layernorm.weight" -> layout.get(block + "mlp_norm").offset();
                    case "mlp.gate_proj" -> layout.get(block + "gate_up").offset();
                    case "mlp.up_proj" -> layout.get(block + "gate_up").offset() + (long) c.intermediate() * c.dim();
                    case "mlp.down_proj" -> layout.get(block + "down").offset();
                    default -> throw new AssertionError(name);
                };
            } else {
                offset = model.layout().get(switch (name) {
                    case "model.embed_tokens.weight" -> "embed";
                    case "model.norm.weight" -> "final_norm";
                    default -> "lm_head";
                }).offset();
            }
            float[] ours = java.util.Arrays.copyOfRange(grads, (int) offset, (int) offset + w.length);
            assertRelative(numeric, ours, 2e-4, "gradient of " + name);
        }
    }

    /**
     * Micro-batches queued one after another (their arrays overwritten as soon as each is queued,
     * one of another shape) come back from takeLosses in order, each with the float64 reference's
     * sums for its own tokens; the queue is empty after.
     */
    @Test
    void queuedMicroBatchesReturnEachOnesLossesInOrder() throws Exception {
        LlamaConfig c = tiny(false);
        ReferenceLlama ref = new ReferenceLlama(c, 17);
        LlamaModel model = onCpu(ref);
        int t = 5;
        int[] shapes = {2, 1, 2};
        float zLoss = 0.05f;
        int[][] ins = new int[shapes.length][], outs = new int[shapes.length][];
        model.zeroGradients();
        for (int m = 0; m < shapes.length; m++) {
            int n = shapes[m] * t;
            ins[m] = tokens(n, c.vocabSize(), 30 + m);
            outs[m] = tokens(n, c.vocabSize(), 40 + m);
            int[] in = ins[m].clone(), targets = outs[m].clone();
            model.queueForwardBackward(in, targets, shapes[m], t, 1f, zLoss);
            java.util.Arrays.fill(in, 0);
            java.util.Arrays.fill(targets, 0);
        }
        java.util.List<LlamaModel.Losses> losses = model.takeLosses();
        assertEquals(shapes.length, losses.size());
        for (int m = 0; m < shapes.length; m++) {
            int n = shapes[m] * t;
            assertEquals(ref.loss(ins[m], outs[m], shapes[m], t) * n, losses.get(m).crossEntropy(), 1e-5 * n, "micro-batch " + m);
            assertEquals(zLoss * ref.meanSquaredLogZ(ins[m], outs[m], shapes[m], t) * n, losses.get(m).zLoss(), 1e-6 * n, "micro-batch " + m);
        }
        assertTrue(model.takeLosses().isEmpty());
        model.queueForwardBackward(ins[0], outs[0], shapes[0], t, 1f, 0f);
        IllegalStateException unread = assertThrows(IllegalStateException.class,
                () -> model.forwardBackward(ins[1], outs[1], shapes[1], t, 1f), "a waiting form must not swallow queued losses");
        assertTrue(unread.getMessage().contains("1 queued micro-batches"), unread.getMessage());
    }

    /**
     * Queueing a micro-batch reads nothing back from the backend (a read would wait for the GPU and
     * leave it idle while the host draws the next micro-batch); takeLosses reads one row each.
     */
    @Test
    void queueingReadsNothingBackUntilTheLossesAreTaken() {
        java.util.List<String> reads = new java.util.ArrayList<>();
        CpuBackend cpu = new CpuBackend();
        io.tinyllamaj.kernels.Backend watched = (io.tinyllamaj.kernels.Backend) java.lang.reflect.Proxy.newProxyInstance(
                getClass().getClassLoader(), new Class<?>[] {io.tinyllamaj.kernels.Backend.class}, (proxy, method, args) -> {
                    if (method.getName().equals("download") || method.getName().equals("sumOfSquares")) {
                        reads.add(method.getName());
                    }
                    try {
                        return method.invoke(cpu, args);
                    } catch (java.lang.reflect.InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        LlamaConfig c = tiny(false);
        LlamaModel model = new LlamaModel(watched, c);
        Initialization.initialize(model, 5);
        int b = 2, t = 4;
        model.zeroGradients();
        for (int m = 0; m < 3; m++) {
            model.queueForwardBackward(tokens(b * t, c.vocabSize(), 50 + m), tokens(b * t, c.vocabSize(), 60 + m), b, t, 1f, 0.01f);
        }
        assertEquals(java.util.List.of(), reads, "queued micro-batches read nothing back");
        assertEquals(3, model.takeLosses().size());
        assertEquals(6, reads.size(), "a loss row and a logsumexp row each: " + reads);
    }

    @Test
    void lossAndGradientsOverSeveralLogitChunksEqualThoseOfSeparateHalves() throws Exception {
        LlamaConfig c = tiny(false);
        ReferenceLlama ref = new ReferenceLlama(c, 13);
        Path dir = Checkpoints.write(ref, temp.resolve("hf"));
        LlamaModel whole = HfCheckpoint.load(dir, new CpuBackend());
        LlamaModel halves = HfCheckpoint.load(dir, new CpuBackend());
        int b = 80, t = 16, n = b * t; // 1280 rows: two logit chunks of LlamaModel.LOGIT_ROWS
        assertTrue(n > LlamaModel.LOGIT_ROWS);
        int[] in = tokens(n, c.vocabSize(), 5), targets = tokens(n, c.vocabSize(), 6);
        targets[1100] = -1;
        float scale = 1f / (n - 1);
        whole.zeroGradients();
        double sum = whole.forwardBackward(in, targets, b, t, scale);
        halves.zeroGradients();
        int half = n / 2;
        double sumHalves = halves.forwardBackward(java.util.Arrays.copyOfRange(in, 0, half), java.util.Arrays.copyOfRange(targets, 0, half), b / 2, t, scale)
                + halves.forwardBackward(java.util.Arrays.copyOfRange(in, half, n), java.util.Arrays.copyOfRange(targets, half, n), b / 2, t, scale);
        assertEquals(sumHalves, sum, 1e-6 * Math.abs(sum));
        float[] expected = halves.backend().download(halves.gradients());
        double[] reference = new double[expected.length];
        for (int i = 0; i < expected.length; i++) {
            reference[i] = expected[i];
        }
        assertRelative(reference, whole.backend().download(whole.gradients()), 1e-5, "chunked gradients");
        float[] losses = whole.losses(in, targets, b, t);
        float[] first = halves.losses(java.util.Arrays.copyOfRange(in, 0, half), java.util.Arrays.copyOfRange(targets, 0, half), b / 2, t);
        float[] second = halves.losses(java.util.Arrays.copyOfRange(in, half, n), java.util.Arrays.copyOfRange(targets, half, n), b / 2, t);
        assertArrayEquals(first, java.util.Arrays.copyOfRange(losses, 0, half));
        assertArrayEquals(second, java.util.Arrays.copyOfRange(losses, half, n));
        assertEquals(0f, losses[1100]);
    }

    /**
     * A backend whose block projections keep their inputs from forward to backward (as fp8-mixed
     * does on the GPU; here the CPU, with the kept values put back before each backward): the model
     * no longer recomputes the SwiGLU output (one SwiGLU forward a layer) nor saves a norm output
     * per block (one shared buffer each: 2 (layers - 1) n dim fp32 values fewer), and the
     * gradients are the plain backend's bit for bit.
     */
    @Test
    void aBackendThatKeepsProjectionInputsSparesRecomputationAndSavedNorms() throws Exception {
        LlamaConfig c = tiny(false);
        Path dir = Checkpoints.write(new ReferenceLlama(c, 19), temp.resolve("hf"));
        CpuBackend cpu = new CpuBackend();
        Map<String, float[]> kept = new HashMap<>();
        int[] swigluForwards = {0};
        // a decorator over the whole interface: only these four calls differ from the CPU's
        Backend keeping = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                (proxy, method, args) -> {
                    switch (method.getName()) {
                        case "blockMatmulKeepsInput" -> {
                            return args[0] != Projection.ATTENTION_OUTPUT;
                        }
                        case "swigluForward" -> swigluForwards[0]++;
                        case "blockMatmulForward" -> {
                            if (args[0] != Projection.ATTENTION_OUTPUT) {
                                kept.put(args[0] + " " + args[1], cpu.download((Tensor) args[3]));
                            }
                        }
                        case "blockMatmulBackward" -> {
                            if (args[0] != Projection.ATTENTION_OUTPUT) {
                                float[] values = kept.get(args[0] + " " + args[1]);
                                cpu.upload((Tensor) args[5], values, 0, values.length);
                            }
                        }
                        default -> {
                        }
                    }
                    try {
                        return method.invoke(cpu, args);
                    } catch (InvocationTargetException e) {
                        throw e.getCause();
                    }
                });
        LlamaModel model = HfCheckpoint.load(dir, keeping);
        LlamaModel plain = HfCheckpoint.load(dir, new CpuBackend());
        int b = 2, t = 16, n = b * t;
        int[] in = tokens(n, c.vocabSize(), 9), targets = tokens(n, c.vocabSize(), 10);
        for (LlamaModel m : List.of(model, plain)) {
            m.zeroGradients();
            m.forwardBackward(in, targets, b, t, 1f / n);
        }
        assertEquals(c.layers(), swigluForwards[0], "one SwiGLU forward a layer: none recomputed");
        assertEquals(3 * c.layers(), kept.size());
        assertArrayEquals(plain.backend().download(plain.gradients()), model.backend().download(model.gradients()));
        assertEquals(2L * (c.layers() - 1) * n * c.dim() * Float.BYTES, plain.memory().activations() - model.memory().activations());
    }

    /**
     * zeroGradients() does not touch the buffer: the next backward overwrites each gradient on its
     * first write. Against the buffer filled with zeros and accumulated into, over a stale buffer
     * (NaN: a gradient left unwritten shows), two logit chunks and two micro-batches.
     */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void zeroGradientsThenBackwardOverwritesAStaleBuffer(boolean tied) throws Exception {
        LlamaConfig c = tiny(tied);
        Path dir = Checkpoints.write(new ReferenceLlama(c, 17), temp.resolve("hf"));
        LlamaModel overwritten = HfCheckpoint.load(dir, new CpuBackend());
        LlamaModel filled = HfCheckpoint.load(dir, new CpuBackend());
        int b = 80, t = 16, n = b * t; // two logit chunks: the first writes lm_head's gradient, the second adds
        assertTrue(n > LlamaModel.LOGIT_ROWS);
        int[] in = tokens(n, c.vocabSize(), 7), targets = tokens(n, c.vocabSize(), 8);
        overwritten.backend().fill(overwritten.gradients(), Float.NaN);
        overwritten.zeroGradients();
        filled.zeroGradients();
        for (float g : filled.backend().download(filled.gradients())) { // read before a backward: zeros
            assertEquals(0f, g);
        }
        for (int micro = 0; micro < 2; micro++) {
            overwritten.forwardBackward(in, targets, b, t, 1f / n);
            filled.forwardBackward(in, targets, b, t, 1f / n);
            assertArrayEquals(filled.backend().download(filled.gradients()), overwritten.backend().download(overwritten.gradients()),
                    "gradients after micro-batch " + micro);
        }
    }

    /**
     * The optimizer route of a sharded rank: AdamW over one range of the parameters changes that
     * range as torch.optim.AdamW's first step would (computed here in float64) and leaves every
     * other parameter bitwise as it was.
     */
    @Test
    void adamwOverARangeUpdatesExactlyThatRange() {
        LlamaModel model = new LlamaModel(new CpuBackend(), tiny(false));
        int total = (int) model.layout().total(), offset = total / 3, length = total / 4;
        SplittableRandom r = new SplittableRandom(5);
        float[] p = new float[total], g = new float[total];
        for (int i = 0; i < total; i++) {
            p[i] = (float) r.nextGaussian();
            g[i] = (float) r.nextGaussian() * 1e-2f;
        }
        model.backend().upload(model.parameters(), p, 0, total);
        model.backend().upload(model.gradients(), g, 0, total);
        io.tinyllamaj.kernels.Tensor m = model.backend().allocate(length), v = model.backend().allocate(length);
        float lr = 1e-2f, wd = 0.1f, eps = 1e-8f, clip = 0.5f;
        model.adamwUpdate(offset, m, v, new io.tinyllamaj.kernels.AdamWStep(lr, 0.9f, 0.95f, eps, wd, 1, clip));
        float[] after = model.backend().download(model.parameters());
        for (int i = 0; i < total; i++) {
            if (i < offset || i >= offset + length) {
                assertEquals(Float.floatToIntBits(p[i]), Float.floatToIntBits(after[i]), "parameter " + i + " outside the range");
            } else {
                double grad = (double) g[i] * clip; // step 1: the bias-corrected moments are grad and grad^2
                double expected = p[i] * (1 - (double) lr * wd) - lr * grad / (Math.abs(grad) + eps);
                assertEquals(expected, after[i], 1e-6 * Math.max(1, Math.abs(expected)), "parameter " + i);
            }
        }
        assertEquals(length, model.backend().download(m).length);
    }

    @Test
    void greedyGenerationWithKvCacheEqualsArgmaxOfFullForward() throws Exception {
        LlamaConfig c = LlamaConfig.preset("test-small");
        ReferenceLlama ref = new ReferenceLlama(c, 5);
        LlamaModel model = onCpu(ref);
        int[] prompt = tokens(7, c.vocabSize(), 9);
        int[] generated = new Generator(model).generate(prompt, 20, new Sampler(0, 0, 1, 0), -1, token -> {
        });
        assertEquals(20, generated.length);
        List<Integer> sequence = new ArrayList<>();
        for (int p : prompt) {
            sequence.add(p);
        }
        for (int g : generated) {
            int[] all = sequence.stream().mapToInt(Integer::intValue).toArray();
            float[] logits = model.backend().download(model.logits(all, 1, all.length));
            float[] last = java.util.Arrays.copyOfRange(logits, (all.length - 1) * c.vocabSize(), all.length * c.vocabSize());
            assertEquals(Sampler.argmax(last), g, "greedy token at position " + all.length);
            sequence.add(g);
        }
    }

    @Test
    void samplingIsReproducibleAndRespectsTopK() {
        float[] logits = {0f, 3f, 1f, 2.5f, -1f};
        Sampler a = new Sampler(1f, 2, 1f, 99), b = new Sampler(1f, 2, 1f, 99);
        for (int i = 0; i < 200; i++) {
            int x = a.sample(logits);
            assertEquals(x, b.sample(logits));
            assertTrue(x == 1 || x == 3, "top-2 keeps tokens 1 and 3, got " + x);
        }
        // top-p 0.5: token 1 alone has p = e^3 / (e^3 + e^2.5) = 0.62 >= 0.5 among the top 2
        Sampler nucleus = new Sampler(1f, 2, 0.5f, 1);
        for (int i = 0; i < 50; i++) {
            assertEquals(1, nucleus.sample(logits));
        }
    }

    @Test
    void tinyLlamaSizesMatchHandCounts() {
        LlamaConfig c = LlamaConfig.preset("tinyllama-1.1b");
        assertEquals(64, c.headSize());
        assertEquals(8, c.groupSize());
        // per block: 2 norms (2 * 2048) + qkv 2560 x 2048 + o 2048 x 2048 + 3 x 5632 x 2048 = 44,044,288
        assertEquals(22L * 44_044_288 + 2L * 32000 * 2048 + 2048, c.parameterCount());
        // 6 N + 12 L T d (N: the matmul parameters, lm_head included): 6 x 1.034e9 + 12 x 22 x 2048 x 2048 = 7.31 GFLOP per token
        assertEquals(1_034_420_224L, c.matmulParameters());
        assertEquals(6.0 * 1_034_420_224L + 12.0 * 22 * 2048 * 2048, c.trainingFlopsPerToken(2048));
    }

    @Test
    void shapesThatDoNotDivideAreRejectedWithTheReason() {
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> new LlamaConfig("x", 100, 64, 2, 8, 3, 100, 1e-5f, 1e4f, 16, false));
        assertEquals("model shape: heads 8 is not divisible by kv_heads 3", e.getMessage());
        e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> new LlamaConfig("x", 100, 60, 2, 8, 2, 100, 1e-5f, 1e4f, 16, false));
        assertEquals("model shape: dim 60 is not divisible by heads 8", e.getMessage());
    }

    @Test
    void initializationFollowsTinyLlamaStandardDeviations() {
        LlamaConfig c = LlamaConfig.preset("demo-9m");
        LlamaModel model = new LlamaModel(new CpuBackend(), c);
        Initialization.initialize(model, 3407);
        assertEquals(Math.sqrt(2.0 / (5 * 128)), std(model, "embed"), 0.01 * Math.sqrt(2.0 / (5 * 128)));
        assertEquals(Math.sqrt(2.0 / (5 * 128)), std(model, "layers.0.gate_up"), 0.02 * Math.sqrt(2.0 / (5 * 128)));
        assertEquals(1 / Math.sqrt(128) / 4, std(model, "layers.1.down"), 0.02 / Math.sqrt(128) / 4);
        float[] norm = model.backend().download(model.parameter("layers.2.mlp_norm"));
        for (float v : norm) {
            assertEquals(1f, v);
        }
        LlamaModel again = new LlamaModel(new CpuBackend(), c);
        Initialization.initialize(again, 3407);
        assertArrayEquals(model.backend().download(model.parameters()), again.backend().download(again.parameters()));
    }

    /**
     * The chunked, parallel fill gives the bits of the plain sequential pass: each tensor's values
     * drawn one after another from java.util.SplittableRandom (demo-9m's embedding, 4.1M values,
     * spans four chunks).
     */
    @Test
    void initializationGivesTheBitsOfOneSequentialPass() {
        LlamaConfig c = LlamaConfig.preset("demo-9m");
        LlamaModel model = new LlamaModel(new CpuBackend(), c);
        Initialization.initialize(model, 3407);
        double small = Math.sqrt(2.0 / (5.0 * c.dim())), output = 1.0 / Math.sqrt(c.dim()) / c.layers();
        for (ParameterLayout.Entry e : model.layout().stored()) {
            float[] expected = new float[Math.toIntExact(e.size())];
            if (e.name().endsWith("norm")) {
                java.util.Arrays.fill(expected, 1f);
            } else {
                double std = e.name().endsWith("attn_out") || e.name().endsWith("down") ? output : small;
                SplittableRandom random = new SplittableRandom(3407L ^ e.name().hashCode() * 0x9E3779B97F4A7C15L);
                for (int i = 0; i < expected.length; i++) {
                    double u1 = random.nextDouble(), u2 = random.nextDouble();
                    expected[i] = (float) (Math.sqrt(-2.0 * Math.log1p(-u1)) * Math.cos(2 * Math.PI * u2) * std);
                }
            }
            assertArrayEquals(expected, model.backend().download(model.parameter(e.name())), e.name());
        }
    }

    private static double std(LlamaModel model, String name) {
        float[] v = model.backend().download(model.parameter(name));
        double sum = 0, squares = 0;
        for (float x : v) {
            sum += x;
            squares += (double) x * x;
        }
        double mean = sum / v.length;
        return Math.sqrt(squares / v.length - mean * mean);
    }

    static void assertRelative(double[] expected, float[] actual, double tolerance, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.length; i++) {
            assertTrue(Float.isFinite(actual[i]), what + ": non-finite at " + i);
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            norm += expected[i] * expected[i];
        }
        double relative = Math.sqrt(diff) / Math.sqrt(norm);
        assertTrue(relative < tolerance, what + ": relative error " + relative + " >= " + tolerance);
    }
}
