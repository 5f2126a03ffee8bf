package io.tinyllamaj.kernels.cpu;

/**
 * Token embedding: out[i] = table[tokens[i]]; backward dtable[tokens[i]] += dout[i].
 * The backward runs on one thread: repeated tokens would race, and it is a tiny share of a step.
 */
final class Embedding {

    private Embedding() {
    }

    static void forward(CpuTensor out, CpuTensor table, int[] tokens, int n, int c) {
        int rows = table.length32() / c;
        for (int i = 0; i < n; i++) {
            int token = tokens[i];
            if (token < 0 || token >= rows) {
                throw new IllegalArgumentException("token id " + token + " at position " + i
                        + " is outside the vocabulary [0, " + rows + ")");
            }
            System.arraycopy(table.data(), table.offset() + token * c, out.data(), out.offset() + i * c, c);
        }
    }

    static void backward(CpuTensor dtable, CpuTensor dout, int[] tokens, int n, int c) {
        float[] g = dtable.data(), d = dout.data();
        for (int i = 0; i < n; i++) {
            int dst = dtable.offset() + tokens[i] * c, src = dout.offset() + i * c;
            for (int j = 0; j < c; j++) {
                g[dst + j] += d[src + j];
            }
        }
    }
}
