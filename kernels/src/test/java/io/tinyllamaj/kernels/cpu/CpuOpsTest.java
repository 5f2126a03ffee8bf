package io.tinyllamaj.kernels.cpu;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Projection;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.SplittableRandom;

import static io.tinyllamaj.kernels.cpu.Reference.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Every CPU op against a float64 reference: forward values, and the backward against central
 * finite differences of L = sum(r * out) for a random r (so dout = r).
 */
class CpuOpsTest {

    private final CpuBackend backend = new CpuBackend();
    private final SplittableRandom random = new SplittableRandom(42);

    @ParameterizedTest
    @CsvSource({"1,1,1", "5,7,3", "13,33,17", "70,300,45", "200,64,520"})
    void matmulMatchesReferenceAndFiniteDifferences(int n, int c, int oc) {
        double[] x = rounded(random(random, n * c, 1)), w = rounded(random(random, oc * c, 1));
        double[] r = rounded(random(random, n * oc, 1));
        CpuTensor out = zeros(n * oc);
        backend.matmulForward(out, tensor(x), tensor(w), n, c, oc);
        assertClose("matmul forward", linear(x, w, n, c, oc), out.data(), 1e-5);
        if ((long) n * c * oc > 200_000) {
            return; // finite differences cost n*c*oc per coordinate; the small shapes cover the backward
        }
        CpuTensor dx = new CpuTensor(new float[n * c], 0, n * c);
        java.util.Arrays.fill(dx.data(), 123f); // overwritten, not accumulated
        float[] dwStart = toFloat(random(random, oc * c, 1));
        CpuTensor dw = new CpuTensor(dwStart.clone(), 0, oc * c);
        backend.matmulBackward(dx, dw, tensor(r), tensor(x), tensor(w), n, c, oc);
        assertClose("matmul dx", numericGradient(x.clone(), xx -> dot(r, linear(xx, w, n, c, oc))), dx.data(), 1e-5);
        double[] dwExpected = numericGradient(w.clone(), ww -> dot(r, linear(x, ww, n, c, oc)));
        for (int i = 0; i < dwExpected.length; i++) {
            dwExpected[i] += dwStart[i]; // parameter gradients accumulate
        }
        assertClose("matmul dw", dwExpected, dw.data(), 1e-5);
        // taken apart: the input gradient alone leaves no weight gradient to compute; the weight gradient alone reads no input gradient
        CpuTensor dxAlone = new CpuTensor(new float[n * c], 0, n * c), dwAlone = new CpuTensor(dwStart.clone(), 0, oc * c);
        backend.matmulBackward(dxAlone, null, tensor(r), null, tensor(w), n, c, oc);
        backend.matmulBackward(null, dwAlone, tensor(r), tensor(x), tensor(w), n, c, oc);
        assertClose("matmul dx alone", numericGradient(x.clone(), xx -> dot(r, linear(xx, w, n, c, oc))), dxAlone.data(), 1e-5);
        assertClose("matmul dw alone", dwExpected, dwAlone.data(), 1e-5);
    }

