package io.tinyllamaj.kernels.cpu;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;

import static io.tinyllamaj.kernels.cpu.CpuTensor.of;

/**
 * The fp32 reference backend: Java arrays, the Vector API in the matmul, every core through
 * the common fork-join pool. Each op family lives in its own class, forward beside backward.
 * Not thread-safe: one training loop drives one backend.
 */
public final class CpuBackend implements Backend {

    private final Matmul matmul = new Matmul();

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public CpuTensor allocate(long length) {
        if (length > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("the CPU backend holds at most 2^31 values per tensor, asked for " + length);
        }
        return new CpuTensor(new float[(int) length], 0, (int) length);
    }

    /** Tensors are float arrays on the heap. */
    @Override
    public long memoryCapacity() {
        return Runtime.getRuntime().maxMemory();
    }

    @Override
    public void upload(Tensor dst, float[] src, int srcOffset, int length) {
        CpuTensor t = of(dst);
        System.arraycopy(src, srcOffset, t.data(), t.offset(), length);
    }

    @Override
    public void download(Tensor src, float[] dst, int dstOffset, int length) {
        CpuTensor t = of(src);
        System.arraycopy(t.data(), t.offset(), dst, dstOffset, length);
    }

    @Override
    public void fill(Tensor t, float value) {
        CpuTensor c = of(t);
        java.util.Arrays.fill(c.data(), c.offset(), c.offset() + c.length32(), value);
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        CpuTensor s = of(src), d = of(dst);
        System.arraycopy(s.data(), s.offset(), d.data(), d.offset(), s.length32());
    }

    @Override
    public void accumulate(Tensor dst, Tensor src) {
        CpuTensor s = of(src), d = of(dst);
        float[] a = d.data(), b = s.data();
        int ao = d.offset(), bo = s.offset();
        Parallel.forChunks(s.length32(), s.length(), (start, end) -> {
            for (int i = start; i < end; i++) {
                a[ao + i] += b[bo + i];
            }
        });
    }

    @Override
    public void scale(Tensor t, float factor) {
        CpuTensor c = of(t);
        float[] a = c.data();
        int o = c.offset();
        Parallel.forChunks(c.length32(), c.length(), (start, end) -> {
            for (int i = start; i < end; i++) {
                a[o + i] *= factor;
            }
        });
    }

    @Override
    public void matmulForward(Tensor out, Tensor inp, Tensor weight, int n, int c, int oc) {
        matmul.forward(of(out), of(inp), of(weight), n, c, oc);
    }

    @Override
    public void matmulBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, int n, int c, int oc,
                               boolean accumulate) {
        if (!accumulate && dweight != null) {
            fill(dweight, 0f); // the reference overwrites as 0 + sum: the accumulating path's bits
        }
        matmul.backward(dinp == null ? null : of(dinp), dweight == null ? null : of(dweight), of(dout), inp == null ? null : of(inp),
                of(weight), n, c, oc);
    }

    @Override
    public void rmsnormForward(Tensor out, Tensor rstd, Tensor inp, Tensor weight, int n, int c, float eps) {
        RmsNorm.forward(of(out), of(rstd), of(inp), of(weight), n, c, eps);
    }

    @Override
    public void residualRmsnormForward(Tensor residual, Tensor out, Tensor rstd, Tensor x, Tensor delta, Tensor weight,
                                       int n, int c, float eps) {
        RmsNorm.forward(of(out), of(rstd), of(x), of(delta), of(residual), of(weight), n, c, eps);
    }

    @Override
    public void rmsnormBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, Tensor rstd, int n, int c,
                                boolean accumulateWeight) {
        if (!accumulateWeight) {
            fill(dweight, 0f);
        }
        RmsNorm.backward(of(dinp), of(dweight), of(dout), of(inp), of(weight), of(rstd), n, c);
    }

    @Override
    public void ropeForward(Tensor qkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta) {
        Rope.rotate(of(qkv), b, t, nHeads, nKvHeads, headSize, startPos, theta, false);
    }

    @Override
    public void ropeBackward(Tensor dqkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta) {
        Rope.rotate(of(dqkv), b, t, nHeads, nKvHeads, headSize, startPos, theta, true);
    }

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor qkv, int b, int tq, int tk, int nh, int nkv, int hs) {
        Attention.forward(of(out), of(lse), of(qkv), b, tq, tk, nh, nkv, hs);
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int b, int t, int nh, int nkv, int hs) {
        Attention.backward(of(dqkv), of(dout), of(qkv), of(out), of(lse), b, t, nh, nkv, hs);
    }

    @Override
    public void swigluForward(Tensor out, Tensor h, int n, int hidden) {
        SwiGlu.forward(of(out), of(h), n, hidden);
    }

    @Override
    public void swigluBackward(Tensor dh, Tensor dout, Tensor h, int n, int hidden) {
        SwiGlu.backward(of(dh), of(dout), of(h), n, hidden);
    }

    @Override
    public void embeddingForward(Tensor out, Tensor table, int[] tokens, int n, int c) {
        Embedding.forward(of(out), of(table), tokens, n, c);
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, int[] tokens, int n, int c) {
        Embedding.backward(of(dtable), of(dout), tokens, n, c);
    }

    @Override
    public void crossEntropyForwardBackward(Tensor logits, Tensor losses, int[] targets, int n, int v, float gradScale) {
        CrossEntropy.forwardBackward(of(logits), of(losses), targets, n, v, gradScale);
    }

    @Override
    public void crossEntropyForwardBackward(Tensor logits, Tensor losses, int[] targets, int n, int v, float gradScale, float zLoss,
                                            Tensor logZ) {
        CrossEntropy.forwardBackward(of(logits), of(losses), targets, n, v, gradScale, zLoss, of(logZ));
    }

    @Override
    public void crossEntropyForward(Tensor losses, Tensor margins, Tensor logits, int[] targets, int n, int v) {
        CrossEntropy.forward(of(losses), margins == null ? null : of(margins), of(logits), targets, n, v);
    }

    @Override
    public double sumOfSquares(Tensor t) {
        CpuTensor c = of(t);
        float[] a = c.data();
        int o = c.offset(), n = c.length32();
        int chunks = Math.max(1, Math.min(n, Parallel.REDUCTION_CHUNKS));
        double[] partial = new double[chunks];
        Parallel.forEach(chunks, 2L * n, chunk -> {
            int start = (int) ((long) n * chunk / chunks), end = (int) ((long) n * (chunk + 1) / chunks);
            double sum = 0;
            for (int i = start; i < end; i++) {
                sum += (double) a[o + i] * a[o + i];
            }
            partial[chunk] = sum;
        });
        double total = 0;
        for (double p : partial) {
            total += p;
        }
        return total;
    }

    @Override
    public void adamwUpdate(Tensor params, Tensor grads, Tensor m, Tensor v, AdamWStep step) {
        AdamW.update(of(params), of(grads), of(m), of(v), step);
    }
}
