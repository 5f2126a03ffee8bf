package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Projection;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cpu.CpuBackend;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The GPU correctness harness, op by op: every {@link CudaBackend} op, forward and backward,
 * against {@link CpuBackend} on the same random inputs, at several shapes (odd sizes, several
 * head sizes, a KV-cache decode, a TinyLlama-sized attention). Outputs that an op overwrites
 * start as NaN on both backends, so an element the kernel skips fails the check; outputs it
 * accumulates into start from the same random values. Error is ||gpu - cpu|| / ||cpu||; a NaN
 * anywhere fails. Bounds: 1e-2 where bf16 operands enter (matmul, attention), 1e-5 for the
 * fp32 kernels. The ops over activations run twice: with fp32 storage and with bf16 storage
 * ({@link CudaBackend#allocateActivation}; marked "bf16"), the inputs then rounded to bf16 on the
 * host so both backends see the same values, and every bf16 output bounded at 1e-2.
 * Prints a table and writes it to {@code OUT_DIR/gpu-ops.txt} (argument 1).
 * Run on a GPU host: {@code scripts/gpu-check}.
 */
public final class CudaOpCheck {

    static final double BF16 = 1e-2;
    static final double FP32 = 1e-5;

    private final CpuBackend cpu = new CpuBackend();
    private final CudaBackend gpu;
    private final SplittableRandom random = new SplittableRandom(3407);
    private final List<String> rows = new ArrayList<>();
    private int failures;

    /** One value on both backends. */
    private record Pair(Tensor cpu, Tensor gpu, long length) {
    }

    private CudaOpCheck(CudaBackend gpu) {
        this.gpu = gpu;
    }

    public static void main(String[] args) throws IOException {
        Path out = Path.of(args.length > 0 ? args[0] : ".");
        try (CudaBackend gpu = CudaBackend.create()) {
            CudaOpCheck check = new CudaOpCheck(gpu);
            check.rows.add("device: " + gpu.deviceDescription());
            check.rows.add(String.format("%-22s %-34s %-8s %11s %8s %s", "op", "shape", "output", "rel err", "bound", "result"));
            long start = System.nanoTime();
            check.runAll();
            check.rows.add(String.format("%d checks, %d failed, %.1f s", check.rows.size() - 2, check.failures,
                    (System.nanoTime() - start) / 1e9));
            String table = String.join("\n", check.rows) + "\n";
            System.out.print(table);
            Files.createDirectories(out);
            Files.writeString(out.resolve("gpu-ops.txt"), table);
            if (check.failures > 0) {
                System.exit(1);
            }
        }
    }

    private void runAll() {
        guarded(() -> elementwise(100_003));
        guarded(() -> bf16Storage(100_003));
        for (boolean act : new boolean[] {false, true}) {
            runActivationOps(act);
        }
        for (int[] s : new int[][] {{2, 2048, 32, 4}, {1, 1000, 32, 4}, {2, 333, 8, 1}}) {
            guarded(() -> against(s[0], s[1], s[2], s[3], 64, true, CudaBackend.Attention.MMA_SM80, CudaBackend.Attention.PLAIN,
                    "mma vs plain bf16"));
            guarded(() -> against(s[0], s[1], s[2], s[3], 64, true, CudaBackend.Attention.WGMMA_SM90, CudaBackend.Attention.MMA_SM80,
                    "wgmma vs mma bf16"));
            guarded(() -> against(s[0], s[1], s[2], s[3], 64, true, CudaBackend.Attention.CUDNN, CudaBackend.Attention.WGMMA_SM90,
                    "cudnn vs wgmma bf16"));
        }
        guarded(() -> embedding(300, 100, 64));
        guarded(() -> embedding(2048, 32000, 128));
        guarded(() -> embedding(4096, 32000, 160)); // about 80 rows a token, as text's frequent ids gather them
        guarded(() -> embedding(17, 50, 30)); // c % 4 != 0: one value per thread step
        for (int[] s : new int[][] {{64, 32000}, {37, 1000}, {13, 1001}}) { // v = 1001: one value per thread step
            for (boolean act : new boolean[] {false, true}) {
                guarded(() -> crossEntropy(s[0], s[1], act));
            }
        }
        guarded(() -> matmulOperand(64, 256, 1000));
        guarded(() -> sumOfSquares(1_000_003));
        guarded(() -> adamw(100_003));
        guarded(() -> repeatability(8192, 2048));
        for (CudaBackend.Attention kind : List.of(CudaBackend.Attention.CUDNN, CudaBackend.Attention.WGMMA_SM90)) {
            guarded(() -> attentionRepeatability(8, 2048, 32, 4, kind));
        }
        guarded(() -> releaseAndReuse(100_003));
        try (CudaBackend fp8 = new CudaBackend(0, new CudaBackend.Options(CudaBackend.Attention.AUTO, true, false,
                CudaBackend.Fp8Recipe.DEFAULT))) {
            // {80, 144, 208}: edge tiles of the cast; {33, 70, 130}: no FP8 form, so bf16
            for (int[] s : new int[][] {{64, 128, 96}, {80, 144, 208}, {256, 2048, 1024}, {33, 70, 130}}) {
                guarded(() -> fp8Matmul(fp8, Fp8Reference.Format.E5M2, s[0], s[1], s[2]));
            }
            for (int[] s : new int[][] {{256, 352, 144}, {1024, 1408, 512}}) { // c = 144: the norm's looped form, 512 its row in registers
                guarded(() -> fp8AmaxFromProducers(fp8, s[0], s[1], s[2]));
            }
            for (String largest : List.of("q", "k", "v")) {
                guarded(() -> fp8AmaxFromAttentionBackward(fp8, "wgmma", 2, 256, 144, largest));
            }
            guarded(() -> fp8WeightKept(fp8, 256, 512, 768));
        }
        try (CudaBackend fp8 = new CudaBackend(0, new CudaBackend.Options(CudaBackend.Attention.MMA_SM80, true, false,
                CudaBackend.Fp8Recipe.DEFAULT))) {
            for (String largest : List.of("q", "k", "v")) {
                guarded(() -> fp8AmaxFromAttentionBackward(fp8, "mma", 2, 256, 144, largest));
            }
        }
        // train.fp8_gradients e4m3: the output gradients in e4m3 as well
        try (CudaBackend fp8 = new CudaBackend(0, new CudaBackend.Options(CudaBackend.Attention.AUTO, true, false,
                new CudaBackend.Fp8Recipe(CudaBackend.Fp8Recipe.DEFAULT.projections(), true)))) {
            for (int[] s : new int[][] {{64, 128, 96}, {80, 144, 208}, {256, 2048, 1024}}) {
                guarded(() -> fp8Matmul(fp8, Fp8Reference.Format.E4M3, s[0], s[1], s[2]));
            }
        }
    }

    /** The ops whose activations may be stored in bf16, with fp32 (act false) or bf16 storage. */
    private void runActivationOps(boolean act) {
        for (int[] s : new int[][] {{64, 128, 96}, {33, 70, 130}, {256, 2048, 2816}, {128, 2048, 3072}}) {
            guarded(() -> matmul(s[0], s[1], s[2], act));
        }
        // c = 130 and 5000 take the one-value-per-thread backward, the others the 16-byte one
        for (int[] s : new int[][] {{64, 64}, {17, 100}, {300, 2048}, {5, 640}, {9, 130}, {40, 5000}}) {
            guarded(() -> rmsnorm(s[0], s[1], act));
            guarded(() -> residualRmsnorm(s[0], s[1], act));
        }
        for (int[] s : new int[][] {{2, 16, 4, 2, 64, 0}, {1, 37, 8, 2, 32, 5}, {2, 24, 4, 4, 128, 0}, {1, 9, 2, 1, 6, 3}}) {
            guarded(() -> rope(s[0], s[1], s[2], s[3], s[4], s[5], act));
        }
        for (int[] s : new int[][] {{2, 64, 4, 2, 64}, {1, 100, 8, 2, 32}, {1, 130, 4, 1, 128}, {2, 70, 4, 2, 16},
                {2, 100, 8, 2, 64}, {1, 200, 4, 4, 64}, {1, 130, 16, 2, 64}, {1, 1024, 32, 4, 64}, {2, 300, 8, 1, 64}}) {
            // the tensor-core kernels cover head size 64 over bf16 storage; other shapes run the plain ones whatever the choice
            List<CudaBackend.Attention> kinds = new ArrayList<>(s[4] != 64 || !act ? List.of(CudaBackend.Attention.PLAIN)
                    : List.of(CudaBackend.Attention.WGMMA_SM90, CudaBackend.Attention.MMA_SM80, CudaBackend.Attention.PLAIN));
            if (act && CudnnAttention.covers(s[4], s[2], s[3])) { // cuDNN also covers head sizes 16, 32 and 128
                kinds.add(CudaBackend.Attention.CUDNN);
                kinds.add(CudaBackend.Attention.AUTO);
            }
            for (CudaBackend.Attention kind : kinds) {
                guarded(() -> attention(s[0], s[1], s[2], s[3], s[4], kind, act));
            }
        }
        guarded(() -> attentionDecode(1, 5, 40, 4, 2, 64, act));
        for (int[] s : new int[][] {{64, 160}, {1000, 1408}, {7, 13}}) {
            guarded(() -> swiglu(s[0], s[1], act));
        }
    }

    /** An op that throws is one failed row; the rest still run. */
    private void guarded(Runnable check) {
        try {
            check.run();
        } catch (RuntimeException e) {
            failures++;
            rows.add("ERROR " + e);
            e.printStackTrace();
        }
    }

    // ---- helpers ----

    private Pair random(long n, double std) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (gaussian() * std);
        }
        return of(v);
    }

    private Pair of(float[] v) {
        Tensor c = cpu.allocate(v.length), g = gpu.allocate(v.length);
        cpu.upload(c, v, 0, v.length);
        gpu.upload(g, v, 0, v.length);
        return new Pair(c, g, v.length);
    }

    /** Random values on both backends; for an activation (act), rounded to bf16 first and stored as the GPU stores activations. */
    private Pair random(long n, double std, boolean act) {
        if (!act) {
            return random(n, std);
        }
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = roundBf16((float) (gaussian() * std));
        }
        Tensor c = cpu.allocate(v.length), g = gpu.allocateActivation(v.length);
        cpu.upload(c, v, 0, v.length);
        gpu.upload(g, v, 0, v.length);
        return new Pair(c, g, v.length);
    }

    static float roundBf16(float x) {
        return Float.intBitsToFloat(CudaBackend.toBf16(x) << 16);
    }

    private Pair poisoned(long n, boolean act) {
        if (!act) {
            return poisoned(n);
        }
        Tensor c = cpu.allocate(n), g = gpu.allocateActivation(n);
        cpu.fill(c, Float.NaN);
        gpu.fill(g, Float.NaN);
        return new Pair(c, g, n);
    }

    private static String tag(String op, boolean act) {
        return act ? op + " bf16" : op;
    }

    private Pair poisoned(long n) {
        Tensor c = cpu.allocate(n), g = gpu.allocate(n);
        cpu.fill(c, Float.NaN);
        gpu.fill(g, Float.NaN);
        return new Pair(c, g, n);
    }

    private double gaussian() {
        double u1 = random.nextDouble(), u2 = random.nextDouble();
        return Math.sqrt(-2.0 * Math.log1p(-u1)) * Math.cos(2 * Math.PI * u2);
    }

    private int[] tokens(int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = random.nextInt(vocab);
        }
        return t;
    }

    /** ||got - ref|| / ||ref|| (the absolute norm when ref is all zero); NaN when either holds a NaN or got holds an infinity. */
    public static double relativeError(float[] got, float[] ref) {
        double diff = 0, norm = 0;
        for (int i = 0; i < ref.length; i++) {
            if (Float.isNaN(got[i]) || Float.isNaN(ref[i]) || Float.isInfinite(got[i])) {
                return Double.NaN;
            }
            double d = (double) got[i] - ref[i];
            diff += d * d;
            norm += (double) ref[i] * ref[i];
        }
        return norm == 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
    }

    private void compare(String op, String shape, String output, Pair p, double bound) {
        report(op, shape, output, relativeError(gpu.download(p.gpu), cpu.download(p.cpu)), bound);
    }

    private void report(String op, String shape, String output, double error, double bound) {
        boolean pass = error <= bound; // NaN fails
        if (!pass) {
            failures++;
        }
        rows.add(String.format("%-22s %-34s %-8s %11.3e %8.0e %s", op, shape, output, error, bound, pass ? "ok" : "FAIL"));
    }

    private static String shape(String names, int... values) {
        String[] n = names.split(",");
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < values.length; i++) {
            s.append(i == 0 ? "" : " ").append(n[i]).append('=').append(values[i]);
        }
        return s.toString();
    }

    private void both(java.util.function.Consumer<Backend> op) {
        op.accept(cpu);
        op.accept(gpu);
    }

    // ---- ops ----

    private void elementwise(int n) {
        Pair a = random(n, 1), b = random(n, 1), c = poisoned(n);
        both(be -> be.accumulate(be == cpu ? a.cpu : a.gpu, be == cpu ? b.cpu : b.gpu));
        compare("accumulate", "n=" + n, "dst", a, FP32);
        Pair bf16Src = random(n, 1, true); // a sub-layer output stored in bf16, added to the fp32 residual
        both(be -> be.accumulate(be == cpu ? a.cpu : a.gpu, be == cpu ? bf16Src.cpu : bf16Src.gpu));
        compare("accumulate (bf16 src)", "n=" + n, "dst", a, 0); // one fp32 add of the same values
        both(be -> be.scale(be == cpu ? a.cpu : a.gpu, 0.37f));
        compare("scale", "n=" + n, "t", a, FP32);
        both(be -> be.copy(be == cpu ? c.cpu.slice(1, n - 2) : c.gpu.slice(1, n - 2), be == cpu ? a.cpu.slice(2, n - 2) : a.gpu.slice(2, n - 2)));
        both(be -> be.fill(be == cpu ? c.cpu.slice(0, 1) : c.gpu.slice(0, 1), 2.5f));
        both(be -> be.fill(be == cpu ? c.cpu.slice(n - 1, 1) : c.gpu.slice(n - 1, 1), -1f));
        compare("copy+fill (slices)", "n=" + n, "dst", c, 0);
    }

    /** With act, the activations (inp, out, dout, dinp) are bf16 tensors; weights and dweight stay fp32. */
    private void matmul(int n, int c, int oc, boolean act) {
        String s = shape("n,c,oc", n, c, oc);
        Pair inp = random((long) n * c, 1, act), w = random((long) oc * c, 0.05), out = poisoned((long) n * oc, act);
        both(be -> be.matmulForward(be == cpu ? out.cpu : out.gpu, be == cpu ? inp.cpu : inp.gpu, be == cpu ? w.cpu : w.gpu, n, c, oc));
        compare(tag("matmul fwd", act), s, "out", out, BF16);
        Pair dout = random((long) n * oc, 1, act), dinp = poisoned((long) n * c, act), dw = random((long) oc * c, 1);
        both(be -> be.matmulBackward(be == cpu ? dinp.cpu : dinp.gpu, be == cpu ? dw.cpu : dw.gpu, be == cpu ? dout.cpu : dout.gpu,
                be == cpu ? inp.cpu : inp.gpu, be == cpu ? w.cpu : w.gpu, n, c, oc));
        compare(tag("matmul bwd", act), s, "dinp", dinp, BF16);
        compare(tag("matmul bwd", act), s, "dweight", dw, BF16);
        // a weight slice at an odd offset of a larger buffer, as a flat parameter buffer hands out
        Pair flat = random((long) oc * c + 3, 0.05), dflat = random((long) oc * c + 3, 1);
        both(be -> be.matmulBackward(null, be == cpu ? dflat.cpu.slice(3, (long) oc * c) : dflat.gpu.slice(3, (long) oc * c),
                be == cpu ? dout.cpu : dout.gpu, be == cpu ? inp.cpu : inp.gpu,
                be == cpu ? flat.cpu.slice(3, (long) oc * c) : flat.gpu.slice(3, (long) oc * c), n, c, oc));
        compare(tag("matmul bwd (slice)", act), s, "dweight", dflat, BF16);
        // the first write of a step overwrites (cuBLASLt beta 0): a poisoned dweight must not leak
        Pair fresh = poisoned((long) oc * c);
        both(be -> be.matmulBackward(null, be == cpu ? fresh.cpu : fresh.gpu, be == cpu ? dout.cpu : dout.gpu,
                be == cpu ? inp.cpu : inp.gpu, be == cpu ? w.cpu : w.gpu, n, c, oc, false));
        compare(tag("matmul bwd (overwrite)", act), s, "dweight", fresh, BF16);
    }

    /**
     * The transformer blocks' matmuls of a backend with FP8 matmuls (fp8-mixed) against a float64
     * reference over the same quantized operands ({@link Fp8Reference}: per-tensor current
     * scaling, e4m3 input and weight, the output gradient in {@code gradient}, the backend's
     * recipe's format): forward, input gradient, weight
     * gradient added to what was there. Where cuBLASLt's FP8 form does not take the shape, the
     * reference is the bf16 product. The "vs bf16" rows show that FP8 ran: their error against the
     * unquantized product is FP8's rounding (a few percent), not bf16's.
     */
    private void fp8Matmul(CudaBackend fp8, Fp8Reference.Format gradient, int n, int c, int oc) {
        String s = shape("n,c,oc", n, c, oc);
        boolean fits = Matmul.fp8Fits(n, c, oc);
        float[] x = bf16Values((long) n * c, 1), w = bf16Values((long) oc * c, 0.05), dy = bf16Values((long) n * oc, 1e-3),
                dw0 = values((long) oc * c, 1e-3);
        Tensor xg = fp8.allocateActivation(x.length), wg = fp8.allocate(w.length), dyg = fp8.allocateActivation(dy.length),
                dwg = fp8.allocate(dw0.length), out = fp8.allocateActivation((long) n * oc), dx = fp8.allocateActivation(x.length);
        fp8.upload(xg, x, 0, x.length);
        fp8.upload(wg, w, 0, w.length);
        fp8.upload(dyg, dy, 0, dy.length);
        fp8.upload(dwg, dw0, 0, dw0.length);
        fp8.fill(out, Float.NaN);
        fp8.fill(dx, Float.NaN);
        fp8.blockMatmulForward(Projection.GATE_UP, 0, out, xg, wg, n, c, oc);
        fp8.blockMatmulBackward(Projection.GATE_UP, 0, dx, dwg, dyg, xg, wg, n, c, oc, true); // the forward's input amax reused
        float[] wt = Fp8Reference.transpose(w, oc, c), xt = Fp8Reference.transpose(x, n, c), dyt = Fp8Reference.transpose(dy, n, oc);
        double[][] refs = new double[3][], plain = new double[3][];
        for (boolean quantized : new boolean[] {true, false}) {
            boolean q = quantized && fits;
            float sx = q ? Fp8Reference.scale(x, Fp8Reference.Format.E4M3) : 1, sw = q ? Fp8Reference.scale(w, Fp8Reference.Format.E4M3) : 1,
                    sdy = q ? Fp8Reference.scale(dy, gradient) : 1;
            double[][] r = quantized ? refs : plain;
            r[0] = Fp8Reference.matmul(operand(x, Fp8Reference.Format.E4M3, sx, q), sx, operand(w, Fp8Reference.Format.E4M3, sw, q), sw,
                    n, c, oc);
            r[1] = Fp8Reference.matmul(operand(dy, gradient, sdy, q), sdy, operand(wt, Fp8Reference.Format.E4M3, sw, q),
                    sw, n, oc, c);
            r[2] = Fp8Reference.matmul(operand(dyt, gradient, sdy, q), sdy, operand(xt, Fp8Reference.Format.E4M3, sx, q),
                    sx, oc, n, c);
            for (int i = 0; i < dw0.length; i++) {
                r[2][i] += dw0[i];
            }
        }
        float[][] got = {fp8.download(out), fp8.download(dx), fp8.download(dwg)};
        String[] names = {"out", "dinp", "dweight"};
        String op = (fits ? "fp8 matmul" : "fp8 matmul (bf16)") + (gradient == Fp8Reference.Format.E4M3 ? " e4m3 grad" : "");
        for (int k = 0; k < 3; k++) {
            // dweight: the update alone (dw0 taken out), so that what was there does not hide its error
            double[] ref = refs[k], base = plain[k];
            float[] g = got[k];
            if (k == 2) {
                ref = ref.clone();
                base = base.clone();
                g = g.clone();
                for (int i = 0; i < dw0.length; i++) {
                    ref[i] -= dw0[i];
                    base[i] -= dw0[i];
                    g[i] -= dw0[i];
                }
            }
            report(op, s, names[k], relativeError(g, ref), k == 2 ? 2e-3 : BF16);
            if (fits) {
                double vsBf16 = relativeError(g, base);
                report("fp8 matmul vs bf16", s, names[k], vsBf16 > 5e-3 ? vsBf16 : Double.NaN, 0.2); // NaN: too close to bf16 for FP8
            }
        }
        // the first write of a step overwrites (beta 0), with no input gradient asked for
        Tensor fresh = fp8.allocate(dw0.length);
        fp8.fill(fresh, Float.NaN);
        fp8.blockMatmulBackward(Projection.GATE_UP, 0, null, fresh, dyg, xg, wg, n, c, oc, false);
        double[] update = refs[2].clone();
        for (int i = 0; i < dw0.length; i++) {
            update[i] -= dw0[i];
        }
        float[] reused = fp8.download(fresh);
        report(op + " (overwrite)", s, "dweight", relativeError(reused, update), 2e-3);
        // a gradient 4 bytes past 16-byte alignment (a slice of a flat buffer): cuBLASLt's FP8 matmul
        // cannot write there, so the product goes through scratch and is added
        Tensor oddFlat = fp8.allocate(dw0.length + 1);
        Tensor odd = oddFlat.slice(1, dw0.length);
        fp8.upload(odd, dw0, 0, dw0.length);
        fp8.blockMatmulBackward(Projection.GATE_UP, 0, null, odd, dyg, xg, wg, n, c, oc, true);
        float[] oddUpdate = fp8.download(odd);
        for (int i = 0; i < dw0.length; i++) {
            oddUpdate[i] -= dw0[i];
        }
        report(op + " (unaligned, added to)", s, "dweight", relativeError(oddUpdate, update), 2e-3);
        fp8.release(oddFlat);
        // a layer whose forward never ran measures its input's amax itself: the same bits as the reused one
        fp8.fill(fresh, Float.NaN);
        fp8.blockMatmulBackward(Projection.GATE_UP, 1, null, fresh, dyg, xg, wg, n, c, oc, false);
        report(op + " (amax measured)", s, "dweight", differing(fp8.download(fresh), reused), 0);
        // the attention output projection stays bf16 in fp8-mixed: the bits of the plain matmul
        Tensor plainOut = fp8.allocateActivation((long) n * oc);
        fp8.blockMatmulForward(Projection.ATTENTION_OUTPUT, 0, out, xg, wg, n, c, oc);
        fp8.matmulForward(plainOut, xg, wg, n, c, oc);
        report("fp8-mixed attn out", s, "out", differing(fp8.download(out), fp8.download(plainOut)), 0);
        if (fits) {
            // the input the forward kept: the backward gives the same bits without reading inp
            fp8.blockMatmulForward(Projection.GATE_UP, 2, out, xg, wg, n, c, oc);
            fp8.fill(xg, Float.NaN);
            fp8.fill(fresh, Float.NaN);
            fp8.blockMatmulBackward(Projection.GATE_UP, 2, null, fresh, dyg, xg, wg, n, c, oc, false);
            report(op + " (kept input)", s, "dweight", differing(fp8.download(fresh), reused), 0);
            // a bf16 weight (as training passes them): the input gradient from the kept transposed weight, against a fresh cast
            Tensor wb = fp8.allocateActivation(w.length), dxKept = fp8.allocateActivation(x.length), dxCast = fp8.allocateActivation(x.length);
            fp8.upload(wb, w, 0, w.length); // bf16 values already: exact
            fp8.upload(xg, x, 0, x.length);
            fp8.blockMatmulForward(Projection.GATE_UP, 3, out, xg, wb, n, c, oc);
            fp8.blockMatmulBackward(Projection.GATE_UP, 3, dxKept, fresh, dyg, xg, wb, n, c, oc, false);
            fp8.blockMatmulBackward(Projection.GATE_UP, 4, dxCast, fresh, dyg, xg, wb, n, c, oc, false);
            report(op + " (kept weight)", s, "dinp", differing(fp8.download(dxKept), fp8.download(dxCast)), 0);
            for (Tensor t : new Tensor[] {wb, dxKept, dxCast}) {
                fp8.release(t);
            }
        }
        for (Tensor t : new Tensor[] {xg, wg, dyg, dwg, out, dx, fresh, plainOut}) {
            fp8.release(t);
        }
    }

    /**
     * The kernels measuring the amax of what they write for the FP8 matmul that reads it next
     * (RMSNorm: the q/k/v and gate/up inputs, and in its backward the down projection's output
     * gradient; SwiGLU: the down projection's input and the gate/up projection's output gradient;
     * RoPE's backward: the q/k/v projection's output gradient, its v heads read, not rotated):
     * the matmuls give the bits they give when they measure the amax themselves (a layer whose
     * producer did not).
     */
    private void fp8AmaxFromProducers(CudaBackend fp8, int n, int hidden, int c) {
        String s = shape("n,hidden,c", n, hidden, c);
        float[] h = bf16Values((long) n * 2 * hidden, 1), wd = bf16Values((long) c * hidden, 0.05), wgu = bf16Values(2L * hidden * c, 0.05),
                x = bf16Values((long) n * c, 1), dy = bf16Values((long) n * hidden, 1e-3);
        Tensor hg = fp8.allocateActivation(h.length), wdg = fp8.allocateActivation(wd.length), wgug = fp8.allocateActivation(wgu.length),
                xg = fp8.allocateActivation(x.length), dyg = fp8.allocateActivation(dy.length);
        fp8.upload(hg, h, 0, h.length);
        fp8.upload(wdg, wd, 0, wd.length);
        fp8.upload(wgug, wgu, 0, wgu.length);
        fp8.upload(xg, x, 0, x.length);
        fp8.upload(dyg, dy, 0, dy.length);
        float[] res = values((long) n * c, 1), nw = values(c, 0.3), delta = bf16Values((long) n * c, 1);
        // q/k/v of 4 query heads and 2 KV heads of size 32 (256 wide), rows of 256 positions; the v heads' gradient is the largest
        float[] dqkv = bf16Values(256L * n, 1e-3), wq = bf16Values(256L * c, 0.05);
        for (int row = 0; row < n; row++) {
            dqkv[row * 256 + 200] = roundBf16(5e-3f * (1 + row % 3));
        }
        Tensor wqg = fp8.allocateActivation(wq.length);
        fp8.upload(wqg, wq, 0, wq.length);
        Tensor resg = fp8.allocate(res.length), nwg = fp8.allocate(nw.length), deltag = fp8.allocateActivation(delta.length);
        fp8.upload(resg, res, 0, res.length);
        fp8.upload(nwg, nw, 0, nw.length);
        fp8.upload(deltag, delta, 0, delta.length);
        float[][] out = new float[2][], dx = new float[2][], dw = new float[2][], normed = new float[2][], residualNormed = new float[2][],
                normDx = new float[2][], normDw = new float[2][], ropeDx = new float[2][], ropeDw = new float[2][];
        List<Tensor> made = new ArrayList<>(List.of(hg, wdg, wgug, xg, dyg, resg, nwg, deltag, wqg));
        for (int k = 0; k < 2; k++) {
            boolean fromProducer = k == 0;
            int layer = 10 + k; // layers no other row uses: no forward measured before
            Tensor sw = fp8.allocateActivation((long) n * hidden), o = fp8.allocateActivation((long) n * c),
                    dh = fp8.allocateActivation(h.length), dxg = fp8.allocateActivation(x.length), dwg = fp8.allocate(wgu.length);
            Tensor norm = fp8.allocateActivation((long) n * c), rstd = fp8.allocate(n), r2 = fp8.allocate(res.length),
                    proj = fp8.allocateActivation(2L * n * hidden);
            made.addAll(List.of(sw, o, dh, dxg, dwg, norm, rstd, r2, proj));
            if (fromProducer) {
                fp8.rmsnormForward(norm, rstd, resg, nwg, n, c, 1e-5f, Projection.QKV, layer);
            } else {
                fp8.rmsnormForward(norm, rstd, resg, nwg, n, c, 1e-5f);
            }
            fp8.blockMatmulForward(Projection.QKV, layer, proj, norm, wgug, n, c, 2 * hidden);
            normed[k] = fp8.download(proj);
            if (fromProducer) {
                fp8.residualRmsnormForward(r2, norm, rstd, resg, deltag, nwg, n, c, 1e-5f, Projection.GATE_UP, layer);
            } else {
                fp8.residualRmsnormForward(r2, norm, rstd, resg, deltag, nwg, n, c, 1e-5f);
            }
            fp8.blockMatmulForward(Projection.GATE_UP, layer, proj, norm, wgug, n, c, 2 * hidden);
            residualNormed[k] = fp8.download(proj);
            if (fromProducer) {
                fp8.swigluForward(sw, hg, n, hidden, Projection.DOWN, layer);
            } else {
                fp8.swigluForward(sw, hg, n, hidden);
            }
            fp8.blockMatmulForward(Projection.DOWN, layer, o, sw, wdg, n, hidden, c);
            if (fromProducer) {
                fp8.swigluBackward(dh, dyg, hg, n, hidden, Projection.GATE_UP, layer);
            } else {
                fp8.swigluBackward(dh, dyg, hg, n, hidden);
            }
            fp8.blockMatmulBackward(Projection.GATE_UP, layer, dxg, dwg, dh, xg, wgug, n, c, 2 * hidden, false);
            out[k] = fp8.download(o);
            dx[k] = fp8.download(dxg);
            dw[k] = fp8.download(dwg);
            // the norm's backward writes the residual gradient's bf16 copy: the down projection's output gradient
            Tensor dres = fp8.allocate(res.length), dcopy = fp8.allocateActivation(res.length), dnw = fp8.allocate(nw.length),
                    dsw = fp8.allocateActivation((long) n * hidden), dwd = fp8.allocate(wd.length);
            made.addAll(List.of(dres, dcopy, dnw, dsw, dwd));
            fp8.upload(dres, res, 0, res.length);
            if (fromProducer) {
                fp8.rmsnormBackwardAndCopy(dres, dcopy, dnw, deltag, r2, nwg, rstd, n, c, false, Projection.DOWN, layer);
            } else {
                fp8.rmsnormBackwardAndCopy(dres, dcopy, dnw, deltag, r2, nwg, rstd, n, c, false);
            }
            fp8.blockMatmulBackward(Projection.DOWN, layer, dsw, dwd, dcopy, sw, wdg, n, hidden, c, false);
            normDx[k] = fp8.download(dsw);
            normDw[k] = fp8.download(dwd);
            // RoPE's backward (in place) leaves q/k/v's output gradient; the v heads are read for the amax
            Tensor dq = fp8.allocateActivation(dqkv.length), dxq = fp8.allocateActivation(x.length), dwq = fp8.allocate(wq.length);
            made.addAll(List.of(dq, dxq, dwq));
            fp8.upload(dq, dqkv, 0, dqkv.length);
            if (fromProducer) {
                fp8.ropeBackward(dq, n / 256, 256, 4, 2, 32, 0, 10000f, Projection.QKV, layer);
            } else {
                fp8.ropeBackward(dq, n / 256, 256, 4, 2, 32, 0, 10000f);
            }
            fp8.blockMatmulBackward(Projection.QKV, layer, dxq, dwq, dq, xg, wqg, n, c, 256, false);
            ropeDx[k] = fp8.download(dxq);
            ropeDw[k] = fp8.download(dwq);
        }
        report("fp8 amax by rmsnorm fwd", s, "out", differing(normed[0], normed[1]), 0);
        report("fp8 amax by res+rmsnorm", s, "out", differing(residualNormed[0], residualNormed[1]), 0);
        report("fp8 amax by swiglu fwd", s, "out", differing(out[0], out[1]), 0);
        report("fp8 amax by rmsnorm bwd", s, "dinp", differing(normDx[0], normDx[1]), 0);
        report("fp8 amax by rmsnorm bwd", s, "dweight", differing(normDw[0], normDw[1]), 0);
        report("fp8 amax by rope bwd", s, "dinp", differing(ropeDx[0], ropeDx[1]), 0);
        report("fp8 amax by rope bwd", s, "dweight", differing(ropeDw[0], ropeDw[1]), 0);
        report("fp8 amax by swiglu bwd", s, "dinp", differing(dx[0], dx[1]), 0);
        report("fp8 amax by swiglu bwd", s, "dweight", differing(dw[0], dw[1]), 0);
        // the backward that also recomputes the forward's output (down in bf16) measures dh's amax as the plain one does
        Tensor sw = fp8.allocateActivation((long) n * hidden), dh = fp8.allocateActivation(h.length), dxg = fp8.allocateActivation(x.length),
                dwg = fp8.allocate(wgu.length);
        made.addAll(List.of(sw, dh, dxg, dwg));
        fp8.swigluBackwardRecomputing(dh, sw, dyg, hg, n, hidden, Projection.GATE_UP, 12);
        fp8.blockMatmulBackward(Projection.GATE_UP, 12, dxg, dwg, dh, xg, wgug, n, c, 2 * hidden, false);
        report("fp8 amax by swiglu bwd+fwd", s, "dinp", differing(fp8.download(dxg), dx[1]), 0);
        report("fp8 amax by swiglu bwd+fwd", s, "dweight", differing(fp8.download(dwg), dw[1]), 0);
        made.forEach(fp8::release);
    }

    /**
     * The tensor-core attention backward measuring dqkv's amax in its stores (with RoPE's backward
     * there too) for the FP8 q/k/v matmul: that matmul's bits equal those it gives when it measures
     * the amax itself (the same kernels, handed a bf16 projection as the reader). Three inputs put
     * the largest gradient in dq, dk and dv in turn, so each kernel's part of the amax decides
     * (from a float64 model of this backward: q x 0.01 with v x 30 makes dq about 50x the rest, k x
     * 0.01 with v x 30 dk, v x 0.01 dv); the row also checks that the largest is where it should be.
     */
    private void fp8AmaxFromAttentionBackward(CudaBackend fp8, String kernels, int b, int t, int c, String largest) {
        int nh = 2, nkv = 1, hs = 64, width = (nh + 2 * nkv) * hs, n = b * t;
        String s = shape("b,t,c", b, t, c) + " " + kernels + " largest " + largest;
        float[] qkv = bf16Values((long) n * width, 1);
        float qScale = largest.equals("q") ? 0.01f : 1, kScale = largest.equals("k") ? 0.01f : 1, vScale = largest.equals("v") ? 0.01f : 30;
        for (int i = 0; i < qkv.length; i++) {
            int col = i % width;
            float scale = col < nh * hs ? qScale : col < (nh + nkv) * hs ? kScale : vScale;
            qkv[i] = roundBf16(qkv[i] * scale);
        }
        float[] dout = bf16Values((long) n * nh * hs, 1), x = bf16Values((long) n * c, 1), wq = bf16Values((long) width * c, 0.05);
        Tensor qkvg = fp8.allocateActivation(qkv.length), doutg = fp8.allocateActivation(dout.length), xg = fp8.allocateActivation(x.length),
                wqg = fp8.allocateActivation(wq.length), out = fp8.allocateActivation(dout.length), lse = fp8.allocate((long) b * nh * t);
        List<Tensor> made = new ArrayList<>(List.of(qkvg, doutg, xg, wqg, out, lse));
        fp8.upload(qkvg, qkv, 0, qkv.length);
        fp8.upload(doutg, dout, 0, dout.length);
        fp8.upload(xg, x, 0, x.length);
        fp8.upload(wqg, wq, 0, wq.length);
        fp8.attentionForward(out, lse, qkvg, b, t, t, nh, nkv, hs);
        float[][] dqkv = new float[2][], dx = new float[2][], dw = new float[2][];
        for (int k = 0; k < 2; k++) {
            int layer = 20 + 2 * "qkv".indexOf(largest) + k; // layers no other row uses: no amax measured before
            Tensor dq = fp8.allocateActivation(qkv.length), dxq = fp8.allocateActivation(x.length), dwq = fp8.allocate(wq.length);
            made.addAll(List.of(dq, dxq, dwq));
            fp8.attentionRopeBackward(dq, doutg, qkvg, out, lse, b, t, nh, nkv, hs, 10000f,
                    k == 0 ? Projection.QKV : Projection.ATTENTION_OUTPUT, layer);
            fp8.blockMatmulBackward(Projection.QKV, layer, dxq, dwq, dq, xg, wqg, n, c, width, false);
            dqkv[k] = fp8.download(dq);
            dx[k] = fp8.download(dxq);
            dw[k] = fp8.download(dwq);
        }
        int found = 0;
        float max = -1;
        for (int i = 0; i < dqkv[0].length; i++) {
            int col = i % width;
            if (Math.abs(dqkv[0][i]) > max) {
                max = Math.abs(dqkv[0][i]);
                found = col < nh * hs ? 0 : col < (nh + nkv) * hs ? 1 : 2;
            }
        }
        report("fp8 amax by attn bwd", s, "largest", found == "qkv".indexOf(largest) ? 0 : 1, 0);
        report("fp8 amax by attn bwd", s, "dqkv", differing(dqkv[0], dqkv[1]), 0);
        report("fp8 amax by attn bwd", s, "dinp", differing(dx[0], dx[1]), 0);
        report("fp8 amax by attn bwd", s, "dweight", differing(dw[0], dw[1]), 0);
        made.forEach(fp8::release);
    }

    /**
     * A site's e4m3 weight copies kept across forwards: the second forward over the same weight
     * reads them (a write no hook sees, SwiGLU's output here, leaves the first weight's bits),
     * and after each write the backend does see (upload, copy, fill, AdamW writing the bf16 copy,
     * release and a new tensor at the same place) the forward gives the bits of a site that never
     * saw the weight before.
     */
    private void fp8WeightKept(CudaBackend fp8, int n, int c, int oc) {
        String s = shape("n,c,oc", n, c, oc);
        float[] x = bf16Values((long) n * c, 1), w1 = bf16Values((long) oc * c, 0.05), w2 = bf16Values((long) oc * c, 0.08);
        Tensor xg = fp8.allocateActivation(x.length), wg = fp8.allocateActivation(w1.length), other = fp8.allocateActivation(w1.length),
                out = fp8.allocateActivation((long) n * oc), fresh = fp8.allocateActivation((long) n * oc),
                gateUp = fp8.allocateActivation(2L * oc * c);
        List<Tensor> made = new ArrayList<>(List.of(xg, wg, other, out, fresh, gateUp));
        fp8.upload(gateUp, bf16Values(2L * oc * c, 1), 0, 2 * oc * c);
        fp8.upload(xg, x, 0, x.length);
        fp8.upload(wg, w1, 0, w1.length);
        int[] freshLayer = {40};
        // the forward at the kept site (layer 30) against one at a site never used before
        java.util.function.Supplier<Integer> againstFresh = () -> {
            fp8.blockMatmulForward(Projection.GATE_UP, 30, out, xg, wg, n, c, oc);
            fp8.blockMatmulForward(Projection.GATE_UP, freshLayer[0]++, fresh, xg, wg, n, c, oc);
            return differing(fp8.download(out), fp8.download(fresh));
        };
        fp8.blockMatmulForward(Projection.GATE_UP, 30, out, xg, wg, n, c, oc);
        float[] first = fp8.download(out);
        // overwritten by a kernel's output (no hook): the kept copy still gives the first weight's bits
        fp8.swigluForward(wg, gateUp, oc, c);
        fp8.blockMatmulForward(Projection.GATE_UP, 30, out, xg, wg, n, c, oc);
        report("fp8 weight kept", s, "reused", differing(fp8.download(out), first), 0);
        fp8.upload(wg, w2, 0, w2.length);
        report("fp8 weight kept", s, "upload", againstFresh.get(), 0);
        fp8.upload(other, w1, 0, w1.length);
        fp8.copy(wg, other);
        report("fp8 weight kept", s, "copy", againstFresh.get(), 0);
        fp8.fill(wg, 0.01f);
        report("fp8 weight kept", s, "fill", againstFresh.get(), 0);
        // AdamW writing the bf16 copy of fp32 parameters into wg
        Tensor p = fp8.allocate(w2.length), g = fp8.allocate(w2.length), m = fp8.allocate(w2.length), v = fp8.allocate(w2.length);
        made.addAll(List.of(p, g, m, v));
        fp8.upload(p, w2, 0, w2.length);
        fp8.upload(g, bf16Values(w2.length, 1), 0, w2.length);
        fp8.fill(m, 0f);
        fp8.fill(v, 0f);
        fp8.blockMatmulForward(Projection.GATE_UP, 30, out, xg, wg, n, c, oc); // kept again
        fp8.adamwUpdateAndCopy(p, wg, g, m, v, new AdamWStep(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1f));
        report("fp8 weight kept", s, "adamw", againstFresh.get(), 0);
        // released, and a new tensor at the same address (the arena hands a freed range to the next request of its size)
        long place = ((CudaTensor) wg).address();
        fp8.release(wg);
        made.remove(wg);
        Tensor again = fp8.allocateActivation(w1.length);
        made.add(again);
        report("fp8 weight kept", s, "same place", ((CudaTensor) again).address() == place ? 0 : 1, 0);
        fp8.swigluForward(again, gateUp, oc, c);
        fp8.blockMatmulForward(Projection.GATE_UP, 30, out, xg, again, n, c, oc);
        fp8.blockMatmulForward(Projection.GATE_UP, freshLayer[0]++, fresh, xg, again, n, c, oc);
        report("fp8 weight kept", s, "release", differing(fp8.download(out), fp8.download(fresh)), 0);
        made.forEach(fp8::release);
    }

    private float[] bf16Values(long n, double std) {
        float[] v = values(n, std);
        for (int i = 0; i < v.length; i++) {
            v[i] = roundBf16(v[i]);
        }
        return v;
    }

    private static double[] operand(float[] x, Fp8Reference.Format f, float scale, boolean quantized) {
        if (quantized) {
            return Fp8Reference.quantize(x, f, scale);
        }
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    private static double relativeError(float[] got, double[] ref) {
        double diff = 0, norm = 0;
        for (int i = 0; i < ref.length; i++) {
            if (Float.isNaN(got[i]) || Float.isInfinite(got[i])) {
                return Double.NaN;
            }
            double d = got[i] - ref[i];
            diff += d * d;
            norm += ref[i] * ref[i];
        }
        return Math.sqrt(diff / norm);
    }

    /** With act, the forward's output and the backward's dout are bf16 tensors; everything else stays fp32. */
    private void rmsnorm(int n, int c, boolean act) {
        String s = shape("n,c", n, c);
        Pair x = random((long) n * c, 2), w = random(c, 1), out = poisoned((long) n * c, act), rstd = poisoned(n);
        both(be -> be.rmsnormForward(be == cpu ? out.cpu : out.gpu, be == cpu ? rstd.cpu : rstd.gpu, be == cpu ? x.cpu : x.gpu,
                be == cpu ? w.cpu : w.gpu, n, c, 1e-5f));
        compare(tag("rmsnorm fwd", act), s, "out", out, act ? BF16 : FP32);
        compare(tag("rmsnorm fwd", act), s, "rstd", rstd, FP32);
        // with act, dout (a matmul input's gradient) is bf16; the math stays fp32 on the same values
        Pair dout = random((long) n * c, 1, act), dx = random((long) n * c, 1), dw = random(c, 1);
        both(be -> be.rmsnormBackward(be == cpu ? dx.cpu : dx.gpu, be == cpu ? dw.cpu : dw.gpu, be == cpu ? dout.cpu : dout.gpu,
                be == cpu ? x.cpu : x.gpu, be == cpu ? w.cpu : w.gpu, be == cpu ? rstd.cpu : rstd.gpu, n, c));
        compare(tag("rmsnorm bwd", act), s, "dinp", dx, FP32);
        compare(tag("rmsnorm bwd", act), s, "dweight", dw, FP32);
        Pair dx2 = random((long) n * c, 1), fresh = poisoned(c);
        both(be -> be.rmsnormBackward(be == cpu ? dx2.cpu : dx2.gpu, be == cpu ? fresh.cpu : fresh.gpu, be == cpu ? dout.cpu : dout.gpu,
                be == cpu ? x.cpu : x.gpu, be == cpu ? w.cpu : w.gpu, be == cpu ? rstd.cpu : rstd.gpu, n, c, false));
        compare(tag("rmsnorm bwd (overwrite)", act), s, "dweight", fresh, FP32);
        // with the copy: dinp and dweight the same bits as without, the copy dinp as an activation stores it
        Pair start = random((long) n * c, 1);
        Tensor dxPlain = gpu.allocate((long) n * c), dxCopied = gpu.allocate((long) n * c), copy = gpu.allocateActivation((long) n * c);
        Tensor dwPlain = gpu.allocate(c), dwCopied = gpu.allocate(c);
        gpu.copy(dxPlain, start.gpu);
        gpu.copy(dxCopied, start.gpu);
        gpu.fill(copy, Float.NaN);
        gpu.rmsnormBackward(dxPlain, dwPlain, dout.gpu, x.gpu, w.gpu, rstd.gpu, n, c);
        gpu.rmsnormBackwardAndCopy(dxCopied, copy, dwCopied, dout.gpu, x.gpu, w.gpu, rstd.gpu, n, c, true);
        float[] plain = gpu.download(dxPlain), stored = plain.clone();
        for (int i = 0; gpu.bf16Activations() && i < stored.length; i++) {
            stored[i] = roundBf16(stored[i]);
        }
        int wrong = differing(gpu.download(dxCopied), plain) + differing(gpu.download(dwCopied), gpu.download(dwPlain))
                + differing(gpu.download(copy), stored);
        report(tag("rmsnorm bwd + copy", act), s, "dinp,copy", wrong, 0);
    }

    /**
     * The fused residual add + norm (CUDA) against the CPU's copy, add and norm; in place (residual = x) too. With act,
     * delta (a matmul output) is stored in bf16 like out; both sides add the same rounded values.
     */
    private void residualRmsnorm(int n, int c, boolean act) {
        String s = shape("n,c", n, c);
        Pair x = random((long) n * c, 2), delta = random((long) n * c, 1, act), w = random(c, 1);
        Pair residual = poisoned((long) n * c), out = poisoned((long) n * c, act), rstd = poisoned(n);
        both(be -> be.residualRmsnormForward(be == cpu ? residual.cpu : residual.gpu, be == cpu ? out.cpu : out.gpu,
                be == cpu ? rstd.cpu : rstd.gpu, be == cpu ? x.cpu : x.gpu, be == cpu ? delta.cpu : delta.gpu,
                be == cpu ? w.cpu : w.gpu, n, c, 1e-5f));
        compare(tag("residual+rmsnorm", act), s, "residual", residual, 0); // one fp32 add, as on the CPU
        compare(tag("residual+rmsnorm", act), s, "out", out, act ? BF16 : FP32);
        compare(tag("residual+rmsnorm", act), s, "rstd", rstd, FP32);
        Pair out2 = poisoned((long) n * c, act);
        both(be -> be.residualRmsnormForward(be == cpu ? x.cpu : x.gpu, be == cpu ? out2.cpu : out2.gpu,
                be == cpu ? rstd.cpu : rstd.gpu, be == cpu ? x.cpu : x.gpu, be == cpu ? delta.cpu : delta.gpu,
                be == cpu ? w.cpu : w.gpu, n, c, 1e-5f));
        compare(tag("residual+rmsnorm (in place)", act), s, "x", x, 0);
        compare(tag("residual+rmsnorm (in place)", act), s, "out", out2, act ? BF16 : FP32);
    }

    private void rope(int b, int t, int nh, int nkv, int hs, int start, boolean act) {
        String s = shape("b,t,nh,nkv,hs,start", b, t, nh, nkv, hs, start);
        long n = (long) b * t * (nh + 2 * nkv) * hs;
        Pair x = random(n, 1, act);
        both(be -> be.ropeForward(be == cpu ? x.cpu : x.gpu, b, t, nh, nkv, hs, start, 10000f));
        compare(tag("rope fwd", act), s, "qkv", x, act ? BF16 : FP32);
        both(be -> be.ropeBackward(be == cpu ? x.cpu : x.gpu, b, t, nh, nkv, hs, start, 10000f));
        compare(tag("rope bwd", act), s, "dqkv", x, act ? BF16 : FP32);
    }

    /** Each kernel choice against the CPU. */
    private void attention(int b, int t, int nh, int nkv, int hs, CudaBackend.Attention kind, boolean act) {
        CudaBackend.Attention was = gpu.attention();
        gpu.useAttention(kind);
        try {
            String name = kind == CudaBackend.Attention.PLAIN ? "attention" : "attention " + kind.key();
            attention(b, t, nh, nkv, hs, tag(name, act), act);
        } finally {
            gpu.useAttention(was);
        }
    }

    /**
     * One kernel choice against another at TinyLlama's training shape (too slow for the CPU): same
     * random qkv and dout, the backward of both fed the second's out and lse.
     */
    private void against(int b, int t, int nh, int nkv, int hs, boolean act, CudaBackend.Attention first,
                         CudaBackend.Attention second, String op) {
        String s = shape("b,t,nh,nkv,hs", b, t, nh, nkv, hs);
        long width = (long) (nh + 2 * nkv) * hs;
        long outLength = (long) b * t * nh * hs, lseLength = (long) b * nh * t;
        Tensor qkv = act ? gpu.allocateActivation(b * t * width) : gpu.allocate(b * t * width);
        Tensor dout = act ? gpu.allocateActivation(outLength) : gpu.allocate(outLength);
        upload(qkv, b * t * width);
        upload(dout, outLength);
        CudaBackend.Attention[] kinds = {first, second};
        CudaBackend.Attention was = gpu.attention();
        Tensor[] out = new Tensor[2], lse = new Tensor[2], dqkv = new Tensor[2];
        try {
            for (int k = 0; k < 2; k++) {
                gpu.useAttention(kinds[k]);
                out[k] = act ? gpu.allocateActivation(outLength) : gpu.allocate(outLength);
                lse[k] = gpu.allocate(lseLength);
                dqkv[k] = act ? gpu.allocateActivation(b * t * width) : gpu.allocate(b * t * width);
                gpu.fill(out[k], Float.NaN);
                gpu.fill(lse[k], Float.NaN);
                gpu.fill(dqkv[k], Float.NaN);
                gpu.attentionForward(out[k], lse[k], qkv, b, t, t, nh, nkv, hs);
            }
            report(op + " fwd", s, "out", relativeError(gpu.download(out[0]), gpu.download(out[1])), BF16);
            report(op + " fwd", s, "lse", relativeError(gpu.download(lse[0]), gpu.download(lse[1])), BF16);
            for (int k = 0; k < 2; k++) {
                gpu.useAttention(kinds[k]);
                gpu.attentionBackward(dqkv[k], dout, qkv, out[1], lse[1], b, t, nh, nkv, hs);
            }
        } finally {
            gpu.useAttention(was);
        }
        float[] g = gpu.download(dqkv[0]), c = gpu.download(dqkv[1]);
        reportHeads(op + " bwd", s, g, c, b * t, nh, nkv, hs);
    }

    private void upload(Tensor t, long n) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) gaussian();
        }
        gpu.upload(t, v, 0, v.length);
    }

    /** dq, dk, dv (the q, k and v heads of every dqkv row) reported apart. */
    private void reportHeads(String op, String s, float[] g, float[] c, int rows, int nh, int nkv, int hs) {
        int width = (nh + 2 * nkv) * hs;
        for (int part = 0; part < 3; part++) {
            int from = part == 0 ? 0 : part == 1 ? nh * hs : (nh + nkv) * hs;
            int to = part == 0 ? nh * hs : part == 1 ? (nh + nkv) * hs : width;
            int per = to - from;
            float[] gp = new float[rows * per], cp = new float[rows * per];
            for (int r = 0; r < rows; r++) {
                System.arraycopy(g, r * width + from, gp, r * per, per);
                System.arraycopy(c, r * width + from, cp, r * per, per);
            }
            report(op, s, new String[] {"dq", "dk", "dv"}[part], relativeError(gp, cp), BF16);
        }
    }

    private void attention(int b, int t, int nh, int nkv, int hs, String op, boolean act) {
        String s = shape("b,t,nh,nkv,hs", b, t, nh, nkv, hs);
        long width = (long) (nh + 2 * nkv) * hs;
        Pair qkv = random(b * t * width, 1, act), out = poisoned((long) b * t * nh * hs, act), lse = poisoned((long) b * nh * t);
        both(be -> be.attentionForward(be == cpu ? out.cpu : out.gpu, be == cpu ? lse.cpu : lse.gpu, be == cpu ? qkv.cpu : qkv.gpu,
                b, t, t, nh, nkv, hs));
        compare(op + " fwd", s, "out", out, BF16);
        compare(op + " fwd", s, "lse", lse, BF16);
        // the backward of both backends reads the CPU's out (as the GPU stores it) and lse, so it is checked on its own
        float[] outRef = cpu.download(out.cpu), lseRef = cpu.download(lse.cpu);
        if (act) {
            for (int i = 0; i < outRef.length; i++) {
                outRef[i] = roundBf16(outRef[i]);
            }
            cpu.upload(out.cpu, outRef, 0, outRef.length);
        }
        gpu.upload(out.gpu, outRef, 0, outRef.length);
        gpu.upload(lse.gpu, lseRef, 0, lseRef.length);
        Pair dout = random((long) b * t * nh * hs, 1, act), dqkv = poisoned(b * t * width, act);
        both(be -> be.attentionBackward(be == cpu ? dqkv.cpu : dqkv.gpu, be == cpu ? dout.cpu : dout.gpu, be == cpu ? qkv.cpu : qkv.gpu,
                be == cpu ? out.cpu : out.gpu, be == cpu ? lse.cpu : lse.gpu, b, t, nh, nkv, hs));
        reportHeads(op + " bwd", s, gpu.download(dqkv.gpu), cpu.download(dqkv.cpu), b * t, nh, nkv, hs);
        // with RoPE's backward: the CPU runs it as a pass of its own, the tensor-core kernels in their stores
        Pair dqkvRope = poisoned(b * t * width, act);
        both(be -> be.attentionRopeBackward(be == cpu ? dqkvRope.cpu : dqkvRope.gpu, be == cpu ? dout.cpu : dout.gpu,
                be == cpu ? qkv.cpu : qkv.gpu, be == cpu ? out.cpu : out.gpu, be == cpu ? lse.cpu : lse.gpu, b, t, nh, nkv, hs, 10000f,
                Projection.QKV, 0));
        reportHeads(op + " bwd+rope", s, gpu.download(dqkvRope.gpu), cpu.download(dqkvRope.cpu), b * t, nh, nkv, hs);
    }

    private void attentionDecode(int b, int tq, int tk, int nh, int nkv, int hs, boolean act) {
        String s = shape("b,tq,tk,nh,nkv,hs", b, tq, tk, nh, nkv, hs);
        long width = (long) (nh + 2 * nkv) * hs;
        Pair qkv = random(b * tk * width, 1, act), out = poisoned((long) b * tq * nh * hs, act), lse = poisoned((long) b * nh * tq);
        both(be -> be.attentionForward(be == cpu ? out.cpu : out.gpu, be == cpu ? lse.cpu : lse.gpu, be == cpu ? qkv.cpu : qkv.gpu,
                b, tq, tk, nh, nkv, hs));
        compare(tag("attention fwd (cache)", act), s, "out", out, BF16);
        compare(tag("attention fwd (cache)", act), s, "lse", lse, BF16);
    }

    private void swiglu(int n, int hidden, boolean act) {
        String s = shape("n,hidden", n, hidden);
        Pair h = random((long) n * 2 * hidden, 2, act), out = poisoned((long) n * hidden, act);
        both(be -> be.swigluForward(be == cpu ? out.cpu : out.gpu, be == cpu ? h.cpu : h.gpu, n, hidden));
        compare(tag("swiglu fwd", act), s, "out", out, act ? BF16 : FP32);
        Pair dout = random((long) n * hidden, 1, act), dh = poisoned((long) n * 2 * hidden, act);
        both(be -> be.swigluBackward(be == cpu ? dh.cpu : dh.gpu, be == cpu ? dout.cpu : dout.gpu, be == cpu ? h.cpu : h.gpu, n, hidden));
        compare(tag("swiglu bwd", act), s, "dh", dh, act ? BF16 : FP32);
        // the backward that also recomputes the forward's output: both outputs bit for bit the two kernels' own
        Pair recomputed = poisoned((long) n * hidden, act), dh2 = poisoned((long) n * 2 * hidden, act);
        both(be -> be.swigluBackwardRecomputing(be == cpu ? dh2.cpu : dh2.gpu, be == cpu ? recomputed.cpu : recomputed.gpu,
                be == cpu ? dout.cpu : dout.gpu, be == cpu ? h.cpu : h.gpu, n, hidden, Projection.GATE_UP, 0));
        compare(tag("swiglu bwd+fwd", act), s, "out", recomputed, act ? BF16 : FP32);
        compare(tag("swiglu bwd+fwd", act), s, "dh", dh2, act ? BF16 : FP32);
        report(tag("swiglu bwd+fwd", act), s, "out=fwd", differing(gpu.download(recomputed.gpu), gpu.download(out.gpu)), 0);
        report(tag("swiglu bwd+fwd", act), s, "dh=bwd", differing(gpu.download(dh2.gpu), gpu.download(dh.gpu)), 0);
    }

    /** bf16 tensors: upload rounds to nearest even, download widens exactly, fill and copy (slices) keep the bits. */
    private void bf16Storage(int n) {
        float[] v = values(n, 3);
        v[0] = 1.00390625f;      // exactly halfway between two bf16 values: rounds to even (1.0)
        v[1] = 1.01171875f;      // halfway the other way: rounds up to 1.015625
        Tensor t = gpu.allocateActivation(n), u = gpu.allocateActivation(n);
        gpu.upload(t, v, 0, n);
        float[] expected = new float[n];
        for (int i = 0; i < n; i++) {
            expected[i] = roundBf16(v[i]);
        }
        float[] got = gpu.download(t);
        int wrong = differing(got, expected) + (got[0] == 1f ? 0 : 1) + (got[1] == 1.015625f ? 0 : 1);
        report("bf16 upload/download", "n=" + n, "values", wrong, 0);
        gpu.fill(u, Float.NaN);
        gpu.copy(u.slice(1, n - 2), t.slice(2, n - 2));
        gpu.fill(u.slice(0, 1), 2.5f);
        gpu.fill(u.slice(n - 1, 1), -1f);
        float[] back = gpu.download(u);
        float[] want = new float[n];
        System.arraycopy(expected, 2, want, 1, n - 2);
        want[0] = 2.5f;
        want[n - 1] = -1f;
        report("bf16 copy+fill (slices)", "n=" + n, "dst", differing(back, want), 0);
        // between storages: fp32 -> bf16 rounds to nearest even (the halfway values above), bf16 -> fp32 widens exactly
        Tensor f = gpu.allocate(n), narrowed = gpu.allocateActivation(n), widened = gpu.allocate(n);
        gpu.upload(f, v, 0, n);
        gpu.fill(narrowed, 2.5f);
        gpu.copy(narrowed.slice(1, n - 1), f.slice(1, n - 1));
        float[] narrow = gpu.download(narrowed);
        float[] narrowWant = expected.clone();
        narrowWant[0] = 2.5f; // left alone: the slice starts at 1
        report("copy fp32 -> bf16", "n=" + n, "dst", differing(narrow, narrowWant), 0);
        gpu.fill(widened, Float.NaN);
        gpu.copy(widened, t);
        report("copy bf16 -> fp32", "n=" + n, "dst", differing(gpu.download(widened), expected), 0);
        for (Tensor x : List.of(f, narrowed, widened)) {
            gpu.release(x);
        }
    }

    private void embedding(int n, int vocab, int c) {
        String s = shape("n,vocab,c", n, vocab, c);
        int[] ids = tokens(n, Math.min(vocab, 50)); // repeated ids: the backward must add them up
        Pair table = random((long) vocab * c, 1), out = poisoned((long) n * c);
        both(be -> be.embeddingForward(be == cpu ? out.cpu : out.gpu, be == cpu ? table.cpu : table.gpu, ids, n, c));
        compare("embedding fwd", s, "out", out, FP32);
        Pair dout = random((long) n * c, 1), dtable = random((long) vocab * c, 1);
        both(be -> be.embeddingBackward(be == cpu ? dtable.cpu : dtable.gpu, be == cpu ? dout.cpu : dout.gpu, ids, n, c));
        compare("embedding bwd", s, "dtable", dtable, 0); // same adds in the same order as the CPU
    }

    /** act: bf16 logits (a training step's), read exactly, so the losses keep fp32's bound; the gradient is rounded. */
    private void crossEntropy(int n, int v, boolean act) {
        String s = shape("n,v", n, v);
        int[] targets = tokens(n, v);
        targets[n / 2] = -1; // ignored position
        Pair logits = random((long) n * v, 3, act), losses = poisoned(n), margins = poisoned(n);
        both(be -> be.crossEntropyForward(be == cpu ? losses.cpu : losses.gpu, be == cpu ? margins.cpu : margins.gpu,
                be == cpu ? logits.cpu : logits.gpu, targets, n, v));
        compare(tag("cross-entropy fwd", act), s, "losses", losses, FP32);
        compare(tag("cross-entropy fwd", act), s, "margins", margins, 0); // a difference of two logits read exactly
        compare(tag("cross-entropy fwd", act), s, "logits", logits, 0);
        Pair losses2 = poisoned(n);
        both(be -> be.crossEntropyForwardBackward(be == cpu ? logits.cpu : logits.gpu, be == cpu ? losses2.cpu : losses2.gpu,
                targets, n, v, 1f / n));
        compare(tag("cross-entropy fwd+bwd", act), s, "losses", losses2, FP32);
        compare(tag("cross-entropy fwd+bwd", act), s, "dlogits", logits, act ? BF16 : FP32);
    }

    /** A weight cast once by matmulOperand (and the buffer reused) gives the matmul the same bits as the fp32 weight. */
    private void matmulOperand(int n, int c, int oc) {
        String s = shape("n,c,oc", n, c, oc);
        Pair w = random((long) oc * c, 1), x = random((long) n * c, 1, true);
        Tensor viaWeight = gpu.allocateActivation((long) n * oc), viaOperand = gpu.allocateActivation((long) n * oc);
        gpu.matmulForward(viaWeight, x.gpu, w.gpu, n, c, oc);
        Tensor first = gpu.matmulOperand(w.gpu, null);
        Tensor operand = gpu.matmulOperand(w.gpu, first);
        gpu.matmulForward(viaOperand, x.gpu, operand, n, c, oc);
        int wrong = differing(gpu.download(viaOperand), gpu.download(viaWeight)) + (operand == first ? 0 : 1)
                + (cpu.matmulOperand(w.cpu, null) == w.cpu ? 0 : 1);
        report("matmul operand (bf16 once)", s, "out", wrong, 0);
    }

    private void sumOfSquares(int n) {
        Pair x = random(n, 1);
        double c = cpu.sumOfSquares(x.cpu), g = gpu.sumOfSquares(x.gpu);
        report("sumOfSquares", "n=" + n, "sum", Math.abs(g - c) / c, 1e-9);
        report("sumOfSquares (slice)", "n=" + (n - 10), "sum",
                Math.abs(gpu.sumOfSquares(x.gpu.slice(5, n - 10)) - cpu.sumOfSquares(x.cpu.slice(5, n - 10)))
                        / cpu.sumOfSquares(x.cpu.slice(5, n - 10)), 1e-9);
    }

    /**
     * The ops that reduce across threads, run twice on the GPU from the same inputs at a training
     * shape (n rows of width c, many repeated token ids): the outputs must be the same bits. The
     * "rel err" column is the number of elements whose bits differ.
     */
    private void repeatability(int n, int c) {
        String s = shape("n,c", n, c);
        float[] x = values((long) n * c, 2), dy = values((long) n * c, 1), dx0 = values((long) n * c, 1), w = values(c, 1),
                dw0 = values(c, 1);
        Tensor xg = upload(x), dyg = upload(dy), wg = upload(w), rstd = gpu.allocate(n), out = gpu.allocate((long) n * c);
        gpu.rmsnormForward(out, rstd, xg, wg, n, c, 1e-5f);
        float[][] dxs = new float[2][], dws = new float[2][];
        for (int k = 0; k < 2; k++) {
            Tensor dx = upload(dx0), dw = upload(dw0);
            gpu.rmsnormBackward(dx, dw, dyg, xg, wg, rstd, n, c);
            dxs[k] = gpu.download(dx);
            dws[k] = gpu.download(dw);
        }
        report("repeat: rmsnorm bwd", s, "dinp", differing(dxs[0], dxs[1]), 0);
        report("repeat: rmsnorm bwd", s, "dweight", differing(dws[0], dws[1]), 0);
        int[] ids = tokens(n, 100);
        float[] table0 = values(100L * c, 1);
        float[][] tables = new float[2][];
        for (int k = 0; k < 2; k++) {
            Tensor table = upload(table0);
            gpu.embeddingBackward(table, dyg, ids, n, c);
            tables[k] = gpu.download(table);
        }
        report("repeat: embedding bwd", s + " vocab=100", "dtable", differing(tables[0], tables[1]), 0);
        double a = gpu.sumOfSquares(xg), b = gpu.sumOfSquares(xg);
        report("repeat: sumOfSquares", "n=" + (long) n * c, "sum", Double.doubleToRawLongBits(a) == Double.doubleToRawLongBits(b) ? 0 : 1, 0);
    }

    /** The backward twice on the same inputs (TinyLlama's step shape): the same bits, or a count of the values that differ. */
    private void attentionRepeatability(int b, int t, int nh, int nkv, CudaBackend.Attention kind) {
        String s = shape("b,t,nh,nkv,hs", b, t, nh, nkv, 64);
        long width = (long) (nh + 2 * nkv) * 64, outLength = (long) b * t * nh * 64;
        Tensor qkv = gpu.allocateActivation(b * t * width), dout = gpu.allocateActivation(outLength),
                out = gpu.allocateActivation(outLength), lse = gpu.allocate((long) b * nh * t);
        upload(qkv, b * t * width);
        upload(dout, outLength);
        CudaBackend.Attention was = gpu.attention();
        gpu.useAttention(kind);
        try {
            gpu.attentionForward(out, lse, qkv, b, t, t, nh, nkv, 64);
            float[][] dqkv = new float[2][];
            for (int k = 0; k < 2; k++) {
                Tensor dx = gpu.allocateActivation(b * t * width);
                gpu.fill(dx, Float.NaN);
                gpu.attentionBackward(dx, dout, qkv, out, lse, b, t, nh, nkv, 64);
                dqkv[k] = gpu.download(dx);
                gpu.release(dx);
            }
            report("repeat: attention " + kind.key() + " bwd", s, "dqkv", differing(dqkv[0], dqkv[1]), 0);
        } finally {
            gpu.useAttention(was);
            for (Tensor x : new Tensor[] {qkv, dout, out, lse}) {
                gpu.release(x);
            }
        }
    }

    private float[] values(long n, double std) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (gaussian() * std);
        }
        return v;
    }

    private Tensor upload(float[] v) {
        Tensor t = gpu.allocate(v.length);
        gpu.upload(t, v, 0, v.length);
        return t;
    }

    /** How many elements differ in their bits (NaN payloads included). */
    static int differing(float[] a, float[] b) {
        int count = a.length == b.length ? 0 : Math.max(a.length, b.length);
        for (int i = 0; i < Math.min(a.length, b.length); i++) {
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) {
                count++;
            }
        }
        return count;
    }

    /** A released tensor's memory goes, zero-filled, to the next tensor of its size; a slice cannot be released. */
    private void releaseAndReuse(int n) {
        CudaTensor first = gpu.allocate(n);
        gpu.fill(first, 3f);
        gpu.release(first);
        CudaTensor second = gpu.allocate(n);
        int wrong = (second.address() == first.address() ? 0 : 1) + differing(gpu.download(second), new float[n]);
        try {
            gpu.release(second.slice(1, n - 1));
            wrong++;
        } catch (IllegalArgumentException expected) {
            // only whole tensors go back
        }
        report("release + reuse", "n=" + n, "zeros", wrong, 0);
    }

    private void adamw(int n) {
        Pair p = random(n, 0.05), m = of(new float[n]), v = of(new float[n]);
        for (int step = 1; step <= 3; step++) {
            Pair g = random(n, 1);
            AdamWStep s = new AdamWStep(4e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, step, 0.5f);
            both(be -> be.adamwUpdate(be == cpu ? p.cpu : p.gpu, be == cpu ? g.cpu : g.gpu, be == cpu ? m.cpu : m.gpu,
                    be == cpu ? v.cpu : v.gpu, s));
        }
        // a fourth step on slices starting one value in: the unaligned (one value per step) path
        Pair g = random(n, 1);
        AdamWStep s4 = new AdamWStep(4e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 4, 1f);
        both(be -> be.adamwUpdate(be == cpu ? p.cpu.slice(1, n - 2) : p.gpu.slice(1, n - 2), be == cpu ? g.cpu.slice(1, n - 2) : g.gpu.slice(1, n - 2),
                be == cpu ? m.cpu.slice(1, n - 2) : m.gpu.slice(1, n - 2), be == cpu ? v.cpu.slice(1, n - 2) : v.gpu.slice(1, n - 2), s4));
        compare("adamw x3 + slice", "n=" + n, "params", p, FP32);
        compare("adamw x3 + slice", "n=" + n, "m", m, FP32);
        compare("adamw x3 + slice", "n=" + n, "v", v, FP32);
        // with the matmuls' bf16 copy written in the same pass: the same params, m and v bits as
        // without, the copy each new value rounded; aligned and (one value in) unaligned
        for (int offset : new int[] {0, 1}) {
            int len = n - 2 * offset;
            Tensor p1 = gpu.allocate(len), p2 = gpu.allocate(len), m1 = gpu.allocate(len), m2 = gpu.allocate(len);
            Tensor v1 = gpu.allocate(len), v2 = gpu.allocate(len);
            Tensor copy = gpu.matmulOperand(gpu.allocate(n), null); // bf16, as the model's operands are
            for (Tensor[] pair : new Tensor[][] {{p1, p2, p.gpu}, {m1, m2, m.gpu}, {v1, v2, v.gpu}}) {
                gpu.copy(pair[0], pair[2].slice(offset, len));
                gpu.copy(pair[1], pair[2].slice(offset, len));
            }
            gpu.fill(copy, Float.NaN);
            Tensor grads = g.gpu.slice(offset, len), into = copy.slice(offset, len);
            gpu.adamwUpdate(p1, grads, m1, v1, s4);
            gpu.adamwUpdateAndCopy(p2, into, grads, m2, v2, s4);
            float[] params = gpu.download(p1), rounded = params.clone();
            for (int i = 0; i < rounded.length; i++) {
                rounded[i] = roundBf16(rounded[i]);
            }
            int wrong = differing(gpu.download(p2), params) + differing(gpu.download(m2), gpu.download(m1))
                    + differing(gpu.download(v2), gpu.download(v1)) + differing(gpu.download(into), rounded);
            report("adamw + bf16 copy", "n=" + len + " offset=" + offset, "p,m,v,copy", wrong, 0);
        }
    }
}
