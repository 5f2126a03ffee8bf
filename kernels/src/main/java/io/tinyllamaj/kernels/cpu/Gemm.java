package io.tinyllamaj.kernels.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * fp32 GEMM, C[M,N] (+)= A[M,K] . B[K,N], with any element strides for A and B so the three
 * matmuls of a linear layer (forward, input gradient, weight gradient) need no transposes.
 *
 * <p>The GotoBLAS scheme: for each K block, B is packed into panels of NR columns laid out
 * k-major (one panel fits L1), A into micro-panels of MR rows; a 4 x 2-vector micro-kernel
 * keeps its 8 accumulators in registers, broadcasting one A value against two B vectors.
 */
final class Gemm {

    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final int L = S.length();
    private static final int MR = 4;
    private static final int NR = 2 * L;
    private static final int KC = 256;
    private static final int MC = MR * 32;

    private static final ThreadLocal<float[]> PACKED_A = ThreadLocal.withInitial(() -> new float[MC * KC]);
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[MR * NR]);
    private float[] packedB = new float[0];

    /** A(m,k) = a[aOff + m*aRow + k*aCol]; B(k,n) = b[bOff + k*bRow + n*bCol]; C row-major with row stride ldc. */
    void multiply(int m, int n, int k,
                  float[] a, int aOff, int aRow, int aCol,
                  float[] b, int bOff, int bRow, int bCol,
                  float[] c, int cOff, int ldc, boolean accumulate) {
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            if (!accumulate) {
                for (int i = 0; i < m; i++) {
                    java.util.Arrays.fill(c, cOff + i * ldc, cOff + i * ldc + n, 0f);
                }
            }
            return;
        }
        int panels = (n + NR - 1) / NR;
        int mBlocks = (m + MC - 1) / MC;
        int nChunks = Math.max(1, Math.min(panels, (2 * Parallel.THREADS + mBlocks - 1) / mBlocks));
        for (int kStart = 0; kStart < k; kStart += KC) {
            int k0 = kStart;
            int kc = Math.min(KC, k - k0);
            if (packedB.length < panels * kc * NR) {
                packedB = new float[panels * KC * NR];
            }
            float[] pb = packedB;
            int bStart = bOff + k0 * bRow;
            Parallel.forEach(panels, (long) panels * kc * NR * 16, p -> packB(b, bStart, bRow, bCol, k0, kc, n, p, pb));
            boolean add = accumulate || k0 > 0;
            int aStart = aOff + k0 * aCol;
            long work = 2L * m * n * kc;
            Parallel.forEach(mBlocks * nChunks, work, task -> {
                int mb = task / nChunks;
                int chunk = task % nChunks;
                int m0 = mb * MC;
                int mc = Math.min(MC, m - m0);
                float[] pa = PACKED_A.get();
                packA(a, aStart + m0 * aRow, aRow, aCol, mc, kc, pa);
                int p0 = panels * chunk / nChunks;
                int p1 = panels * (chunk + 1) / nChunks;
                float[] tile = TILE.get();
                for (int p = p0; p < p1; p++) {
                    int n0 = p * NR;
                    for (int r = 0; r < mc; r += MR) {
                        kernel(pa, r * kc, pb, p * kc * NR, kc, c, cOff + (m0 + r) * ldc + n0, ldc,
                                Math.min(MR, mc - r), Math.min(NR, n - n0), add, tile);
                    }
                }
            });
        }
    }

    private static void packA(float[] a, int start, int aRow, int aCol, int mc, int kc, float[] pa) {
        for (int r0 = 0; r0 < mc; r0 += MR) {
            int base = r0 * kc;
            int rows = Math.min(MR, mc - r0);
            for (int r = 0; r < MR; r++) {
                if (r < rows) {
                    int src = start + (r0 + r) * aRow;
                    for (int kk = 0; kk < kc; kk++) {
                        pa[base + kk * MR + r] = a[src + kk * aCol];
                    }
                } else {
                    for (int kk = 0; kk < kc; kk++) {
                        pa[base + kk * MR + r] = 0f;
                    }
                }
            }
        }
    }

    private static void packB(float[] b, int start, int bRow, int bCol, int k0, int kc, int n, int panel, float[] pb) {
        int n0 = panel * NR;
        int cols = Math.min(NR, n - n0);
        int base = panel * kc * NR;
        if (bCol == 1 && cols == NR) {
            for (int kk = 0; kk < kc; kk++) {
                System.arraycopy(b, start + kk * bRow + n0, pb, base + kk * NR, NR);
            }
            return;
        }
        for (int kk = 0; kk < kc; kk++) {
            int dst = base + kk * NR;
            int src = start + kk * bRow + n0 * bCol;
            for (int j = 0; j < NR; j++) {
                pb[dst + j] = j < cols ? b[src + j * bCol] : 0f;
            }
        }
    }

    private static void kernel(float[] pa, int aOff, float[] pb, int bOff, int kc,
                               float[] c, int cOff, int ldc, int rows, int cols, boolean add, float[] tile) {
        FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
        FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
        FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
        FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
        for (int kk = 0; kk < kc; kk++) {
            int bi = bOff + kk * NR;
            FloatVector b0 = FloatVector.fromArray(S, pb, bi);
            FloatVector b1 = FloatVector.fromArray(S, pb, bi + L);
            int ai = aOff + kk * MR;
            FloatVector a = FloatVector.broadcast(S, pa[ai + 0]);
            c00 = a.fma(b0, c00);
            c01 = a.fma(b1, c01);
            a = FloatVector.broadcast(S, pa[ai + 1]);
            c10 = a.fma(b0, c10);
            c11 = a.fma(b1, c11);
            a = FloatVector.broadcast(S, pa[ai + 2]);
            c20 = a.fma(b0, c20);
            c21 = a.fma(b1, c21);
            a = FloatVector.broadcast(S, pa[ai + 3]);
            c30 = a.fma(b0, c30);
            c31 = a.fma(b1, c31);
        }
        if (rows == MR && cols == NR) {
            store(c00, c01, c, cOff + 0 * ldc, add);
            store(c10, c11, c, cOff + 1 * ldc, add);
            store(c20, c21, c, cOff + 2 * ldc, add);
            store(c30, c31, c, cOff + 3 * ldc, add);
            return;
        }
        c00.intoArray(tile, 0 * NR);
        c01.intoArray(tile, 0 * NR + L);
        c10.intoArray(tile, 1 * NR);
        c11.intoArray(tile, 1 * NR + L);
        c20.intoArray(tile, 2 * NR);
        c21.intoArray(tile, 2 * NR + L);
        c30.intoArray(tile, 3 * NR);
        c31.intoArray(tile, 3 * NR + L);
        for (int r = 0; r < rows; r++) {
            int row = cOff + r * ldc;
            for (int j = 0; j < cols; j++) {
                c[row + j] = add ? c[row + j] + tile[r * NR + j] : tile[r * NR + j];
            }
        }
    }

    private static void store(FloatVector lo, FloatVector hi, float[] c, int off, boolean add) {
        if (add) {
            lo = lo.add(FloatVector.fromArray(S, c, off));
            hi = hi.add(FloatVector.fromArray(S, c, off + L));
        }
        lo.intoArray(c, off);
        hi.intoArray(c, off + L);
    }
}
