package io.tinyllamaj.model.cuda;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cuda.CudaBackend;
import io.tinyllamaj.kernels.cuda.CudaDriver;
import io.tinyllamaj.model.Initialization;
import io.tinyllamaj.model.LlamaConfig;
import io.tinyllamaj.model.LlamaModel;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.IntSupplier;

/**
 * The GPU training-step benchmark behind {@code scripts/bench-gpu}: TinyLlama-1.1B on
 * {@link CudaBackend}, one training step = zero gradients, forward + backward (bf16-mixed), the
 * global gradient norm, AdamW with clipping at 1.0, as the trainer does it. Warm-up steps first,
 * then the median of the timed steps (host clock after a synchronize). Also times the attention
 * kernels alone at TinyLlama's shape with CUDA events (tensor-core and plain), and profiles one
 * step per op family. With {@code --accumulate K} a step is K micro-batches' forward and backward
 * into the same gradients, then one norm and one AdamW update (the recipe's shape: TinyLlama's run
 * accumulated 8 per GPU). Token ids and targets are drawn uniformly over the vocabulary, or with
 * {@code --tokens zipf} by Zipf's law (s = 1) as text's are: the most frequent id takes 9% of the
 * positions, as the newline takes 9-10% of the demo's samples, so one table row gathers about
 * 1,500 of a micro-batch's 16,384 gradient rows in the embedding backward, where uniform ids give
 * at most a handful. {@code --lr} sets AdamW's learning rate (default 4e-4, the PyTorch peer's):
 * the board runs at its power limit, and the same step is about 2% slower at warm-up rates such as
 * 2e-6, where the weights stay at their initialization. Writes OUT_DIR/ours.json and OUT_DIR/ours.txt.
 * Usage: {@code GpuTrainBench OUT_DIR [--batch B] [--seq T] [--accumulate K] [--warmup N] [--steps N] [--attention-batch B] [--attention-only] [--precision bf16-mixed|fp8-mixed] [--tokens uniform|zipf] [--lr LR]}
 */
public final class GpuTrainBench {

    private static final double PEAK_FLOPS = 989e12; // H100 SXM dense bf16

    private final List<String> lines = new ArrayList<>();
    private String precision = "bf16-mixed";
    private boolean zipf;
    private float lr;

    public static void main(String[] args) throws IOException {
        Path out = Path.of(args[0]);
        int batch = 8, seq = 2048, warmup = 3, steps = 8, attentionBatch = 8, accumulate = 1;
        boolean training = true, fp8 = false, zipf = false;
        float lr = 4e-4f;
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--batch" -> batch = Integer.parseInt(args[++i]);
                case "--seq" -> seq = Integer.parseInt(args[++i]);
                case "--accumulate" -> accumulate = Integer.parseInt(args[++i]);
                case "--warmup" -> warmup = Integer.parseInt(args[++i]);
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--attention-batch" -> attentionBatch = Integer.parseInt(args[++i]);
                case "--attention-only" -> training = false;
                case "--precision" -> fp8 = switch (args[++i]) {
                    case "bf16-mixed" -> false;
                    case "fp8-mixed" -> true;
                    default -> throw new IllegalArgumentException("--precision takes bf16-mixed or fp8-mixed, got " + args[i]);
                };
                case "--lr" -> lr = Float.parseFloat(args[++i]);
                case "--tokens" -> zipf = switch (args[++i]) {
                    case "uniform" -> false;
                    case "zipf" -> true;
                    default -> throw new IllegalArgumentException("--tokens takes uniform or zipf, got " + args[i]);
                };
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        GpuTrainBench bench = new GpuTrainBench();
        Files.createDirectories(out);
        CudaBackend.Options defaults = CudaBackend.Options.fromSystemProperties();
        try (CudaBackend gpu = new CudaBackend(0, new CudaBackend.Options(defaults.attention(), defaults.bf16Activations(),
                defaults.matmulTuning(), fp8 ? CudaBackend.Fp8Recipe.DEFAULT : null))) {
            bench.precision = fp8 ? "fp8-mixed" : "bf16-mixed";
            bench.zipf = zipf;
            bench.lr = lr;
            String step = training ? bench.trainingStep(gpu, LlamaConfig.preset("tinyllama-1.1b"), batch, seq, accumulate, warmup, steps)
                    : "  \"model\": \"none (attention only)\"";
            String attention = bench.attentionKernels(gpu, attentionBatch, seq, 32, 4, 64);
            String json = "{\n  \"device\": \"" + gpu.deviceDescription() + "\",\n  \"attention_kernel\": \""
                    + gpu.attentionDescription() + "\",\n  \"activations\": \""
                    + (gpu.bf16Activations() ? "bf16" : "fp32") + "\",\n" + step + ",\n" + attention + "\n}\n";
            Files.writeString(out.resolve("ours.json"), json);
        }
        Files.writeString(out.resolve("ours.txt"), String.join("\n", bench.lines) + "\n");
    }

