package io.tinyllamaj.model.cuda;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Projection;
import io.tinyllamaj.kernels.Tensor;
import io.tinyllamaj.kernels.cuda.CudaBackend;
import io.tinyllamaj.kernels.cuda.CudaDriver;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A {@link CudaBackend} that, while {@link #profiling} is on, brackets every op with CUDA events
 * and sums the GPU time per op and shape: where a training step's time goes. Only for the
 * bench in CudaModelCheck; events add a few microseconds of host time per op.
 */
final class TimedBackend implements Backend {

    private final CudaBackend gpu;
    private final CudaDriver driver;
    private final Map<String, List<MemorySegment[]>> spans = new LinkedHashMap<>();
    boolean profiling;

    TimedBackend(CudaBackend gpu) {
        this.gpu = gpu;
        this.driver = gpu.driver();
    }

    private MemorySegment[] begin(String key) {
        if (!profiling) {
            return null;
        }
        MemorySegment[] span = {driver.eventCreate(), driver.eventCreate()};
        driver.eventRecord(span[0], gpu.stream());
        spans.computeIfAbsent(key, k -> new ArrayList<>()).add(span);
        return span;
    }

    private void end(MemorySegment[] span) {
        if (span != null) {
            driver.eventRecord(span[1], gpu.stream());
        }
    }

    /** Runs one op between its span's two events (when profiling). */
    private void timed(String key, Runnable op) {
        MemorySegment[] span = begin(key);
        op.run();
        end(span);
    }

    /** Rows "op  calls  ms" sorted by time, and the total; clears what was recorded. */
    /**
     * One profiled op: its name (with shape), calls in the step, GPU milliseconds summed over them,
     * and the shortest and longest call (a spread between calls of one shape points at waits, not work).
     */
    record Row(String key, int calls, double ms, double minMs, double maxMs) {
    }

    /** The profiled step per op, slowest first; the events are freed. */
    List<Row> rows() {
        gpu.synchronize();
        List<Row> rows = new ArrayList<>();
        double total = 0;
        for (Map.Entry<String, List<MemorySegment[]>> e : spans.entrySet()) {
            double ms = 0, min = Double.MAX_VALUE, max = 0;
            for (MemorySegment[] span : e.getValue()) {
                double one = driver.eventElapsedMillis(span[0], span[1]);
                ms += one;
                min = Math.min(min, one);
                max = Math.max(max, one);
                driver.eventDestroy(span[0]);
                driver.eventDestroy(span[1]);
            }
            rows.add(new Row(e.getKey(), e.getValue().size(), ms, min, max));
        }
        spans.clear();
        rows.sort((a, b) -> Double.compare(b.ms, a.ms));
        return rows;
    }

    /** {@link #rows} as the table the benchmark prints. */
    static List<String> report(List<Row> rows) {
        double total = rows.stream().mapToDouble(Row::ms).sum();
        List<String> lines = new ArrayList<>();
        for (Row r : rows) {
            lines.add(String.format("  %-52s %5d %9.2f ms %5.1f%%  (a call %.3f-%.3f ms)", r.key, r.calls, r.ms, 100 * r.ms / total,
                    r.minMs, r.maxMs));
        }
        lines.add(String.format("  %-52s %5s %9.2f ms", "sum of op times", "", total));
        return lines;
    }

    @Override
    public String name() {
        return gpu.name();
    }

    @Override
    public Tensor allocate(long length) {
        return gpu.allocate(length);
    }

    @Override
    public long memoryCapacity() {
        return gpu.memoryCapacity();
    }

    @Override
    public Tensor allocateActivation(long length) {
        return gpu.allocateActivation(length);
    }

    @Override
    public void upload(Tensor dst, float[] src, int srcOffset, int length) {
        gpu.upload(dst, src, srcOffset, length);
    }

    @Override
    public void download(Tensor src, float[] dst, int dstOffset, int length) {
        gpu.download(src, dst, dstOffset, length);
    }

    @Override
    public void fill(Tensor t, float value) {
        timed("fill", () -> gpu.fill(t, value));
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        timed("copy", () -> gpu.copy(dst, src));
    }

    @Override
    public void accumulate(Tensor dst, Tensor src) {
        timed("accumulate", () -> gpu.accumulate(dst, src));
    }

    @Override
    public void scale(Tensor t, float factor) {
        timed("scale", () -> gpu.scale(t, factor));
    }

    @Override
    public Tensor matmulOperand(Tensor weight, Tensor into) {
        MemorySegment[] s = begin("matmul operand");
        Tensor operand = gpu.matmulOperand(weight, into);
        end(s);
        return operand;
    }

    @Override
    public void matmulForward(Tensor out, Tensor inp, Tensor weight, int n, int c, int oc) {
        timed("matmul fwd c=" + c + " oc=" + oc, () -> gpu.matmulForward(out, inp, weight, n, c, oc));
    }

    @Override
    public void matmulBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, int n, int c, int oc,
                               boolean accumulate) {
        timed("matmul bwd c=" + c + " oc=" + oc, () -> gpu.matmulBackward(dinp, dweight, dout, inp, weight, n, c, oc, accumulate));
    }

    @Override
    public void blockMatmulForward(Projection projection, int layer, Tensor out, Tensor inp, Tensor weight, int n, int c, int oc) {
        timed("matmul fwd c=" + c + " oc=" + oc, () -> gpu.blockMatmulForward(projection, layer, out, inp, weight, n, c, oc));
    }

    @Override
    public boolean blockMatmulKeepsInput(Projection projection, int n, int c, int oc) {
        return gpu.blockMatmulKeepsInput(projection, n, c, oc);
    }

    @Override
    public void blockMatmulBackward(Projection projection, int layer, Tensor dinp, Tensor dweight, Tensor dout, Tensor inp,
                                    Tensor weight, int n, int c, int oc, boolean accumulate) {
        timed("matmul bwd c=" + c + " oc=" + oc,
                () -> gpu.blockMatmulBackward(projection, layer, dinp, dweight, dout, inp, weight, n, c, oc, accumulate));
    }

    @Override
    public void residualRmsnormForward(Tensor residual, Tensor out, Tensor rstd, Tensor x, Tensor delta, Tensor weight,
                                       int n, int c, float eps) {
        timed("residual + rmsnorm fwd", () -> gpu.residualRmsnormForward(residual, out, rstd, x, delta, weight, n, c, eps));
    }

    @Override
    public void rmsnormForward(Tensor out, Tensor rstd, Tensor inp, Tensor weight, int n, int c, float eps) {
        timed("rmsnorm fwd", () -> gpu.rmsnormForward(out, rstd, inp, weight, n, c, eps));
    }

    @Override
    public void residualRmsnormForward(Tensor residual, Tensor out, Tensor rstd, Tensor x, Tensor delta, Tensor weight, int n, int c,
                                       float eps, Projection feeds, int layer) {
        timed("residual + rmsnorm fwd", () -> gpu.residualRmsnormForward(residual, out, rstd, x, delta, weight, n, c, eps, feeds, layer));
    }

    @Override
    public void rmsnormForward(Tensor out, Tensor rstd, Tensor inp, Tensor weight, int n, int c, float eps, Projection feeds, int layer) {
        timed("rmsnorm fwd", () -> gpu.rmsnormForward(out, rstd, inp, weight, n, c, eps, feeds, layer));
    }

    @Override
    public void rmsnormBackwardAndCopy(Tensor dinp, Tensor dinpCopy, Tensor dweight, Tensor dout, Tensor inp, Tensor weight,
                                       Tensor rstd, int n, int c, boolean accumulateWeight) {
        timed("rmsnorm bwd", () -> gpu.rmsnormBackwardAndCopy(dinp, dinpCopy, dweight, dout, inp, weight, rstd, n, c, accumulateWeight));
    }

    @Override
    public void rmsnormBackwardAndCopy(Tensor dinp, Tensor dinpCopy, Tensor dweight, Tensor dout, Tensor inp, Tensor weight,
                                       Tensor rstd, int n, int c, boolean accumulateWeight, Projection feeds, int layer) {
        timed("rmsnorm bwd",
                () -> gpu.rmsnormBackwardAndCopy(dinp, dinpCopy, dweight, dout, inp, weight, rstd, n, c, accumulateWeight, feeds, layer));
    }

    @Override
    public void rmsnormBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, Tensor rstd, int n, int c,
                                boolean accumulateWeight) {
        timed("rmsnorm bwd", () -> gpu.rmsnormBackward(dinp, dweight, dout, inp, weight, rstd, n, c, accumulateWeight));
    }

    @Override
    public void ropeForward(Tensor qkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta) {
        timed("rope fwd", () -> gpu.ropeForward(qkv, b, t, nHeads, nKvHeads, headSize, startPos, theta));
    }

    @Override
    public void ropeBackward(Tensor dqkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta) {
        timed("rope bwd", () -> gpu.ropeBackward(dqkv, b, t, nHeads, nKvHeads, headSize, startPos, theta));
    }

    @Override
    public void ropeBackward(Tensor dqkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta,
                             Projection feeds, int layer) {
        timed("rope bwd", () -> gpu.ropeBackward(dqkv, b, t, nHeads, nKvHeads, headSize, startPos, theta, feeds, layer));
    }

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor qkv, int b, int tq, int tk, int nh, int nkv, int hs) {
        timed("attention fwd", () -> gpu.attentionForward(out, lse, qkv, b, tq, tk, nh, nkv, hs));
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int b, int t, int nh, int nkv, int hs) {
        timed("attention bwd", () -> gpu.attentionBackward(dqkv, dout, qkv, out, lse, b, t, nh, nkv, hs));
    }

    /** Timed as the attention backward: RoPE's backward is inside it where the kernels store dq and dk turned back. */
    @Override
    public void attentionRopeBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int b, int t, int nh, int nkv,
                                      int hs, float theta, Projection feeds, int layer) {
        timed("attention bwd", () -> gpu.attentionRopeBackward(dqkv, dout, qkv, out, lse, b, t, nh, nkv, hs, theta, feeds, layer));
    }

    @Override
    public void swigluForward(Tensor out, Tensor h, int n, int hidden) {
        timed("swiglu fwd", () -> gpu.swigluForward(out, h, n, hidden));
    }

    @Override
    public void swigluBackward(Tensor dh, Tensor dout, Tensor h, int n, int hidden) {
        timed("swiglu bwd", () -> gpu.swigluBackward(dh, dout, h, n, hidden));
    }

    @Override
    public void swigluForward(Tensor out, Tensor h, int n, int hidden, Projection feeds, int layer) {
        timed("swiglu fwd", () -> gpu.swigluForward(out, h, n, hidden, feeds, layer));
    }

    @Override
    public void swigluBackward(Tensor dh, Tensor dout, Tensor h, int n, int hidden, Projection feeds, int layer) {
        timed("swiglu bwd", () -> gpu.swigluBackward(dh, dout, h, n, hidden, feeds, layer));
    }

    @Override
    public void swigluBackwardRecomputing(Tensor dh, Tensor out, Tensor dout, Tensor h, int n, int hidden, Projection feeds, int layer) {
        timed("swiglu bwd", () -> gpu.swigluBackwardRecomputing(dh, out, dout, h, n, hidden, feeds, layer));
    }

    @Override
    public void embeddingForward(Tensor out, Tensor table, int[] tokens, int n, int c) {
        timed("embedding fwd", () -> gpu.embeddingForward(out, table, tokens, n, c));
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, int[] tokens, int n, int c) {
        timed("embedding bwd", () -> gpu.embeddingBackward(dtable, dout, tokens, n, c));
    }

    @Override
    public void crossEntropyForwardBackward(Tensor logits, Tensor losses, int[] targets, int n, int v, float gradScale) {
        timed("cross-entropy fwd+bwd", () -> gpu.crossEntropyForwardBackward(logits, losses, targets, n, v, gradScale));
    }

    @Override
    public void crossEntropyForward(Tensor losses, Tensor margins, Tensor logits, int[] targets, int n, int v) {
        timed("cross-entropy fwd", () -> gpu.crossEntropyForward(losses, margins, logits, targets, n, v));
    }

    @Override
    public double sumOfSquares(Tensor t) {
        MemorySegment[] s = begin("sumOfSquares");
        try {
            return gpu.sumOfSquares(t);
        } finally {
            end(s);
        }
    }

    @Override
    public void adamwUpdateAndCopy(Tensor params, Tensor operands, Tensor grads, Tensor m, Tensor v, AdamWStep step) {
        timed("adamw", () -> gpu.adamwUpdateAndCopy(params, operands, grads, m, v, step));
    }

    @Override
    public void adamwUpdate(Tensor params, Tensor grads, Tensor m, Tensor v, AdamWStep step) {
        timed("adamw", () -> gpu.adamwUpdate(params, grads, m, v, step));
    }
}
