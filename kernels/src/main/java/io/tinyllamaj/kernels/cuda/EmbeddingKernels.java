package io.tinyllamaj.kernels.cuda;

import java.util.Arrays;
import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;

/**
 * embedding.cu: the token embedding's forward (row copies) and its deterministic backward, which
 * adds each token's rows of dout in position order by the one block that owns its table row, from
 * a plan the host builds (the ids are on the host anyway). Token ids are range-checked here before
 * they are uploaded.
 */
final class EmbeddingKernels {

    static final KernelSignature FORWARD = KernelSignature.of("embedding_forward", PTR, PTR, PTR, I32, I32, I32);
    static final KernelSignature BACKWARD = KernelSignature.of("embedding_backward", PTR, PTR, PTR, I32, I32);
    static final List<KernelSignature> SIGNATURES = List.of(FORWARD, BACKWARD);
    private static final int FORWARD_THREADS = 256; // any block size: a block copies whole rows
    private static final int MAX_GRID = 65535;      // rows are grid-strided past it

    private final Gpu gpu;
    private final Kernel forward, backward;
    private final Scratch tokens, plan;

    EmbeddingKernels(Gpu gpu) {
        this.gpu = gpu;
        forward = gpu.kernels().kernel(FORWARD);
        backward = gpu.kernels().kernel(BACKWARD);
        tokens = new Scratch(gpu.arena());
        plan = new Scratch(gpu.arena());
    }

    /** out[i, :] = table[tokens[i], :] for i < n; table has {@code rows} rows of c. */
    void forward(long out, long table, long rows, int[] ids, int n, int c) {
        checkIds(ids, n, rows);
        long device = tokens.atLeast((long) n * Integer.BYTES);
        gpu.staging().upload(device, ids, n, gpu.stream());
        if (n == 0) {
            return;
        }
        int vec4 = c % 4 == 0 && ((out | table) & 15) == 0 ? 1 : 0;
        forward.args().ptr(out).ptr(table).ptr(device).i32(n).i32(c).i32(vec4).launch(Math.min(n, MAX_GRID), 1, 1, FORWARD_THREADS, 0);
    }

    /** dtable[ids[i], :] += dout[i, :] for i = 0 .. n - 1 in order; dtable has {@code rows} rows of c. */
    void backward(long dtable, long dout, long rows, int[] ids, int n, int c) {
        if (n == 0) {
            return;
        }
        // The plan: positions grouped by token (ascending), each token's rows of dout added in
        // position order: [ids[u] | starts[u + 1] | positions[n]].
        checkIds(ids, n, rows);
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) {
            keys[i] = ((long) ids[i] << 32) | i;
        }
        Arrays.sort(keys);
        int unique = 0;
        for (int k = 0; k < n; k++) {
            if (k == 0 || (keys[k] >>> 32) != (keys[k - 1] >>> 32)) {
                unique++;
            }
        }
        int[] values = new int[2 * unique + 1 + n];
        int u = -1;
        for (int k = 0; k < n; k++) {
            int token = (int) (keys[k] >>> 32);
            if (k == 0 || token != (int) (keys[k - 1] >>> 32)) {
                u++;
                values[u] = token;
                values[unique + u] = k;
            }
            values[2 * unique + 1 + k] = (int) keys[k];
        }
        values[2 * unique] = n;
        long device = plan.atLeast((long) values.length * Integer.BYTES);
        gpu.staging().upload(device, values, values.length, gpu.stream());
        int block = Math.min(256, (c + 31) / 32 * 32);
        backward.args().ptr(dtable).ptr(dout).ptr(device).i32(unique).i32(c).launch(unique, (c + block - 1) / block, 1, block, 0);
    }

    private static void checkIds(int[] ids, int n, long rows) {
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= rows) {
                throw new IllegalArgumentException("token id " + ids[i] + " at position " + i + " is outside the vocabulary [0, " + rows + ")");
            }
        }
    }
}