    private void line(String s) {
        lines.add(s);
        System.out.println(s);
    }

    private String trainingStep(CudaBackend gpu, LlamaConfig config, int b, int t, int accumulate, int warmup, int steps) {
        TimedBackend timed = new TimedBackend(gpu);
        LlamaModel model = new LlamaModel(timed, config);
        Initialization.initialize(model, 3407);
        Tensor m = gpu.allocate(model.layout().total()), v = gpu.allocate(model.layout().total());
        int n = b * t;
        SplittableRandom random = new SplittableRandom(5);
        IntSupplier draw = zipf ? zipfIds(random, config.vocabSize()) : () -> random.nextInt(config.vocabSize());
        int[] tokens = new int[n], targets = new int[n];
        double[] seconds = new double[warmup + steps];
        double loss = 0;
        for (int s = 0; s < warmup + steps + 1; s++) {
            timed.profiling = s == warmup + steps; // one last step profiled per op, not counted
            gpu.synchronize();
            long start = System.nanoTime();
            model.zeroGradients();
            for (int micro = 0; micro < accumulate; micro++) {
                for (int i = 0; i < n; i++) {
                    tokens[i] = draw.getAsInt();
                    targets[i] = draw.getAsInt();
                }
                model.queueForwardBackward(tokens, targets, b, t, 1f / (n * accumulate), 0f); // as the trainer's loop
            }
            loss = model.takeLosses().getLast().crossEntropy() / n;
            double norm = Math.sqrt(timed.sumOfSquares(model.gradients()));
            float clip = (float) Math.min(1.0, 1.0 / (norm + 1e-6));
            model.adamwUpdate(0, m, v, new AdamWStep(lr, 0.9f, 0.95f, 1e-8f, 0.1f, s + 1, clip)); // as the trainer's one-rank step
            gpu.synchronize();
            if (s < seconds.length) {
                seconds[s] = (System.nanoTime() - start) / 1e9;
            }
        }
        double[] timedSteps = Arrays.copyOfRange(seconds, warmup, seconds.length);
        Arrays.sort(timedSteps);
        int mid = timedSteps.length / 2; // the median as the peer's statistics.median takes it
        double median = timedSteps.length % 2 == 1 ? timedSteps[mid] : (timedSteps[mid - 1] + timedSteps[mid]) / 2;
        long[] info = gpu.driver().memInfo();
        double usedGib = (info[1] - info[0]) / 1073741824.0;
        double flopsPerToken = config.trainingFlopsPerToken(t);
        double tokensPerSecond = (double) n * accumulate / median;
        double mfu = flopsPerToken * tokensPerSecond / PEAK_FLOPS;
        line(String.format(Locale.ROOT, "training step: %s, b=%d t=%d, %d micro-batch%s an optimizer step, %s, AdamW (lr %.3g) + clipping, %s token ids; %d warm-up, median of %d steps",
                config.name(), b, t, accumulate, accumulate == 1 ? "" : "es", precision, lr, zipf ? "Zipf-distributed" : "uniform", warmup, steps));
        line(String.format(Locale.ROOT, "  step times (s): %s", Arrays.toString(Arrays.stream(seconds).map(x -> Math.round(x * 1e4) / 1e4).toArray())));
        line(String.format(Locale.ROOT, "  median %.1f ms, %.0f tokens/s, MFU %.1f%% (%.3g FLOPs/token over %.0f TFLOP/s), device memory in use %.1f GiB, last loss %.4f",
                median * 1e3, tokensPerSecond, 100 * mfu, flopsPerToken, PEAK_FLOPS / 1e12, usedGib, loss));
        line("  GPU time per op family in one step (CUDA events around each Backend call):");
        List<TimedBackend.Row> ops = timed.rows();
        TimedBackend.report(ops).forEach(this::line);
        StringBuilder opsJson = new StringBuilder(); // per op and shape: what a cost model of other clusters starts from
        for (TimedBackend.Row op : ops) {
            opsJson.append(opsJson.isEmpty() ? "" : ",\n").append(String.format(Locale.ROOT, "    \"%s\": {\"calls\": %d, \"ms\": %.3f}",
                    op.key().replace("\"", "'"), op.calls(), op.ms()));
        }
        return String.format(Locale.ROOT, "  \"model\": \"%s\",\n  \"precision\": \"%s\",\n  \"tokens\": \"%s\",\n  \"lr\": %.3g,\n  \"micro_batch\": %d,\n  \"accumulate\": %d,\n  \"seq_len\": %d,\n  \"step_ms\": %.2f,\n"
                        + "  \"tokens_per_s\": %.0f,\n  \"flops_per_token\": %.4g,\n  \"mfu\": %.4f,\n  \"peak_mem_gib\": %.2f,\n"
                        + "  \"ops_ms\": {\n%s\n  }",
                config.name(), precision, zipf ? "zipf" : "uniform", lr, b, accumulate, t, median * 1e3, tokensPerSecond, flopsPerToken, mfu, usedGib, opsJson);
    }

