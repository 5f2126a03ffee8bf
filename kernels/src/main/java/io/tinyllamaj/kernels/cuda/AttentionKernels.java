package io.tinyllamaj.kernels.cuda;

import java.util.ArrayList;
import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;

/**
 * Causal grouped-query attention: the plain kernels (attention.cu: a thread per row, fp32 FMA, any
 * head size up to 128, the KV cache's tq < tk) and one tensor-core family per architecture
 * (attention_mma_sm80.cu, attention_wgmma_sm90.cu: head size 64, bf16 storage, training shapes),
 * the chosen one where it covers the shape and the plain kernels elsewhere; or cuDNN's fused
 * attention ({@link CudnnAttention}), loaded when first chosen. The backward's
 * D = rowsum(dout * out) comes from attention.cu for every choice but cuDNN, whose graph computes it.
 */
final class AttentionKernels implements AutoCloseable {

    /** The instantiations of attention.cu: HS_MAX of each build, which serves any even head size up to it. */
    static final int[] HEAD_SIZES = {32, 64, 128};
    static final String MMA_SM80 = "attention_mma_sm80", WGMMA_SM90 = "attention_wgmma_sm90";

    static final KernelSignature FORWARD = KernelSignature.of(names("attention_forward_hs"), PTR, PTR, PTR, I32, I32, I32, I32, I32)
            .withBf16();
    static final KernelSignature BACKWARD_DQ = KernelSignature.of(names("attention_backward_dq_hs"), PTR, PTR, PTR, PTR, PTR,
            I32, I32, I32, I32).withBf16();
    static final KernelSignature BACKWARD_DKV = KernelSignature.of(names("attention_backward_dkv_hs"), PTR, PTR, PTR, PTR, PTR,
            I32, I32, I32, I32).withBf16();
    static final KernelSignature BACKWARD_DOT = KernelSignature.of("attention_backward_dot", PTR, PTR, PTR, I32, I32, I32, I32)
            .withBf16();
    static final KernelSignature BACKWARD_DKV_REDUCE = KernelSignature.of("attention_backward_dkv_reduce", PTR, PTR,
            I32, I32, I32, I32, I32).withBf16();
    static final List<KernelSignature> SIGNATURES = List.of(FORWARD, BACKWARD_DQ, BACKWARD_DKV, BACKWARD_DOT, BACKWARD_DKV_REDUCE,
            TensorCoreAttention.forwardSignature(MMA_SM80), TensorCoreAttention.backwardSignature(MMA_SM80),
            TensorCoreAttention.forwardSignature(WGMMA_SM90), TensorCoreAttention.backwardSignature(WGMMA_SM90));

    static final String ROWS = "attention_rows", DKV_ROWS = "attention_dkv_rows_hs";
    static final List<String> CONSTANTS = constants();

    private static List<String> constants() {
        List<String> all = new ArrayList<>(List.of(ROWS));
        all.addAll(names(DKV_ROWS));
        all.addAll(TensorCoreAttention.constants(MMA_SM80));
        all.addAll(TensorCoreAttention.constants(WGMMA_SM90));
        return List.copyOf(all);
    }

    private static List<String> names(String prefix) {
        List<String> names = new ArrayList<>();
        for (int hs : HEAD_SIZES) {
            names.add(prefix + hs);
        }
        return names;
    }

    private final Twin[] forward = new Twin[HEAD_SIZES.length], dq = new Twin[HEAD_SIZES.length], dkv = new Twin[HEAD_SIZES.length];
    private final int[] dkvRows = new int[HEAD_SIZES.length];
    private final Twin dot, dkvReduce;
    private final int rows;
    private final TensorCoreAttention mma, wgmma;
    private final boolean hopper;
    private final Scratch dots, partials;
    private final Gpu gpu;
    private CudnnAttention cudnn;
    private boolean cudnnRefused; // AUTO tried to load cuDNN and could not: it runs without
    private CudaBackend.Attention choice;

    /** hopper: compute capability 9.0, where the sm_90a (wgmma) kernels run. */
    AttentionKernels(Gpu gpu, boolean hopper, CudaBackend.Attention choice) {
        KernelModule k = gpu.kernels();
        for (int i = 0; i < HEAD_SIZES.length; i++) {
            forward[i] = Twin.load(k, FORWARD, "attention_forward_hs" + HEAD_SIZES[i]);
            dq[i] = Twin.load(k, BACKWARD_DQ, "attention_backward_dq_hs" + HEAD_SIZES[i]);
            dkv[i] = Twin.load(k, BACKWARD_DKV, "attention_backward_dkv_hs" + HEAD_SIZES[i]);
            dkvRows[i] = k.constant(DKV_ROWS + HEAD_SIZES[i]);
        }
        dot = Twin.load(k, BACKWARD_DOT, "attention_backward_dot");
        dkvReduce = Twin.load(k, BACKWARD_DKV_REDUCE, "attention_backward_dkv_reduce");
        rows = k.constant(ROWS);
        mma = new TensorCoreAttention(k, MMA_SM80, true);
        wgmma = new TensorCoreAttention(k, WGMMA_SM90, hopper);
        this.hopper = hopper;
        dots = new Scratch(gpu.arena());
        partials = new Scratch(gpu.arena());
        this.gpu = gpu;
        use(choice);
    }