    @ParameterizedTest
    @CsvSource({"1,8", "6,16", "9,64"})
    void rmsnormMatchesReferenceAndFiniteDifferences(int n, int c) {
        double eps = 1e-5;
        double[] x = rounded(random(random, n * c, 2)), w = rounded(random(random, c, 1)), r = rounded(random(random, n * c, 1));
        CpuTensor out = zeros(n * c), rstd = zeros(n);
        backend.rmsnormForward(out, rstd, tensor(x), tensor(w), n, c, (float) eps);
        assertClose("rmsnorm forward", rmsnorm(x, w, n, c, eps), out.data(), 1e-6);
        float[] dxStart = toFloat(random(random, n * c, 1));
        CpuTensor dx = new CpuTensor(dxStart.clone(), 0, n * c), dw = zeros(c);
        backend.rmsnormBackward(dx, dw, tensor(r), tensor(x), tensor(w), rstd, n, c);
        double[] dxExpected = numericGradient(x.clone(), xx -> dot(r, rmsnorm(xx, w, n, c, eps)));
        for (int i = 0; i < dxExpected.length; i++) {
            dxExpected[i] += dxStart[i]; // the input gradient accumulates into the residual stream
        }
        assertClose("rmsnorm dx", dxExpected, dx.data(), 1e-5);
        assertClose("rmsnorm dw", numericGradient(w.clone(), ww -> dot(r, rmsnorm(x, ww, n, c, eps))), dw.data(), 1e-5);
        // with the copy for the next matmul backward: the same dx and dw, and the copy holds dx
        CpuTensor dx2 = new CpuTensor(dxStart.clone(), 0, n * c), dw2 = zeros(c), copy = zeros(n * c);
        backend.rmsnormBackwardAndCopy(dx2, copy, dw2, tensor(r), tensor(x), tensor(w), rstd, n, c, true);
        assertArrayEquals(dx.data(), dx2.data());
        assertArrayEquals(dw.data(), dw2.data());
        assertArrayEquals(dx2.data(), copy.data());
    }

    @Test
    void matmulOperandIsTheWeightItself() {
        CpuTensor w = tensor(random(random, 12, 1));
        assertSame(w, backend.matmulOperand(w, null)); // the CPU's matmuls read fp32 weights as they are
    }

    @ParameterizedTest
    @CsvSource({"1", "7", "8", "13", "64", "67"})
    void shortDotProductsAndAxpysMatchFloat64(int n) {
        double[] a = rounded(random(random, n + 3, 1)), b = rounded(random(random, n + 5, 1));
        double expected = 0;
        for (int i = 0; i < n; i++) {
            expected += a[3 + i] * b[5 + i];
        }
        assertEquals(expected, Vec.dot(toFloat(a), 3, toFloat(b), 5, n), 1e-5 * Math.max(1, Math.abs(expected)));
        float[] y = toFloat(b);
        Vec.axpy(0.5f, toFloat(a), 3, y, 5, n);
        for (int i = 0; i < b.length; i++) {
            double want = i >= 5 && i < 5 + n ? b[i] + 0.5 * a[i - 2] : b[i];
            assertEquals(want, y[i], 1e-6, "axpy element " + i);
        }
    }

    @Test
    void residualAddFusedIntoRmsnormMatchesTheSeparateOpsBitwise() {
        int n = 7, c = 48;
        double[] x = random(random, n * c, 2), d = random(random, n * c, 1), w = random(random, c, 1);
        double[] sum = new double[n * c];
        for (int i = 0; i < sum.length; i++) {
            sum[i] = (float) ((float) x[i] + (float) d[i]);
        }
        CpuTensor residual = zeros(n * c), out = zeros(n * c), rstd = zeros(n);
        backend.residualRmsnormForward(residual, out, rstd, tensor(x), tensor(d), tensor(w), n, c, 1e-5f);
        assertClose("fused residual", sum, residual.data(), 1e-12);
        assertClose("fused norm", rmsnorm(sum, rounded(w), n, c, 1e-5), out.data(), 1e-6);
        // the separate ops, and the fused op writing the residual over its input, give the same bits
        CpuTensor separate = tensor(x), outSeparate = zeros(n * c), rstdSeparate = zeros(n);
        backend.accumulate(separate, tensor(d));
        backend.rmsnormForward(outSeparate, rstdSeparate, separate, tensor(w), n, c, 1e-5f);
        CpuTensor inPlace = tensor(x), outInPlace = zeros(n * c), rstdInPlace = zeros(n);
        backend.residualRmsnormForward(inPlace, outInPlace, rstdInPlace, inPlace, tensor(d), tensor(w), n, c, 1e-5f);
        org.junit.jupiter.api.Assertions.assertArrayEquals(separate.data(), inPlace.data());
        org.junit.jupiter.api.Assertions.assertArrayEquals(outSeparate.data(), outInPlace.data());
        org.junit.jupiter.api.Assertions.assertArrayEquals(outSeparate.data(), out.data());
        org.junit.jupiter.api.Assertions.assertArrayEquals(rstdSeparate.data(), rstd.data());
    }

