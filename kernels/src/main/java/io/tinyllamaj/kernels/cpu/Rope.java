package io.tinyllamaj.kernels.cpu;

import io.tinyllamaj.kernels.RopeTables;

import java.util.concurrent.ConcurrentHashMap;

/**
 * Rotary position embedding, rotate-half convention (Hugging Face Llama, lit-gpt): within a
 * head of size hs, element i pairs with i + hs/2 and is rotated by pos * theta^(-2i/hs).
 *   y_i        = x_i cos - x_{i+h} sin
 *   y_{i+h}    = x_{i+h} cos + x_i sin
 * The backward is the rotation by -angle. Works in place on the q and k heads of fused qkv
 * rows; cos/sin come from a table computed once per (head size, theta), as HF computes them
 * (inverse frequencies and angles in fp32).
 */
final class Rope {

    private record Key(int headSize, float theta) {
    }

    private record Table(float[] cos, float[] sin, int positions) {
    }

    private static final ConcurrentHashMap<Key, Table> TABLES = new ConcurrentHashMap<>();

    private Rope() {
    }

    static void rotate(CpuTensor qkv, int b, int t, int nh, int nkv, int hs, int startPos, float theta, boolean inverse) {
        Table table = table(hs, theta, startPos + t);
        int half = hs / 2;
        int width = (nh + 2 * nkv) * hs;
        int rotated = nh + nkv;
        float[] x = qkv.data();
        int base = qkv.offset();
        float sign = inverse ? -1f : 1f;
        Parallel.forChunks(b * t, 3L * b * t * rotated * hs, (start, end) -> {
            for (int row = start; row < end; row++) {
                int pos = startPos + row % t;
                int trig = pos * half;
                for (int h = 0; h < rotated; h++) {
                    int head = base + row * width + h * hs;
                    for (int i = 0; i < half; i++) {
                        float cos = table.cos[trig + i];
                        float sin = sign * table.sin[trig + i];
                        float x1 = x[head + i];
                        float x2 = x[head + i + half];
                        x[head + i] = x1 * cos - x2 * sin;
                        x[head + i + half] = x2 * cos + x1 * sin;
                    }
                }
            }
        });
    }

    private static Table table(int hs, float theta, int positions) {
        Key key = new Key(hs, theta);
        Table table = TABLES.get(key);
        if (table == null || table.positions < positions) {
            int size = Math.max(positions, table == null ? 0 : table.positions * 2);
            table = build(hs, theta, size);
            TABLES.put(key, table);
        }
        return table;
    }

    private static Table build(int hs, float theta, int positions) {
        float[][] cosSin = RopeTables.cosSin(hs, theta, positions);
        return new Table(cosSin[0], cosSin[1], positions);
    }
}
