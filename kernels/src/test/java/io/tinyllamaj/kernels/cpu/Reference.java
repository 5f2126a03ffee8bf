package io.tinyllamaj.kernels.cpu;

import java.util.SplittableRandom;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * float64 reference ops written from the math (not from the kernels), and the finite-difference
 * machinery the gradient tests share.
 */
final class Reference {

    private Reference() {
    }

    static double[] random(SplittableRandom r, int n, double scale) {
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = (r.nextDouble() * 2 - 1) * scale;
        }
        return x;
    }

    static float[] toFloat(double[] x) {
        float[] f = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            f[i] = (float) x[i];
        }
        return f;
    }

    /** The double values the fp32 kernel actually sees, so only the kernel's arithmetic differs. */
    static double[] rounded(double[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = (float) x[i];
        }
        return d;
    }

    static CpuTensor tensor(double[] x) {
        float[] f = toFloat(x);
        return new CpuTensor(f, 0, f.length);
    }

    static CpuTensor zeros(int n) {
        return new CpuTensor(new float[n], 0, n);
    }

    static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            s += a[i] * b[i];
        }
        return s;
    }

    /** Central differences of the scalar f at x, every coordinate. */
    static double[] numericGradient(double[] x, Function<double[], Double> f) {
        double[] g = new double[x.length];
        double h = 1e-6;
        for (int i = 0; i < x.length; i++) {
            double saved = x[i];
            x[i] = saved + h;
            double plus = f.apply(x);
            x[i] = saved - h;
            double minus = f.apply(x);
            x[i] = saved;
            g[i] = (plus - minus) / (2 * h);
        }
        return g;
    }

    /** ||actual - expected|| / ||expected|| below tolerance, and no NaN. */
    static void assertClose(String what, double[] expected, float[] actual, int actualOffset, double tolerance) {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.length; i++) {
            double a = actual[actualOffset + i];
            assertFalse(Double.isNaN(a), what + ": NaN at " + i);
            diff += (a - expected[i]) * (a - expected[i]);
            norm += expected[i] * expected[i];
        }
        double relative = Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-30);
        assertTrue(relative < tolerance, what + ": relative error " + relative + " >= " + tolerance);
    }

    static void assertClose(String what, double[] expected, float[] actual, double tolerance) {
        assertClose(what, expected, actual, 0, tolerance);
    }

    // ---- reference forwards ----

    /** out[n, oc] = x[n, c] . w[oc, c]^T */
    static double[] linear(double[] x, double[] w, int n, int c, int oc) {
        double[] out = new double[n * oc];
        for (int i = 0; i < n; i++) {
            for (int o = 0; o < oc; o++) {
                double s = 0;
                for (int k = 0; k < c; k++) {
                    s += x[i * c + k] * w[o * c + k];
                }
                out[i * oc + o] = s;
            }
        }
        return out;
    }

    static double[] rmsnorm(double[] x, double[] w, int n, int c, double eps) {
        double[] out = new double[n * c];
        for (int i = 0; i < n; i++) {
            double ms = 0;
            for (int j = 0; j < c; j++) {
                ms += x[i * c + j] * x[i * c + j];
            }
            double r = 1 / Math.sqrt(ms / c + eps);
            for (int j = 0; j < c; j++) {
                out[i * c + j] = x[i * c + j] * r * w[j];
            }
        }
        return out;
    }

    /** Rotate-half RoPE on the first nh + nkv heads of each fused row, positions start + row % t. */
    static double[] rope(double[] qkv, int b, int t, int nh, int nkv, int hs, int start, double theta) {
        double[] out = qkv.clone();
        int width = (nh + 2 * nkv) * hs, half = hs / 2;
        for (int row = 0; row < b * t; row++) {
            int pos = start + row % t;
            for (int h = 0; h < nh + nkv; h++) {
                int base = row * width + h * hs;
                for (int i = 0; i < half; i++) {
                    double angle = pos * Math.pow(theta, -2.0 * i / hs);
                    double x1 = qkv[base + i], x2 = qkv[base + i + half];
                    out[base + i] = x1 * Math.cos(angle) - x2 * Math.sin(angle);
                    out[base + i + half] = x2 * Math.cos(angle) + x1 * Math.sin(angle);
                }
            }
        }
        return out;
    }

    /** Causal GQA attention over fused rows; queries are the last tq of tk rows. */
    static double[] attention(double[] qkv, int b, int tq, int tk, int nh, int nkv, int hs) {
        int width = (nh + 2 * nkv) * hs, rep = nh / nkv;
        double[] out = new double[b * tq * nh * hs];
        for (int bi = 0; bi < b; bi++) {
            for (int h = 0; h < nh; h++) {
                int kv = h / rep;
                for (int i = 0; i < tq; i++) {
                    int pos = tk - tq + i;
                    double[] s = new double[pos + 1];
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= pos; j++) {
                        double d = 0;
                        for (int e = 0; e < hs; e++) {
                            d += qkv[(bi * tk + pos) * width + h * hs + e] * qkv[(bi * tk + j) * width + (nh + kv) * hs + e];
                        }
                        s[j] = d / Math.sqrt(hs);
                        max = Math.max(max, s[j]);
                    }
                    double z = 0;
                    for (int j = 0; j <= pos; j++) {
                        s[j] = Math.exp(s[j] - max);
                        z += s[j];
                    }
                    for (int j = 0; j <= pos; j++) {
                        for (int e = 0; e < hs; e++) {
                            out[((bi * tq + i) * nh + h) * hs + e] += s[j] / z * qkv[(bi * tk + j) * width + (nh + nkv + kv) * hs + e];
                        }
                    }
                }
            }
        }
        return out;
    }

    static double[] swiglu(double[] h, int n, int hidden) {
        double[] out = new double[n * hidden];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < hidden; j++) {
                double g = h[i * 2 * hidden + j];
                out[i * hidden + j] = g / (1 + Math.exp(-g)) * h[i * 2 * hidden + hidden + j];
            }
        }
        return out;
    }

    static double[] crossEntropy(double[] logits, int[] targets, int n, int v) {
        double[] loss = new double[n];
        for (int i = 0; i < n; i++) {
            if (targets[i] < 0) {
                continue;
            }
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < v; j++) {
                max = Math.max(max, logits[i * v + j]);
            }
            double z = 0;
            for (int j = 0; j < v; j++) {
                z += Math.exp(logits[i * v + j] - max);
            }
            loss[i] = Math.log(z) + max - logits[i * v + targets[i]];
        }
        return loss;
    }
}
