// Causal GQA attention backward, dq only, on Hopper's warpgroup tensor cores (wgmma, sm_90a),
// head size 64, bf16 storage: a replacement of flash3_backward_dq_hs64 (flash_attention_bwd3.cu)
// with the same arguments, layouts and numerics. Deterministic; on the H100 its dq equals
// flash3's bit for bit (the same k-steps of 16 in the same order).
//
// Launch contract (static shared memory, 32,768 bytes, no attribute call):
//   wgmma_backward_dq_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
//                          const float* dot, int t, int nh, int nkv)
//       grid (ceil(t / 128), nh, b), block 256 threads (2 warpgroups of 64 query rows each),
//       compiled for 2 blocks per SM (128 registers).
//   Only the sm_90a build has a body; on other targets the kernel traps (the host chooses it only
//   on compute capability 9.0).
//
// Why: flash3's dq runs its 3 products (S = Q K^T, dP = dO V^T, dq += dS K) at 0.34 ms each at
// b=8 t=2048 with mma.sync, 12.5% occupancy and the issue slots 43% busy (Nsight Compute): each
// warp waits on its own ldmatrix -> mma chains. wgmma reads B straight from shared memory, one
// instruction per 64 x N x 16 product, and runs asynchronously. Measured: the whole backward
// 2.47 -> 2.31 ms (this kernel about 0.87 ms against flash3's 1.03 under Nsight Compute).
//
// Design: warpgroup wg owns queries r0 = q0 + 64 wg .. + 63; its Q and dO rows stay in registers as
// wgmma A fragments (the mma.sync A layout per warp). K/V stream in 64-key tiles, double buffered
// with cp.async into 128-byte-swizzled tiles (wgmma.cuh); each tile in two halves of 32 keys:
// S and dP (64 x 32, m64n32k16, B = the K / V rows K-major), p = exp2(s log2(e) / 8 - lse log2(e)),
// ds = p (dp - dot) / 8 as flash3, then dq += dS K_half (m64n64k16, A = ds packed to bf16 in
// registers, B = the K rows read MN-major). Causal: a warpgroup computes tiles up to its diagonal
// tile (k0 = r0) and masks per element only there; keys >= t are zero rows that only the diagonal
// tile of a valid warpgroup reaches, where the causal test masks them.
#include "wgmma.cuh"
#include "tensor_core.cuh"

namespace wgdq {

constexpr float LOG2E = 1.4426950408889634f;
constexpr float SCALE = 0.125f;   // 1 / sqrt(64)
constexpr int THREADS = 256;
constexpr int TILE = 64 * 64;     // bf16 elements of one swizzled 64 x 64 tile (8 KB)

// K and V rows k0 .. k0 + 63 of kv head g (zero rows past t) -> kv[0], kv[1], swizzled; one group.
__device__ __forceinline__ void cp_kv(bf16 (*kv)[TILE], const bf16* qkv, int t, int nh, int nkv, int g, int bi, int k0) {
    const int width = (nh + 2 * nkv) * 64, tid = tc_tid();
    const bf16* src = qkv + ((long long)bi * t + k0) * width + (nh + g) * 64;
#pragma unroll
    for (int m = 0; m < 2; m++) {
        const uint32_t base = tc_smem(kv[m]);
#pragma unroll
        for (int k = 0; k < 64 * 8 / THREADS; k++) {
            const int idx = tid + k * THREADS, r = idx >> 3, chunk = idx & 7;
            const bool ok = r < t - k0;
            tc_cp_async16(base + wg_swz(r, chunk), src + m * nkv * 64 + (ok ? (long long)r * width + chunk * 8 : 0), ok);
        }
    }
    tc_cp_commit();
}

}  // namespace wgdq