    @ParameterizedTest
    @CsvSource({"1,3,2,1,8,0", "2,5,4,2,16,0", "1,4,4,4,8,7"})
    void ropeMatchesReferenceAndFiniteDifferences(int b, int t, int nh, int nkv, int hs, int start) {
        int width = (nh + 2 * nkv) * hs;
        double theta = 10000;
        double[] x = rounded(random(random, b * t * width, 1)), r = rounded(random(random, b * t * width, 1));
        CpuTensor y = tensor(x);
        backend.ropeForward(y, b, t, nh, nkv, hs, start, (float) theta);
        assertClose("rope forward", rope(x, b, t, nh, nkv, hs, start, theta), y.data(), 1e-6);
        CpuTensor g = tensor(r);
        backend.ropeBackward(g, b, t, nh, nkv, hs, start, (float) theta);
        assertClose("rope backward", numericGradient(x.clone(), xx -> dot(r, rope(xx, b, t, nh, nkv, hs, start, theta))), g.data(), 1e-5);
    }

    @ParameterizedTest
    @CsvSource({"1,1,1,1,4", "2,5,4,2,8", "1,7,4,1,16", "2,6,6,3,4"})
    void attentionMatchesReferenceAndFiniteDifferences(int b, int t, int nh, int nkv, int hs) {
        int width = (nh + 2 * nkv) * hs;
        double[] qkv = rounded(random(random, b * t * width, 1.5)), r = rounded(random(random, b * t * nh * hs, 1));
        CpuTensor out = zeros(b * t * nh * hs), lse = zeros(b * nh * t);
        backend.attentionForward(out, lse, tensor(qkv), b, t, t, nh, nkv, hs);
        assertClose("attention forward", attention(qkv, b, t, t, nh, nkv, hs), out.data(), 1e-5);
        CpuTensor dqkv = zeros(b * t * width);
        java.util.Arrays.fill(dqkv.data(), 7f); // overwritten
        backend.attentionBackward(dqkv, tensor(r), tensor(qkv), out, lse, b, t, nh, nkv, hs);
        assertClose("attention backward", numericGradient(qkv.clone(), x -> dot(r, attention(x, b, t, t, nh, nkv, hs))), dqkv.data(), 1e-4);
    }

    @Test
    void attentionWithCachedPrefixMatchesReference() {
        int b = 1, tk = 9, tq = 3, nh = 4, nkv = 2, hs = 8;
        double[] qkv = rounded(random(random, tk * (nh + 2 * nkv) * hs, 1));
        CpuTensor out = zeros(tq * nh * hs), lse = zeros(nh * tq);
        backend.attentionForward(out, lse, tensor(qkv), b, tq, tk, nh, nkv, hs);
        assertClose("attention with past", attention(qkv, b, tq, tk, nh, nkv, hs), out.data(), 1e-5);
    }

    @Test
    void swigluMatchesReferenceAndFiniteDifferences() {
        int n = 5, hidden = 7;
        double[] h = rounded(random(random, n * 2 * hidden, 3)), r = rounded(random(random, n * hidden, 1));
        CpuTensor out = zeros(n * hidden);
        backend.swigluForward(out, tensor(h), n, hidden);
        assertClose("swiglu forward", swiglu(h, n, hidden), out.data(), 1e-6);
        CpuTensor dh = zeros(n * 2 * hidden);
        backend.swigluBackward(dh, tensor(r), tensor(h), n, hidden);
        assertClose("swiglu backward", numericGradient(h.clone(), x -> dot(r, swiglu(x, n, hidden))), dh.data(), 1e-5);
        CpuTensor recomputed = zeros(n * hidden), dh2 = zeros(n * 2 * hidden);
        backend.swigluBackwardRecomputing(dh2, recomputed, tensor(r), tensor(h), n, hidden, Projection.GATE_UP, 0);
        assertClose("swiglu backward, recomputing: out", swiglu(h, n, hidden), recomputed.data(), 1e-6);
        assertClose("swiglu backward, recomputing: dh", numericGradient(h.clone(), x -> dot(r, swiglu(x, n, hidden))), dh2.data(), 1e-5);
    }

