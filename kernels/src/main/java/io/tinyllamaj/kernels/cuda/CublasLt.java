package io.tinyllamaj.kernels.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * FFM bindings to cuBLASLt ({@code libcublasLt.so.13}): column-major
 * {@code D = alpha op(A) op(B) + beta C} with bf16 A and B (or FP8 ones with per-tensor
 * scales, {@link #matmulFp8}), C and D in fp32 or bf16, fp32 accumulation (CUBLAS_COMPUTE_32F).
 * Each distinct shape gets its descriptors and the heuristic's candidate algorithms once, cached, with one fixed workspace. The heuristic's first choice is not always
 * the fastest (up to 12% slower at TinyLlama's shapes on an H100): when tuning is on, the first
 * call of a shape that overwrites its output times each candidate on that call's operands and
 * keeps the fastest of those that give the first choice's result bit for bit (compared by an
 * order-independent fingerprint of the output; on the H100 every candidate without split-k does,
 * since only the tiling of m and n differs). So tuning can change speed but never a result:
 * runs, resumes and processes agree to the bit whatever each one timed (cuBLAS's
 * reproducibility guarantee for one stream, one GPU architecture and SM count). Every
 * cublasStatus_t is checked; a failure names the call.
 */
public final class CublasLt implements AutoCloseable {

    private static final String LIB = "libcublasLt.so.13";
    // cublasLt.h / library_types.h enum values
    private static final int CUBLAS_COMPUTE_32F = 68;
    private static final int CUDA_R_32F = 0;
    private static final int CUDA_R_16BF = 14;
    static final int CUDA_R_8F_E4M3 = 28, CUDA_R_8F_E5M2 = 29;
    private static final int DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_A_SCALE_POINTER = 17, DESC_B_SCALE_POINTER = 18;
    private static final int PREF_MAX_WORKSPACE_BYTES = 1;
    private static final int PREF_MIN_ALIGNMENT_A = 5, PREF_MIN_ALIGNMENT_B = 6, PREF_MIN_ALIGNMENT_C = 7, PREF_MIN_ALIGNMENT_D = 8;
    private static final int ALGO_CONFIG_SPLITK_NUM = 2;
    private static final long HEURISTIC_RESULT_BYTES = 96; // cublasLtMatmulHeuristicResult_t; the algo is its first 64 bytes
    private static final long RESULT_STATE_OFFSET = 72;    // after the algo and size_t workspaceSize
    private static final int CANDIDATES = 8;
    private static final int TUNING_ROUNDS = 3, TUNING_RUNS = 3; // the best round's mean of back-to-back runs
    static final long WORKSPACE_BYTES = 32L << 20;

    /** An order-independent 64-bit fingerprint of {@code bytes} of device memory, after the stream's queued work. */
    interface Fingerprint {
        long of(long address, long bytes);
    }

    private final CudaDriver driver;
    private final MethodHandle create, destroy, descCreate, descDestroy, descSetAttribute, layoutCreate, layoutDestroy,
            preferenceCreate, preferenceDestroy, preferenceSetAttribute, heuristic, matmul, algoConfigGetAttribute;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle;
    private final long workspace;
    private final MemorySegment alpha, betaZero, betaOne;
    private final Map<Shape, Plan> plans = new HashMap<>();
    private final Fingerprint fingerprint;
    private boolean tuning;

    /**
     * The op, sizes, operand types and output alignment that select one plan (the heuristic sees no
     * alpha or beta, so accumulating and overwriting calls share it). transA/transB: 0 = N, 1 = T;
     * typeA/typeB: CUDA_R_16BF or an FP8 type, whose dequantization scales (fp32 device pointers,
     * fixed per plan) are aScale and bScale (0 for bf16).
     */
    private record Shape(int transA, int transB, int m, int n, int k, int lda, int ldb, int ldc, int alignC, boolean bf16Out,
                         int typeA, int typeB, long aScale, long bScale) {
    }

    /** Descriptors, the heuristic's algorithms (its first choice first) and the one in use. */
    private static final class Plan {
        final MemorySegment desc, a, b, c;
        final MemorySegment[] candidates;
        MemorySegment algo;
        boolean tuned;

        Plan(MemorySegment desc, MemorySegment a, MemorySegment b, MemorySegment c, MemorySegment[] candidates) {
            this.desc = desc;
            this.a = a;
            this.b = b;
            this.c = c;
            this.candidates = candidates;
            this.algo = candidates[0];
        }
    }

    /**
     * workspace: {@link #WORKSPACE_BYTES} of device memory, 256-byte aligned, owned by the caller;
     * tuning: whether a shape's first overwriting call picks the fastest bit-identical candidate
     * (see the class comment).
     */
    CublasLt(CudaDriver driver, long workspace, Fingerprint fingerprint, boolean tuning) {
        this.driver = driver;
        this.workspace = workspace;
        this.fingerprint = fingerprint;
        this.tuning = tuning;
        SymbolLookup lib = Native.open(LIB, "TINYLLAMA_LIBCUBLASLT", "/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
                "/usr/lib/x86_64-linux-gnu");
        if (lib == null) {
            throw new CudaUnavailableException("CUDA backend unavailable: " + LIB + " (cuBLASLt of CUDA 13) is not on the library path; set TINYLLAMA_LIBCUBLASLT to its directory");
        }
        create = Native.status(lib, LIB, "cublasLtCreate", ADDRESS);
        destroy = Native.status(lib, LIB, "cublasLtDestroy", ADDRESS);
        descCreate = Native.status(lib, LIB, "cublasLtMatmulDescCreate", ADDRESS, JAVA_INT, JAVA_INT);
        descDestroy = Native.status(lib, LIB, "cublasLtMatmulDescDestroy", ADDRESS);
        descSetAttribute = Native.status(lib, LIB, "cublasLtMatmulDescSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
        layoutCreate = Native.status(lib, LIB, "cublasLtMatrixLayoutCreate", ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG);
        layoutDestroy = Native.status(lib, LIB, "cublasLtMatrixLayoutDestroy", ADDRESS);
        preferenceCreate = Native.status(lib, LIB, "cublasLtMatmulPreferenceCreate", ADDRESS);
        preferenceDestroy = Native.status(lib, LIB, "cublasLtMatmulPreferenceDestroy", ADDRESS);
        preferenceSetAttribute = Native.status(lib, LIB, "cublasLtMatmulPreferenceSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
        heuristic = Native.status(lib, LIB, "cublasLtMatmulAlgoGetHeuristic", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        algoConfigGetAttribute = Native.status(lib, LIB, "cublasLtMatmulAlgoConfigGetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG,
                ADDRESS);
        matmul = Native.status(lib, LIB, "cublasLtMatmul", ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS,
                ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG, ADDRESS);
        try {
            MemorySegment h = arena.allocate(ADDRESS);
            check("cublasLtCreate", (int) create.invokeExact(h));
            handle = h.get(ADDRESS, 0);
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
        alpha = arena.allocateFrom(JAVA_FLOAT, 1f);
        betaZero = arena.allocateFrom(JAVA_FLOAT, 0f);
        betaOne = arena.allocateFrom(JAVA_FLOAT, 1f);
    }

    /** Turns tuning on or off for shapes not planned yet (and untuned ones); returns the setting it replaces. */
    boolean tuning(boolean on) {
        boolean was = tuning;
        tuning = on;
        return was;
    }

    private static void check(String call, int status) {
        if (status != 0) {
            throw new CudaException(call + " failed: cublasStatus_t " + status + statusName(status));
        }
    }

    private static String statusName(int status) {
        return switch (status) {
            case 1 -> " (CUBLAS_STATUS_NOT_INITIALIZED)";
            case 3 -> " (CUBLAS_STATUS_ALLOC_FAILED)";
            case 7 -> " (CUBLAS_STATUS_INVALID_VALUE)";
            case 8 -> " (CUBLAS_STATUS_ARCH_MISMATCH)";
            case 11 -> " (CUBLAS_STATUS_MAPPING_ERROR)";
            case 13 -> " (CUBLAS_STATUS_EXECUTION_FAILED)";
            case 14 -> " (CUBLAS_STATUS_INTERNAL_ERROR)";
            case 15 -> " (CUBLAS_STATUS_NOT_SUPPORTED)";
            default -> "";
        };
    }

    /**
     * Column-major D[m, n] = op(A) op(B) (+ D when accumulate). A and B are bf16 device
     * pointers, D is fp32 (or bf16 when bf16Out) with leading dimension ldc. transA/transB: 0 = N,
     * 1 = T; A is stored as [m, k] (N) or [k, m] (T), B as [k, n] (N) or [n, k] (T).
     */
    void matmul(int transA, int transB, int m, int n, int k, long a, int lda, long b, int ldb, long d, int ldc,
                boolean accumulate, boolean bf16Out, MemorySegment stream) {
        matmul(new Shape(transA, transB, m, n, k, lda, ldb, ldc, alignment(d), bf16Out, CUDA_R_16BF, CUDA_R_16BF, 0, 0), a, b, d, d,
                accumulate, stream);
    }

    /**
     * The FP8 form (on Hopper cuBLASLt takes only A transposed and B not): column-major D[m, n] =
     * aScale * bScale * A^T B (+ D when accumulate), A stored [k, m] in typeA, B [k, n] in typeB
     * (CUDA_R_8F_E4M3 or CUDA_R_8F_E5M2, not both e5m2), aScale and bScale one fp32 each in device
     * memory (16-byte aligned: cuBLASLt 13.1 refuses a 4-byte aligned one with
     * CUBLAS_STATUS_NOT_SUPPORTED), read when the matmul runs; fp32 accumulation. C is read only when
     * accumulating: c == d accumulates in place (D of the same type and layout, as Transformer
     * Engine's FP8 weight gradients accumulate into their fp32 buffer); an overwriting call may pass
     * any device address of D's alignment.
     */
    void matmulFp8(int m, int n, int k, long a, int typeA, long aScale, int lda, long b, int typeB, long bScale, int ldb, long c,
                   long d, int ldc, boolean accumulate, boolean bf16Out, MemorySegment stream) {
        matmul(new Shape(1, 0, m, n, k, lda, ldb, ldc, Math.min(alignment(c), alignment(d)), bf16Out, typeA, typeB, aScale, bScale),
                a, b, c, d, accumulate, stream);
    }

    private void matmul(Shape shape, long a, long b, long c, long d, boolean accumulate, MemorySegment stream) {
        int m = shape.m(), n = shape.n(), ldc = shape.ldc();
        boolean bf16Out = shape.bf16Out();
        Plan plan = plans.computeIfAbsent(shape, this::plan);
        if (!plan.tuned && !accumulate && tuning) {
            tune(plan, a, b, c, d, ((long) ldc * (n - 1) + m) * (bf16Out ? 2 : Float.BYTES), stream); // D's extent, no padding past it
        }
        run(plan, plan.algo, a, b, c, d, accumulate ? betaOne : betaZero, stream);
    }

    private void run(Plan plan, MemorySegment algo, long a, long b, long c, long d, MemorySegment beta, MemorySegment stream) {
        try {
            check("cublasLtMatmul", (int) matmul.invokeExact(handle, plan.desc, alpha, a, plan.a, b, plan.b, beta, c, plan.c, d,
                    plan.c, algo, workspace, WORKSPACE_BYTES, stream));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    /**
     * Times every candidate on these operands (D = A B, overwriting d, which the caller's own
     * call then overwrites again) and keeps the fastest whose output has the first choice's
     * fingerprint; the first choice itself when none is faster.
     */
    private void tune(Plan plan, long a, long b, long c, long d, long bytes, MemorySegment stream) {
        plan.tuned = true;
        if (plan.candidates.length < 2) {
            return;
        }
        MemorySegment start = driver.eventCreate(), end = driver.eventCreate();
        try {
            run(plan, plan.candidates[0], a, b, c, d, betaZero, stream);
            long reference = fingerprint.of(d, bytes);
            float best = Float.MAX_VALUE;
            for (MemorySegment candidate : plan.candidates) {
                run(plan, candidate, a, b, c, d, betaZero, stream); // warm-up
                float ms = Float.MAX_VALUE;
                for (int round = 0; round < TUNING_ROUNDS; round++) {
                    driver.eventRecord(start, stream);
                    for (int i = 0; i < TUNING_RUNS; i++) {
                        run(plan, candidate, a, b, c, d, betaZero, stream);
                    }
                    driver.eventRecord(end, stream);
                    ms = Math.min(ms, driver.eventElapsedMillis(start, end));
                }
                if (ms < best && fingerprint.of(d, bytes) == reference) {
                    best = ms;
                    plan.algo = candidate;
                }
            }
        } finally {
            driver.eventDestroy(start);
            driver.eventDestroy(end);
        }
    }

    private static int alignment(long address) {
        return (int) Math.min(256, Long.lowestOneBit(address | 256));
    }

    private Plan plan(Shape s) {
        try {
            MemorySegment slot = arena.allocate(ADDRESS);
            check("cublasLtMatmulDescCreate", (int) descCreate.invokeExact(slot, CUBLAS_COMPUTE_32F, CUDA_R_32F));
            MemorySegment desc = slot.get(ADDRESS, 0);
            MemorySegment value = arena.allocateFrom(JAVA_INT, s.transA());
            check("cublasLtMatmulDescSetAttribute(TRANSA)", (int) descSetAttribute.invokeExact(desc, DESC_TRANSA, value, 4L));
            value = arena.allocateFrom(JAVA_INT, s.transB());
            check("cublasLtMatmulDescSetAttribute(TRANSB)", (int) descSetAttribute.invokeExact(desc, DESC_TRANSB, value, 4L));
            if (s.aScale() != 0) {
                setPointer(desc, DESC_A_SCALE_POINTER, s.aScale());
                setPointer(desc, DESC_B_SCALE_POINTER, s.bScale());
            }
            MemorySegment a = layout(s.typeA(), s.transA() == 0 ? s.m() : s.k(), s.transA() == 0 ? s.k() : s.m(), s.lda());
            MemorySegment b = layout(s.typeB(), s.transB() == 0 ? s.k() : s.n(), s.transB() == 0 ? s.n() : s.k(), s.ldb());
            MemorySegment c = layout(s.bf16Out() ? CUDA_R_16BF : CUDA_R_32F, s.m(), s.n(), s.ldc());
            check("cublasLtMatmulPreferenceCreate", (int) preferenceCreate.invokeExact(slot));
            MemorySegment preference = slot.get(ADDRESS, 0);
            setPreference(preference, PREF_MAX_WORKSPACE_BYTES, arena.allocateFrom(JAVA_LONG, WORKSPACE_BYTES), 8);
            setPreference(preference, PREF_MIN_ALIGNMENT_A, arena.allocateFrom(JAVA_INT, 256), 4);
            setPreference(preference, PREF_MIN_ALIGNMENT_B, arena.allocateFrom(JAVA_INT, 256), 4);
            setPreference(preference, PREF_MIN_ALIGNMENT_C, arena.allocateFrom(JAVA_INT, s.alignC()), 4);
            setPreference(preference, PREF_MIN_ALIGNMENT_D, arena.allocateFrom(JAVA_INT, s.alignC()), 4);
            int requested = tuning ? CANDIDATES : 1;
            MemorySegment results = arena.allocate(HEURISTIC_RESULT_BYTES * requested, 8);
            MemorySegment count = arena.allocate(JAVA_INT);
            check("cublasLtMatmulAlgoGetHeuristic", (int) heuristic.invokeExact(handle, desc, a, b, c, c, preference, requested,
                    results, count));
            check("cublasLtMatmulPreferenceDestroy", (int) preferenceDestroy.invokeExact(preference));
            List<MemorySegment> candidates = new ArrayList<>();
            for (int i = 0; i < count.get(JAVA_INT, 0); i++) {
                MemorySegment result = results.asSlice(i * HEURISTIC_RESULT_BYTES, HEURISTIC_RESULT_BYTES);
                MemorySegment algo = result.asSlice(0, 64);
                // the first choice always; others only when usable and not splitting k (a split sums in another order)
                if (i == 0 || (result.get(JAVA_INT, RESULT_STATE_OFFSET) == 0 && splitK(algo) == 1)) {
                    candidates.add(algo);
                }
            }
            if (candidates.isEmpty()) {
                throw new CudaException("cublasLtMatmulAlgoGetHeuristic found no algorithm for " + s);
            }
            return new Plan(desc, a, b, c, candidates.toArray(MemorySegment[]::new));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
    }

    private int splitK(MemorySegment algo) throws Throwable {
        MemorySegment value = arena.allocate(JAVA_INT);
        MemorySegment written = arena.allocate(JAVA_LONG);
        check("cublasLtMatmulAlgoConfigGetAttribute(SPLITK_NUM)",
                (int) algoConfigGetAttribute.invokeExact(algo, ALGO_CONFIG_SPLITK_NUM, value, 4L, written));
        return value.get(JAVA_INT, 0);
    }

    private void setPointer(MemorySegment desc, int attribute, long address) throws Throwable {
        check("cublasLtMatmulDescSetAttribute(" + attribute + ")",
                (int) descSetAttribute.invokeExact(desc, attribute, arena.allocateFrom(JAVA_LONG, address), 8L));
    }

    private void setPreference(MemorySegment preference, int attribute, MemorySegment value, long bytes) throws Throwable {
        check("cublasLtMatmulPreferenceSetAttribute(" + attribute + ")", (int) preferenceSetAttribute.invokeExact(preference, attribute, value, bytes));
    }

    private MemorySegment layout(int type, long rows, long cols, long ld) throws Throwable {
        MemorySegment slot = arena.allocate(ADDRESS);
        check("cublasLtMatrixLayoutCreate", (int) layoutCreate.invokeExact(slot, type, rows, cols, ld));
        return slot.get(ADDRESS, 0);
    }

    @Override
    public void close() {
        try {
            for (Plan p : plans.values()) {
                check("cublasLtMatmulDescDestroy", (int) descDestroy.invokeExact(p.desc));
                check("cublasLtMatrixLayoutDestroy", (int) layoutDestroy.invokeExact(p.a));
                check("cublasLtMatrixLayoutDestroy", (int) layoutDestroy.invokeExact(p.b));
                check("cublasLtMatrixLayoutDestroy", (int) layoutDestroy.invokeExact(p.c));
            }
            plans.clear();
            check("cublasLtDestroy", (int) destroy.invokeExact(handle));
        } catch (Throwable t) {
            throw Native.rethrow(t);
        }
        arena.close();
    }
}
