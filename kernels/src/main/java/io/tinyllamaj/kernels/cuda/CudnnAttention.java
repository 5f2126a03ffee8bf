package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static io.tinyllamaj.kernels.cuda.Cudnn.*;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * Causal grouped-query attention by cuDNN's fused flash-attention engine: the forward and backward
 * written as cuDNN operation graphs (matmuls, the scale, the causal mask as index comparison and
 * select, the softmax as reductions and pointwise ops), which cuDNN's runtime fusion matches and
 * runs as one kernel each. The graphs are those cuDNN's own frontend builds for this case on
 * cuDNN 9.0-9.20 (the one-op SDPA descriptors take a causal mask only from 9.21).
 *
 * <p>Layouts are ours, given to cuDNN as strides: q, k and v are views of the packed
 * {@code qkv [b, t, (nh + 2 nkv) hs]}, out and dout {@code [b, t, nh hs]}, lse {@code [b, nh, t]}
 * fp32 (cuDNN's "stats": the natural log-sum-exp of the scaled, masked scores, as our kernels
 * keep it). K (and V in the backward) are described transposed, as the frontend does.
 *
 * <p>Determinism: the backward is the frontend's deterministic variant (dQ written by the last
 * matmul, no fp32 accumulator taking atomic adds), so its bits repeat run to run. Its price is a
 * workspace of {@code 2 nh t^2} bytes per batch row (the dP matrix); batch rows go in groups that
 * keep it at most {@link #BACKWARD_WORKSPACE_LIMIT}, one plan per group size, the group's pointers
 * moved along the batch.
 *
 * <p>Plans are built once per shape (heuristic mode A, the first engine config whose plan
 * finalizes) and kept until the backend closes. A shape cuDNN has no engine for (a "not
 * supported" status from the graph, the heuristic or every plan) is remembered as such, and
 * {@link #forward} and {@link #backward} return false for it without launching anything, as they
 * do for a call whose tensors do not start on 16-byte boundaries.
 */
final class CudnnAttention implements AutoCloseable {

    static final long BACKWARD_WORKSPACE_LIMIT = 256L << 20;
    private static final long Q = 1, K = 2, V = 3, O = 4, STATS = 5, SCALE = 6, NEG_INF = 7;
    private static final long DO = 101, DQ = 102, DK = 103, DV = 104, ONE = 105, SOFTMAX_SUM = 106;

    private final Cudnn cudnn;
    private final Scratch workspace, softmaxSum;
    private final Arena scalars = Arena.ofShared(); // host values of the by-value tensors, read at execution
    private final MemorySegment negInf = scalars.allocateFrom(JAVA_FLOAT, Float.NEGATIVE_INFINITY);
    private final MemorySegment one = scalars.allocateFrom(JAVA_FLOAT, 1f);
    private final Map<Shape, Plan> forwardPlans = new HashMap<>(), backwardPlans = new HashMap<>();

    /** b: the batch rows of one execution (a group, in the backward). */
    record Shape(int b, int t, int nh, int nkv, int hs) {
        long width() {
            return (long) (nh + 2 * nkv) * hs;
        }
    }

    /** A finalized execution plan with the descriptors it was built from, its workspace and its scale's host value. */
    private record Plan(Cudnn.Descriptor plan, List<Cudnn.Descriptor> owned, long workspaceBytes, MemorySegment scale) {
    }

    /** What a shape without an engine maps to. */
    private static final Plan NO_ENGINE = new Plan(null, List.of(), 0, null);

    CudnnAttention(Cudnn cudnn, DeviceArena arena) {
        this.cudnn = cudnn;
        this.workspace = new Scratch(arena);
        this.softmaxSum = new Scratch(arena);
    }

    /** cuDNN's version as major.minor.patch. */
    String version() {
        long v = cudnn.version();
        return v / 10000 + "." + v % 10000 / 100 + "." + v % 100;
    }

    /** Shapes the graphs cover: head sizes a multiple of 8 up to 128 (16-byte rows), heads in whole groups. */
    static boolean covers(int hs, int nh, int nkv) {
        return hs % 8 == 0 && hs <= 128 && nh % nkv == 0;
    }

    /** out [b, t, nh hs], lse [b, nh, t] from qkv [b, t, (nh + 2 nkv) hs]; bf16 out and qkv. False: nothing ran (see the class comment). */
    boolean forward(long out, long lse, long qkv, int b, int t, int nh, int nkv, int hs) {
        Shape shape = new Shape(b, t, nh, nkv, hs);
        Plan plan = forwardPlans.computeIfAbsent(shape, this::forwardPlan);
        if (plan == NO_ENGINE || !aligned(out, lse, qkv)) {
            return false;
        }
        long ws = workspace.atLeast(plan.workspaceBytes);
        long k = qkv + (long) nh * hs * 2, v = qkv + (long) (nh + nkv) * hs * 2;
        run(plan, ws, new long[] {Q, K, V, O, STATS, SCALE, NEG_INF},
                new long[] {qkv, k, v, out, lse, plan.scale.address(), negInf.address()});
        return true;
    }

    /** dqkv overwritten, from dout [b, t, nh hs] and the forward's qkv, out and lse. False: nothing ran (see the class comment). */
    boolean backward(long dqkv, long dout, long qkv, long out, long lse, int b, int t, int nh, int nkv, int hs) {
        int group = backwardGroup(b, t, nh);
        Shape shape = new Shape(group, t, nh, nkv, hs);
        Plan plan = backwardPlans.computeIfAbsent(shape, this::backwardPlan);
        long qkvRows = (long) group * t * shape.width() * 2, outRows = (long) group * t * nh * hs * 2, lseRows = (long) group * nh * t * 4;
        // q/k/v and out rows are whole 16-byte runs (hs a multiple of 8), so of the groups' steps only lse's can be off
        if (plan == NO_ENGINE || !aligned(dqkv, dout, qkv, out, lse, b / group > 1 ? lseRows : 0)) {
            return false;
        }
        long ws = workspace.atLeast(plan.workspaceBytes);
        long sums = softmaxSum.atLeast((long) group * nh * t * Float.BYTES);
        long kOffset = (long) nh * hs * 2, vOffset = (long) (nh + nkv) * hs * 2;
        for (int g = 0; g < b / group; g++) {
            long x = qkv + g * qkvRows, dx = dqkv + g * qkvRows;
            run(plan, ws, new long[] {Q, K, V, O, DO, STATS, DQ, DK, DV, SCALE, NEG_INF, ONE, SOFTMAX_SUM},
                    new long[] {x, x + kOffset, x + vOffset, out + g * outRows, dout + g * outRows, lse + g * lseRows,
                            dx, dx + kOffset, dx + vOffset, plan.scale.address(), negInf.address(), one.address(), sums});
        }
        return true;
    }

    /**
     * Whether every address (and every batch group's step) is a multiple of 16 bytes, as the
     * graphs' tensors declare; a call that is not (a slice at an odd offset) is left to our kernels.
     */
    private static boolean aligned(long... addresses) {
        for (long a : addresses) {
            if (a % 16 != 0) {
                return false;
            }
        }
        return true;
    }

    /** The most batch rows, dividing b, whose backward workspace (2 nh t^2 bytes a row, t rounded up to 64) stays within the limit; at least 1. */
    static int backwardGroup(int b, int t, int nh) {
        long perRow = 2L * nh * roundUp64(t) * roundUp64(t);
        for (int group = b; group > 1; group--) {
            if (b % group == 0 && group * perRow <= BACKWARD_WORKSPACE_LIMIT) {
                return group;
            }
        }
        return 1;
    }

    private static long roundUp64(int t) {
        return (t + 63L) / 64 * 64;
    }

    private void run(Plan plan, long ws, long[] uids, long[] pointers) {
        try (Cudnn.Descriptor pack = cudnn.descriptor(VARIANT_PACK_DESCRIPTOR)) {
            pack.longs(VARIANT_PACK_UNIQUE_IDS, uids).pointers(VARIANT_PACK_DATA_POINTERS, pointers)
                    .pointers(VARIANT_PACK_WORKSPACE, ws).finish();
            cudnn.execute(plan.plan, pack);
        }
    }

    // ---- the graphs ----

    private Plan forwardPlan(Shape s) {
        Graph g = new Graph(s);
        Cudnn.Descriptor q = g.heads(Q, s.nh), kT = g.headsTransposed(K), v = g.heads(V, s.nkv), o = g.outRows(O);
        Cudnn.Descriptor stats = g.perRow(STATS);
        Cudnn.Descriptor scale = g.scalar(SCALE), negInf = g.scalar(NEG_INF);

        Cudnn.Descriptor scores = g.scores(DATA_FLOAT);
        g.matmul(q, kT, scores);
        Cudnn.Descriptor scaled = g.scores(DATA_FLOAT);
        g.pointwise(PW_MUL, scores, scale, scaled);
        Cudnn.Descriptor masked = g.causalMask(scaled, negInf);
        Cudnn.Descriptor max = g.rowStat();
        g.reduction(REDUCE_MAX, masked, max);
        Cudnn.Descriptor shifted = g.scores(DATA_FLOAT);
        g.pointwise(PW_SUB, masked, max, shifted);
        Cudnn.Descriptor exp = g.scores(DATA_FLOAT);
        g.pointwise(PW_EXP, shifted, null, exp);
        Cudnn.Descriptor sum = g.rowStat();
        g.reduction(REDUCE_ADD, exp, sum);
        Cudnn.Descriptor logSum = g.rowStat();
        g.pointwise(PW_LOG, sum, null, logSum);
        g.pointwise(PW_ADD, max, logSum, stats);
        Cudnn.Descriptor p = g.scores(DATA_BFLOAT16);
        g.pointwise(PW_DIV, exp, sum, p);
        g.matmul(p, v, o);
        return g.plan();
    }

    private Plan backwardPlan(Shape s) {
        Graph g = new Graph(s);
        Cudnn.Descriptor q = g.heads(Q, s.nh), kT = g.headsTransposed(K), vT = g.headsTransposed(V), o = g.outRows(O),
                dO = g.outRows(DO);
        Cudnn.Descriptor stats = g.perRow(STATS);
        Cudnn.Descriptor dQ = g.heads(DQ, s.nh), dK = g.heads(DK, s.nkv), dV = g.heads(DV, s.nkv);
        Cudnn.Descriptor scale = g.scalar(SCALE), negInf = g.scalar(NEG_INF), oneScalar = g.scalar(ONE);
        Cudnn.Descriptor sums = g.perRow(SOFTMAX_SUM);

        // D = rowsum(dO * O), into the caller's buffer
        Cudnn.Descriptor product = g.virtual(DATA_FLOAT, g.dims(s.nh, s.t, s.hs),
                new long[] {(long) s.nh * s.t * s.hs, (long) s.t * s.hs, (long) s.nh * s.hs, 1});
        g.pointwise(PW_MUL, dO, o, product);
        Cudnn.Descriptor rowSum = g.rowStat();
        g.reduction(REDUCE_ADD, product, rowSum);
        g.pointwise(PW_MUL, rowSum, oneScalar, sums);

        // P recomputed from the forward's log-sum-exp
        Cudnn.Descriptor scores = g.scores(DATA_FLOAT);
        g.matmul(q, kT, scores);
        Cudnn.Descriptor scaled = g.scores(DATA_FLOAT);
        g.pointwise(PW_MUL, scores, scale, scaled);
        Cudnn.Descriptor shifted = g.scores(DATA_FLOAT);
        g.pointwise(PW_SUB, scaled, stats, shifted);
        Cudnn.Descriptor masked = g.causalMask(shifted, negInf);
        Cudnn.Descriptor p = g.scores(DATA_FLOAT);
        g.pointwise(PW_EXP, masked, null, p);

        g.transposedProduct(p, dO, dV); // dV = P^T dO

        // dS = P (dO V^T - D) scale
        Cudnn.Descriptor dP = g.scores(DATA_FLOAT);
        g.matmul(dO, vT, dP);
        Cudnn.Descriptor centered = g.scores(DATA_FLOAT);
        g.pointwise(PW_SUB, dP, sums, centered);
        Cudnn.Descriptor weighted = g.scores(DATA_FLOAT);
        g.pointwise(PW_MUL, centered, p, weighted);
        Cudnn.Descriptor dS = g.scores(DATA_FLOAT);
        g.pointwise(PW_MUL, weighted, scale, dS);

        g.transposedProduct(dS, q, dK); // dK = dS^T Q

        // dQ = dS K, written by the matmul itself: the deterministic variant
        Cudnn.Descriptor k = g.virtual(DATA_FLOAT, g.dims(s.nkv, s.t, s.hs), g.packed());
        g.reshape(kT, k);
        g.matmul(dS, k, dQ);
        return g.plan();
    }

    /** One graph under construction: its tensors and operations, all destroyed with the plan (or on failure). */
    private final class Graph {
        final Shape s;
        final List<Cudnn.Descriptor> owned = new ArrayList<>();
        final List<Cudnn.Descriptor> operations = new ArrayList<>();
        final MemorySegment scale;
        long nextVirtual = 1000;

        Graph(Shape s) {
            this.s = s;
            this.scale = scalars.allocateFrom(JAVA_FLOAT, (float) (1 / Math.sqrt(s.hs)));
        }

        long[] dims(long heads, long rows, long cols) {
            return new long[] {s.b, heads, rows, cols};
        }

        /** A head's rows in the packed qkv (q, k, v or their gradients): [b, heads, t, hs]. */
        long[] packed() {
            long w = s.width();
            return new long[] {s.t * w, s.hs, w, 1};
        }

        /** A k or v head of the packed qkv seen as [b, heads, hs, t]. */
        long[] packedTransposed() {
            long w = s.width();
            return new long[] {s.t * w, s.hs, 1, w};
        }

        /** out and dout [b, t, nh hs] seen as [b, nh, t, hs]. */
        long[] rows() {
            return new long[] {(long) s.t * s.nh * s.hs, s.hs, (long) s.nh * s.hs, 1};
        }

        /** A per-head matmul result [b, nh, t, hs], heads outermost. */
        long[] headRows() {
            return new long[] {(long) s.nh * s.t * s.hs, (long) s.t * s.hs, s.hs, 1};
        }

        long[] rowStatStrides() {
            return new long[] {(long) s.nh * s.t, s.t, 1, 1};
        }

        long[] scoresTransposed() {
            return new long[] {(long) s.nh * s.t * s.t, (long) s.t * s.t, 1, s.t};
        }

        /** q, k or v (or their gradients): {@code heads} heads of the packed qkv, [b, heads, t, hs]. */
        Cudnn.Descriptor heads(long uid, int heads) {
            return tensor(uid, DATA_BFLOAT16, dims(heads, s.t, s.hs), packed(), false, false);
        }

        /** k or v seen transposed, [b, nkv, hs, t], as the matmuls that multiply by K^T or V^T read them. */
        Cudnn.Descriptor headsTransposed(long uid) {
            return tensor(uid, DATA_BFLOAT16, dims(s.nkv, s.hs, s.t), packedTransposed(), false, false);
        }

        /** out or dout, [b, t, nh hs] seen as [b, nh, t, hs]. */
        Cudnn.Descriptor outRows(long uid) {
            return tensor(uid, DATA_BFLOAT16, dims(s.nh, s.t, s.hs), rows(), false, false);
        }

        /** An fp32 value per score row, [b, nh, t, 1]: the log-sum-exp, or D = rowsum(dO * O). */
        Cudnn.Descriptor perRow(long uid) {
            return tensor(uid, DATA_FLOAT, dims(s.nh, s.t, 1), rowStatStrides(), false, false);
        }

        Cudnn.Descriptor tensor(long uid, int dataType, long[] dims, long[] strides, boolean isVirtual, boolean byValue) {
            Cudnn.Descriptor t = own(cudnn.descriptor(TENSOR_DESCRIPTOR));
            t.enums(TENSOR_DATA_TYPE, TYPE_DATA_TYPE, dataType).longs(TENSOR_DIMENSIONS, dims).longs(TENSOR_STRIDES, strides)
                    .longs(TENSOR_UNIQUE_ID, uid).longs(TENSOR_BYTE_ALIGNMENT, 16);
            if (isVirtual) {
                t.bool(TENSOR_IS_VIRTUAL, true);
            }
            if (byValue) {
                t.bool(TENSOR_IS_BY_VALUE, true);
            }
            return t.finish();
        }

        Cudnn.Descriptor virtual(int dataType, long[] dims, long[] strides) {
            return tensor(nextVirtual++, dataType, dims, strides, true, false);
        }

        /** Finalizes d: true when done, false on a "not supported" status (3000-3999); any other failure is thrown. */
        private boolean finishes(Cudnn.Descriptor d, String what) {
            int status = d.tryFinish();
            if (status >= 3000 && status < 4000) {
                return false;
            }
            cudnn.check("cudnnBackendFinalize(" + what + ")", status);
            return true;
        }

        private Plan noEngine() {
            closeAll(owned);
            return NO_ENGINE;
        }

        /** [b, nh, t, t], rows contiguous. */
        Cudnn.Descriptor scores(int dataType) {
            return virtual(dataType, dims(s.nh, s.t, s.t), new long[] {(long) s.nh * s.t * s.t, (long) s.t * s.t, s.t, 1});
        }

        /** [b, nh, t, 1]: a value per score row. */
        Cudnn.Descriptor rowStat() {
            return virtual(DATA_FLOAT, dims(s.nh, s.t, 1), rowStatStrides());
        }

        /** An fp32 scalar passed by value (its host address goes into the variant pack). */
        Cudnn.Descriptor scalar(long uid) {
            return tensor(uid, DATA_FLOAT, new long[] {1, 1, 1, 1}, new long[] {1, 1, 1, 1}, false, true);
        }

        /** Scores whose key index exceeds the query index become -inf: row >= col keeps the score. */
        Cudnn.Descriptor causalMask(Cudnn.Descriptor scores, Cudnn.Descriptor negInf) {
            long[] dims = dims(s.nh, s.t, s.t), strides = {(long) s.nh * s.t * s.t, (long) s.t * s.t, s.t, 1};
            Cudnn.Descriptor row = virtual(DATA_INT32, dims, strides), col = virtual(DATA_INT32, dims, strides);
            generateIndex(scores, row, 2);
            generateIndex(scores, col, 3);
            Cudnn.Descriptor keep = virtual(DATA_BOOLEAN, dims, strides);
            operation(PW_CMP_GE, DATA_BOOLEAN, null, row, col, null, keep);
            Cudnn.Descriptor masked = scores(DATA_FLOAT);
            operation(PW_BINARY_SELECT, DATA_FLOAT, null, scores, negInf, keep, masked);
            return masked;
        }

        private void generateIndex(Cudnn.Descriptor x, Cudnn.Descriptor y, long axis) {
            operation(PW_GEN_INDEX, DATA_FLOAT, axis, x, null, null, y);
        }

        void pointwise(int mode, Cudnn.Descriptor x, Cudnn.Descriptor b, Cudnn.Descriptor y) {
            operation(mode, DATA_FLOAT, null, x, b, null, y);
        }

        /** A pointwise operation: y = mode(x[, b]) (binary select: y = t ? x : b). */
        private void operation(int mode, int precision, Long axis, Cudnn.Descriptor x, Cudnn.Descriptor b, Cudnn.Descriptor t,
                               Cudnn.Descriptor y) {
            Cudnn.Descriptor pw = own(cudnn.descriptor(POINTWISE_DESCRIPTOR));
            pw.enums(POINTWISE_MODE, TYPE_POINTWISE_MODE, mode).enums(POINTWISE_MATH_PREC, TYPE_DATA_TYPE, precision);
            if (axis != null) {
                pw.longs(POINTWISE_AXIS, axis);
            }
            pw.finish();
            Cudnn.Descriptor op = own(cudnn.descriptor(OPERATION_POINTWISE_DESCRIPTOR));
            op.descriptors(OPERATION_POINTWISE_PW_DESCRIPTOR, pw).descriptors(OPERATION_POINTWISE_XDESC, x);
            if (b != null) {
                op.descriptors(OPERATION_POINTWISE_BDESC, b);
            }
            if (t != null) {
                op.descriptors(OPERATION_POINTWISE_TDESC, t);
            }
            op.descriptors(OPERATION_POINTWISE_YDESC, y).floats(OPERATION_POINTWISE_ALPHA1, 1f).floats(OPERATION_POINTWISE_ALPHA2, 1f);
            operations.add(op.finish());
        }

        /**
         * into = x^T y per query head, x [b, nh, t, t] seen transposed in bf16; summed over each
         * group's query heads when K and V have fewer heads (dK and dV).
         */
        void transposedProduct(Cudnn.Descriptor x, Cudnn.Descriptor y, Cudnn.Descriptor into) {
            Cudnn.Descriptor xT = virtual(DATA_BFLOAT16, dims(s.nh, s.t, s.t), scoresTransposed());
            reshape(x, xT);
            boolean grouped = s.nh != s.nkv;
            Cudnn.Descriptor heads = grouped ? virtual(DATA_BFLOAT16, dims(s.nh, s.t, s.hs), headRows()) : into;
            matmul(xT, y, heads);
            if (grouped) {
                reduction(REDUCE_ADD, heads, into);
            }
        }

        /** c = a b over the last two dimensions, the first two broadcast (a's heads over b's groups). */
        void matmul(Cudnn.Descriptor a, Cudnn.Descriptor b, Cudnn.Descriptor c) {
            Cudnn.Descriptor mm = own(cudnn.descriptor(MATMUL_DESCRIPTOR)).enums(MATMUL_COMP_TYPE, TYPE_DATA_TYPE, DATA_FLOAT).finish();
            Cudnn.Descriptor op = own(cudnn.descriptor(OPERATION_MATMUL_DESCRIPTOR));
            op.descriptors(OPERATION_MATMUL_ADESC, a).descriptors(OPERATION_MATMUL_BDESC, b).descriptors(OPERATION_MATMUL_CDESC, c)
                    .descriptors(OPERATION_MATMUL_DESC, mm);
            operations.add(op.finish());
        }

        /** y = x reduced over the dimensions where y is 1 (or fewer heads: a group's sum). */
        void reduction(int operator, Cudnn.Descriptor x, Cudnn.Descriptor y) {
            Cudnn.Descriptor r = own(cudnn.descriptor(REDUCTION_DESCRIPTOR))
                    .enums(REDUCTION_OPERATOR, TYPE_REDUCTION_OPERATOR_TYPE, operator)
                    .enums(REDUCTION_COMP_TYPE, TYPE_DATA_TYPE, DATA_FLOAT).finish();
            Cudnn.Descriptor op = own(cudnn.descriptor(OPERATION_REDUCTION_DESCRIPTOR));
            op.descriptors(OPERATION_REDUCTION_DESC, r).descriptors(OPERATION_REDUCTION_XDESC, x).descriptors(OPERATION_REDUCTION_YDESC, y);
            operations.add(op.finish());
        }

        /** y: x's values under other dims/strides (a transposed view). */
        void reshape(Cudnn.Descriptor x, Cudnn.Descriptor y) {
            Cudnn.Descriptor op = own(cudnn.descriptor(OPERATION_RESHAPE_DESCRIPTOR));
            op.descriptors(OPERATION_RESHAPE_XDESC, x).descriptors(OPERATION_RESHAPE_YDESC, y);
            operations.add(op.finish());
        }

        private Cudnn.Descriptor own(Cudnn.Descriptor d) {
            owned.add(d);
            return d;
        }

        /**
         * The operation graph, the heuristic's configs in order, and the first whose plan
         * finalizes; {@link #NO_ENGINE} when cuDNN says "not supported" at any of these.
         */
        Plan plan() {
            try {
                Cudnn.Descriptor graph = own(cudnn.descriptor(OPERATIONGRAPH_DESCRIPTOR));
                graph.descriptors(OPERATIONGRAPH_OPS, operations.toArray(Cudnn.Descriptor[]::new)).handle(OPERATIONGRAPH_HANDLE);
                if (!finishes(graph, "the attention graph")) {
                    return noEngine();
                }
                Cudnn.Descriptor heuristic = own(cudnn.descriptor(ENGINEHEUR_DESCRIPTOR));
                heuristic.descriptors(ENGINEHEUR_OPERATION_GRAPH, graph).enums(ENGINEHEUR_MODE, TYPE_HEUR_MODE, HEUR_MODE_A);
                if (!finishes(heuristic, "the attention heuristic")) {
                    return noEngine();
                }
                int count = heuristic.getDescriptors(ENGINEHEUR_RESULTS);
                Cudnn.Descriptor[] configs = new Cudnn.Descriptor[count];
                for (int i = 0; i < count; i++) {
                    configs[i] = own(cudnn.descriptor(ENGINECFG_DESCRIPTOR));
                }
                count = count == 0 ? 0 : heuristic.getDescriptors(ENGINEHEUR_RESULTS, configs);
                for (int i = 0; i < count; i++) {
                    Cudnn.Descriptor plan = own(cudnn.descriptor(EXECUTION_PLAN_DESCRIPTOR));
                    plan.handle(EXECUTION_PLAN_HANDLE).descriptors(EXECUTION_PLAN_ENGINE_CONFIG, configs[i]);
                    if (plan.tryFinish() == 0) { // a config that does not fit the graph: the next one, as cuDNN's frontend does
                        return new Plan(plan, owned, plan.getLong(EXECUTION_PLAN_WORKSPACE_SIZE), scale);
                    }
                }
                return noEngine();
            } catch (RuntimeException e) {
                closeAll(owned);
                throw e;
            }
        }
    }

    private static void closeAll(List<Cudnn.Descriptor> descriptors) {
        for (int i = descriptors.size() - 1; i >= 0; i--) {
            descriptors.get(i).close();
        }
    }

    @Override
    public void close() {
        for (Map<Shape, Plan> plans : List.of(forwardPlans, backwardPlans)) {
            for (Plan plan : plans.values()) {
                closeAll(plan.owned);
            }
            plans.clear();
        }
        scalars.close();
        cudnn.close();
    }
}