    @Test
    void embeddingGathersRowsAndScattersGradients() {
        int vocab = 5, c = 3;
        float[] table = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42};
        int[] tokens = {3, 0, 3};
        CpuTensor out = zeros(9);
        backend.embeddingForward(out, new CpuTensor(table, 0, 15), tokens, 3, c);
        assertEquals(java.util.List.of(30f, 31f, 32f, 0f, 1f, 2f, 30f, 31f, 32f), boxed(out.data()));
        CpuTensor grad = zeros(vocab * c);
        backend.embeddingBackward(grad, new CpuTensor(new float[]{1, 2, 3, 4, 5, 6, 7, 8, 9}, 0, 9), tokens, 3, c);
        assertEquals(java.util.List.of(4f, 5f, 6f, 0f, 0f, 0f, 0f, 0f, 0f, 8f, 10f, 12f, 0f, 0f, 0f), boxed(grad.data()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> backend.embeddingForward(out, new CpuTensor(table, 0, 15), new int[]{1, 5, 0}, 3, c));
        assertEquals("token id 5 at position 1 is outside the vocabulary [0, 5)", e.getMessage());
    }

    @Test
    void crossEntropyMatchesReferenceAndFiniteDifferences() {
        int n = 4, v = 11;
        int[] targets = {3, -1, 10, 0};
        double scale = 0.25;
        double[] z = rounded(random(random, n * v, 4));
        CpuTensor losses = zeros(n), logits = tensor(z);
        backend.crossEntropyForward(losses, logits, targets, n, v);
        assertClose("cross-entropy loss", crossEntropy(z, targets, n, v), losses.data(), 1e-6);
        backend.crossEntropyForwardBackward(logits, losses, targets, n, v, (float) scale);
        double[] expected = numericGradient(z.clone(), x -> scale * java.util.Arrays.stream(crossEntropy(x, targets, n, v)).sum());
        assertClose("cross-entropy gradient", expected, logits.data(), 1e-5);
        // hand-computed: uniform logits over 4 classes give log(4)
        CpuTensor uniform = new CpuTensor(new float[4], 0, 4), one = zeros(1);
        backend.crossEntropyForward(one, uniform, new int[]{2}, 1, 4);
        assertEquals(Math.log(4), one.data()[0], 1e-7);
    }

    /** Hand-worked rows: the target's distance below the row's largest logit; a tie for the largest gives 0. */
    @Test
    void crossEntropyMarginsAreTheTargetsDistanceBelowTheLargestLogit() {
        float[] z = {1f, 3f, 2f,    // target 2: 3 - 2 = 1
                     5f, -1f, 0f,   // target 0, the largest: 0
                     4f, 4f, 1f,    // target 1 ties the largest: 0
                     7f, 7f, 7f};   // ignored: 0
        CpuTensor losses = zeros(4), margins = new CpuTensor(new float[]{-9f, -9f, -9f, -9f}, 0, 4);
        backend.crossEntropyForward(losses, margins, new CpuTensor(z, 0, z.length), new int[]{2, 0, 1, -1}, 4, 3);
        assertArrayEquals(new float[]{1f, 0f, 0f, 0f}, margins.data());
        // the losses are unchanged by asking for margins: log(e + e^3 + e^2) - 2 for the first row
        assertEquals(Math.log(Math.exp(1) + Math.exp(3) + Math.exp(2)) - 2, losses.data()[0], 1e-6);
        assertEquals(0f, losses.data()[3]);
    }

