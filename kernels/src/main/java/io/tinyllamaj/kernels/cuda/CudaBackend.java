package io.tinyllamaj.kernels.cuda;

import io.tinyllamaj.kernels.AdamWStep;
import io.tinyllamaj.kernels.Backend;
import io.tinyllamaj.kernels.Projection;
import io.tinyllamaj.kernels.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

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
 * <p>This class checks tensors (ownership, storage type, length) and hands each op to the class
 * of its kernel family, which owns that family's launch contract. Device memory is one
 * {@link DeviceArena}: every tensor and scratch buffer is a range of it, freed when the backend
 * closes (or a tensor is {@link #release released}), never by the garbage collector.
 *
 * <p>All work goes to one stream, in call order; downloads wait for it. Not thread-safe: one
 * training loop drives one backend, as with the CPU backend.
 */
public final class CudaBackend implements Backend {

    /** System property choosing the attention kernels: {@code auto} (default), {@code cudnn}, {@code wgmma}, {@code mma} or {@code plain}; see {@link Attention}. */
    public static final String ATTENTION_PROPERTY = "tinyllamaj.cuda.attention";
    /** System property choosing the storage of activations: {@code bf16} (default) or {@code fp32}. */
    public static final String ACTIVATIONS_PROPERTY = "tinyllamaj.cuda.activations";
    /**
     * System property: {@code on} (default) lets each matmul shape's first call pick the fastest
     * of cuBLASLt's candidates that give the same bits (see {@link CublasLt}); {@code off} keeps the
     * heuristic's first choice and skips the timing (about a second at start for TinyLlama).
     */
    public static final String MATMUL_TUNING_PROPERTY = "tinyllamaj.cuda.matmulTuning";

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
        WGMMA_SM90("wgmma"),
        /**
         * cuDNN 9's fused flash attention ({@link CudnnAttention}) both ways: head sizes a multiple of
         * 8 up to 128, bf16 storage, training shapes; a deterministic backward. Other shapes run our kernels.
         */
        CUDNN("cudnn"),
        /**
         * The fastest per direction: cuDNN's forward (where libcudnn loads), our tensor-core backward at
         * head size 64 (cuDNN's deterministic one is slower there), cuDNN's backward at the head sizes
         * our tensor-core kernels do not cover; without cuDNN, WGMMA_SM90's choices.
         */
        AUTO("auto");

        private final String key;

        Attention(String key) {
            this.key = key;
        }

        /** The value of {@value #ATTENTION_PROPERTY} that chooses it. */
        public String key() {
            return key;
        }
    }

    /**
     * The backend's settings; {@link #fromSystemProperties} reads them from the system properties
     * above. fp8: the recipe by which some of the transformer blocks' projections
     * ({@link #blockMatmulForward}) run in FP8 with per-tensor current scaling (train.precision
     * fp8-mixed), null for none; the rest as in bf16-mixed.
     */
    public record Options(Attention attention, boolean bf16Activations, boolean matmulTuning, Fp8Recipe fp8) {

        /** The defaults (auto, bf16, on, bf16 matmuls) unless the system properties say otherwise; a value out of place is refused in one line. */
        public static Options fromSystemProperties() {
            return new Options(CudaBackend.attention(System.getProperty(ATTENTION_PROPERTY, "auto")),
                    CudaBackend.bf16Activations(System.getProperty(ACTIVATIONS_PROPERTY, "bf16")),
                    CudaBackend.matmulTuning(System.getProperty(MATMUL_TUNING_PROPERTY, "on")), null);
        }
    }

    /**
     * Which projections fp8-mixed runs in FP8, and the format of their output gradients: e5m2
     * (the hybrid recipe: 2 mantissa bits, range to 57344) or e4m3 (one mantissa bit more, range
     * to 448 under the same per-tensor scale). Weights and inputs are e4m3 either way.
     */
    public record Fp8Recipe(Set<Projection> projections, boolean e4m3Gradients) {
        /**
         * q/k/v, gate/up and down; the attention output projection (dim x dim, 2048 x 2048 in
         * TinyLlama) stays in bf16: on an H100 its FP8 matmuls with their casts took as long as the
         * bf16 ones (12.4 against 12.3 ms a step), so FP8 would add rounding for nothing.
         */
        public static final Fp8Recipe DEFAULT = new Fp8Recipe(EnumSet.of(Projection.QKV, Projection.GATE_UP, Projection.DOWN), false);

        public Fp8Recipe {
            if (projections.isEmpty()) {
                throw new IllegalArgumentException("an FP8 recipe needs at least one projection (with none, use bf16-mixed)");
            }
            projections = Set.copyOf(projections);
        }
    }

    private final CudaDriver driver;
    private final int device;
    private final String deviceName;
    private final MemorySegment context;
    private final MemorySegment stream;
    private final KernelModule kernels;
    private final HostStaging staging;
    private final DeviceArena arena;
    private final CudaMemory memory;
    private final ElementwiseKernels elementwise;
    private final Matmul matmul;
    private final RmsNormKernels rmsnorm;
    private final RopeKernels rope;
    private final AttentionKernels attention;
    private final SwiGluKernels swiglu;
    private final EmbeddingKernels embedding;
    private final CrossEntropyKernels crossEntropy;
    private final GlobalNormKernels globalNorm;
    private final AdamWKernels adamw;
    private final boolean bf16Activations;
    private final Fp8Recipe fp8;
    private Thread lastThread;
    private boolean closed;

    /** The first GPU; a {@link CudaUnavailableException} says in one line why it cannot run here. */
    public static CudaBackend create() {
        return new CudaBackend(0);
    }

    /** GPU {@code ordinal} of those visible, with the settings of the system properties; a {@link CudaUnavailableException} says why it cannot run here. */
    public CudaBackend(int ordinal) {
        this(ordinal, Options.fromSystemProperties());
    }

    public CudaBackend(int ordinal, Options options) {
        this.bf16Activations = options.bf16Activations();
        this.fp8 = options.fp8();
        this.driver = CudaDriver.load();
        int count = driver.deviceCount();
        if (count <= ordinal) {
            throw new CudaUnavailableException("CUDA backend unavailable: " + (count == 0 ? "no CUDA GPU is visible"
                    : "GPU " + ordinal + " asked for, " + count + " visible"));
        }
        byte[] fatbin = KernelModule.readFatbin(); // the one-line reason before touching the GPU
        this.device = driver.device(ordinal);
        this.deviceName = driver.deviceName(device);
        int major = driver.deviceAttribute(CudaDriver.COMPUTE_CAPABILITY_MAJOR, device);
        int minor = driver.deviceAttribute(CudaDriver.COMPUTE_CAPABILITY_MINOR, device);
        boolean hopper = major == 9 && minor == 0;
        if (fp8 != null && !fp8TensorCores(major, minor)) {
            throw new CudaUnavailableException("train.precision fp8-mixed needs FP8 tensor cores (compute capability 8.9 or newer: "
                    + "Ada, Hopper and later); " + deviceName + " is sm_" + major + minor + ": use bf16-mixed");
        }
        this.context = driver.retainPrimaryContext(device);
        this.lastThread = Thread.currentThread();
        this.stream = driver.streamCreate();
        this.kernels = new KernelModule(driver, stream, fatbin);
        this.staging = new HostStaging(driver);
        this.arena = new DeviceArena(driver, device);
        this.memory = new CudaMemory(driver, stream, arena);
        Gpu gpu = new Gpu(driver, stream, kernels, arena, memory, staging);
        this.elementwise = new ElementwiseKernels(gpu);
        this.rmsnorm = new RmsNormKernels(gpu);
        this.rope = new RopeKernels(gpu);
        this.attention = new AttentionKernels(gpu, hopper, options.attention());
        this.swiglu = new SwiGluKernels(gpu);
        this.embedding = new EmbeddingKernels(gpu);
        this.crossEntropy = new CrossEntropyKernels(gpu);
        this.globalNorm = new GlobalNormKernels(gpu);
        this.adamw = new AdamWKernels(gpu);
        this.matmul = new Matmul(gpu, elementwise, options.matmulTuning());
    }

    /** Every kernel's signature, family by family: the launch contract KernelSignaturesTest checks against the sources. */
    static List<KernelSignature> signatures() {
        List<KernelSignature> all = new ArrayList<>();
        for (List<KernelSignature> family : List.of(ElementwiseKernels.SIGNATURES, EmbeddingKernels.SIGNATURES, RmsNormKernels.SIGNATURES,
                RopeKernels.SIGNATURES, SwiGluKernels.SIGNATURES, AttentionKernels.SIGNATURES, CrossEntropyKernels.SIGNATURES,
                AdamWKernels.SIGNATURES, GlobalNormKernels.SIGNATURES, Fp8Kernels.SIGNATURES)) {
            all.addAll(family);
        }
        return all;
    }

    /** Every module constant the families read: their launch geometry, defined in the .cu files. */
    static List<String> constants() {
        List<String> all = new ArrayList<>(RmsNormKernels.CONSTANTS);
        all.addAll(AttentionKernels.CONSTANTS);
        return all;
    }

    @Override
    public String name() {
        return "cuda";
    }

    /** Whether a GPU of this compute capability has FP8 tensor cores that cuBLASLt's FP8 matmuls run on (sm_89 and newer). */
    static boolean fp8TensorCores(int major, int minor) {
        return major > 8 || (major == 8 && minor >= 9);
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

    /** The device's total memory: what other processes hold now may be freed by the time it is needed. */
    @Override
    public long memoryCapacity() {
        current();
        return driver.memInfo()[1];
    }

    /** Bytes of device memory the backend's tensors and scratch buffers hold (allocated and not released). */
    public long memoryInUse() {
        return arena.inUse();
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
        return memory.of(t);
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

    static void checkLength(CudaTensor t, long length) {
        if (length > t.length()) {
            throw new IllegalArgumentException(length + " values do not fit " + t);
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

    // ---- memory ----

    @Override
    public CudaTensor allocate(long length) {
        current();
        return memory.allocate(length, false);
    }

    /** bf16 storage unless {@value #ACTIVATIONS_PROPERTY}=fp32; see the class comment. */
    @Override
    public CudaTensor allocateActivation(long length) {
        current();
        return memory.allocate(length, bf16Activations);
    }

    /** 2 bytes a value for a bf16 activation, 4 for fp32. */
    @Override
    public long bytes(Tensor t) {
        return of(t).bytes();
    }

    /** Device memory in use minus the caller's tensors: scratch, staging and the arena's alignment padding. */
    @Override
    public long workspaceBytes(long tensorBytes) {
        return Math.max(0, memoryInUse() - tensorBytes);
    }

    /** Whether {@link #allocateActivation} stores bf16. */
    public boolean bf16Activations() {
        return bf16Activations;
    }

    /** The tensor's memory goes back to the backend for reuse: a whole tensor (not a slice), never used again. */
    @Override
    public void release(Tensor t) {
        current();
        CudaTensor released = of(t);
        matmul.weightsWritten(released);
        memory.release(released);
    }

    @Override
    public void upload(Tensor dst, float[] src, int srcOffset, int length) {
        current();
        CudaTensor d = of(dst);
        checkLength(d, length);
        matmul.allWeightsWritten(); // a checkpoint's parameters: copies gathered from them may lie elsewhere
        if (length > 0) {
            memory.upload(d, src, srcOffset, length);
        }
    }

    @Override
    public void download(Tensor src, float[] dst, int dstOffset, int length) {
        current();
        CudaTensor s = of(src);
        checkLength(s, length);
        if (length > 0) {
            memory.download(s, dst, dstOffset, length);
        }
    }

    @Override
    public void fill(Tensor t, float value) {
        current();
        matmul.weightsWritten(of(t));
        memory.fill(of(t), value);
    }

    @Override
    public void copy(Tensor dst, Tensor src) {
        current();
        CudaTensor s = of(src), d = of(dst);
        checkLength(d, s.length());
        matmul.weightsWritten(d);
        if (d.bf16() == s.bf16()) {
            memory.copy(d, s);
        } else if (d.bf16()) {
            elementwise.castBf16(d.address(), s.address(), s.length());
        } else { // widening is exact: zero, then add
            memory.fill(d, 0f);
            elementwise.accumulate(d.address(), s.address(), s.length(), true);
        }
    }

    @Override
    public void accumulate(Tensor dst, Tensor src) {
        current();
        CudaTensor s = of(src), d = fp32("accumulate", dst);
        checkLength(d, s.length());
        matmul.weightsWritten(d);
        elementwise.accumulate(d.address(), s.address(), s.length(), s.bf16());
    }

    @Override
    public void scale(Tensor t, float factor) {
        current();
        CudaTensor c = fp32("scale", t);
        matmul.weightsWritten(c);
        elementwise.scale(c.address(), factor, c.length());
    }

    // ---- matmul ----

    @Override
    public Tensor matmulOperand(Tensor weight, Tensor into) {
        current();
        CudaTensor w = of(weight);
        if (w.bf16()) {
            return w;
        }
        matmul.allWeightsWritten(); // the parameters were written: copies gathered from them may lie elsewhere
        return matmul.operand(w, into == null ? null : of(into));
    }

    @Override
    public boolean matmulOperandsAreCopies() {
        return true;
    }

    @Override
    public void matmulForward(Tensor out, Tensor inp, Tensor weight, int n, int c, int oc) {
        current();
        matmul.forward(of(out), of(inp), of(weight), n, c, oc);
    }

    @Override
    public void matmulBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, int n, int c, int oc,
                               boolean accumulate) {
        current();
        matmul.backward(dinp == null ? null : of(dinp), dweight == null ? null : fp32("matmulBackward (dweight)", dweight), of(dout),
                inp == null ? null : of(inp), of(weight), n, c, oc, accumulate);
    }

    /** Whether fp8-mixed runs {@code projection} in FP8. */
    private boolean inFp8(Projection projection) {
        return fp8 != null && fp8.projections().contains(projection);
    }

    private static int site(Projection projection, int layer) {
        return layer * Projection.values().length + projection.ordinal();
    }

    @Override
    public void blockMatmulForward(Projection projection, int layer, Tensor out, Tensor inp, Tensor weight, int n, int c, int oc) {
        if (!inFp8(projection)) {
            matmulForward(out, inp, weight, n, c, oc);
            return;
        }
        current();
        matmul.forwardFp8(site(projection, layer), of(out), of(inp), of(weight), n, c, oc);
    }

    /** fp8-mixed's FP8 projections keep their input's FP8 transposed copy from the forward for the backward. */
    @Override
    public boolean blockMatmulKeepsInput(Projection projection, int n, int c, int oc) {
        return inFp8(projection) && Matmul.fp8Fits(n, c, oc);
    }

    @Override
    public void blockMatmulBackward(Projection projection, int layer, Tensor dinp, Tensor dweight, Tensor dout, Tensor inp,
                                    Tensor weight, int n, int c, int oc, boolean accumulate) {
        if (!inFp8(projection)) {
            matmulBackward(dinp, dweight, dout, inp, weight, n, c, oc, accumulate);
            return;
        }
        if (dweight == null) {
            throw new IllegalArgumentException("blockMatmulBackward: " + projection + " runs in FP8, so its input and weight gradients "
                    + "come from one call (dweight must not be null)");
        }
        current();
        matmul.backwardFp8(site(projection, layer), fp8.e4m3Gradients(), dinp == null ? null : of(dinp),
                fp32("blockMatmulBackward (dweight)", dweight), of(dout), of(inp), of(weight), n, c, oc, accumulate);
    }

    // ---- RMSNorm ----

    @Override
    public void rmsnormForward(Tensor out, Tensor rstd, Tensor inp, Tensor weight, int n, int c, float eps) {
        rmsnormForward(out, rstd, inp, weight, n, c, eps, 0);
    }

    @Override
    public void rmsnormForward(Tensor out, Tensor rstd, Tensor inp, Tensor weight, int n, int c, float eps, Projection feeds, int layer) {
        current();
        CudaTensor o = of(out);
        rmsnormForward(out, rstd, inp, weight, n, c, eps, producerAmax(feeds, layer, o, false));
    }

    private void rmsnormForward(Tensor out, Tensor rstd, Tensor inp, Tensor weight, int n, int c, float eps, long amax) {
        current();
        String op = "rmsnormForward";
        rmsnorm.forward(of(out), ptr32(op, rstd), ptr32(op, inp), ptr32(op, weight), n, c, eps, amax);
    }

    /** One kernel: residual = x + delta written once, then the norm of it (see rmsnorm.cu). */
    @Override
    public void residualRmsnormForward(Tensor residual, Tensor out, Tensor rstd, Tensor x, Tensor delta, Tensor weight,
                                       int n, int c, float eps) {
        residualRmsnormForward(residual, out, rstd, x, delta, weight, n, c, eps, 0);
    }

    @Override
    public void residualRmsnormForward(Tensor residual, Tensor out, Tensor rstd, Tensor x, Tensor delta, Tensor weight, int n, int c,
                                       float eps, Projection feeds, int layer) {
        current();
        CudaTensor o = of(out);
        residualRmsnormForward(residual, out, rstd, x, delta, weight, n, c, eps,
                producerAmax(feeds, layer, o, false));
    }

    private void residualRmsnormForward(Tensor residual, Tensor out, Tensor rstd, Tensor x, Tensor delta, Tensor weight, int n, int c,
                                        float eps, long amax) {
        current();
        CudaTensor o = of(out), d = of(delta);
        String op = "residualRmsnormForward";
        sameStorage(op, o, d); // delta is a matmul output, an activation like out
        rmsnorm.residualForward(ptr32(op, residual), o, ptr32(op, rstd), ptr32(op, x), d.address(), ptr32(op, weight), n, c, eps, amax);
    }

    @Override
    public void rmsnormBackward(Tensor dinp, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, Tensor rstd, int n, int c,
                                boolean accumulateWeight) {
        rmsnormBackward(dinp, 0, dweight, dout, inp, weight, rstd, n, c, accumulateWeight, 0);
    }

    @Override
    public void rmsnormBackwardAndCopy(Tensor dinp, Tensor dinpCopy, Tensor dweight, Tensor dout, Tensor inp, Tensor weight,
                                       Tensor rstd, int n, int c, boolean accumulateWeight) {
        rmsnormBackwardAndCopy(dinp, dinpCopy, dweight, dout, inp, weight, rstd, n, c, accumulateWeight, null, 0);
    }

    @Override
    public void rmsnormBackwardAndCopy(Tensor dinp, Tensor dinpCopy, Tensor dweight, Tensor dout, Tensor inp, Tensor weight,
                                       Tensor rstd, int n, int c, boolean accumulateWeight, Projection feeds, int layer) {
        CudaTensor copy = of(dinpCopy);
        checkLength(copy, (long) n * c);
        if (!copy.bf16()) { // fp32 activations: the copy is a plain one
            Backend.super.rmsnormBackwardAndCopy(dinp, dinpCopy, dweight, dout, inp, weight, rstd, n, c, accumulateWeight);
            return;
        }
        current();
        rmsnormBackward(dinp, copy.address(), dweight, dout, inp, weight, rstd, n, c, accumulateWeight,
                feeds == null ? 0 : producerAmax(feeds, layer, copy, true));
    }

    /** copyBf16: where the kernel also writes the new dinp in bf16, or 0; amax: where it measures the copy's, or 0. */
    private void rmsnormBackward(Tensor dinp, long copyBf16, Tensor dweight, Tensor dout, Tensor inp, Tensor weight, Tensor rstd,
                                 int n, int c, boolean accumulateWeight, long amax) {
        current();
        String op = "rmsnormBackward";
        // dout, the gradient of a matmul input: fp32 or bf16 storage
        rmsnorm.backward(ptr32(op, dinp), copyBf16, ptr32(op, dweight), of(dout), ptr32(op, inp), ptr32(op, weight), ptr32(op, rstd),
                n, c, accumulateWeight, amax);
    }

    // ---- RoPE ----

    @Override
    public void ropeForward(Tensor qkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta) {
        current();
        rope.rotate(of(qkv), b, t, nHeads, nKvHeads, headSize, startPos, theta, 1f, 0);
    }

    @Override
    public void ropeBackward(Tensor dqkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta) {
        current();
        rope.rotate(of(dqkv), b, t, nHeads, nKvHeads, headSize, startPos, theta, -1f, 0);
    }

    @Override
    public void ropeBackward(Tensor dqkv, int b, int t, int nHeads, int nKvHeads, int headSize, int startPos, float theta,
                             Projection feeds, int layer) {
        current();
        CudaTensor d = of(dqkv);
        rope.rotate(d, b, t, nHeads, nKvHeads, headSize, startPos, theta, -1f,
                producerAmax(feeds, layer, d, true));
    }

    // ---- attention ----

    /** The value of {@value #ATTENTION_PROPERTY} (plain, mma, wgmma, cudnn or auto); anything else is refused in one line. */
    static Attention attention(String value) {
        for (Attention a : Attention.values()) {
            if (a.key().equalsIgnoreCase(value)) {
                return a;
            }
        }
        throw new IllegalArgumentException(ATTENTION_PROPERTY + " must be plain, mma, wgmma, cudnn or auto, got '" + value + "'");
    }

    /** The value of {@value #MATMUL_TUNING_PROPERTY} (on or off); anything else is refused in one line. */
    static boolean matmulTuning(String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new IllegalArgumentException(MATMUL_TUNING_PROPERTY + " must be on or off, got '" + value + "'");
        };
    }

    /** The value of {@value #ACTIVATIONS_PROPERTY} (bf16 or fp32); anything else is refused in one line. */
    static boolean bf16Activations(String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "bf16" -> true;
            case "fp32" -> false;
            default -> throw new IllegalArgumentException(ACTIVATIONS_PROPERTY + " must be bf16 or fp32, got '" + value + "'");
        };
    }

    /** Chooses the attention kernels (see {@link Attention}); the default comes from {@value #ATTENTION_PROPERTY}. */
    public void useAttention(Attention kernels) {
        attention.use(kernels);
    }

    public Attention attention() {
        return attention.choice();
    }

    @Override
    public boolean matmulTuning(boolean on) {
        current();
        return matmul.tuning(on);
    }

    /** The attention choice and, once loaded, cuDNN's version (for benchmark records). */
    public String attentionDescription() {
        return attention.description();
    }

    @Override
    public void attentionForward(Tensor out, Tensor lse, Tensor qkv, int b, int tq, int tk, int nh, int nkv, int hs) {
        current();
        CudaTensor o = of(out), x = of(qkv);
        sameStorage("attentionForward", o, x);
        attention.forward(o, ptr32("attentionForward", lse), x, b, tq, tk, nh, nkv, hs);
    }

    @Override
    public void attentionBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int b, int t, int nh, int nkv, int hs) {
        current();
        CudaTensor dx = of(dqkv), dy = of(dout), x = of(qkv), y = of(out);
        sameStorage("attentionBackward", x, dx, dy, y);
        attention.backward(dx, dy, x, y, ptr32("attentionBackward", lse), b, t, nh, nkv, hs, null, 0);
    }

    /**
     * The tensor-core kernels turn dq and dk back as they store them and, where an FP8 matmul reads
     * dqkv next, measure its amax in the same stores (over the v heads too); the other kernels
     * leave both to RoPE's pass.
     */
    @Override
    public void attentionRopeBackward(Tensor dqkv, Tensor dout, Tensor qkv, Tensor out, Tensor lse, int b, int t, int nh, int nkv,
                                      int hs, float theta, Projection feeds, int layer) {
        current();
        CudaTensor dx = of(dqkv), dy = of(dout), x = of(qkv), y = of(out);
        sameStorage("attentionRopeBackward", x, dx, dy, y);
        RopeKernels.Table table = hs != 64 ? null : rope.table(hs, theta, t);
        long amax = table == null ? 0 : producerAmax(feeds, layer, dx, true);
        if (!attention.backward(dx, dy, x, y, ptr32("attentionRopeBackward", lse), b, t, nh, nkv, hs, table, amax)) {
            ropeBackward(dqkv, b, t, nh, nkv, hs, 0, theta, feeds, layer);
        }
    }

    // ---- SwiGLU ----

    @Override
    public void swigluForward(Tensor out, Tensor h, int n, int hidden) {
        current();
        CudaTensor o = of(out), x = of(h);
        sameStorage("swigluForward", o, x);
        swiglu.forward(o, x, n, hidden, 0);
    }

    @Override
    public void swigluForward(Tensor out, Tensor h, int n, int hidden, Projection feeds, int layer) {
        current();
        CudaTensor o = of(out), x = of(h);
        sameStorage("swigluForward", o, x);
        swiglu.forward(o, x, n, hidden, producerAmax(feeds, layer, o, false));
    }

    /** Whether {@code t}, written next, is what an FP8 matmul of {@code projection} reads (so its producer measures the amax). */
    private boolean fp8Feeds(Projection projection, CudaTensor t) {
        return inFp8(projection) && t.bf16();
    }

    /**
     * The slot in which the kernel about to write {@code t} measures its amax for the FP8 matmul
     * of {@code feeds} in {@code layer} (its input, or with {@code gradient} its output gradient);
     * 0 where that matmul is not FP8.
     */
    private long producerAmax(Projection feeds, int layer, CudaTensor t, boolean gradient) {
        return fp8Feeds(feeds, t) ? matmul.amaxFromProducer(site(feeds, layer), t, gradient) : 0;
    }

    @Override
    public void swigluBackward(Tensor dh, Tensor dout, Tensor h, int n, int hidden) {
        current();
        CudaTensor dx = of(dh), dy = of(dout), x = of(h);
        sameStorage("swigluBackward", dx, dy, x);
        swiglu.backward(dx, null, dy, x, n, hidden, 0);
    }

    @Override
    public void swigluBackward(Tensor dh, Tensor dout, Tensor h, int n, int hidden, Projection feeds, int layer) {
        current();
        CudaTensor dx = of(dh), dy = of(dout), x = of(h);
        sameStorage("swigluBackward", dx, dy, x);
        swiglu.backward(dx, null, dy, x, n, hidden, producerAmax(feeds, layer, dx, true));
    }

    /** One kernel: the backward's pass over h also writes the forward's output (see swiglu.cu). */
    @Override
    public void swigluBackwardRecomputing(Tensor dh, Tensor out, Tensor dout, Tensor h, int n, int hidden, Projection feeds, int layer) {
        current();
        CudaTensor dx = of(dh), o = of(out), dy = of(dout), x = of(h);
        sameStorage("swigluBackwardRecomputing", dx, o, dy, x);
        checkLength(o, (long) n * hidden);
        swiglu.backward(dx, o, dy, x, n, hidden, producerAmax(feeds, layer, dx, true));
    }

    // ---- embedding ----

    @Override
    public void embeddingForward(Tensor out, Tensor table, int[] tokens, int n, int c) {
        current();
        CudaTensor w = of(table);
        embedding.forward(ptr32("embeddingForward", out), ptr32("embeddingForward", table), w.length() / c, tokens, n, c);
    }

    @Override
    public void embeddingBackward(Tensor dtable, Tensor dout, int[] tokens, int n, int c) {
        current();
        CudaTensor w = of(dtable);
        embedding.backward(ptr32("embeddingBackward", dtable), ptr32("embeddingBackward", dout), w.length() / c, tokens, n, c);
    }

    // ---- softmax cross-entropy ----

    @Override
    public void crossEntropyForwardBackward(Tensor logits, Tensor losses, int[] targets, int n, int v, float gradScale) {
        current();
        crossEntropy.run(of(logits), ptr32("crossEntropy", losses), 0, targets, n, v, gradScale, true); // logits fp32 or bf16
    }

    @Override
    public void crossEntropyForward(Tensor losses, Tensor margins, Tensor logits, int[] targets, int n, int v) {
        current();
        crossEntropy.run(of(logits), ptr32("crossEntropy", losses), margins == null ? 0 : ptr32("crossEntropy", margins), targets, n, v,
                0f, false);
    }

    // ---- optimizer ----

    @Override
    public double sumOfSquares(Tensor t) {
        current();
        CudaTensor c = fp32("sumOfSquares", t);
        return globalNorm.sumOfSquares(c.address(), c.length());
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

    /** copyBf16: where the new values also go, rounded to bf16, or 0. */
    private void adamw(Tensor params, long copyBf16, Tensor grads, Tensor m, Tensor v, AdamWStep s) {
        current();
        matmul.allWeightsWritten(); // an optimizer step: the FP8 weight copies are cast again
        String op = "adamwUpdate";
        CudaTensor p = fp32(op, params);
        adamw.update(p.address(), copyBf16, ptr32(op, grads), ptr32(op, m), ptr32(op, v), p.length(), s);
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        current();
        driver.streamSynchronize(stream);
        closed = true;
        matmul.close();
        attention.close();
        arena.close();
        staging.close();
        kernels.close();
        driver.streamDestroy(stream);
        driver.releasePrimaryContext(device);
    }
}
