// Experiment (test sources, not in the fatbin): the dq kernel of attention_wgmma_sm90.cu with its
// tensor cores kept busy through the elementwise phase. There each tile goes: wait for S / dP, compute
// ds (an exp2 and a few FMAs per element), issue dQ += dS K; the tensor cores have nothing queued
// while ds is computed, and both warpgroups meet at a barrier every tile, so they idle together.
// Here tile kt + 1's S / dP are issued before tile kt's ds is computed (two sets of S / dP
// accumulators, the loop unrolled by two so each set keeps its registers), and dQ(kt) is queued
// behind them: the queue is S/dP(kt + 1), dQ(kt) while the warps compute, and each tile waits only
// for its own S / dP (wgmma groups complete in order), leaving the last dQ in flight. 4 K / V stages
// instead of 3, since a stage is refilled two tiles after its dQ was issued rather than one.
// The same products in the same order as the dq kernel: the same bits (the harness compares them).
// A warpgroup's tile whose keys all follow its queries (warpgroup 0's last) is computed, not
// skipped: fully masked, its dS is zeros, and no branch sits around a wgmma (ptxas serializes every
// wgmma of a kernel where one does).
//
// Two forms: Q and dO as register A operands loaded once, as in the dq kernel (ptxas: 255 registers,
// 28 bytes spilled), or read by the wgmma from shared memory (32 registers fewer, 32 KB more shared
// memory).
//
// Launch: as attention_wgmma_sm90_backward_dq_hs64 (grid (ceil(t / 128), nh, b), 256 threads), with
// attention_dq_pipelined_smem (registers) or attention_dq_pipelined_ss_smem (shared) bytes of
// dynamic shared memory. Timed by scripts/gpu-attention-harness.
#include "attention_fused_sm90.cu"

#include <type_traits>

namespace attn_dq_pipelined {
using namespace attn_wgmma;
constexpr int PSTAGES = 4;
constexpr int QDO_OFF = PSTAGES * KV_STAGE;                // the shared form's [wg][Q, dO] tiles
constexpr int SMEM_BYTES = PSTAGES * KV_STAGE + 1024;      // + alignment slack
constexpr int SS_SMEM_BYTES = QDO_OFF + 4 * TILE_BYTES + 1024;

// S = Q K^T and dP = dO V^T of one tile, one commit group: Q and dO as register A fragments.
struct RegisterA {
    uint32_t qf[4][4], df[4][4];
    __device__ __forceinline__ void start(float (&s)[32], float (&dp)[32], uint32_t ks, uint32_t vs) const {
        dkv_start(s, dp, qf, df, ks, vs);
    }
};

// The same with Q and dO read from this warpgroup's shared tiles (K-major): the fused kernel's
// S^T / dP^T code with the operands' roles swapped.
struct SharedA {
    uint32_t qs, dos;
    __device__ __forceinline__ void start(float (&s)[32], float (&dp)[32], uint32_t ks, uint32_t vs) const {
        attn_fused::fused_start(s, dp, qs, dos, ks, vs);
    }
};

// One tile of the loop: tile kt's S / dP are in (s, dp), issued, and dQ(kt - 1) queued behind them
// (before tile 0, the wgmma that zeroes dQ). Unless LAST, tile kt + 1's S / dP are issued into
// (ns, ndp) before kt's ds is computed.
template <bool LAST, class A>
__device__ __forceinline__ void dq_tile(float (&dq)[32], float (&s)[32], float (&dp)[32], float (&ns)[32], float (&ndp)[32],
                                        const A& a, const float (&lse2)[2], const float (&dotv)[2], uint32_t sbase, int kt, int nkt,
                                        int qw0, int qrow, int c, const bf16* qkv, int bi, int t, int width, int nh, int nkv, int g) {
    wg_wait<1>();   // S / dP of tile kt and everything before them; dQ(kt - 1) runs on
    wg_fence_regs(s);
    wg_fence_regs(dp);
    if (!LAST) {
        tc_cp_wait_all();   // tile kt + 1 (loaded one tile ago)
        wg_fence_proxy();
        __syncthreads();    // tile kt + 1 visible to the tensor cores; every wgmma on tile kt - 2 done
        if (kt + 2 < nkt) load_kv(sbase, (kt + 2) % PSTAGES, qkv, bi, kt + 2, t, width, nh, nkv, g);
        const uint32_t nks = sbase + ((kt + 1) % PSTAGES) * KV_STAGE;
        a.start(ns, ndp, nks, nks + TILE_BYTES);
    }
    const int k0 = kt * 64;
    uint32_t da[4][4];
    if (k0 >= qw0)   // the diagonal tile (masked per element), or one wholly after the queries (all masked)
        dq_ds<true>(da, s, dp, lse2, dotv, k0 - qrow, c);
    else
        dq_ds<false>(da, s, dp, lse2, dotv, k0 - qrow, c);
    const uint32_t ks = sbase + (kt % PSTAGES) * KV_STAGE;
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wg_mma_rs<1>(dq, da[kk], wg_desc_mnmajor(ks + kk * 2048), 1);
    wg_commit();
}

template <bool SHARED_A>
__device__ __forceinline__ void dq_pipelined_body(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                                                  int t, int nh, int nkv) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t sbase = smem_base(smem_raw);
    const int width = (nh + 2 * nkv) * 64;
    const QueryTile tile = tc_query_tile(t, nh, nkv);
    const int h = tile.h, bi = tile.bi, g = tile.g, q0 = tile.q0, nkt = tile.nkt;

