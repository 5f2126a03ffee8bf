package io.tinyllamaj.model.cuda;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;
import io.tinyllamaj.kernels.cuda.CudaBackend;
import io.tinyllamaj.model.Initialization;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;
import io.tinyllamaj.model.ParameterLayout;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static io.tinyllamaj.kernels.cuda.CudaOpCheck.relativeError;

/**
 * The whole-model half of the GPU correctness suite (the op-by-op half is the kernels
 * module's CudaOpCheck): {@link LlamaModel} on {@link CudaBackend} against {@link CpuBackend}
 * with the same weights and tokens.
 * <ol>
 *   <li>one forward/backward of a small model and of a one-layer model of TinyLlama's width
 *       and vocabulary: logits, loss and every parameter gradient, as ||gpu - cpu|| / ||cpu||;</li>
 *   <li>determinism: three training steps (forward, backward, global norm, AdamW) run twice from the same
 *       state on the GPU, at the demo recipe's shape (plain attention), a small one (tensor-core attention)
 *       and TinyLlama's width, with many repeated token ids: loss, gradients, weights and moments
 *       must be the same bits;</li>
 *   <li>a loss curve: N steps of AdamW with global-norm clipping on batches from a random Markov chain, both
 *       backends, the largest relative gap between the curves;</li>
 *   <li>with {@code --bench}: the step time of TinyLlama-1.1B (b x 2048 tokens) on the GPU and the GPU time per op, a
 *       baseline for the performance work, not a correctness check.</li>
 * </ol>
 * Usage: {@code CudaModelCheck OUT_DIR [--steps N] [--bench B]}; writes OUT_DIR/gpu-model.txt.
 */
public final class CudaModelCheck {

    private static final double LOSS_BOUND = 1e-2;
    private static final double GRAD_BOUND = 3e-2;
    private static final double CURVE_BOUND = 2e-2;

    private final List<String> lines = new ArrayList<>();
    private int failures;

    public static void main(String[] args) throws IOException {
        Path out = Path.of(args.length > 0 ? args[0] : ".");
        int curveSteps = 150, benchBatch = 0;
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--steps" -> curveSteps = Integer.parseInt(args[++i]);
                case "--bench" -> benchBatch = Integer.parseInt(args[++i]);
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        CudaModelCheck check = new CudaModelCheck();
        int steps = curveSteps;
        long start = System.nanoTime();
        try (CudaBackend gpu = CudaBackend.create(); CpuBackend cpu = new CpuBackend()) {
            check.line("device: " + gpu.deviceDescription());
            LlamaConfig small = new LlamaConfig("gpu-check-small", 512, 256, 2, 4, 2, 688, 1e-5f, 10000f, 128, false);
            LlamaConfig wide = new LlamaConfig("gpu-check-tinyllama-1-layer", 32000, 2048, 1, 32, 4, 5632, 1e-5f, 10000f, 2048, false);
            int bench = benchBatch;
            check.guarded(() -> check.step(cpu, gpu, small, 2, 64));
            check.guarded(() -> check.step(cpu, gpu, wide, 1, 128));
            check.guarded(() -> check.repeatable(gpu, LlamaConfig.preset("demo-9m"), 8, 128));
            check.guarded(() -> check.repeatable(gpu, small, 4, 64));
            check.guarded(() -> check.repeatable(gpu, wide, 2, 256));
            check.guarded(() -> check.curve(cpu, gpu, small, 4, 64, steps));
            if (bench > 0) {
                check.guarded(() -> check.bench(gpu, LlamaConfig.preset("tinyllama-1.1b"), bench, 2048));
            }
        }
        check.line(String.format("%d failed, %.1f s", check.failures, (System.nanoTime() - start) / 1e9));
        String text = String.join("\n", check.lines) + "\n";
        Files.createDirectories(out);
        Files.writeString(out.resolve("gpu-model.txt"), text);
        if (check.failures > 0) {
            System.exit(1);
        }
    }

    /** A section that throws is one failure; the rest still run. */
    private void guarded(Runnable section) {
        try {
            section.run();
        } catch (RuntimeException e) {
            failures++;
            line("ERROR " + e);
            e.printStackTrace();
        }
    }