    /** Ids 0 .. vocab - 1 with probability proportional to 1 / (id + 1): Zipf's law, s = 1. */
    static IntSupplier zipfIds(SplittableRandom random, int vocab) {
        double[] cumulative = new double[vocab];
        double sum = 0;
        for (int k = 0; k < vocab; k++) {
            sum += 1.0 / (k + 1);
            cumulative[k] = sum;
        }
        double total = sum;
        return () -> {
            int at = Arrays.binarySearch(cumulative, random.nextDouble() * total);
            return Math.min(at >= 0 ? at : -at - 1, vocab - 1);
        };
    }

    /**
     * Forward and backward of one attention call at TinyLlama's shape, median of CUDA-event
     * timings, for each kernel choice: "mma_bf16" (MMA_SM80), "wgmma_bf16" (WGMMA_SM90) and "cudnn_bf16" (CUDNN) over bf16
     * tensors as training stores them, "plain" over fp32 tensors.
     */
    private String attentionKernels(CudaBackend gpu, int b, int t, int nh, int nkv, int hs) {
        long width = (long) (nh + 2 * nkv) * hs;
        // causal: half of the t x t scores; forward 2 products, backward 5 (FlashAttention's count)
        double forwardFlops = 4.0 * b * nh * (double) t * t * hs / 2;
        line(String.format(Locale.ROOT, "attention kernels: b=%d t=%d nh=%d nkv=%d hs=%d causal (median of CUDA-event timings)", b, t, nh, nkv, hs));
        StringBuilder json = new StringBuilder("  \"attention\": {\"shape\": \"b=" + b + " t=" + t + " nh=" + nh + " nkv=" + nkv + " hs=" + hs + "\"");
        CudaBackend.Attention was = gpu.attention();
        record Variant(String name, CudaBackend.Attention kind, boolean bf16, int reps) {
        }
        for (Variant v : List.of(new Variant("mma_bf16", CudaBackend.Attention.MMA_SM80, true, 20),
                new Variant("wgmma_bf16", CudaBackend.Attention.WGMMA_SM90, true, 20),
                new Variant("cudnn_bf16", CudaBackend.Attention.CUDNN, true, 20),
                new Variant("plain", CudaBackend.Attention.PLAIN, false, 3))) {
            try {
                gpu.useAttention(v.kind);
                Tensor qkv = random(gpu, b * t * width, 1, v.bf16), dout = random(gpu, (long) b * t * nh * hs, 1, v.bf16);
                Tensor out = v.bf16 ? gpu.allocateActivation((long) b * t * nh * hs) : gpu.allocate((long) b * t * nh * hs);
                Tensor dqkv = v.bf16 ? gpu.allocateActivation(b * t * width) : gpu.allocate(b * t * width);
                Tensor lse = gpu.allocate((long) b * nh * t);
                double fwd = medianMillis(gpu, v.reps, () -> { }, () -> gpu.attentionForward(out, lse, qkv, b, t, t, nh, nkv, hs));
                Runnable backward = () -> gpu.attentionBackward(dqkv, dout, qkv, out, lse, b, t, nh, nkv, hs);
                double bwd = medianMillis(gpu, v.reps, () -> { }, backward);
                line(String.format(Locale.ROOT, "  %-9s forward %8.3f ms (%5.0f TFLOP/s)   backward %8.3f ms (%5.0f TFLOP/s)",
                        v.name, fwd, forwardFlops / fwd / 1e9, bwd, 2.5 * forwardFlops / bwd / 1e9));
                json.append(String.format(Locale.ROOT, ", \"%s_fwd_ms\": %.3f, \"%s_bwd_ms\": %.3f", v.name, fwd, v.name, bwd));
                if (v.kind == CudaBackend.Attention.WGMMA_SM90) {
                    // as in the step, where the backward's inputs were written long before: L2 (50 MB) overwritten first
                    Tensor flush = gpu.allocate(64L << 20);
                    double cold = medianMillis(gpu, v.reps, () -> gpu.fill(flush, 0f), backward);
                    line(String.format(Locale.ROOT, "  %-9s backward after 256 MB written elsewhere (L2 cold) %8.3f ms", v.name, cold));
                    json.append(String.format(Locale.ROOT, ", \"%s_bwd_cold_ms\": %.3f", v.name, cold));
                }
            } catch (RuntimeException e) {
                line("  " + v.name + " failed: " + e.getMessage());
            }
        }
        gpu.useAttention(was);
        return json.append("}").toString();
    }

    /** The median of reps CUDA-event timings of work, each after before (not timed). */
    private static double medianMillis(CudaBackend gpu, int reps, Runnable before, Runnable work) {
        CudaDriver driver = gpu.driver();
        work.run();
        gpu.synchronize();
        double[] ms = new double[reps];
        MemorySegment start = driver.eventCreate(), end = driver.eventCreate();
        for (int r = 0; r < reps; r++) {
            before.run();
            driver.eventRecord(start, gpu.stream());
            work.run();
            driver.eventRecord(end, gpu.stream());
            ms[r] = driver.eventElapsedMillis(start, end);
        }
        driver.eventDestroy(start);
        driver.eventDestroy(end);
        Arrays.sort(ms);
        return ms[reps / 2];
    }

    private static Tensor random(CudaBackend gpu, long n, double std, boolean bf16) {
        SplittableRandom random = new SplittableRandom(n);
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) ((random.nextDouble() * 2 - 1) * std * 1.7320508);
        }
        Tensor t = bf16 ? gpu.allocateActivation(n) : gpu.allocate(n);
        gpu.upload(t, v, 0, v.length);
        return t;
    }
}
