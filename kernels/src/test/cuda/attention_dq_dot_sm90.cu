// Experiment (test sources, not in the fatbin): the dq kernel of attention_wgmma_sm90.cu in its
// WRITES_DOT form, which computes D = rowsum(dO * O) for its own rows from dO and O tiles in shared
// memory (the O tiles copied beside Q and dO, 16 KB more), while tile 0's products run, and writes
// it for the dk/dv kernel: the attention backward without attention_backward_dot's pass over dO
// and O (0.109 ms a layer at b=8 t=2048 nh=32 on an H100, 1.23 TB/s). D's sums run in another
// order than attention.cu's, so dq, dk and dv are not the pair's bits.
// Launch: as attention_wgmma_sm90_backward_dq_hs64 (grid (ceil(t / 128), nh, b), 256 threads) with
// attention_dq_dot_smem bytes of dynamic shared memory; dot [b, nh, t] is written, out [b, t, nh 64]
// read. Checked and timed by scripts/gpu-attention-harness.
#include "../../main/cuda/attention_wgmma_sm90.cu"

namespace attn_dq_dot {
constexpr int SMEM_BYTES = attn_wgmma::DQ_SMEM_BYTES + 2 * attn_wgmma::TILE_BYTES;   // + the [wg] O tiles
}

extern "C" __global__ void __launch_bounds__(attn_wgmma::THREADS, 1)
attention_dq_dot_sm90_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, float* dot, const bf16* out, int t,
                           int nh, int nkv) {
#if WG_ENABLED
    attn_wgmma::dq_body<true>(dqkv, dout, qkv, lse, nullptr, dot, out, t, nh, nkv);
#else
    __trap();   // wgmma exists only on sm_90a
#endif
}

extern "C" {
__constant__ int attention_dq_dot_smem = attn_dq_dot::SMEM_BYTES;
}