    if (SHARED_A) {   // both warpgroups' Q and dO rows (zeros past t), in the first copy group
        const int tid = tc_tid();
#pragma unroll
        for (int w = 0; w < 2; w++) {
            const int r0 = min(q0 + 64 * w, t - 1), valid = t - (q0 + 64 * w);
            cp_tile64_swz(sbase + QDO_OFF + (2 * w) * TILE_BYTES, qkv + ((long long)bi * t + r0) * width + h * 64, width, valid, tid);
            cp_tile64_swz(sbase + QDO_OFF + (2 * w + 1) * TILE_BYTES, dout + ((long long)bi * t + r0) * (nh * 64) + h * 64, nh * 64,
                          valid, tid);
        }
    }
    load_kv(sbase, 0, qkv, bi, 0, t, width, nh, nkv, g);
    if (nkt > 1) load_kv(sbase, 1, qkv, bi, 1, t, width, nh, nkv, g);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2, wg = warp >> 2;
    const int qw0 = q0 + wg * 64;                               // this warpgroup's first query
    const int qrow = qw0 + (warp & 3) * 16 + (lane >> 2);       // this thread's rows qrow, qrow + 8
    float lse2[2], dotv[2];
    typename std::conditional<SHARED_A, SharedA, RegisterA>::type a;
    if constexpr (SHARED_A) {
        a.qs = sbase + QDO_OFF + (2 * wg) * TILE_BYTES;
        a.dos = a.qs + TILE_BYTES;
        uint32_t unused[4][4];
        dq_rows(unused, unused, lse2, dotv, qkv, dout, lse, dot, bi, h, qrow, c, t, width, nh);
    } else {
        dq_rows(a.qf, a.df, lse2, dotv, qkv, dout, lse, dot, bi, h, qrow, c, t, width, nh);
    }

    float dq[32], s0[32], dp0[32], s1[32], dp1[32];
    tc_cp_wait_all();
    wg_fence_proxy();
    __syncthreads();   // tiles 0 and 1 (and the shared Q and dO) visible
    a.start(s0, dp0, sbase, sbase + TILE_BYTES);
    {   // dQ = 0 x K: zeroed by a wgmma behind S / dP of tile 0, so that every tile finds a dQ group
        // behind its S / dP (a branch between wait depths, or zeros written by other instructions,
        // makes ptxas serialize every wgmma)
        const uint32_t zero[4] = {0u, 0u, 0u, 0u};
        wg_fence();
        wg_mma_rs_first<1>(dq, zero, wg_desc_mnmajor(sbase));
        wg_commit();
    }
    // wgmma groups in flight at each tile's start: its S / dP, and the previous tile's dQ behind them
#define DQ_TILE(LAST, X, Y, K) \
    dq_tile<LAST>(dq, s##X, dp##X, s##Y, dp##Y, a, lse2, dotv, sbase, K, nkt, qw0, qrow, c, qkv, bi, t, width, nh, nkv, g)
    int kt = 0;   // tile kt's S / dP in (s0, dp0)
    for (; kt + 2 < nkt; kt += 2) {
        DQ_TILE(false, 0, 1, kt);
        DQ_TILE(false, 1, 0, kt + 1);
    }
    if (kt + 1 < nkt) {   // two tiles left
        DQ_TILE(false, 0, 1, kt);
        DQ_TILE(true, 1, 0, kt + 1);
    } else {
        DQ_TILE(true, 0, 1, kt);
    }
#undef DQ_TILE
    wg_wait<0>();
    wg_fence_regs(dq);
    dq_store(dqkv, dq, bi, h, qrow, c, t, width);
}
}  // namespace attn_dq_pipelined

#define ATTN_DQ_PIPELINED_KERNEL(NAME, SHARED_A)                                                                                   \
    extern "C" __global__ void __launch_bounds__(attn_wgmma::THREADS, 1) NAME(                                                    \
        bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot, int t, int nh, int nkv) {              \
        if (WG_ENABLED) attn_dq_pipelined::dq_pipelined_body<SHARED_A>(dqkv, dout, qkv, lse, dot, t, nh, nkv);                    \
        else __trap();                                                                                                              \
    }
ATTN_DQ_PIPELINED_KERNEL(attention_dq_pipelined_sm90_hs64, false)
ATTN_DQ_PIPELINED_KERNEL(attention_dq_pipelined_ss_sm90_hs64, true)

extern "C" {
__constant__ int attention_dq_pipelined_smem = attn_dq_pipelined::SMEM_BYTES;
__constant__ int attention_dq_pipelined_ss_smem = attn_dq_pipelined::SS_SMEM_BYTES;
}