    /** Chooses the kernels; choosing cuDNN loads it (a {@link CudaUnavailableException} says in one line why it cannot). */
    void use(CudaBackend.Attention kernels) {
        if (kernels == CudaBackend.Attention.CUDNN && cudnn == null) {
            cudnn = new CudnnAttention(new Cudnn(gpu.stream()), gpu.arena());
        }
        choice = kernels;
    }

    /** Whether cuDNN runs here, loading it on first ask (AUTO's choice: without it, AUTO uses our kernels). */
    private boolean cudnnLoads() {
        if (cudnn == null && !cudnnRefused) {
            try {
                cudnn = new CudnnAttention(new Cudnn(gpu.stream()), gpu.arena());
            } catch (CudaUnavailableException | CudaException e) { // not installed, or a build that cannot start here
                cudnnRefused = true;
            }
        }
        return cudnn != null;
    }

    CudaBackend.Attention choice() {
        return choice;
    }

    /** The choice, and cuDNN's version once it is loaded: "auto (cuDNN 9.14.0)". */
    String description() {
        return choice.key() + (cudnn == null ? "" : " (cuDNN " + cudnn.version() + ")");
    }

    /**
     * The kernels that run this shape in this direction: the chosen ones where they apply (the mma
     * ones for wgmma off Hopper), our tensor-core kernels at head size 64 where cuDNN does not
     * cover a shape, else the plain ones. AUTO takes cuDNN's forward and our backward at head size
     * 64 (the faster of each on an H100) and cuDNN both ways at other head sizes.
     */
    private CudaBackend.Attention kernelsFor(boolean forward, CudaTensor qkv, int hs, int tq, int tk, int nh, int nkv) {
        if (choice == CudaBackend.Attention.PLAIN || tq != tk || !qkv.bf16()) {
            return CudaBackend.Attention.PLAIN;
        }
        CudaBackend.Attention ours = ours(hs);
        boolean cudnnCovers = CudnnAttention.covers(hs, nh, nkv);
        return switch (choice) {
            case PLAIN, MMA_SM80, WGMMA_SM90 -> ours;
            case CUDNN -> cudnnCovers ? CudaBackend.Attention.CUDNN : ours;
            case AUTO -> (forward || hs != 64) && cudnnCovers && cudnnLoads() ? CudaBackend.Attention.CUDNN : ours;
        };
    }

    /** Our kernels for head size hs: the tensor-core ones at 64 (wgmma on Hopper unless mma is chosen), else the plain ones. */
    private CudaBackend.Attention ours(int hs) {
        return hs != 64 ? CudaBackend.Attention.PLAIN
                : hopper && choice != CudaBackend.Attention.MMA_SM80 ? CudaBackend.Attention.WGMMA_SM90 : CudaBackend.Attention.MMA_SM80;
    }

    /**
     * cuDNN did not run this call (no engine for the shape, or tensors off 16-byte boundaries):
     * chosen explicitly, that is refused in one line; under AUTO our kernels take it.
     */
    private CudaBackend.Attention withoutCudnn(String direction, int b, int t, int nh, int nkv, int hs) {
        if (choice == CudaBackend.Attention.CUDNN) {
            throw new CudaException("train.attention cudnn: cuDNN " + cudnn.version() + " cannot run the attention " + direction
                    + " at b=" + b + " t=" + t + " nh=" + nh + " nkv=" + nkv + " hs=" + hs
                    + " (no engine for the shape, or tensors off 16-byte boundaries); auto runs our kernels there");
        }
        return ours(hs);
    }

    /** The build of attention.cu for head size hs; head sizes no build covers are refused. */
    private static int headSizeClass(int hs) {
        for (int i = 0; i < HEAD_SIZES.length; i++) {
            if (hs <= HEAD_SIZES[i]) {
                return i;
            }
        }
        throw new IllegalArgumentException("CUDA attention supports head sizes up to " + HEAD_SIZES[HEAD_SIZES.length - 1] + ", got " + hs);
    }