    /** PaLM's z-loss: the objective scale * sum(CE + c lse^2) differentiated numerically; lse written out; the loss stays CE. */
    @Test
    void crossEntropyWithZLossMatchesFiniteDifferences() {
        int n = 4, v = 11;
        int[] targets = {3, -1, 10, 0};
        double scale = 0.25, c = 0.1;
        double[] z = rounded(random(random, n * v, 4));
        CpuTensor losses = zeros(n), logZ = tensor(new double[] {9, 9, 9, 9}), logits = tensor(z);
        backend.crossEntropyForwardBackward(logits, losses, targets, n, v, (float) scale, (float) c, logZ);
        assertClose("cross-entropy loss", crossEntropy(z, targets, n, v), losses.data(), 1e-6);
        double[] lse = new double[n];
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (int j = 0; j < v; j++) {
                sum += Math.exp(z[i * v + j]);
            }
            lse[i] = targets[i] < 0 ? 0 : Math.log(sum);
        }
        assertClose("logsumexp", lse, logZ.data(), 1e-6);
        double[] expected = numericGradient(z.clone(), x -> {
            double[] ce = crossEntropy(x, targets, n, v);
            double total = 0;
            for (int i = 0; i < n; i++) {
                if (targets[i] >= 0) {
                    double sum = 0;
                    for (int j = 0; j < v; j++) {
                        sum += Math.exp(x[i * v + j]);
                    }
                    total += ce[i] + c * Math.log(sum) * Math.log(sum);
                }
            }
            return scale * total;
        });
        assertClose("cross-entropy + z-loss gradient", expected, logits.data(), 1e-5);
    }

    @Test
    void adamwFollowsTorchFormulaComputedByHand() {
        // One parameter, two steps, torch.optim.AdamW(lr=0.1, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1):
        // step 1: g=0.5  m=0.05  v=0.0125  mhat=0.5  vhat=0.25  p = 2*(1-0.01) - 0.1*0.5/(0.5+1e-8)
        // step 2: g=-1   m=-0.055 v=0.061875 mhat=-0.055/0.19 vhat=0.061875/0.0975
        CpuTensor p = new CpuTensor(new float[]{2f}, 0, 1), m = zeros(1), v = zeros(1);
        backend.adamwUpdate(p, new CpuTensor(new float[]{0.5f}, 0, 1), m, v, new AdamWStep(0.1f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1f));
        double p1 = 2 * (1 - 0.01) - 0.1 * 0.5 / (0.5 + 1e-8);
        assertEquals(p1, p.data()[0], 1e-6);
        backend.adamwUpdate(p, new CpuTensor(new float[]{-2f}, 0, 1), m, v, new AdamWStep(0.1f, 0.9f, 0.95f, 1e-8f, 0.1f, 2, 0.5f));
        double mHat = -0.055 / 0.19, vHat = 0.061875 / 0.0975;
        double p2 = p1 * (1 - 0.01) - 0.1 * mHat / (Math.sqrt(vHat) + 1e-8);
        assertEquals(p2, p.data()[0], 1e-6);
        assertEquals(-0.055, m.data()[0], 1e-7);
        assertEquals(0.061875, v.data()[0], 1e-7);
    }

    @Test
    void sumOfSquaresIsExactOnSmallIntegers() {
        float[] x = new float[1001];
        double expected = 0;
        for (int i = 0; i < x.length; i++) {
            x[i] = i - 500;
            expected += (double) (i - 500) * (i - 500);
        }
        assertEquals(expected, backend.sumOfSquares(new CpuTensor(x, 0, x.length)));
    }

    private static java.util.List<Float> boxed(float[] values) {
        java.util.List<Float> list = new java.util.ArrayList<>();
        for (float v : values) {
            list.add(v);
        }
        return list;
    }
}