extern "C" __global__ void __launch_bounds__(256, 2)
wgmma_backward_dq_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                       int t, int nh, int nkv) {
#if WG_ENABLED
    using namespace wgdq;
    __shared__ __align__(1024) bf16 kv[2][2][TILE];   // [stage][K, V]
    const int width = (nh + 2 * nkv) * 64, group = nh / nkv;
    int qb, h, bi;
    tc_query_block(qb, h, bi);
    const int g = h / group;
    const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int r0 = qb * 128 + wg * 64;                 // this warpgroup's rows r0 .. r0 + 63
    const int rowA = r0 + warp * 16 + (lane >> 2), rowB = rowA + 8;
    const int nkt = min(2 * qb + 2, (t + 63) >> 6);    // key tiles with k0 < t, k0 <= q0 + 127
    const int diagTile = 2 * qb + wg;                  // k0 == r0; later tiles follow every row
    const bool live = r0 < t;

    cp_kv(kv[0], qkv, t, nh, nkv, g, bi, 0);

    uint32_t qf[4][4], df[4][4];
    float lse2[2], dotv[2];
    {
        const bool okA = rowA < t, okB = rowB < t;
        const bf16* batch = qkv + (long long)bi * t * width + h * 64 + c;
        const bf16* dbatch = dout + (long long)bi * t * nh * 64 + h * 64 + c;
        tc_a_fragments_global(qf, batch + (long long)rowA * width, okA, batch + (long long)rowB * width, okB);
        tc_a_fragments_global(df, dbatch + (long long)rowA * nh * 64, okA, dbatch + (long long)rowB * nh * 64, okB);
        const long long statBase = ((long long)bi * nh + h) * t;
        lse2[0] = okA ? lse[statBase + rowA] * LOG2E : 0.f;
        lse2[1] = okB ? lse[statBase + rowB] * LOG2E : 0.f;
        dotv[0] = okA ? dot[statBase + rowA] : 0.f;
        dotv[1] = okB ? dot[statBase + rowB] : 0.f;
    }

    float dq[32];
#pragma unroll
    for (int i = 0; i < 32; i++) dq[i] = 0.f;

    for (int kt = 0; kt < nkt; kt++) {
        tc_cp_wait_all();
        wg_fence_proxy();  // cp.async wrote the tile through the generic proxy; wgmma reads it through the async one
        __syncthreads();   // tile kt visible to all; both warpgroups are done with tile kt - 1's buffer
        if (kt + 1 < nkt) cp_kv(kv[(kt + 1) & 1], qkv, t, nh, nkv, g, bi, (kt + 1) * 64);
        if (!live || kt > diagTile) continue;   // uniform per warpgroup
        const uint32_t ks = tc_smem(kv[kt & 1][0]), vs = tc_smem(kv[kt & 1][1]);
        const bool diag = kt == diagTile;
#pragma unroll 1
        for (int half = 0; half < 2; half++) {
            const uint32_t rows = half * 32 * 128;   // byte offset of key row 32 half (a multiple of 1024)
            float s[16], dp[16];
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < 4; kk++) wg_mma_rs<0>(s, qf[kk], wg_desc_kmajor(ks + rows + kk * 32), kk);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) wg_mma_rs<0>(dp, df[kk], wg_desc_kmajor(vs + rows + kk * 32), kk);
            wg_commit();
            wg_wait<0>();
            wg_fence_regs(s);
            wg_fence_regs(dp);
            // element i: row rowA (+8 when (i / 2) odd), key kt * 64 + 32 half + 8 (i / 4) + c + i % 2
#pragma unroll
            for (int i = 0; i < 16; i++) {
                const int r = (i >> 1) & 1;
                const int key = kt * 64 + half * 32 + 8 * (i >> 2) + c + (i & 1);
                const bool masked = diag && key > (r ? rowB : rowA);
                const float p = masked ? 0.f : exp2f(s[i] * (SCALE * LOG2E) - lse2[r]);
                s[i] = p * (dp[i] - dotv[r]) * SCALE;
            }
            uint32_t a[2][4];
#pragma unroll
            for (int kk = 0; kk < 2; kk++) {
                a[kk][0] = tc_pack(s[8 * kk + 0], s[8 * kk + 1]);
                a[kk][1] = tc_pack(s[8 * kk + 2], s[8 * kk + 3]);
                a[kk][2] = tc_pack(s[8 * kk + 4], s[8 * kk + 5]);
                a[kk][3] = tc_pack(s[8 * kk + 6], s[8 * kk + 7]);
            }
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < 2; kk++) wg_mma_rs<1>(dq, a[kk], wg_desc_mnmajor(ks + rows + kk * 16 * 128), 1);
            wg_commit();
            wg_wait<0>();
            wg_fence_regs(dq);
        }
    }
    if (live) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int row = r ? rowB : rowA;
            if (row >= t) continue;
            bf16* dst = dqkv + ((long long)bi * t + row) * width + h * 64 + c;
#pragma unroll
            for (int n = 0; n < 8; n++) st2(dst + n * 8, dq[4 * n + 2 * r], dq[4 * n + 2 * r + 1]);
        }
    }
#else
    __trap();
#endif
}
