// Experiment (test sources, not in the fatbin): the dk/dv kernel of attention_wgmma_sm90.cu in its
// SPLIT_WAIT form. There each tile issues S^T and dP^T as one commit group and waits for both
// before its exponentials, so the tensor cores idle while p is computed. Here S^T and dP^T are two
// groups: the tile waits for S^T alone, computes p while dP^T runs, issues dV, and waits for dP^T
// behind it before ds. The same products in the same order: the same bits (the harness compares).
// Launch: as attention_wgmma_sm90_backward_dkv_hs64 (grid (ceil(t / 128), nkv, b), 256 threads,
// attention_wgmma_sm90_dkv_shared bytes of dynamic shared memory). Timed by
// scripts/gpu-attention-harness.
#include "../../main/cuda/attention_wgmma_sm90.cu"

extern "C" __global__ void __launch_bounds__(attn_wgmma::THREADS, 1)
attention_dkv_split_sm90_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot, int t, int nh,
                              int nkv) {
#if WG_ENABLED
    attn_wgmma::dkv_body<true>(dqkv, dout, qkv, lse, dot, t, nh, nkv);
#else
    __trap();   // wgmma exists only on sm_90a
#endif
}
