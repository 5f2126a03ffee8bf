package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;
import java.util.HashMap;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;

import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * One GPU, bf16-mixed precision. Master weights, gradients, AdamW moments, the residual stream
 * and the loss are fp32 in device memory, so the fp32 semantics of the interface and its
 * accumulate/overwrite conventions hold for them unchanged. Activations taken with
 * {@link #allocateActivation} (matmul inputs and outputs, q/k/v, attention and SwiGLU outputs and
 * their gradients) are stored in bf16, as PyTorch's autocast keeps them: half the memory and
 * half the bytes of every op that touches them; the system property
 * {@value #ACTIVATIONS_PROPERTY}{@code =fp32} keeps them in fp32 instead. bf16 enters the
 * arithmetic where PyTorch's does: matmul operands are bf16 (fp32 tensors are cast first) and
 * cuBLASLt accumulates in fp32; attention multiplies bf16 q, k, v and dout and sums in fp32 (the
 * tensor-core kernels, head size 64, also round p and ds to bf16 before their second product;
 * see {@link #useAttention}). Norms, RoPE, SwiGLU, the loss and AdamW compute in fp32 and
 * round only when they store into a bf16 tensor. Ops over activations take fp32 or bf16 storage
 * (one kernel build each); tensors one op reads and writes together must share a storage type.
 *
 * <p>Deterministic: the same inputs give the same bits on every run. No kernel uses atomics
 * (the embedding backward and the reductions over blocks sum in a fixed order) and cuBLASLt's
 * algorithm is chosen once per shape ({@link CublasLt}), so a run resumed from a checkpoint
 * continues the uninterrupted one exactly.
 *
 * <p>All work goes to one stream, in call order; downloads wait for it. Not thread-safe: one
 * training loop drives one backend, as with the CPU backend.
 */
public final class CudaBackend implements Backend {

    private static final Cleaner CLEANER = Cleaner.create();
    private static final String[] KERNELS = {"cast_bf16", "accumulate", "accumulate_bf16", "scale", "embedding_forward", "embedding_backward",
            "rmsnorm_dweight_reduce", "cross_entropy", "adamw_update", "sum_of_squares", "sum_partials", "fingerprint",
            "attention_mma_sm80_forward_hs64", "attention_mma_sm80_backward_dq_hs64", "attention_mma_sm80_backward_dkv_hs64",
            "attention_wgmma_sm90_forward_hs64", "attention_wgmma_sm90_backward_dq_hs64", "attention_wgmma_sm90_backward_dkv_hs64"};
    /** Kernels built twice, as {@code name} (fp32 storage) and {@code name_bf16}. */
    private static final String[] ACTIVATION_KERNELS = {"rmsnorm_forward", "residual_rmsnorm_forward", "rmsnorm_backward", "rmsnorm_backward_vec", "rope_rotate",
            "swiglu_forward", "swiglu_backward", "attention_backward_dot", "attention_backward_dkv_reduce",
            "attention_forward_hs32", "attention_forward_hs64", "attention_forward_hs128",
            "attention_backward_dq_hs32", "attention_backward_dq_hs64", "attention_backward_dq_hs128",
            "attention_backward_dkv_hs32", "attention_backward_dkv_hs64", "attention_backward_dkv_hs128"};
    private static final int RMSNORM_ROWS_PER_BLOCK = 32; // rmsnorm.cu (backward)
    private static final int RMSNORM_WARPS = 8;           // rmsnorm.cu (forward: a warp per row)
    private static final int SUM_BLOCKS = 1024;           // most blocks (partials) of sum_of_squares
    private static final int ATTN_ROWS = 64;              // attention.cu
    /** System property choosing the attention kernels: {@code wgmma} (default), {@code mma} or {@code plain}; see {@link Attention}. */
    public static final String ATTENTION_PROPERTY = "tinyllamaj.cuda.attention";
    private static final int TC_TILE = 128;               // attention_mma_sm80.cu, attention_wgmma_sm90.cu: rows per block
    private static final int MMA_THREADS = 128;           // attention_mma_sm80.cu: 4 warps of 32 rows
    private static final int WGMMA_THREADS = 256;         // attention_wgmma_sm90.cu: 2 warpgroups of 64 rows,
    private static final int WGMMA_DQ_SHARED = 50_176;    // dynamic shared bytes (attn_wgmma::KV_SMEM_BYTES)
    private static final int WGMMA_DKV_SHARED = 51_712;   // (attn_wgmma::SMEM_BYTES)
    private static final int WGMMA_FWD_SHARED = 50_176;   // (attn_wgmma::KV_SMEM_BYTES)

    /**
     * The attention kernels. Shapes a choice does not cover run the plain kernels (head sizes
     * other than 64, fp32 activations, decoding with tq < tk), and WGMMA_SM90 off compute
     * capability 9.0 runs MMA_SM80.
     */
    public enum Attention {
        /** attention.cu: a thread per row, fp32 FMA; the reference the others are checked against. */
        PLAIN("plain"),
        /** attention_mma_sm80.cu: mma.sync tensor cores (sm_80 and newer), 32 rows per warp; bf16 storage, head size 64. */
        MMA_SM80("mma"),
        /** attention_wgmma_sm90.cu: Hopper's warpgroup tensor cores (sm_90a); MMA_SM80's numerics, meant to be its bits. */
        WGMMA_SM90("wgmma");

        private final String key;

        Attention(String key) {
            this.key = key;
        }

        /** The value of {@value #ATTENTION_PROPERTY} that chooses it. */
        public String key() {
            return key;
        }
    }
    /** System property choosing the storage of activations: {@code bf16} (default) or {@code fp32}. */
    public static final String ACTIVATIONS_PROPERTY = "tinyllamaj.cuda.activations";
    /**
     * System property: {@code on} (default) lets each matmul shape's first call pick the fastest
     * of cuBLASLt's candidates that give the same bits (see {@link CublasLt}); {@code off} keeps the
     * heuristic's first choice and skips the timing (about a second at start for TinyLlama).
     */
    public static final String MATMUL_TUNING_PROPERTY = "tinyllamaj.cuda.matmulTuning";

    private final CudaDriver driver;
    private final int device;
    private final String deviceName;
    private final boolean hopper; // compute capability 9.0: the sm_90a (wgmma) kernels run
    private final MemorySegment context;
    private final MemorySegment stream;
    private final CudaKernels kernels;
    private final CublasLt blas;
    private final HostStaging staging;
    private final Set<Long> live = ConcurrentHashMap.newKeySet();
    private final Queue<Long> released = new ConcurrentLinkedQueue<>();
    private final long[] bf16Scratch = new long[3];
    private final long[] bf16ScratchBytes = new long[3];
    private final Map<RopeKey, RopeTable> ropeTables = new HashMap<>();
    private long tokens, tokensBytes, targets, targetsBytes, attnDot, attnDotBytes, attnPartial, attnPartialBytes;
    private long embedPlan, embedPlanBytes, rmsPartial, rmsPartialBytes;
    private final long sumSlot, sumPartials;
    private Thread lastThread;
    private boolean closed;
    private Attention attention = attention(System.getProperty(ATTENTION_PROPERTY, "wgmma"));
    private final boolean bf16Activations = bf16Activations(System.getProperty(ACTIVATIONS_PROPERTY, "bf16"));
    private final boolean matmulTuning = matmulTuning(System.getProperty(MATMUL_TUNING_PROPERTY, "on"));

    private record RopeKey(int headSize, float theta) {
    }

    private record RopeTable(CudaTensor cos, CudaTensor sin, int positions) {
    }

    /** The first GPU; a {@link CudaUnavailableException} says in one line why it cannot run here. */
    public static CudaBackend create() {
        return new CudaBackend(0);
    }

    /** GPU {@code ordinal} of those visible; a {@link CudaUnavailableException} says why it cannot run here. */
    public CudaBackend(int ordinal) {
        this.driver = CudaDriver.load();
        int count = driver.deviceCount();
        if (count <= ordinal) {
            throw new CudaUnavailableException("CUDA backend unavailable: " + (count == 0 ? "no CUDA GPU is visible"
                    : "GPU " + ordinal + " asked for, " + count + " visible"));
        }
        byte[] fatbin = CudaKernels.readFatbin(); // the one-line reason before touching the GPU
        this.device = driver.device(ordinal);
        this.deviceName = driver.deviceName(device);
        this.hopper = driver.deviceAttribute(CudaDriver.COMPUTE_CAPABILITY_MAJOR, device) == 9
                && driver.deviceAttribute(CudaDriver.COMPUTE_CAPABILITY_MINOR, device) == 0;
        this.context = driver.retainPrimaryContext(device);
        this.lastThread = Thread.currentThread();
        this.stream = driver.streamCreate();
        this.kernels = new CudaKernels(driver, stream, fatbin);
        this.staging = new HostStaging(driver);
        kernels.preload(KERNELS);
        for (String name : ACTIVATION_KERNELS) {
            kernels.preload(name, name + "_bf16");
        }
        if (hopper) {
            kernels.allowDynamicShared("attention_wgmma_sm90_backward_dq_hs64", WGMMA_DQ_SHARED);
            kernels.allowDynamicShared("attention_wgmma_sm90_backward_dkv_hs64", WGMMA_DKV_SHARED);
            kernels.allowDynamicShared("attention_wgmma_sm90_forward_hs64", WGMMA_FWD_SHARED);
        }
        this.sumSlot = driver.memAlloc(256);
        this.sumPartials = driver.memAlloc((long) SUM_BLOCKS * Double.BYTES);
        this.blas = new CublasLt(driver, this::fingerprint, matmulTuning);
    }

    @Override
    public String name() {
        return "cuda";
    }

    /** e.g. "NVIDIA H100 80GB HBM3 (sm_90)". */
    public String deviceDescription() {
        return deviceName + " (sm_" + driver.deviceAttribute(CudaDriver.COMPUTE_CAPABILITY_MAJOR, device)
                + driver.deviceAttribute(CudaDriver.COMPUTE_CAPABILITY_MINOR, device) + ")";
    }

    public CudaDriver driver() {
        return driver;
    }

    /** The stream all work goes to, for callers that time it with {@link CudaDriver#eventRecord} events. */
    public MemorySegment stream() {
        return stream;
    }

    /** Waits for all queued work; the host clock then measures the GPU's. */
    public void synchronize() {
        current();
        driver.streamSynchronize(stream);
    }

    private void current() {
        if (closed) {
            throw new IllegalStateException("the CUDA backend is closed");
        }
        if (lastThread != Thread.currentThread()) {
            driver.setCurrent(context);
            lastThread = Thread.currentThread();
        }
    }

    private CudaTensor of(Tensor t) {
        if (t instanceof CudaTensor c && c.allocation().owner == this) {
            return c;
        }
        throw new IllegalArgumentException("tensor " + t + " does not belong to this CUDA backend");
    }

    /** A tensor an op needs in fp32 (parameters, gradients, the residual stream, the loss). */
    private CudaTensor fp32(String op, Tensor t) {
        CudaTensor c = of(t);
        if (c.bf16()) {
            throw new IllegalArgumentException(op + ": " + c + " must be fp32");
        }
        return c;
    }

    private long ptr32(String op, Tensor t) {
        return fp32(op, t).address();
    }

    /** Tensors one kernel reads and writes together share a storage type. */
    private static void sameStorage(String op, CudaTensor first, CudaTensor... others) {
        for (CudaTensor o : others) {
            if (o.bf16() != first.bf16()) {
                throw new IllegalArgumentException(op + ": " + first + " and " + o + " differ in storage type");
            }
        }
    }

    /** The kernel built for this storage type: {@code name} for fp32, {@code name_bf16} for bf16. */
    private static String kernel(String name, CudaTensor storage) {
        return storage.bf16() ? name + "_bf16" : name;
    }

    // ---- memory ----

    @Override
    public CudaTensor allocate(long length) {
        return allocate(length, false);
    }

    /** bf16 storage unless {@value #ACTIVATIONS_PROPERTY}=fp32; see the class comment. */
    @Override
    public CudaTensor allocateActivation(long length) {
        return allocate(length, bf16Activations);
    }

    /** Whether {@link #allocateActivation} stores bf16. */
    public boolean bf16Activations() {
        return bf16Activations;
    }

    private CudaTensor allocate(long length, boolean bf16) {
        current();
        freeReleased();
        long bytes = Math.max(4, (length * (bf16 ? 2 : Float.BYTES) + 3) / 4 * 4);
        long address = driver.memAlloc(bytes);
        live.add(address);
        driver.memsetD32Async(address, 0, bytes / 4, stream);
        CudaTensor.Allocation allocation = new CudaTensor.Allocation(this);
        Queue<Long> queue = released;
        CLEANER.register(allocation, () -> queue.add(address));
        return new CudaTensor(address, length, bf16, allocation);
    }

    private void freeReleased() {
        if (released.isEmpty()) {
            return;
        }
        driver.streamSynchronize(stream);
        for (Long address; (address = released.poll()) != null; ) {
            if (live.remove(address)) {
                driver.memFree(address);
            }
        }
    }

    /** A device buffer of at least {@code bytes}, grown (after the stream drains) when too small. */
    private long grow(long current, long currentBytes, long bytes, java.util.function.LongConsumer setBytes) {
        if (currentBytes >= bytes) {
            return current;
        }
        if (current != 0) {
            driver.streamSynchronize(stream);
            driver.memFree(current);
        }
        long size = Math.max(bytes, currentBytes * 2);
        setBytes.accept(size);
        return driver.memAlloc(size);
    }

    @Override
    public void upload(Tensor dst, float[] src, int srcOffset, int length) {
        current();
        CudaTensor d = of(dst);
        checkLength(d, length);
        if (length == 0) {
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate((long) length * d.elementBytes(), 16);
            if (d.bf16()) {
                for (int i = 0; i < length; i++) {
                    host.setAtIndex(JAVA_SHORT, i, toBf16(src[srcOffset + i]));
                }
            } else {
                MemorySegment.copy(src, srcOffset, host, JAVA_FLOAT, 0, length);
            }
            driver.memcpyHtoDAsync(d.address(), host, host.byteSize(), stream);
            driver.streamSynchronize(stream);
        }
    }

    @Override
    public void download(Tensor src, float[] dst, int dstOffset, int length) {
        current();
        CudaTensor s = of(src);
        checkLength(s, length);
        if (length == 0) {
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate((long) length * s.elementBytes(), 16);
            driver.memcpyDtoHAsync(host, s.address(), host.byteSize(), stream);
            driver.streamSynchronize(stream);
            if (s.bf16()) {
                for (int i = 0; i < length; i++) {
                    dst[dstOffset + i] = Float.intBitsToFloat(host.getAtIndex(JAVA_SHORT, i) << 16);
                }
            } else {
                MemorySegment.copy(host, JAVA_FLOAT, 0, dst, dstOffset, length);
            }
        }
    }

    /** fp32 -> bf16 bits, round to nearest even (as __float2bfloat16 and torch's .to(bfloat16)). */
    static short toBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) 0x7FC0;
        }
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    private static void checkLength(CudaTensor t, long length) {
        if (length > t.length()) {
            throw new IllegalArgumentException(length + " values do not fit " + t);
        }
    }

    /** Copies host ints to a device staging buffer (tokens or targets). */
    private long uploadInts(int[] values, int n, boolean isTargets) {
        long bytes = (long) n * Integer.BYTES;
        if (isTargets) {
            targets = grow(targets, targetsBytes, bytes, b -> targetsBytes = b);
        } else {
            tokens = grow(tokens, tokensBytes, bytes, b -> tokensBytes = b);
        }
        long dst = isTargets ? targets : tokens;
        copyInts(dst, values, n);
        return dst;
    }

    /** An upload in stream order that does not wait for the GPU (see {@link HostStaging}). */
    private void copyInts(long dst, int[] values, int n) {
        staging.upload(dst, values, n, stream);
    }

    @Override
    public void fill(Tensor t, float value) {
        current();
        CudaTensor c = of(t);
        if (c.length() > 0 && c.bf16()) {
            driver.memsetD16Async(c.address(), toBf16(value), c.length(), stream);
        } else if (c.length() > 0) {
            driver.memsetD32Async(c.address(), Float.floatToRawIntBits(value), c.length(), stream);
        }
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        current();
        CudaTensor s = of(src), d = of(dst);
        checkLength(d, s.length());
        sameStorage("copy", d, s);
        if (s.length() > 0) {
            driver.memcpyDtoDAsync(d.address(), s.address(), s.bytes(), stream);
        }
    }

    @Override
    public void accumulate(Tensor dst, Tensor src) {
        current();
        CudaTensor s = of(src), d = fp32("accumulate", dst);
        checkLength(d, s.length());
        kernels.launchFlat(s.bf16() ? "accumulate_bf16" : "accumulate", s.length(), d.address(), s.address(), s.length());
    }

    @Override
    public void scale(Tensor t, float factor) {
        current();
        CudaTensor c = fp32("scale", t);
        kernels.launchFlat("scale", c.length(), c.address(), factor, c.length());
    }

    // ---- matmul: bf16 operands, fp32 accumulation and output (cuBLASLt, column-major view) ----

    /**
     * The bf16 operand of a matmul: a bf16 tensor as it is, an fp32 one cast into scratch buffer
     * {@code slot}; returns its address.
     */
    private long bf16(int slot, Tensor t, long length) {
        CudaTensor c = of(t);
        checkLength(c, length);
        if (c.bf16()) {
            return c.address();
        }
        long bytes = length * 2;
        bf16Scratch[slot] = grow(bf16Scratch[slot], bf16ScratchBytes[slot], Math.max(bytes, 256), b -> bf16ScratchBytes[slot] = b);
        kernels.launchFlat("cast_bf16", length, bf16Scratch[slot], c.address(), length);
        return bf16Scratch[slot];
    }

    @Override
    public Tensor matmulOperand(Tensor weight, Tensor into) {
        current();
        CudaTensor w = of(weight);
        if (w.bf16()) {
            return w;
        }
        CudaTensor d = into == null ? null : of(into);
        if (d == null || !d.bf16() || d.length() < w.length()) {
            d = allocate(w.length(), true);
        }
        kernels.launchFlat("cast_bf16", w.length(), d.address(), w.address(), w.length());
        return d;
    }

    @Override
    public void matmulForward(Tensor out, Tensor inp, Tensor weight, int n, int c, int oc) {
        current();
        CudaTensor o = of(out);
        checkLength(o, (long) n * oc);
        long w = bf16(0, weight, (long) oc * c);
        long x = bf16(1, inp, (long) n * c);
        // out^T [oc, n] = W [oc, c] (stored as col-major [c, oc], transposed) . inp^T [c, n]
        blas.matmul(1, 0, oc, n, c, w, c, x, c, o.address(), oc, false, o.bf16(), stream);
    }

    @Override
    public void matmulBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, int n, int c, int oc,
                               boolean accumulate) {
        current();
        long dy = bf16(0, dout, (long) n * oc);
        if (dinp != null) {
            CudaTensor di = of(dinp);
            checkLength(di, (long) n * c);
            long w = bf16(1, weight, (long) oc * c);
            // dinp^T [c, n] = W^T [c, oc] (W stored col-major [c, oc]) . dout^T [oc, n]
            blas.matmul(0, 0, c, n, oc, w, c, dy, oc, di.address(), c, false, di.bf16(), stream);
        }
        CudaTensor dw = fp32("matmulBackward (dweight)", dweight);
        checkLength(dw, (long) oc * c);
        long x = bf16(2, inp, (long) n * c);
        // dW^T [c, oc] (+)= inp^T [c, n] . dout [n, oc] (dout stored col-major [oc, n], transposed)
        blas.matmul(0, 1, c, oc, n, x, c, dy, oc, dw.address(), c, accumulate, false, stream);
    }

    // ---- RMSNorm ----

    @Override
    public void rmsnormForward(Tensor out, Tensor rstd, Tensor inp, Tensor weight, int n, int c, float eps) {
        current();
        CudaTensor o = of(out);
        kernels.launch(kernel("rmsnorm_forward", o), (n + RMSNORM_WARPS - 1) / RMSNORM_WARPS, 1, 1, 32 * RMSNORM_WARPS, 0,
                o.address(), ptr32("rmsnormForward", rstd), ptr32("rmsnormForward", inp), ptr32("rmsnormForward", weight), n, c, eps);
    }

    /** One kernel: residual = x + delta written once, then the norm of it (see rmsnorm.cu). */
    @Override
    public void residualRmsnormForward(Tensor residual, Tensor out, Tensor rstd, Tensor x, Tensor delta, Tensor weight,
                                       int n, int c, float eps) {
        current();
        CudaTensor o = of(out), d = of(delta);
        String op = "residualRmsnormForward";
        sameStorage(op, o, d); // delta is a matmul output, an activation like out
        kernels.launch(kernel("residual_rmsnorm_forward", o), (n + RMSNORM_WARPS - 1) / RMSNORM_WARPS, 1, 1, 32 * RMSNORM_WARPS, 0,
                ptr32(op, residual), o.address(), ptr32(op, rstd), ptr32(op, x), d.address(), ptr32(op, weight), n, c, eps);
    }

    @Override
    public void rmsnormBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, Tensor rstd, int n, int c,
                                boolean accumulateWeight) {
        rmsnormBackward(dinp, 0, dweight, dout, inp, weight, rstd, n, c, accumulateWeight);
    }

    @Override
    public void rmsnormBackwardAndCopy(Tensor dinp, Tensor dinpCopy, Tensor dweight, Tensor dout, Tensor inp, Tensor weight,
                                       Tensor rstd, int n, int c, boolean accumulateWeight) {
        CudaTensor copy = of(dinpCopy);
        checkLength(copy, (long) n * c);
        if (!copy.bf16()) { // fp32 activations: the copy is a plain one
            Backend.super.rmsnormBackwardAndCopy(dinp, dinpCopy, dweight, dout, inp, weight, rstd, n, c, accumulateWeight);
            return;
        }
        rmsnormBackward(dinp, copy.address(), dweight, dout, inp, weight, rstd, n, c, accumulateWeight);
    }

    /** copyBf16: where the kernel also writes the new dinp in bf16, or 0. */
    private void rmsnormBackward(Tensor dinp, long copyBf16, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, Tensor rstd,
                                 int n, int c, boolean accumulateWeight) {
        current();
        if ((long) c * Float.BYTES > 48 * 1024) {
            throw new IllegalArgumentException("rmsnormBackward: at most 12288 columns, got " + c);
        }
        int blocks = Math.max(1, (n + RMSNORM_ROWS_PER_BLOCK - 1) / RMSNORM_ROWS_PER_BLOCK);
        // per-block dweight partials [blocks, c], summed in a fixed order by a second kernel (deterministic)
        rmsPartial = grow(rmsPartial, rmsPartialBytes, (long) blocks * c * Float.BYTES, b -> rmsPartialBytes = b);
        String op = "rmsnormBackward";
        CudaTensor dy = of(dout); // the gradient of a matmul input: fp32 or bf16 storage
        long dx = ptr32(op, dinp), x = ptr32(op, inp), w = ptr32(op, weight);
        if (c % 4 == 0 && c <= 4096 && ((dx | x | w) & 15) == 0 && (copyBf16 & 7) == 0 && dy.address() % (4L * dy.elementBytes()) == 0) {
            // rmsnorm.cu's vectorized form: a thread per 4 columns
            kernels.launch(kernel("rmsnorm_backward_vec", dy), blocks, 1, 1, (c / 4 + 31) / 32 * 32, 0,
                    dx, copyBf16, rmsPartial, dy.address(), x, w, ptr32(op, rstd), n, c);
        } else {
            kernels.launch(kernel("rmsnorm_backward", dy), blocks, 1, 1, blockFor(c), c * Float.BYTES,
                    dx, copyBf16, rmsPartial, dy.address(), x, w, ptr32(op, rstd), n, c);
        }
        kernels.launch("rmsnorm_dweight_reduce", (c + 31) / 32, 1, 1, 256, 0, ptr32(op, dweight), rmsPartial, blocks, c,
                accumulateWeight ? 1 : 0);
    }

    private static int blockFor(int c) {
        return c >= 1024 ? 512 : c >= 256 ? 256 : c >= 128 ? 128 : c >= 64 ? 64 : 32;
    }

    // ---- RoPE ----

    @Override
    public void ropeForward(Tensor qkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta) {
        rope(qkv, b, t, nHeads, nKvHeads, headSize, startPos, theta, 1f);
    }

    @Override
    public void ropeBackward(Tensor dqkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta) {
        rope(dqkv, b, t, nHeads, nKvHeads, headSize, startPos, theta, -1f);
    }

    private void rope(Tensor qkv, int b, int t, int nh, int nkv, int hs, int startPos, float theta, float sign) {
        current();
        RopeTable table = ropeTable(hs, theta, startPos + t);
        int rows = b * t, rotated = nh + nkv, width = (nh + 2 * nkv) * hs;
        CudaTensor x = of(qkv);
        if (rows == 0) {
            return;
        }
        // rope.cu: 16 bytes of each half-head per thread when the halves and rows stay 16-byte aligned
        int half = hs / 2, wide = 16 / x.elementBytes();
        boolean aligned = half % wide == 0 && (x.address() & 15) == 0 && ((long) width * x.elementBytes()) % 16 == 0
                && ((long) half * x.elementBytes()) % 16 == 0;
        int vec = aligned ? wide : 1;
        int threads = rotated * (half / vec);
        int block = Math.min(256, (threads + 31) / 32 * 32);
        kernels.launch(kernel("rope_rotate", x), (threads + block - 1) / block, Math.min(rows, 65535), 1, block, 0,
                x.address(), table.cos.address(), table.sin.address(), rows, t, rotated, width, hs, startPos, sign, vec);
    }

    /** cos/sin [positions, hs/2], computed on the host exactly as the CPU reference computes them. */
    private RopeTable ropeTable(int hs, float theta, int positions) {
        RopeKey key = new RopeKey(hs, theta);
        RopeTable table = ropeTables.get(key);
        if (table != null && table.positions >= positions) {
            return table;
        }
        int size = Math.max(positions, table == null ? 0 : table.positions * 2);
        int half = hs / 2;
        float[] inverseFrequency = new float[half];
        for (int i = 0; i < half; i++) {
            inverseFrequency[i] = (float) (1.0 / Math.pow(theta, (2.0 * i) / hs));
        }
        float[] cos = new float[size * half];
        float[] sin = new float[size * half];
        for (int p = 0; p < size; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * inverseFrequency[i];
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
        table = new RopeTable(allocate(cos.length), allocate(sin.length), size);
        upload(table.cos, cos, 0, cos.length);
        upload(table.sin, sin, 0, sin.length);
        ropeTables.put(key, table);
        return table;
    }

    // ---- attention ----

    private static int headSizeClass(int hs) {
        if (hs <= 32) {
            return 32;
        }
        if (hs <= 64) {
            return 64;
        }
        if (hs <= 128) {
            return 128;
        }
        throw new IllegalArgumentException("CUDA attention supports head sizes up to 128, got " + hs);
    }

    /** The value of {@value #ATTENTION_PROPERTY} (plain, mma or wgmma); anything else is refused in one line. */
    static Attention attention(String value) {
        for (Attention a : Attention.values()) {
            if (a.key().equalsIgnoreCase(value)) {
                return a;
            }
        }
        throw new IllegalArgumentException(ATTENTION_PROPERTY + " must be plain, mma or wgmma, got '" + value + "'");
    }

    /** The value of {@value #MATMUL_TUNING_PROPERTY} (on or off); anything else is refused in one line. */
    static boolean matmulTuning(String value) {
        return switch (value.toLowerCase(java.util.Locale.ROOT)) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new IllegalArgumentException(MATMUL_TUNING_PROPERTY + " must be on or off, got '" + value + "'");
        };
    }

    /** The value of {@value #ACTIVATIONS_PROPERTY} (bf16 or fp32); anything else is refused in one line. */
    static boolean bf16Activations(String value) {
        return switch (value.toLowerCase(java.util.Locale.ROOT)) {
            case "bf16" -> true;
            case "fp32" -> false;
            default -> throw new IllegalArgumentException(ACTIVATIONS_PROPERTY + " must be bf16 or fp32, got '" + value + "'");
        };
    }

    /** Chooses the attention kernels (see {@link Attention}); the default comes from {@value #ATTENTION_PROPERTY}. */
    public void useAttention(Attention kernels) {
        this.attention = kernels;
    }

    public Attention attention() {
        return attention;
    }

    /** The kernels that run this shape: the chosen ones where they apply, else the plain ones (the mma ones for wgmma off Hopper). */
    private Attention attentionFor(CudaTensor qkv, int hs, int tq, int tk) {
        if (attention == Attention.PLAIN || hs != 64 || tq != tk || !qkv.bf16()) {
            return Attention.PLAIN;
        }
        return attention == Attention.WGMMA_SM90 && !hopper ? Attention.MMA_SM80 : attention;
    }

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor qkv, int b, int tq, int tk, int nh, int nkv, int hs) {
        current();
        CudaTensor o = of(out), x = of(qkv);
        sameStorage("attentionForward", o, x);
        long l = ptr32("attentionForward", lse);
        switch (attentionFor(x, hs, tq, tk)) {
            case WGMMA_SM90 -> tensorCoreForward("attention_wgmma_sm90_forward_hs64", TC_TILE, WGMMA_THREADS, WGMMA_FWD_SHARED, o, l, x, b, tq,
                    nh, nkv);
            case MMA_SM80 -> tensorCoreForward("attention_mma_sm80_forward_hs64", TC_TILE, MMA_THREADS, 0, o, l, x, b, tq, nh, nkv);
            case PLAIN -> {
                int hsMax = headSizeClass(hs);
                kernels.launch(kernel("attention_forward_hs" + hsMax, x), (tq + ATTN_ROWS - 1) / ATTN_ROWS, nh, b, ATTN_ROWS, 0,
                        o.address(), l, x.address(), tq, tk, nh, nkv, hs);
            }
        }
    }

    /** A tensor-core forward: a block per (query tile, head), the longest tiles first; {@code shared} dynamic shared bytes. */
    private void tensorCoreForward(String name, int tile, int threads, int shared, CudaTensor o, long lse, CudaTensor x, int b, int t,
                                   int nh, int nkv) {
        kernels.launch(name, (t + tile - 1) / tile, nh, b, threads, shared, o.address(), lse, x.address(), t, nh, nkv);
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int b, int t, int nh, int nkv, int hs) {
        current();
        CudaTensor dx = of(dqkv), dy = of(dout), x = of(qkv), y = of(out);
        sameStorage("attentionBackward", x, dx, dy, y);
        long l = ptr32("attentionBackward", lse);
        headSizeClass(hs); // refuses head sizes no kernel covers, before any launch
        long dotBytes = (long) b * nh * t * Float.BYTES;
        attnDot = grow(attnDot, attnDotBytes, dotBytes, bytes -> attnDotBytes = bytes);
        kernels.launchFlat(kernel("attention_backward_dot", x), (long) b * t * nh, attnDot, dy.address(), y.address(), b, t, nh, hs);
        Attention kind = attentionFor(x, hs, t, t);
        switch (kind) {
            case MMA_SM80 -> tensorCoreBackward("attention_mma_sm80_backward_dq_hs64", "attention_mma_sm80_backward_dkv_hs64", TC_TILE,
                    MMA_THREADS, 0, 0, dx, dy, x, l, b, t, nh, nkv);
            case WGMMA_SM90 -> tensorCoreBackward("attention_wgmma_sm90_backward_dq_hs64", "attention_wgmma_sm90_backward_dkv_hs64",
                    TC_TILE, WGMMA_THREADS, WGMMA_DQ_SHARED, WGMMA_DKV_SHARED, dx, dy, x, l, b, t, nh, nkv);
            case PLAIN -> plainBackward(dx, dy, x, l, b, t, nh, nkv, hs);
        }
    }

    /** A tensor-core backward: the dq kernel over (query tile, head), then the dk/dv kernel over (key tile, kv head). */
    private void tensorCoreBackward(String dq, String dkv, int tile, int threads, int dqShared, int dkvShared, CudaTensor dx,
                                    CudaTensor dy, CudaTensor x, long lse, int b, int t, int nh, int nkv) {
        int tiles = (t + tile - 1) / tile;
        kernels.launch(dq, tiles, nh, b, threads, dqShared, dx.address(), dy.address(), x.address(), lse, attnDot, t, nh, nkv);
        kernels.launch(dkv, tiles, nkv, b, threads, dkvShared, dx.address(), dy.address(), x.address(), lse, attnDot, t, nh, nkv);
    }

    /** attention.cu's backward: dq per query row, dk/dv partials per query head, then their sum per group. */
    private void plainBackward(CudaTensor dx, CudaTensor dy, CudaTensor x, long l, int b, int t, int nh, int nkv, int hs) {
        int hsMax = headSizeClass(hs);
        kernels.launch(kernel("attention_backward_dq_hs" + hsMax, x), (t + ATTN_ROWS - 1) / ATTN_ROWS, nh, b, ATTN_ROWS, 0,
                dx.address(), dy.address(), x.address(), l, attnDot, t, nh, nkv, hs);
        // dk/dv: a partial per query head [b, t, nh, 2, hs], then the sum over each kv head's group
        long partialBytes = (long) b * t * nh * 2 * hs * Float.BYTES;
        attnPartial = grow(attnPartial, attnPartialBytes, partialBytes, bytes -> attnPartialBytes = bytes);
        int kvRows = hsMax <= 64 ? 64 : 32; // AttnTiles::KV_ROWS in attention.cu
        kernels.launch(kernel("attention_backward_dkv_hs" + hsMax, x), (t + kvRows - 1) / kvRows, nh, b, kvRows, 0,
                attnPartial, dy.address(), x.address(), l, attnDot, t, nh, nkv, hs);
        kernels.launchFlat(kernel("attention_backward_dkv_reduce", x), (long) b * t * 2 * nkv * hs, dx.address(), attnPartial,
                b, t, nh, nkv, hs);
    }

    // ---- SwiGLU ----

    @Override
    public void swigluForward(Tensor out, Tensor h, int n, int hidden) {
        current();
        CudaTensor o = of(out), x = of(h);
        sameStorage("swigluForward", o, x);
        swiglu("swiglu_forward", o, hidden, n, o.address(), x.address());
    }

    @Override
    public void swigluBackward(Tensor dh, Tensor dout, Tensor h, int n, int hidden) {
        current();
        CudaTensor dx = of(dh), dy = of(dout), x = of(h);
        sameStorage("swigluBackward", dx, dy, x);
        swiglu("swiglu_backward", dx, hidden, n, dx.address(), dy.address(), x.address());
    }

    /** swiglu.cu's launch: 16 bytes per thread when every row start is 16-byte aligned, else one value. */
    private void swiglu(String name, CudaTensor storage, int hidden, int n, long... pointers) {
        if (n == 0) {
            return;
        }
        int wide = 16 / storage.elementBytes();
        long aligned = 0;
        for (long p : pointers) {
            aligned |= p;
        }
        int vec = hidden % wide == 0 && (aligned & 15) == 0 ? wide : 1;
        int block = 128;
        int columns = (hidden / vec + block - 1) / block;
        Object[] args = new Object[pointers.length + 3];
        for (int i = 0; i < pointers.length; i++) {
            args[i] = pointers[i];
        }
        args[pointers.length] = n;
        args[pointers.length + 1] = hidden;
        args[pointers.length + 2] = vec;
        kernels.launch(kernel(name, storage), columns, Math.min(n, 65535), 1, block, 0, args);
    }

    // ---- embedding ----

    @Override
    public void embeddingForward(Tensor out, Tensor table, int[] tokens, int n, int c) {
        current();
        long rows = of(table).length() / c;
        for (int i = 0; i < n; i++) {
            if (tokens[i] < 0 || tokens[i] >= rows) {
                throw new IllegalArgumentException("token id " + tokens[i] + " at position " + i
                        + " is outside the vocabulary [0, " + rows + ")");
            }
        }
        long ids = uploadInts(tokens, n, false);
        if (n == 0) {
            return;
        }
        long o = ptr32("embeddingForward", out), w = ptr32("embeddingForward", table);
        int vec4 = c % 4 == 0 && ((o | w) & 15) == 0 ? 1 : 0;
        kernels.launch("embedding_forward", Math.min(n, 65535), 1, 1, 256, 0, o, w, ids, n, c, vec4);
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, int[] tokens, int n, int c) {
        current();
        if (n == 0) {
            return;
        }
        long rows = of(dtable).length() / c;
        // The plan of embedding.cu: positions grouped by token (ascending), each token's rows of
        // dout added in position order by the one block that owns its table row.
        long[] keys = new long[n];
        for (int i = 0; i < n; i++) {
            if (tokens[i] < 0 || tokens[i] >= rows) {
                throw new IllegalArgumentException("token id " + tokens[i] + " at position " + i
                        + " is outside the vocabulary [0, " + rows + ")");
            }
            keys[i] = ((long) tokens[i] << 32) | i;
        }
        java.util.Arrays.sort(keys);
        int unique = 0;
        for (int k = 0; k < n; k++) {
            if (k == 0 || (keys[k] >>> 32) != (keys[k - 1] >>> 32)) {
                unique++;
            }
        }
        int[] plan = new int[2 * unique + 1 + n];
        int u = -1;
        for (int k = 0; k < n; k++) {
            int token = (int) (keys[k] >>> 32);
            if (k == 0 || token != (int) (keys[k - 1] >>> 32)) {
                u++;
                plan[u] = token;
                plan[unique + u] = k;
            }
            plan[2 * unique + 1 + k] = (int) keys[k];
        }
        plan[2 * unique] = n;
        long bytes = (long) plan.length * Integer.BYTES;
        embedPlan = grow(embedPlan, embedPlanBytes, bytes, b -> embedPlanBytes = b);
        copyInts(embedPlan, plan, plan.length);
        int block = Math.min(256, (c + 31) / 32 * 32);
        kernels.launch("embedding_backward", unique, (c + block - 1) / block, 1, block, 0, ptr32("embeddingBackward", dtable),
                ptr32("embeddingBackward", dout), embedPlan, unique, c);
    }

    // ---- softmax cross-entropy ----

    @Override
    public void crossEntropyForwardBackward(Tensor logits, Tensor losses, int[] targets, int n, int v, float gradScale) {
        crossEntropy(logits, losses, targets, n, v, gradScale, 1);
    }

    @Override
    public void crossEntropyForward(Tensor losses, Tensor logits, int[] targets, int n, int v) {
        crossEntropy(logits, losses, targets, n, v, 0f, 0);
    }

    private void crossEntropy(Tensor logits, Tensor losses, int[] targets, int n, int v, float scale, int backward) {
        current();
        for (int i = 0; i < n; i++) {
            if (targets[i] >= v) {
                throw new IllegalArgumentException("target id " + targets[i] + " at position " + i
                        + " is outside the vocabulary [0, " + v + ")");
            }
        }
        long ids = uploadInts(targets, n, true);
        CudaTensor z = of(logits); // fp32, or bf16 as a bf16 lm_head writes them
        checkLength(z, (long) n * v);
        int wide = 16 / z.elementBytes();
        int vec = v % wide == 0 && (z.address() & 15) == 0 ? wide : 1; // cross_entropy.cu: 16-byte accesses when every row allows them
        kernels.launch(kernel("cross_entropy", z), n, 1, 1, 512, 0, z.address(), ptr32("crossEntropy", losses), ids, n, v, scale,
                backward, vec);
    }

    // ---- optimizer ----

    @Override
    public double sumOfSquares(Tensor t) {
        current();
        CudaTensor c = fp32("sumOfSquares", t);
        // two passes, no atomics: per-block partials, then one block sums them in order (deterministic)
        int blocks = (int) Math.max(1, Math.min((c.length() + 255) / 256, SUM_BLOCKS));
        kernels.launch("sum_of_squares", blocks, 1, 1, 256, 0, sumPartials, c.address(), c.length());
        kernels.launch("sum_partials", 1, 1, 1, 256, 0, sumSlot, sumPartials, blocks);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(JAVA_DOUBLE);
            driver.memcpyDtoHAsync(host, sumSlot, 8, stream);
            driver.streamSynchronize(stream);
            return host.get(JAVA_DOUBLE, 0);
        }
    }

    /** elementwise.cu's fingerprint of {@code bytes} (even) at {@code address}: CublasLt's tuner compares outputs with it. */
    private long fingerprint(long address, long bytes) {
        driver.memsetD32Async(sumSlot, 0, 2, stream);
        kernels.launchFlat("fingerprint", bytes / 2, sumSlot, address, bytes / 2);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(JAVA_LONG);
            driver.memcpyDtoHAsync(host, sumSlot, 8, stream);
            driver.streamSynchronize(stream);
            return host.get(JAVA_LONG, 0);
        }
    }

    @Override
    public void adamwUpdate(Tensor params, Tensor grads, Tensor m, Tensor v, AdamWStep s) {
        adamw(params, 0, grads, m, v, s);
    }

    @Override
    public void adamwUpdateAndCopy(Tensor params, Tensor operands, Tensor grads, Tensor m, Tensor v, AdamWStep s) {
        CudaTensor copy = of(operands);
        if (!copy.bf16() || copy.length() < params.length()) {
            Backend.super.adamwUpdateAndCopy(params, operands, grads, m, v, s);
            return;
        }
        adamw(params, copy.address(), grads, m, v, s);
    }

    /** adamw.cu's update; copyBf16: where the new values also go, rounded to bf16, or 0. */
    private void adamw(Tensor params, long copyBf16, Tensor grads, Tensor m, Tensor v, AdamWStep s) {
        current();
        String op = "adamwUpdate";
        CudaTensor p = fp32(op, params);
        float correction1 = (float) (1 - Math.pow(s.beta1(), s.step()));
        float correction2 = (float) (1 - Math.pow(s.beta2(), s.step()));
        long g = ptr32(op, grads), mm = ptr32(op, m), vv = ptr32(op, v);
        // slices of a flat buffer may start anywhere
        int vec4 = ((p.address() | g | mm | vv) & 15) == 0 && (copyBf16 & 7) == 0 ? 1 : 0;
        kernels.launchFlat("adamw_update", vec4 == 1 ? (p.length() + 3) / 4 : p.length(), p.address(), copyBf16, g, mm, vv,
                p.length(), s.lr(), s.beta1(), s.beta2(), s.eps(), s.weightDecay(), correction1, correction2, s.gradScale(), vec4);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        current();
        driver.streamSynchronize(stream);
        closed = true;
        for (long address : live) {
            driver.memFree(address);
        }
        live.clear();
        for (long address : new long[] {bf16Scratch[0], bf16Scratch[1], bf16Scratch[2], tokens, targets, attnDot, attnPartial,
                embedPlan, rmsPartial, sumSlot, sumPartials}) {
            if (address != 0) {
                driver.memFree(address);
            }
        }
        blas.close();
        staging.close();
        kernels.close();
        driver.streamDestroy(stream);
        driver.releasePrimaryContext(device);
    }
}