    private void line(String s) {
        lines.add(s);
        System.out.println(s);
    }

    private void verdict(String what, double error, double bound) {
        boolean pass = error <= bound;
        if (!pass) {
            failures++;
        }
        line(String.format("  %-44s %11.3e %8.0e %s", what, error, bound, pass ? "ok" : "FAIL"));
    }

    private static int[][] batch(SplittableRandom random, int n, int vocab) {
        int[] tokens = new int[n], targets = new int[n];
        for (int i = 0; i < n; i++) {
            tokens[i] = random.nextInt(vocab);
        }
        for (int i = 0; i < n; i++) {
            targets[i] = i + 1 < n ? tokens[i + 1] : random.nextInt(vocab);
        }
        targets[n / 3] = -1; // an ignored position
        return new int[][] {tokens, targets};
    }

    private void step(CpuBackend cpu, CudaBackend gpu, LlamaConfig config, int b, int t) {
        line(String.format("model step: %s, b=%d t=%d (%d parameters)", config.name(), b, t, new ParameterLayout(config).total()));
        LlamaModel c = new LlamaModel(cpu, config), g = new LlamaModel(gpu, config);
        Initialization.initialize(c, 3407);
        float[] weights = cpu.download(c.parameters());
        gpu.upload(g.parameters(), weights, 0, weights.length);
        int n = b * t;
        int[][] data = batch(new SplittableRandom(7), n, config.vocabSize());
        float[] logitsCpu = cpu.download(c.logits(data[0], b, t));
        float[] logitsGpu = gpu.download(g.logits(data[0], b, t));
        verdict("logits", relativeError(logitsGpu, logitsCpu), LOSS_BOUND);
        c.zeroGradients();
        g.zeroGradients();
        double lossCpu = c.forwardBackward(data[0], data[1], b, t, 1f / n);
        double lossGpu = g.forwardBackward(data[0], data[1], b, t, 1f / n);
        line(String.format("  loss: cpu %.6f gpu %.6f", lossCpu / n, lossGpu / n));
        verdict("loss", Math.abs(lossGpu - lossCpu) / Math.abs(lossCpu), LOSS_BOUND);
        float[] gc = cpu.download(c.gradients()), gg = gpu.download(g.gradients());
        verdict("all gradients", relativeError(gg, gc), GRAD_BOUND);
        String worst = "";
        double worstError = -1;
        for (ParameterLayout.Entry e : c.layout().stored()) {
            int from = Math.toIntExact(e.offset()), to = Math.toIntExact(e.offset() + e.size());
            double err = relativeError(java.util.Arrays.copyOfRange(gg, from, to), java.util.Arrays.copyOfRange(gc, from, to));
            if (!(err <= worstError)) {
                worstError = err;
                worst = e.name();
            }
        }
        verdict("worst parameter gradient (" + worst + ")", worstError, GRAD_BOUND);
    }

