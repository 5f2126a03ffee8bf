package io.tinyllamaj.kernels.cpu;

/**
 * SwiGLU over the fused gate/up projection: h [n, 2H] holds gate (first H) then up.
 *   out = silu(gate) * up, silu(g) = g * sigmoid(g)
 * Backward: dgate = dout * up * sigmoid(g) * (1 + g * (1 - sigmoid(g))), dup = dout * silu(g).
 */
final class SwiGlu {

    private SwiGlu() {
    }

    static void forward(CpuTensor out, CpuTensor h, int n, int hidden) {
        float[] y = out.data(), x = h.data();
        int yo = out.offset(), xo = h.offset();
        Parallel.forChunks(n, 10L * n * hidden, (start, end) -> {
            for (int i = start; i < end; i++) {
                int gate = xo + i * 2 * hidden, up = gate + hidden, dst = yo + i * hidden;
                for (int j = 0; j < hidden; j++) {
                    float g = x[gate + j];
                    y[dst + j] = g / (1f + (float) Math.exp(-g)) * x[up + j];
                }
            }
        });
    }

    static void backward(CpuTensor dh, CpuTensor dout, CpuTensor h, int n, int hidden) {
        float[] dx = dh.data(), dy = dout.data(), x = h.data();
        int dxo = dh.offset(), dyo = dout.offset(), xo = h.offset();
        Parallel.forChunks(n, 15L * n * hidden, (start, end) -> {
            for (int i = start; i < end; i++) {
                int gate = xo + i * 2 * hidden, up = gate + hidden;
                int dgate = dxo + i * 2 * hidden, dup = dgate + hidden, src = dyo + i * hidden;
                for (int j = 0; j < hidden; j++) {
                    float g = x[gate + j];
                    float sig = 1f / (1f + (float) Math.exp(-g));
                    float d = dy[src + j];
                    dx[dgate + j] = d * x[up + j] * sig * (1f + g * (1f - sig));
                    dx[dup + j] = d * g * sig;
                }
            }
        });
    }
}
