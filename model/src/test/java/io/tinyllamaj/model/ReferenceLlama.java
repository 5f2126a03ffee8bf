package io.tinyllamaj.model;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * An independent float64 Llama written from Hugging Face's LlamaForCausalLM (modeling_llama.py):
 * separate q/k/v/gate/up projections keyed by HF tensor names, repeat_kv for grouped queries,
 * rotate_half RoPE, eager softmax attention with a causal mask. Shares no code with the model.
 */
public final class ReferenceLlama {

    public final LlamaConfig c;
    public final Map<String, double[]> w = new LinkedHashMap<>();

    public ReferenceLlama(LlamaConfig c, long seed) {
        this.c = c;
        SplittableRandom r = new SplittableRandom(seed);
        int q = c.heads() * c.headSize(), kv = c.kvHeads() * c.headSize();
        put(r, "model.embed_tokens.weight", c.vocabSize() * c.dim(), 1.0, false);
        for (int l = 0; l < c.layers(); l++) {
            String p = "model.layers." + l + ".";
            put(r, p + "input_layernorm.weight", c.dim(), 0.3, true);
            put(r, p + "self_attn.q_proj.weight", q * c.dim(), 0.4, false);
            put(r, p + "self_attn.k_proj.weight", kv * c.dim(), 0.4, false);
            put(r, p + "self_attn.v_proj.weight", kv * c.dim(), 0.4, false);
            put(r, p + "self_attn.o_proj.weight", c.dim() * q, 0.3, false);
            put(r, p + "post_attention_layernorm.weight", c.dim(), 0.3, true);
            put(r, p + "mlp.gate_proj.weight", c.intermediate() * c.dim(), 0.4, false);
            put(r, p + "mlp.up_proj.weight", c.intermediate() * c.dim(), 0.4, false);
            put(r, p + "mlp.down_proj.weight", c.dim() * c.intermediate(), 0.3, false);
        }
        put(r, "model.norm.weight", c.dim(), 0.3, true);
        if (!c.tieEmbeddings()) {
            put(r, "lm_head.weight", c.vocabSize() * c.dim(), 0.5, false);
        }
    }