    /** out, qkv: one storage type; lse fp32. See {@link io.tinyllamaj.kernels.Backend#attentionForward}. */
    void forward(CudaTensor out, long lse, CudaTensor qkv, int b, int tq, int tk, int nh, int nkv, int hs) {
        CudaBackend.Attention kernels = kernelsFor(true, qkv, hs, tq, tk, nh, nkv);
        if (kernels == CudaBackend.Attention.CUDNN) {
            if (cudnn.forward(out.address(), lse, qkv.address(), b, tq, nh, nkv, hs)) {
                return;
            }
            kernels = withoutCudnn("forward", b, tq, nh, nkv, hs);
        }
        switch (kernels) {
            case CUDNN, AUTO -> throw new IllegalStateException("unreachable");
            case WGMMA_SM90 -> wgmma.forward(out.address(), lse, qkv.address(), b, tq, nh, nkv);
            case MMA_SM80 -> mma.forward(out.address(), lse, qkv.address(), b, tq, nh, nkv);
            case PLAIN -> forward[headSizeClass(hs)].of(qkv).args().ptr(out.address()).ptr(lse).ptr(qkv.address())
                    .i32(tq).i32(tk).i32(nh).i32(nkv).i32(hs).launch((tq + rows - 1) / rows, nh, b, rows, 0);
        }
    }

    /**
     * dqkv, dout, qkv, out: one storage type; lse fp32. See {@link io.tinyllamaj.kernels.Backend#attentionBackward}.
     * rope: RoPE's tables, for the tensor-core kernels to store dq and dk turned back by their
     * positions (RoPE's backward in their stores), or null; amax: with rope, a zeroed u32 slot they
     * raise to dqkv's largest magnitude for an FP8 reader, or 0. Returns whether they did both: the
     * caller runs RoPE's backward (and its amax) otherwise.
     */
    boolean backward(CudaTensor dqkv, CudaTensor dout, CudaTensor qkv, CudaTensor out, long lse, int b, int t, int nh, int nkv, int hs,
                     RopeKernels.Table rope, long amax) {
        CudaBackend.Attention kernels = kernelsFor(false, qkv, hs, t, t, nh, nkv);
        if (kernels == CudaBackend.Attention.CUDNN) {
            if (cudnn.backward(dqkv.address(), dout.address(), qkv.address(), out.address(), lse, b, t, nh, nkv, hs)) {
                return false;
            }
            kernels = withoutCudnn("backward", b, t, nh, nkv, hs);
        }
        int hsClass = headSizeClass(hs); // refuses head sizes no kernel covers, before any launch
        long d = dots.atLeast((long) b * nh * t * Float.BYTES);
        long dotThreads = (long) b * t * nh * (qkv.bf16() ? Math.max(1, hs / 8) : 1); // bf16: hs / 8 lanes a (row, head)
        dot.of(qkv).args().ptr(d).ptr(dout.address()).ptr(out.address()).i32(b).i32(t).i32(nh).i32(hs).launchFlat(dotThreads);
        long cos = rope == null ? 0 : rope.cos().address(), sin = rope == null ? 0 : rope.sin().address();
        switch (kernels) {
            case CUDNN, AUTO -> throw new IllegalStateException("unreachable");
            case MMA_SM80 -> mma.backward(dqkv.address(), dout.address(), qkv.address(), lse, d, cos, sin, amax, b, t, nh, nkv);
            case WGMMA_SM90 -> wgmma.backward(dqkv.address(), dout.address(), qkv.address(), lse, d, cos, sin, amax, b, t, nh, nkv);
            case PLAIN -> plainBackward(hsClass, dqkv, dout, qkv, lse, d, b, t, nh, nkv, hs);
        }
        return rope != null && kernels != CudaBackend.Attention.PLAIN;
    }

    /** attention.cu's backward: dq per query row, dk/dv partials per query head, then their sum per group. */
    private void plainBackward(int hsClass, CudaTensor dqkv, CudaTensor dout, CudaTensor qkv, long lse, long d, int b, int t, int nh,
                               int nkv, int hs) {
        dq[hsClass].of(qkv).args().ptr(dqkv.address()).ptr(dout.address()).ptr(qkv.address()).ptr(lse).ptr(d)
                .i32(t).i32(nh).i32(nkv).i32(hs).launch((t + rows - 1) / rows, nh, b, rows, 0);
        // dk/dv: a partial per query head [b, t, nh, 2, hs], then the sum over each kv head's group
        long partial = partials.atLeast((long) b * t * nh * 2 * hs * Float.BYTES);
        int kvRows = dkvRows[hsClass];
        dkv[hsClass].of(qkv).args().ptr(partial).ptr(dout.address()).ptr(qkv.address()).ptr(lse).ptr(d)
                .i32(t).i32(nh).i32(nkv).i32(hs).launch((t + kvRows - 1) / kvRows, nh, b, kvRows, 0);
        dkvReduce.of(qkv).args().ptr(dqkv.address()).ptr(partial).i32(b).i32(t).i32(nh).i32(nkv).i32(hs)
                .launchFlat((long) b * t * 2 * nkv * hs);
    }

    @Override
    public void close() {
        if (cudnn != null) {
            cudnn.close();
        }
    }
}