    /**
     * The same three training steps twice from the same weights and zero moments on the GPU:
     * every loss, the first step's gradients, and the final weights and AdamW moments must be
     * bitwise equal (a training run resumed from a checkpoint then tracks the uninterrupted one
     * exactly). Token ids come from the first 64 of the vocabulary, so the embedding backward
     * sees many repeats (where a scatter with atomics would vary run to run).
     */
    private void repeatable(CudaBackend gpu, LlamaConfig config, int b, int t) {
        line(String.format("determinism: %s, b=%d t=%d, 3 steps (forward, backward, clip, AdamW) twice from the same state",
                config.name(), b, t));
        int n = b * t, steps = 3;
        LlamaModel model = new LlamaModel(gpu, config);
        Initialization.initialize(model, 3407);
        float[] initial = gpu.download(model.parameters());
        long total = model.layout().total();
        Tensor m = gpu.allocate(total), v = gpu.allocate(total);
        double[][] losses = new double[2][steps];
        float[][] grads = new float[2][], params = new float[2][], ms = new float[2][], vs = new float[2][];
        for (int k = 0; k < 2; k++) {
            gpu.upload(model.parameters(), initial, 0, initial.length);
            gpu.fill(m, 0f);
            gpu.fill(v, 0f);
            for (int s = 0; s < steps; s++) {
                SplittableRandom random = new SplittableRandom(500 + s);
                int[] tokens = new int[n], targets = new int[n];
                for (int i = 0; i < n; i++) {
                    tokens[i] = random.nextInt(Math.min(64, config.vocabSize()));
                    targets[i] = random.nextInt(config.vocabSize());
                }
                model.zeroGradients();
                losses[k][s] = model.forwardBackward(tokens, targets, b, t, 1f / n);
                double norm = Math.sqrt(gpu.sumOfSquares(model.gradients()));
                if (s == 0) {
                    grads[k] = gpu.download(model.gradients());
                }
                float clip = (float) Math.min(1.0, 1.0 / (norm + 1e-6));
                gpu.adamwUpdate(model.parameters(), model.gradients(), m, v, new AdamWStep(1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1, clip));
            }
            params[k] = gpu.download(model.parameters());
            ms[k] = gpu.download(m);
            vs[k] = gpu.download(v);
        }
        int lossDiffs = 0;
        for (int s = 0; s < steps; s++) {
            if (Double.doubleToRawLongBits(losses[0][s]) != Double.doubleToRawLongBits(losses[1][s])) {
                lossDiffs++;
            }
        }
        line(String.format("  losses: %s / %s", java.util.Arrays.toString(losses[0]), java.util.Arrays.toString(losses[1])));
        verdict("steps whose loss bits differ", lossDiffs, 0);
        StringBuilder which = new StringBuilder();
        for (ParameterLayout.Entry e : model.layout().stored()) {
            int from = Math.toIntExact(e.offset()), to = Math.toIntExact(e.offset() + e.size());
            int d = differing(grads[0], grads[1], from, to);
            if (d > 0) {
                which.append(' ').append(e.name()).append('(').append(d).append(')');
            }
        }
        if (!which.isEmpty()) {
            line("  gradients that differ:" + which);
        }
        verdict("step-1 gradient elements whose bits differ", differing(grads[0], grads[1], 0, grads[0].length), 0);
        verdict("weights, m, v elements whose bits differ", differing(params[0], params[1], 0, params[0].length)
                + differing(ms[0], ms[1], 0, ms[0].length) + differing(vs[0], vs[1], 0, vs[0].length), 0);
    }

