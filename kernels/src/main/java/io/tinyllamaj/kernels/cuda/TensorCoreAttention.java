package io.tinyllamaj.kernels.cuda;

import java.util.List;

import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.I32;
import static io.tinyllamaj.kernels.cuda.KernelSignature.Param.PTR;

/**
 * The launch contract of a tensor-core attention family, head size 64, bf16 storage: the mma.sync
 * kernels (attention_mma_sm80.cu) or the wgmma ones (attention_wgmma_sm90.cu), which share their
 * arguments and grids. Forward and dq: a block per (query rows, head, batch row); dkv: a block per
 * (key rows, kv head, batch row). Rows and threads per block and the dynamic shared bytes come
 * from the family's module constants ({@code <prefix>_rows}, {@code _threads},
 * {@code _forward_shared}, {@code _dq_shared}, {@code _dkv_shared}).
 */
final class TensorCoreAttention {

    private static final String ROWS = "_rows", THREADS = "_threads", FORWARD_SHARED = "_forward_shared", DQ_SHARED = "_dq_shared",
            DKV_SHARED = "_dkv_shared";

    private final Kernel forward, dq, dkv;
    private final int rows, threads, forwardShared, dqShared, dkvShared;

    /** The module constants the family's launches read. */
    static List<String> constants(String prefix) {
        return List.of(prefix + ROWS, prefix + THREADS, prefix + FORWARD_SHARED, prefix + DQ_SHARED, prefix + DKV_SHARED);
    }

    static KernelSignature forwardSignature(String prefix) {
        return KernelSignature.of(prefix + "_forward_hs64", PTR, PTR, PTR, I32, I32, I32);
    }

    static KernelSignature backwardSignature(String prefix) {
        return KernelSignature.of(List.of(prefix + "_backward_dq_hs64", prefix + "_backward_dkv_hs64"), PTR, PTR, PTR, PTR, PTR, PTR, PTR,
                PTR, I32, I32, I32);
    }

    /** runs: whether this GPU runs the family (its dynamic shared memory limits are raised only then). */
    TensorCoreAttention(KernelModule kernels, String prefix, boolean runs) {
        KernelSignature backward = backwardSignature(prefix);
        forward = kernels.kernel(forwardSignature(prefix));
        dq = kernels.kernel(backward, prefix + "_backward_dq_hs64");
        dkv = kernels.kernel(backward, prefix + "_backward_dkv_hs64");
        rows = kernels.constant(prefix + ROWS);
        threads = kernels.constant(prefix + THREADS);
        forwardShared = kernels.constant(prefix + FORWARD_SHARED);
        dqShared = kernels.constant(prefix + DQ_SHARED);
        dkvShared = kernels.constant(prefix + DKV_SHARED);
        if (runs) {
            for (Kernel k : new Kernel[] {dq, dkv, forward}) {
                int shared = k == forward ? forwardShared : k == dq ? dqShared : dkvShared;
                if (shared > 0) {
                    kernels.allowDynamicShared(k, shared);
                }
            }
        }
    }

    /** out [b, t, nh 64], lse [b, nh, t] from qkv [b, t, (nh + 2 nkv) 64] (causal, tq == tk == t). */
    void forward(long out, long lse, long qkv, int b, int t, int nh, int nkv) {
        forward.args().ptr(out).ptr(lse).ptr(qkv).i32(t).i32(nh).i32(nkv).launch(tiles(t), nh, b, threads, forwardShared);
    }

    /**
     * dqkv overwritten: the dq kernel over (query rows, head), then the dk/dv kernel over (key rows,
     * kv head). cos, sin: RoPE's tables [positions >= t, 32] to store dq and dk turned back by their
     * positions (RoPE's backward in the same pass), or 0 to store them as computed. amax: a u32
     * slot (zeroed by the caller) that both kernels raise to the largest magnitude they store, the
     * amax of all of dqkv for an FP8 matmul reading it; or 0.
     */
    void backward(long dqkv, long dout, long qkv, long lse, long dot, long cos, long sin, long amax, int b, int t, int nh, int nkv) {
        int tiles = tiles(t);
        dq.args().ptr(dqkv).ptr(dout).ptr(qkv).ptr(lse).ptr(dot).ptr(cos).ptr(sin).ptr(amax).i32(t).i32(nh).i32(nkv)
                .launch(tiles, nh, b, threads, dqShared);
        dkv.args().ptr(dqkv).ptr(dout).ptr(qkv).ptr(lse).ptr(dot).ptr(cos).ptr(sin).ptr(amax).i32(t).i32(nh).i32(nkv)
                .launch(tiles, nkv, b, threads, dkvShared);
    }

    private int tiles(int t) {
        return (t + rows - 1) / rows;
    }
}
