package io.tinyllamaj.kernels.cpu;

/**
 * Causal grouped-query attention read straight from fused qkv rows [b, tk, (nh + 2 nkv) hs]:
 * query head h uses kv head h / (nh / nkv), as Hugging Face's repeat_kv does.
 *   s_ij = q_i . k_j / sqrt(hs) for j <= pos(i);  p = softmax(s);  o_i = sum_j p_ij v_j
 * Only the log-sum-exp of each row is kept (lse [b, nh, tq]); the backward recomputes p from
 * it, as flash attention does, so no T x T matrix outlives a row:
 *   dp_ij = do_i . v_j;  D_i = do_i . o_i;  ds_ij = p_ij (dp_ij - D_i)
 *   dq_i = sum_j ds_ij k_j / sqrt(hs);  dk_j += ds_ij q_i / sqrt(hs);  dv_j += p_ij do_i
 * The backward is split by (batch, kv head) so the shared dk/dv rows never race.
 */
final class Attention {

    private Attention() {
    }

    static void forward(CpuTensor out, CpuTensor lse, CpuTensor qkv, int b, int tq, int tk, int nh, int nkv, int hs) {
        float[] x = qkv.data(), o = out.data(), l = lse.data();
        int xo = qkv.offset(), oo = out.offset(), lo = lse.offset();
        int width = (nh + 2 * nkv) * hs;
        int group = nh / nkv;
        int past = tk - tq;
        float scale = (float) (1.0 / Math.sqrt(hs));
        Parallel.forEach(b * nh, 2L * b * nh * tq * (past + tq / 2 + 1) * hs * 2, bh -> {
            int bi = bh / nh, h = bh % nh;
            int kvHead = h / group;
            float[] p = new float[tk];
            int batch = xo + bi * tk * width;
            for (int i = 0; i < tq; i++) {
                int pos = past + i;
                int q = batch + pos * width + h * hs;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j <= pos; j++) {
                    int k = batch + j * width + (nh + kvHead) * hs;
                    float s = Vec.dot(x, q, x, k, hs) * scale;
                    p[j] = s;
                    max = Math.max(max, s);
                }
                float sum = 0;
                for (int j = 0; j <= pos; j++) {
                    p[j] = (float) Math.exp(p[j] - max);
                    sum += p[j];
                }
                int dst = oo + (bi * tq + i) * nh * hs + h * hs;
                java.util.Arrays.fill(o, dst, dst + hs, 0f);
                float inv = 1f / sum;
                for (int j = 0; j <= pos; j++) {
                    int v = batch + j * width + (nh + nkv + kvHead) * hs;
                    Vec.axpy(p[j] * inv, x, v, o, dst, hs);
                }
                l[lo + (bi * nh + h) * tq + i] = max + (float) Math.log(sum);
            }
        });
    }

    static void backward(CpuTensor dqkv, CpuTensor dout, CpuTensor qkv, CpuTensor out, CpuTensor lse,
                         int b, int t, int nh, int nkv, int hs) {
        float[] x = qkv.data(), dx = dqkv.data(), dy = dout.data(), o = out.data(), l = lse.data();
        int xo = qkv.offset(), dxo = dqkv.offset(), dyo = dout.offset(), oo = out.offset(), lo = lse.offset();
        int width = (nh + 2 * nkv) * hs;
        int group = nh / nkv;
        float scale = (float) (1.0 / Math.sqrt(hs));
        Parallel.forEach(b * nkv, 4L * b * nh * t * (t / 2 + 1) * hs * 2, bg -> {
            int bi = bg / nkv, kvHead = bg % nkv;
            int batch = bi * t * width;
            for (int row = 0; row < t; row++) {
                int base = dxo + batch + row * width;
                java.util.Arrays.fill(dx, base + kvHead * group * hs, base + (kvHead + 1) * group * hs, 0f);
                java.util.Arrays.fill(dx, base + (nh + kvHead) * hs, base + (nh + kvHead + 1) * hs, 0f);
                java.util.Arrays.fill(dx, base + (nh + nkv + kvHead) * hs, base + (nh + nkv + kvHead + 1) * hs, 0f);
            }
            for (int h = kvHead * group; h < (kvHead + 1) * group; h++) {
                for (int i = 0; i < t; i++) {
                    int q = xo + batch + i * width + h * hs;
                    int dq = dxo + batch + i * width + h * hs;
                    int gy = dyo + (bi * t + i) * nh * hs + h * hs;
                    int oy = oo + (bi * t + i) * nh * hs + h * hs;
                    float lseI = l[lo + (bi * nh + h) * t + i];
                    float dotOut = Vec.dot(dy, gy, o, oy, hs);
                    for (int j = 0; j <= i; j++) {
                        int k = xo + batch + j * width + (nh + kvHead) * hs;
                        int v = k + nkv * hs;
                        int dk = dxo + batch + j * width + (nh + kvHead) * hs;
                        int dv = dk + nkv * hs;
                        float s = Vec.dot(x, q, x, k, hs), dp = Vec.dot(dy, gy, x, v, hs);
                        float p = (float) Math.exp(s * scale - lseI);
                        float ds = p * (dp - dotOut) * scale;
                        Vec.axpy(ds, x, k, dx, dq, hs);
                        Vec.axpy(ds, x, q, dx, dk, hs);
                        Vec.axpy(p, dy, gy, dx, dv, hs);
                    }
                }
            }
        });
    }
}