    /** Values exactly representable in fp32, so both models start from the same weights. */
    private void put(SplittableRandom r, String name, int n, double scale, boolean aroundOne) {
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((aroundOne ? 1 : 0) + (r.nextDouble() * 2 - 1) * scale);
        }
        w.put(name, x);
    }

    /** logits [b*t, vocab] */
    public double[] logits(int[] tokens, int b, int t) {
        int d = c.dim(), hs = c.headSize(), nh = c.heads(), nkv = c.kvHeads(), n = b * t;
        double[] h = new double[n * d];
        double[] embed = w.get("model.embed_tokens.weight");
        for (int i = 0; i < n; i++) {
            System.arraycopy(embed, tokens[i] * d, h, i * d, d);
        }
        for (int l = 0; l < c.layers(); l++) {
            String p = "model.layers." + l + ".";
            double[] x = rmsnorm(h, w.get(p + "input_layernorm.weight"), n, d);
            double[] q = linear(x, w.get(p + "self_attn.q_proj.weight"), n, d, nh * hs);
            double[] k = linear(x, w.get(p + "self_attn.k_proj.weight"), n, d, nkv * hs);
            double[] v = linear(x, w.get(p + "self_attn.v_proj.weight"), n, d, nkv * hs);
            rope(q, n, t, nh, hs);
            rope(k, n, t, nkv, hs);
            double[] att = new double[n * nh * hs];
            for (int bi = 0; bi < b; bi++) {
                for (int head = 0; head < nh; head++) {
                    int kvHead = head / (nh / nkv); // repeat_kv
                    for (int i = 0; i < t; i++) {
                        double[] s = new double[t];
                        double max = Double.NEGATIVE_INFINITY;
                        for (int j = 0; j < t; j++) {
                            if (j > i) {
                                s[j] = Double.NEGATIVE_INFINITY;
                                continue;
                            }
                            double dot = 0;
                            for (int e = 0; e < hs; e++) {
                                dot += q[((bi * t + i) * nh + head) * hs + e] * k[((bi * t + j) * nkv + kvHead) * hs + e];
                            }
                            s[j] = dot / Math.sqrt(hs);
                            max = Math.max(max, s[j]);
                        }
                        double z = 0;
                        for (int j = 0; j <= i; j++) {
                            z += Math.exp(s[j] - max);
                        }
                        for (int j = 0; j <= i; j++) {
                            double pj = Math.exp(s[j] - max) / z;
                            for (int e = 0; e < hs; e++) {
                                att[((bi * t + i) * nh + head) * hs + e] += pj * v[((bi * t + j) * nkv + kvHead) * hs + e];
                            }
                        }
                    }
                }
            }
            add(h, linear(att, w.get(p + "self_attn.o_proj.weight"), n, nh * hs, d));
            double[] x2 = rmsnorm(h, w.get(p + "post_attention_layernorm.weight"), n, d);
            double[] gate = linear(x2, w.get(p + "mlp.gate_proj.weight"), n, d, c.intermediate());
            double[] up = linear(x2, w.get(p + "mlp.up_proj.weight"), n, d, c.intermediate());
            for (int i = 0; i < gate.length; i++) {
                gate[i] = gate[i] / (1 + Math.exp(-gate[i])) * up[i];
            }
            add(h, linear(gate, w.get(p + "mlp.down_proj.weight"), n, c.intermediate(), d));
        }
        double[] head = w.get(c.tieEmbeddings() ? "model.embed_tokens.weight" : "lm_head.weight");
        return linear(rmsnorm(h, w.get("model.norm.weight"), n, d), head, n, d, c.vocabSize());
    }

    /** Mean next-token cross-entropy over positions whose target is not negative. */
    public double loss(int[] tokens, int[] targets, int b, int t) {
        return meanOverTargets(tokens, targets, b, t, (lse, targetLogit) -> lse - targetLogit);
    }

    /** Mean of logsumexp(logits)^2 over positions whose target is not negative: PaLM's z-loss before its coefficient. */
    public double meanSquaredLogZ(int[] tokens, int[] targets, int b, int t) {
        return meanOverTargets(tokens, targets, b, t, (lse, targetLogit) -> lse * lse);
    }

    /** The mean of {@code f(logsumexp of the position's logits, the target's logit)} over positions with a target. */
    private double meanOverTargets(int[] tokens, int[] targets, int b, int t, java.util.function.DoubleBinaryOperator f) {
        double[] z = logits(tokens, b, t);
        int v = c.vocabSize();
        double sum = 0;
        int count = 0;
        for (int i = 0; i < b * t; i++) {
            if (targets[i] < 0) {
                continue;
            }
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < v; j++) {
                max = Math.max(max, z[i * v + j]);
            }
            double s = 0;
            for (int j = 0; j < v; j++) {
                s += Math.exp(z[i * v + j] - max);
            }
            sum += f.applyAsDouble(Math.log(s) + max, z[i * v + targets[i]]);
            count++;
        }
        return sum / count;
    }

    private double[] rmsnorm(double[] x, double[] weight, int n, int d) {
        double[] out = new double[n * d];
        for (int i = 0; i < n; i++) {
            double ms = 0;
            for (int j = 0; j < d; j++) {
                ms += x[i * d + j] * x[i * d + j];
            }
            double r = 1 / Math.sqrt(ms / d + c.normEps());
            for (int j = 0; j < d; j++) {
                out[i * d + j] = weight[j] * (x[i * d + j] * r);
            }
        }
        return out;
    }

    private void rope(double[] x, int n, int t, int heads, int hs) {
        int half = hs / 2;
        for (int i = 0; i < n; i++) {
            int pos = i % t;
            for (int h = 0; h < heads; h++) {
                int base = (i * heads + h) * hs;
                for (int e = 0; e < half; e++) {
                    double angle = pos / Math.pow(c.ropeTheta(), 2.0 * e / hs);
                    double a = x[base + e], bb = x[base + e + half];
                    x[base + e] = a * Math.cos(angle) - bb * Math.sin(angle);      // x*cos + rotate_half(x)*sin
                    x[base + e + half] = bb * Math.cos(angle) + a * Math.sin(angle);
                }
            }
        }
    }

    private static double[] linear(double[] x, double[] weight, int n, int in, int out) {
        double[] y = new double[n * out];
        for (int i = 0; i < n; i++) {
            for (int o = 0; o < out; o++) {
                double s = 0;
                for (int k = 0; k < in; k++) {
                    s += x[i * in + k] * weight[o * in + k];
                }
                y[i * out + o] = s;
            }
        }
        return y;
    }

    private static void add(double[] h, double[] delta) {
        for (int i = 0; i < h.length; i++) {
            h[i] += delta[i];
        }
    }
}
