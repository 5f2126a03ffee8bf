package io.tinyllamaj.kernels.cuda;

/**
 * FP8 as the OCP 8-bit floating point specification defines it, written from the format alone (not
 * from fp8.cu): e4m3 (exponent bias 7, 3 mantissa bits, largest 448, no infinities) and e5m2 (bias
 * 15, 2 mantissa bits, largest 57344), rounded to nearest even and saturated to the largest
 * finite value, as CUDA's {@code __NV_SATFINITE} conversion does; and per-tensor current scaling
 * (scale = largest / amax in fp32, the value multiplied by it in fp32, then rounded to FP8). The
 * float64 reference of the FP8 matmul checks.
 */
final class Fp8Reference {

    /** One format: mantissa bits, the smallest normal exponent, the largest finite value. */
    enum Format {
        E4M3(3, -6, 448), E5M2(2, -14, 57344);

        final int mantissaBits, minExponent;
        final float max;

        Format(int mantissaBits, int minExponent, float max) {
            this.mantissaBits = mantissaBits;
            this.minExponent = minExponent;
            this.max = max;
        }
    }

    private Fp8Reference() {
    }

    /** v rounded to the nearest value of the format (ties to even), saturated to +-max; NaN stays NaN. */
    static double round(float v, Format f) {
        if (Float.isNaN(v)) {
            return Double.NaN;
        }
        double a = Math.abs((double) v);
        if (a == 0) {
            return 0;
        }
        int e = Math.max(Math.getExponent(a), f.minExponent); // below the smallest normal: the subnormals' fixed step
        double step = Math.scalb(1.0, e - f.mantissaBits);
        double q = Math.rint(a / step) * step;
        return Math.copySign(Math.min(q, f.max), v);
    }

    /** The scale current scaling multiplies a tensor by: max / amax in fp32 (1 for an all-zero tensor). */
    static float scale(float[] x, Format f) {
        float amax = 0;
        for (float v : x) {
            amax = Math.max(amax, Math.abs(v));
        }
        return amax > 0 ? f.max / amax : 1f;
    }

    /** x quantized as the GPU does: each value times the tensor's scale (in fp32), rounded to the format; as float64 values. */
    static double[] quantize(float[] x, Format f, float scale) {
        double[] q = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            q[i] = round(x[i] * scale, f);
        }
        return q;
    }

    /**
     * out[n, oc] = (sum_k qa[i, k] qb[j, k]) / (scaleA scaleB) in float64, with the inverse scales
     * as cuBLASLt gets them (1 / scale, in fp32): qa [n, k] and qb [oc, k] row-major. Rows on all
     * cores (each sum in the same order: the same values), as the op checks' largest shapes take
     * seconds a product on one.
     */
    static double[] matmul(double[] qa, float scaleA, double[] qb, float scaleB, int n, int k, int oc) {
        double inverse = (double) (1f / scaleA) * (double) (1f / scaleB);
        double[] out = new double[n * oc];
        java.util.stream.IntStream.range(0, n).parallel().forEach(i -> {
            for (int j = 0; j < oc; j++) {
                double sum = 0;
                for (int p = 0; p < k; p++) {
                    sum += qa[i * k + p] * qb[j * k + p];
                }
                out[i * oc + j] = sum * inverse;
            }
        });
        return out;
    }

    /** The transpose of a row-major [rows, cols] matrix. */
    static float[] transpose(float[] x, int rows, int cols) {
        float[] t = new float[x.length];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                t[c * rows + r] = x[r * cols + c];
            }
        }
        return t;
    }
}
