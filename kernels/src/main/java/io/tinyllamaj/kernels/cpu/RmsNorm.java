package io.tinyllamaj.kernels.cpu;

/**
 * RMSNorm, as Hugging Face's LlamaRMSNorm: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps),
 * optionally fused with the residual add before it (x = inp + delta, kept for the backward).
 * x, y [n, c]; w [c]; rstd [n] is saved for the backward.
 * Backward (per row, with g = w * dy):
 *   dx += rstd * g - x * rstd^3 * mean(g * x)
 *   dw += dy * x * rstd
 * The weight gradient is a column sum over rows, so each thread keeps its own partial row.
 */
final class RmsNorm {

    private RmsNorm() {
    }

    static void forward(CpuTensor out, CpuTensor rstd, CpuTensor inp, CpuTensor weight, int n, int c, float eps) {
        forward(out, rstd, inp, null, null, weight, n, c, eps);
    }

    /**
     * With {@code delta}, first residual = inp + delta row by row (residual may be inp), and the
     * norm is of the sum: the residual add fused into the norm, one pass over each row.
     */
    static void forward(CpuTensor out, CpuTensor rstd, CpuTensor inp, CpuTensor delta, CpuTensor residual, CpuTensor weight,
                        int n, int c, float eps) {
        float[] y = out.data(), w = weight.data(), r = rstd.data();
        float[] x = delta == null ? inp.data() : residual.data();
        int xo = delta == null ? inp.offset() : residual.offset();
        int yo = out.offset(), wo = weight.offset(), ro = rstd.offset();
        Parallel.forChunks(n, 4L * n * c, (start, end) -> {
            for (int i = start; i < end; i++) {
                int row = xo + i * c;
                if (delta != null) {
                    float[] a = inp.data(), d = delta.data();
                    int ao = inp.offset() + i * c, dOff = delta.offset() + i * c;
                    for (int j = 0; j < c; j++) {
                        x[row + j] = a[ao + j] + d[dOff + j];
                    }
                }
                double sum = 0;
                for (int j = 0; j < c; j++) {
                    sum += x[row + j] * x[row + j];
                }
                float s = (float) (1.0 / Math.sqrt(sum / c + eps));
                r[ro + i] = s;
                int dst = yo + i * c;
                for (int j = 0; j < c; j++) {
                    y[dst + j] = x[row + j] * s * w[wo + j];
                }
            }
        });
    }

    static void backward(CpuTensor dinp, CpuTensor dweight, CpuTensor dout, CpuTensor inp, CpuTensor weight,
                         CpuTensor rstd, int n, int c) {
        float[] x = inp.data(), dy = dout.data(), w = weight.data(), r = rstd.data(), dx = dinp.data();
        int xo = inp.offset(), dyo = dout.offset(), wo = weight.offset(), ro = rstd.offset(), dxo = dinp.offset();
        int chunks = Math.max(1, Math.min(n, Parallel.REDUCTION_CHUNKS));
        float[][] partial = new float[chunks][];
        Parallel.forEach(chunks, 8L * n * c, chunk -> {
            int start = (int) ((long) n * chunk / chunks);
            int end = (int) ((long) n * (chunk + 1) / chunks);
            float[] dw = new float[c];
            for (int i = start; i < end; i++) {
                int row = xo + i * c, grow = dyo + i * c, drow = dxo + i * c;
                float s = r[ro + i];
                double dot = 0;
                for (int j = 0; j < c; j++) {
                    dot += w[wo + j] * dy[grow + j] * x[row + j];
                }
                float k = (float) (dot / c) * s * s * s;
                for (int j = 0; j < c; j++) {
                    dx[drow + j] += s * w[wo + j] * dy[grow + j] - k * x[row + j];
                    dw[j] += dy[grow + j] * x[row + j] * s;
                }
            }
            partial[chunk] = dw;
        });
        float[] g = dweight.data();
        int go = dweight.offset();
        for (float[] dw : partial) {
            for (int j = 0; j < c; j++) {
                g[go + j] += dw[j];
            }
        }
    }
}
