package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.RopeTables;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.F32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;

/**
 * rope.cu: the rotate-half rotation of the q and k heads of fused qkv rows, in place, from cos /
 * sin tables [positions, hs / 2] the host computes exactly as the CPU reference does (so RoPE
 * matches it bit for bit), one table per (head size, theta), grown when a call reaches past it.
 */
final class RopeKernels {

    static final KernelSignature ROTATE = KernelSignature.of("rope_rotate", PTR, PTR, PTR, I32, I32, I32, I32, I32, I32, I32, F32, I32, PTR)
            .withBf16();
    static final List<KernelSignature> SIGNATURES = List.of(ROTATE);
    private static final int MAX_GRID = 65535; // rows are grid-strided past it

    private record Key(int headSize, float theta) {
    }

    /** cos / sin [positions, hs / 2] fp32 of one (head size, theta). */
    record Table(CudaTensor cos, CudaTensor sin, int positions) {
    }

    private final Gpu gpu;
    private final Twin rotate;
    private final Map<Key, Table> tables = new HashMap<>();

    RopeKernels(Gpu gpu) {
        this.gpu = gpu;
        rotate = Twin.load(gpu.kernels(), ROTATE, "rope_rotate");
    }

    /**
     * Rotates the first nh + nkv heads of each of the b * t rows of qkv by the angle of position
     * startPos + (row % t), times sign (1 forward, -1 backward). amax: 0, or 4 bytes of device
     * memory that max |qkv| over the whole rows joins, the v heads read for it (unsigned float
     * bits: zero it first).
     */
    void rotate(CudaTensor qkv, int b, int t, int nh, int nkv, int hs, int startPos, float theta, float sign, long amax) {
        Table table = table(hs, theta, startPos + t);
        int rows = b * t, rotated = nh + nkv, width = (nh + 2 * nkv) * hs;
        if (rows == 0) {
            return;
        }
        // 16 bytes of each half-head per thread when the halves and rows stay 16-byte aligned
        int half = hs / 2, wide = 16 / qkv.elementBytes();
        boolean aligned = half % wide == 0 && (qkv.address() & 15) == 0 && ((long) width * qkv.elementBytes()) % 16 == 0
                && ((long) half * qkv.elementBytes()) % 16 == 0;
        int vec = aligned ? wide : 1;
        int read = amax != 0 ? nkv : 0;
        int threads = (rotated + read) * (half / vec);
        int block = Math.min(256, (threads + 31) / 32 * 32);
        rotate.of(qkv).args().ptr(qkv.address()).ptr(table.cos.address()).ptr(table.sin.address()).i32(rows).i32(t).i32(rotated)
                .i32(read).i32(width).i32(hs).i32(startPos).f32(sign).i32(vec).ptr(amax)
                .launch((threads + block - 1) / block, Math.min(rows, MAX_GRID), 1, block, 0);
    }

    /**
     * cos/sin [positions, hs/2], computed on the host by the CPU reference's own code. A table is
     * replaced when a later call needs more positions: use it in kernels queued before that call.
     */
    Table table(int hs, float theta, int positions) {
        Key key = new Key(hs, theta);
        Table table = tables.get(key);
        if (table != null && table.positions >= positions) {
            return table;
        }
        int size = Math.max(positions, table == null ? 0 : table.positions * 2);
        float[][] cosSin = RopeTables.cosSin(hs, theta, size);
        float[] cos = cosSin[0], sin = cosSin[1];
        CudaMemory memory = gpu.memory();
        if (table != null) { // queued rotations read it before anything queued after this reuses it
            memory.release(table.cos);
            memory.release(table.sin);
        }
        table = new Table(memory.allocate(cos.length, false), memory.allocate(sin.length, false), size);
        memory.upload(table.cos, cos, 0, cos.length);
        memory.upload(table.sin, sin, 0, sin.length);
        tables.put(key, table);
        return table;
    }
}