    private static int differing(float[] a, float[] b, int from, int to) {
        int count = 0;
        for (int i = from; i < to; i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                count++;
            }
        }
        return count;
    }

    /**
     * Tokens from a fixed random Markov chain where every token has 4 possible successors:
     * learnable down to ln 4 = 1.386 nats but not memorisable, so the curve stays where a
     * relative gap between the backends means something. Batch s is the same on both.
     */
    private static int[][] markovBatch(int[][] successors, int step, int b, int t) {
        SplittableRandom random = new SplittableRandom(1000 + step);
        int vocab = successors.length;
        int[] tokens = new int[b * t], targets = new int[b * t];
        for (int row = 0; row < b; row++) {
            int token = random.nextInt(vocab);
            for (int i = 0; i < t; i++) {
                tokens[row * t + i] = token;
                token = successors[token][random.nextInt(4)];
                targets[row * t + i] = token;
            }
        }
        return new int[][] {tokens, targets};
    }

    private void curve(CpuBackend cpu, CudaBackend gpu, LlamaConfig config, int b, int t, int steps) {
        line(String.format("loss curve: %s, b=%d t=%d, %d AdamW steps (lr 1e-3, wd 0.1, clip 1.0), tokens from a random"
                + " 4-successor Markov chain (floor ln 4 = 1.386)", config.name(), b, t, steps));
        int n = b * t;
        SplittableRandom random = new SplittableRandom(11);
        int[][] successors = new int[config.vocabSize()][4];
        for (int[] s : successors) {
            for (int k = 0; k < 4; k++) {
                s[k] = random.nextInt(config.vocabSize());
            }
        }
        double[][] losses = new double[2][steps];
        Backend[] backends = {cpu, gpu};
        double[] seconds = new double[2];
        for (int k = 0; k < 2; k++) {
            Backend backend = backends[k];
            LlamaModel model = new LlamaModel(backend, config);
            Initialization.initialize(model, 3407);
            Tensor m = backend.allocate(model.layout().total()), v = backend.allocate(model.layout().total());
            long start = System.nanoTime();
            for (int s = 0; s < steps; s++) {
                int[][] data = markovBatch(successors, s, b, t);
                model.zeroGradients();
                double loss = model.forwardBackward(data[0], data[1], b, t, 1f / n);
                double norm = Math.sqrt(backend.sumOfSquares(model.gradients()));
                float clip = (float) Math.min(1.0, 1.0 / (norm + 1e-6));
                backend.adamwUpdate(model.parameters(), model.gradients(), m, v, new AdamWStep(1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1, clip));
                losses[k][s] = loss / n;
            }
            seconds[k] = (System.nanoTime() - start) / 1e9;
        }
        double worstGap = 0;
        int worstStep = 0;
        for (int s = 0; s < steps; s++) {
            double gap = Math.abs(losses[1][s] - losses[0][s]) / losses[0][s];
            if (!(gap <= worstGap)) {
                worstGap = gap;
                worstStep = s + 1;
            }
        }
        StringBuilder table = new StringBuilder("  step      cpu      gpu\n");
        for (int s : new int[] {1, 2, 5, 10, 25, 50, 75, 100, 125, 150, 200, 300, 500}) {
            if (s <= steps) {
                table.append(String.format("  %4d  %7.4f  %7.4f%n", s, losses[0][s - 1], losses[1][s - 1]));
            }
        }
        if (steps % 25 != 0) {
            table.append(String.format("  %4d  %7.4f  %7.4f%n", steps, losses[0][steps - 1], losses[1][steps - 1]));
        }
        line(table.toString().stripTrailing());
        line(String.format("  time: cpu %.1f s, gpu %.1f s", seconds[0], seconds[1]));
        verdict("largest |gpu - cpu| / cpu loss (step " + worstStep + ")", worstGap, CURVE_BOUND);
        verdict("loss fell on the gpu (last / first)", losses[1][steps - 1] / losses[1][0], 0.9);
    }

    private void bench(CudaBackend gpu, LlamaConfig config, int b, int t) {
        line(String.format("bench (not a check): %s, b=%d t=%d, constant weights, step = forward + backward + AdamW", config.name(), b, t));
        TimedBackend timed = new TimedBackend(gpu);
        LlamaModel model = new LlamaModel(timed, config);
        gpu.fill(model.parameters(), 0.01f);
        Tensor m = gpu.allocate(model.layout().total()), v = gpu.allocate(model.layout().total());
        int n = b * t;
        int[][] data = batch(new SplittableRandom(5), n, config.vocabSize());
        double best = Double.MAX_VALUE;
        for (int s = 0; s < 5; s++) {
            timed.profiling = s == 4; // the last step is the per-op profile, its time not counted
            long start = System.nanoTime();
            model.zeroGradients();
            model.forwardBackward(data[0], data[1], b, t, 1f / n);
            timed.adamwUpdate(model.parameters(), model.gradients(), m, v, new AdamWStep(1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1, 1f));
            gpu.synchronize();
            double seconds = (System.nanoTime() - start) / 1e9;
            if (s < 4) {
                line(String.format("  step %d: %.3f s, %.0f tokens/s", s + 1, seconds, n / seconds));
            }
            if (s > 0 && s < 4) {
                best = Math.min(best, seconds);
            }
        }
        long[] info = gpu.driver().memInfo();
        double flops = config.trainingFlopsPerToken(t) * n / best;
        line(String.format("  best %.0f tokens/s, %.1f TFLOP/s model FLOPs; device memory in use %.1f GiB of %.1f",
                n / best, flops / 1e12, (info[1] - info[0]) / 1073741824.0, info[1] / 1073741824.0));
        line("  GPU time per op family in one step (CUDA events around each Backend call):");
        TimedBackend.report(timed.rows()).forEach(this::line);
    }
}
