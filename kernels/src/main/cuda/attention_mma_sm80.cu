// Causal grouped-query attention on the tensor cores with mma.sync (sm_80 and newer), head size
// 64, bf16 storage: the training kernels where the wgmma ones (attention_wgmma_sm90.cu) do not run.
//   qkv [b, t, (nh + 2 nkv) 64]: q heads, then k heads, then v heads; query head h reads kv head
//   h / (nh / nkv). s_ij = q_i . k_j / 8 for keys j <= i, p = softmax_j(s), o_i = sum_j p_ij v_j.
//   forward:  out [b, t, nh 64] bf16; lse [b, nh, t] fp32, the natural-log logsumexp of s.
//   backward: with dot = rowsum(dout * out) [b, nh, t] (attention_backward_dot, attention.cu),
//             p = exp(s - lse), ds = p (dout . v - dot) / 8; dq = ds k, dk = ds^T q, dv = p^T dout.
//             The dq kernel writes the q columns of dqkv, the dkv kernel the k and v columns.
//             Given RoPE's cos / sin tables (else null), dq and dk are written turned back by
//             their positions' angles: the gradient with respect to qkv before RoPE (the
//             model's RoPE backward, done in the stores: tc_store_row64). Given amax (else
//             null), the largest magnitude each kernel stores joins amax[0] (warp_amax).
// Launch: forward and dq grid (ceil(t / 128), nh, b), dkv grid (ceil(t / 128), nkv, b); 128 threads
// (4 warps), static shared memory only; the host reads rows and threads per block from the
// constants at the end. Any t >= 1, nh a multiple of nkv, bases 16-byte aligned.
// Numerics: bf16 operands, fp32 accumulation (mma.sync m16n8k16); S and dP are chains of 4 k-steps
// from zero; p and ds are rounded to bf16 as the A operands of the second products; the softmax is
// fp32 in log2 units (s * log2(e) / 8). The forward's 2^x is ex2.approx.ftz.f32: exp2f without the
// fix-up of subnormal results (p < 2^-126, a score more than 87 below its row max), which are 0
// here and add nothing visible to l >= 1 or to o. Every output element is written once by one
// thread; no atomics: deterministic.
// Design:
// - 32 rows per warp (queries; keys in dkv) as two m16 tiles that share every B fragment: each
//   ldmatrix.x4 feeds 4 mma, which halves the shared-memory bytes read per score against 16-row
//   warps (shared memory, not the tensor pipe, bounds those). launch_bounds(128, 2): up to 255
//   registers keep a warp's resident operands (Q or K fragments, the accumulators) in registers.
// - The streamed operand (K/V in the forward and dq; Q/dO, lse and dot in dkv) is double buffered
//   with cp.async (zero-filled past t, nothing past t is read) and one barrier per tile: at the top
//   of iteration i every thread waits for its copies of tile i; the barrier makes tile i visible
//   and guarantees every warp is done with tile i - 1, whose buffer is then refilled with tile
//   i + 1 while tile i is computed. The resident operand comes straight from global memory into
//   A fragments.
// - Causal skipping: tiles (halves, 16-query chunks) whose keys all follow every row of a warp
//   are skipped, exactly (they would add p = 0); the per-element mask runs only where a tile
//   crosses the diagonal. Rows past t are computed on zeros and not written.
// - Longest blocks first: the linear block index is remapped so that the row block varies slowest
//   (forward and dq: the last query block first; dkv: the first key block first).
#include "tensor_core.cuh"

namespace attn_mma {

constexpr int LD = 72;                        // padded row of a shared tile, in bf16 (conflict free)
constexpr float LOG2E = 1.4426950408889634f;
constexpr float SCALE = 0.125f;               // 1 / sqrt(64)
constexpr int THREADS = 128;

typedef bf16 Row[LD];

// 2^x: ex2.approx.ftz.f32 (= exp2f's MUFU.EX2 for x >= -126, 0 instead of a subnormal below).
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

constexpr uint32_t ROWB = LD * 2;              // bytes per shared row
constexpr uint32_t TILEB = 64 * ROWB;          // bytes per 64-row tile (K or V)
constexpr uint32_t STAGEB = 2 * TILEB;         // bytes per stage (K, V)

// Thread tid copies, of every 64-key tile, the 16-byte chunks (row crow + 16 j, columns ccol ..
// ccol + 7) of K and of V for j = 0 .. 3 (crow = tid / 8, ccol = 8 (tid % 8)): 8 cp.async per tile.
// src points at K row crow of tile kt (global), dst at kv[stage][0][crow][ccol] (shared); rows
// >= t are zero-filled without reading (their source operand is the valid address `any`).
__device__ __forceinline__ void cp_kv_rows(uint32_t dst, const bf16* src, long long width, int nkv64, int valid,
                                           const bf16* any) {
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const bool ok = 16 * j < valid;
        const bf16* p = src + j * 16 * width;
        tc_cp_async16(dst + j * 16 * ROWB, ok ? p : any, ok);
        tc_cp_async16(dst + TILEB + j * 16 * ROWB, ok ? p + nkv64 : any, ok);
    }
    tc_cp_commit();
}

// s[m][0 .. 2 NP) = q[m] . K[0 .. 16 NP)^T for both 16-row tiles m (8-column accumulator tiles,
// each a chain of the 4 k-steps from zero). One ldmatrix.x4 = B of two
// column tiles for one k-step, shared by both row tiles: 4 mma. kaddr: this lane's ldmatrix
// address in the K tile, row (lane % 8) + 8 (lane / 16), column 8 ((lane / 8) % 2).
template <int NP>
__device__ __forceinline__ void qk(float (*s)[8][4], const uint32_t (*q)[4][4], uint32_t kaddr) {
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int n = 0; n < 8; n++) s[m][n][0] = s[m][n][1] = s[m][n][2] = s[m][n][3] = 0.f;   // n >= 2 NP: masked later
#pragma unroll
    for (int np = 0; np < NP; np++) {
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t b[4];
            tc_ldmatrix4(b, kaddr + np * 16 * ROWB + kk * 32);
#pragma unroll
            for (int m = 0; m < 2; m++) {
                tc_mma(s[m][2 * np], q[m][kk], b[0], b[1]);
                tc_mma(s[m][2 * np + 1], q[m][kk], b[2], b[3]);
            }
        }
    }
}

// o[m] (16 x 64) += bf16(p[m]) . V[0 .. 16 KS) for both row tiles, k-steps of 16 keys ascending. One ldmatrix.x4.trans = B of two 8-column tiles: 4 mma. vaddr: this
// lane's address in the V tile, row (lane % 8) + 8 ((lane / 8) % 2), column 8 (lane / 16).
template <int KS>
__device__ __forceinline__ void pv(float (*o)[8][4], const float (*p)[8][4], uint32_t vaddr) {
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
        uint32_t a[2][4];
#pragma unroll
        for (int m = 0; m < 2; m++) {
            a[m][0] = tc_pack(p[m][2 * kk][0], p[m][2 * kk][1]);
            a[m][1] = tc_pack(p[m][2 * kk][2], p[m][2 * kk][3]);
            a[m][2] = tc_pack(p[m][2 * kk + 1][0], p[m][2 * kk + 1][1]);
            a[m][3] = tc_pack(p[m][2 * kk + 1][2], p[m][2 * kk + 1][3]);
        }
#pragma unroll
        for (int nd = 0; nd < 4; nd++) {
            uint32_t b[4];
            tc_ldmatrix4_trans(b, vaddr + kk * 16 * ROWB + nd * 32);
#pragma unroll
            for (int m = 0; m < 2; m++) {
                tc_mma(o[m][2 * nd], a[m], b[0], b[1]);
                tc_mma(o[m][2 * nd + 1], a[m], b[2], b[3]);
            }
        }
    }
}


// acc[m][2 NP] (two 16-row tiles m, each 16 x 16 NP as 8-column tiles) = a[m] . tile[row0 ..
// row0 + 16 NP)^T, a[m] = 16 x 64 (4 k-steps): the tile's rows are the output columns. One
// ldmatrix.x4 = B of two column tiles for one k-step, shared by both row tiles: 4 mma.
template <int NP>
__device__ __forceinline__ void mma2_abt(float (*acc)[2 * NP][4], const uint32_t (*a)[4][4], const Row* tile, int row0, int lane) {
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int n = 0; n < 2 * NP; n++) acc[m][n][0] = acc[m][n][1] = acc[m][n][2] = acc[m][n][3] = 0.f;
#pragma unroll
    for (int np = 0; np < NP; np++) {
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t b[4];
            tc_ldmatrix4(b, &tile[row0 + np * 16 + (lane & 7) + (lane >> 4) * 8][kk * 16 + ((lane >> 3) & 1) * 8]);
#pragma unroll
            for (int m = 0; m < 2; m++) {
                tc_mma(acc[m][2 * np], a[m][kk], b[0], b[1]);
                tc_mma(acc[m][2 * np + 1], a[m][kk], b[2], b[3]);
            }
        }
    }
}

// acc[m] (16 x 64) += a[m] . tile[row0 .. row0 + 16)[0 .. 64) for both row tiles m, a[m] one packed
// bf16 A fragment (16 x 16). One ldmatrix.x4.trans = B of two 8-column tiles: 4 mma.
__device__ __forceinline__ void mma2_av(float (*acc)[8][4], const uint32_t (*a)[4], const Row* tile, int row0, int lane) {
#pragma unroll
    for (int nd = 0; nd < 4; nd++) {
        uint32_t b[4];
        tc_ldmatrix4_trans(b, &tile[row0 + (lane & 7) + ((lane >> 3) & 1) * 8][nd * 16 + (lane >> 4) * 8]);
#pragma unroll
        for (int m = 0; m < 2; m++) {
            tc_mma(acc[m][2 * nd], a[m], b[0], b[1]);
            tc_mma(acc[m][2 * nd + 1], a[m], b[2], b[3]);
        }
    }
}

// K and V rows k0 .. k0 + 63 of kv head g, batch bi (k0 < t) -> kv[0], kv[1] (zero rows past t),
// as one cp.async group. Addresses are derived afresh from the arguments at each call.
__device__ __forceinline__ void cp_kv_tile(Row (*kv)[64], const bf16* qkv, int t, int nh, int nkv, int g, int bi, int k0) {
    const int width = (nh + 2 * nkv) * 64, tid = tc_tid();
    const bf16* src = qkv + ((long long)bi * t + k0) * width + (nh + g) * 64;
    tc_cp_tile<128>(kv[0], src, width, t - k0, tid);
    tc_cp_tile<128>(kv[1], src + nkv * 64, width, t - k0, tid);
    tc_cp_commit();
}

// 32 rows x 64 bf16 -> dst[32][LD], rows >= valid zero-filled without reading; 128 threads,
// 2 x 16 bytes each.
__device__ __forceinline__ void cp_tile32(Row* dst, const bf16* src, int stride, int valid, int tid) {
#pragma unroll
    for (int k = 0; k < 2; k++) {
        const int idx = tid + k * THREADS, r = idx >> 3, col = (idx & 7) * 8;
        const bool ok = r < valid;
        tc_cp_async16(tc_smem(&dst[r][col]), src + (ok ? r * stride + col : 0), ok);
    }
}

}  // namespace attn_mma

// ---------------------------------------------------------------------------------------------
// A block per (128 queries, head), warp w owns rows q0 + 32 w .. + 31 (two m16 tiles, Q fragments
// in registers); K/V stream in 64-key tiles 0 .. min(2 qb + 1, ceil(t / 64) - 1).
extern "C" __global__ void __launch_bounds__(attn_mma::THREADS, 2)
attention_mma_sm80_forward_hs64(bf16* out, float* lse, const bf16* qkv, int t, int nh, int nkv) {
    using namespace attn_mma;
    __shared__ __align__(128) Row kv[2][2][64];   // [stage][K, V][row]
    const int width = (nh + 2 * nkv) * 64;
    const QueryTile tile = tc_query_tile(t, nh, nkv);
    const int h = tile.h, bi = tile.bi, g = tile.g, q0 = tile.q0, nkt = tile.nkt;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int w0 = q0 + warp * 32;   // this warp's rows w0 .. w0 + 31
    const bf16* batch = qkv + (long long)bi * t * width;

    // Copy plan (see cp_kv_rows): K row crow of tile 0, and this thread's shared destination in stage 0.
    const int crow = threadIdx.x >> 3, ccol = (threadIdx.x & 7) * 8;
    const bf16* kvsrc = batch + (long long)crow * width + (nh + g) * 64 + ccol;
    const uint32_t kvdst = tc_smem(&kv[0][0][crow][ccol]);
    cp_kv_rows(kvdst, kvsrc, width, nkv * 64, t - crow, qkv);

    uint32_t qf[2][4][4];
#pragma unroll
    for (int m = 0; m < 2; m++) {
        const int rowA = w0 + m * 16 + (lane >> 2), rowB = rowA + 8;
        tc_a_fragments_global(qf[m], batch + (long long)rowA * width + h * 64 + c, rowA < t,
                       batch + (long long)rowB * width + h * 64 + c, rowB < t);
    }

    float o[2][8][4];
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int n = 0; n < 8; n++) o[m][n][0] = o[m][n][1] = o[m][n][2] = o[m][n][3] = 0.f;
    float mx[2][2], l[2][2];   // [m][A, B]: rows w0 + 16 m + lane / 4 (+ 8)
#pragma unroll
    for (int m = 0; m < 2; m++) mx[m][0] = mx[m][1] = -CUDART_INF_F, l[m][0] = l[m][1] = 0.f;
    const bool warpLive = w0 < t;
    const int relc = c - (lane >> 2);
    // Lane parts of the ldmatrix addresses (bytes): K (B of S = Q K^T) and V (B of P V, transposed).
    const uint32_t kofs = ((lane & 7) + (lane >> 4) * 8) * ROWB + ((lane >> 3) & 1) * 16;
    const uint32_t vofs = TILEB + ((lane & 7) + ((lane >> 3) & 1) * 8) * ROWB + (lane >> 4) * 16;

    for (int kt = 0; kt < nkt; kt++) {
        tc_cp_wait_all();
        __syncthreads();   // tile kt visible to all; every warp is done with tile kt - 1's buffer
        const int k0 = kt * 64;
        if (kt + 1 < nkt)
            cp_kv_rows(kvdst + ((kt + 1) & 1) * STAGEB, kvsrc + (long long)(k0 + 64) * width, width, nkv * 64, t - k0 - 64 - crow, qkv);
        if (!warpLive || k0 > w0) continue;   // every key of the tile follows every row (or no row exists)
        const uint32_t stage = tc_smem(&kv[0][0][0][0]) + (kt & 1) * STAGEB;
        // k0 == w0: keys k0 + 32 .. k0 + 63 follow every row of the warp (p = 0 there).
        const bool half = k0 == w0;
        float s[2][8][4];
        if (half) {
            qk<2>(s, qf, stage + kofs);
        } else {
            qk<4>(s, qf, stage + kofs);
        }
#pragma unroll
        for (int m = 0; m < 2; m++)
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[m][n][e] = s[m][n][e] * (SCALE * LOG2E);
        if (k0 + 64 > w0) {   // the tile crosses the diagonal: mask per element
            const int rel = k0 - w0 + relc;
#pragma unroll
            for (int m = 0; m < 2; m++)
#pragma unroll
                for (int n = 0; n < 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        // key k0 + 8 n + c + (e & 1) > row w0 + 16 m + lane / 4 + 8 (e >> 1)
                        if (8 * n + (e & 1) + rel > 16 * m + 8 * (e >> 1)) s[m][n][e] = -CUDART_INF_F;
                    }
        }
        // Online softmax of both row tiles: running max per row over the 4 lanes that hold it,
        // corr = 2^(max_old - max_new), l = l * corr, then l += p0 + p1 per column pair in n order;
        // the rescale of o is skipped when no row of the warp changed its maximum (o * 1 == o).
        float corr[2][2];
#pragma unroll
        for (int m = 0; m < 2; m++) {
            float xA = mx[m][0], xB = mx[m][1];
#pragma unroll
            for (int n = 0; n < 8; n++) {
                xA = fmaxf(xA, fmaxf(s[m][n][0], s[m][n][1]));
                xB = fmaxf(xB, fmaxf(s[m][n][2], s[m][n][3]));
            }
            xA = fmaxf(xA, __shfl_xor_sync(0xffffffffu, xA, 1));
            xA = fmaxf(xA, __shfl_xor_sync(0xffffffffu, xA, 2));
            xB = fmaxf(xB, __shfl_xor_sync(0xffffffffu, xB, 1));
            xB = fmaxf(xB, __shfl_xor_sync(0xffffffffu, xB, 2));
            corr[m][0] = ex2(mx[m][0] - xA);
            corr[m][1] = ex2(mx[m][1] - xB);
            mx[m][0] = xA;
            mx[m][1] = xB;
            l[m][0] *= corr[m][0];
            l[m][1] *= corr[m][1];
#pragma unroll
            for (int n = 0; n < 8; n++) {
                s[m][n][0] = ex2(s[m][n][0] - xA);
                s[m][n][1] = ex2(s[m][n][1] - xA);
                s[m][n][2] = ex2(s[m][n][2] - xB);
                s[m][n][3] = ex2(s[m][n][3] - xB);
                l[m][0] += s[m][n][0] + s[m][n][1];
                l[m][1] += s[m][n][2] + s[m][n][3];
            }
        }
        if (__any_sync(0xffffffffu, corr[0][0] != 1.f || corr[0][1] != 1.f || corr[1][0] != 1.f || corr[1][1] != 1.f)) {
#pragma unroll
            for (int m = 0; m < 2; m++)
#pragma unroll
                for (int n = 0; n < 8; n++) {
                    o[m][n][0] *= corr[m][0];
                    o[m][n][1] *= corr[m][0];
                    o[m][n][2] *= corr[m][1];
                    o[m][n][3] *= corr[m][1];
                }
        }
        if (half) {
            pv<2>(o, s, stage + vofs);
        } else {
            pv<4>(o, s, stage + vofs);
        }
    }
#pragma unroll
    for (int m = 0; m < 2; m++) {
        const float lA = tc_row_sum(l[m][0]), lB = tc_row_sum(l[m][1]);
        const float invA = 1.f / lA, invB = 1.f / lB;
        const int rowA = w0 + m * 16 + (lane >> 2), rowB = rowA + 8;
        if (rowA < t) {
            bf16* dst = out + ((long long)bi * t + rowA) * nh * 64 + h * 64 + c;
#pragma unroll
            for (int n = 0; n < 8; n++) st2(dst + n * 8, o[m][n][0] * invA, o[m][n][1] * invA);
            if ((lane & 3) == 0) lse[((long long)bi * nh + h) * t + rowA] = mx[m][0] / LOG2E + logf(lA);
        }
        if (rowB < t) {
            bf16* dst = out + ((long long)bi * t + rowB) * nh * 64 + h * 64 + c;
#pragma unroll
            for (int n = 0; n < 8; n++) st2(dst + n * 8, o[m][n][2] * invB, o[m][n][3] * invB);
            if ((lane & 3) == 0) lse[((long long)bi * nh + h) * t + rowB] = mx[m][1] / LOG2E + logf(lB);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// dq: a block per (128 queries, head), warp w owns queries q0 + 32 w .. + 31 (two m16 tiles; Q
// and dO fragments in registers). K/V stream in 64-key tiles 0 .. min(2 qb + 1, ceil(t / 64) - 1);
// per tile two halves of 32 keys: s = q k^T, dp = do v^T, ds = p (dp - D) / 8, dq += ds k.
extern "C" __global__ void __launch_bounds__(attn_mma::THREADS, 2)
attention_mma_sm80_backward_dq_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                                    const float* cosTable, const float* sinTable, unsigned* amax, int t, int nh, int nkv) {
    using namespace attn_mma;
    __shared__ __align__(128) Row kv[2][2][64];   // [stage][K, V][row]
    const int width = (nh + 2 * nkv) * 64;
    const QueryTile tile = tc_query_tile(t, nh, nkv);
    const int h = tile.h, bi = tile.bi, g = tile.g, q0 = tile.q0, nkt = tile.nkt;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int w0 = q0 + warp * 32;   // this warp's rows w0 .. w0 + 31
    const bf16* batch = qkv + (long long)bi * t * width;

    cp_kv_tile(kv[0], qkv, t, nh, nkv, g, bi, 0);

    uint32_t qf[2][4][4], df[2][4][4];
    float lse2[2][2], dotv[2][2];   // [m][A, B]
    {
        const bf16* dbatch = dout + (long long)bi * t * nh * 64 + h * 64 + c;
        const long long statBase = ((long long)bi * nh + h) * t;
#pragma unroll
        for (int m = 0; m < 2; m++) {
            const int rowA = w0 + m * 16 + (lane >> 2), rowB = rowA + 8;
            const bool okA = rowA < t, okB = rowB < t;
            tc_a_fragments_global(qf[m], batch + (long long)rowA * width + h * 64 + c, okA,
                           batch + (long long)rowB * width + h * 64 + c, okB);
            tc_a_fragments_global(df[m], dbatch + (long long)rowA * nh * 64, okA, dbatch + (long long)rowB * nh * 64, okB);
            lse2[m][0] = okA ? lse[statBase + rowA] * LOG2E : 0.f;
            lse2[m][1] = okB ? lse[statBase + rowB] * LOG2E : 0.f;
            dotv[m][0] = okA ? dot[statBase + rowA] : 0.f;
            dotv[m][1] = okB ? dot[statBase + rowB] : 0.f;
        }
    }

    float dq[2][8][4];
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int n = 0; n < 8; n++) dq[m][n][0] = dq[m][n][1] = dq[m][n][2] = dq[m][n][3] = 0.f;
    const bool warpLive = w0 < t;
    // key - row of element (m, n, e) in the diagonal half (k0 == w0):
    // (8 n + c + (e & 1)) - (16 m + lane / 4 + 8 (e >> 1)); masked when > 0.
    const int relc = c - (lane >> 2);

    for (int kt = 0; kt < nkt; kt++) {
        tc_cp_wait_all();
        __syncthreads();   // tile kt visible to all; every warp is done with tile kt - 1's buffer
        if (kt + 1 < nkt) cp_kv_tile(kv[(kt + 1) & 1], qkv, t, nh, nkv, g, bi, (kt + 1) * 64);
        if (!warpLive) continue;
        const Row* ks = kv[kt & 1][0];
        const Row* vs = kv[kt & 1][1];
#pragma unroll 1
        for (int half = 0; half < 2; half++) {
            const int k0 = kt * 64 + half * 32;
            if (k0 > w0) break;         // every key of this half (and the next) follows every row
            const bool diag = k0 == w0;  // the half's keys are the warp's rows: mask per element
            float s[2][4][4], dp[2][4][4];
            mma2_abt<2>(s, qf, ks, half * 32, lane);
            mma2_abt<2>(dp, df, vs, half * 32, lane);
#pragma unroll
            for (int m = 0; m < 2; m++) {
#pragma unroll
                for (int n = 0; n < 4; n++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const bool masked = diag && 8 * n + (e & 1) + relc > 16 * m + 8 * (e >> 1);
                        const float p = masked ? 0.f : exp2f(s[m][n][e] * (SCALE * LOG2E) - lse2[m][e >> 1]);
                        s[m][n][e] = p * (dp[m][n][e] - dotv[m][e >> 1]) * SCALE;
                    }
                }
            }
#pragma unroll
            for (int kk = 0; kk < 2; kk++) {
                uint32_t a[2][4];
#pragma unroll
                for (int m = 0; m < 2; m++) {
                    a[m][0] = tc_pack(s[m][2 * kk][0], s[m][2 * kk][1]);
                    a[m][1] = tc_pack(s[m][2 * kk][2], s[m][2 * kk][3]);
                    a[m][2] = tc_pack(s[m][2 * kk + 1][0], s[m][2 * kk + 1][1]);
                    a[m][3] = tc_pack(s[m][2 * kk + 1][2], s[m][2 * kk + 1][3]);
                }
                mma2_av(dq, a, ks, half * 32 + kk * 16, lane);
            }
        }
    }
    float mx = 0.f;
#pragma unroll
    for (int m = 0; m < 2; m++) {
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            const int row = w0 + m * 16 + (lane >> 2) + 8 * hi;
            if (row < t) {
                float v[16];
#pragma unroll
                for (int n = 0; n < 8; n++) v[2 * n] = dq[m][n][2 * hi], v[2 * n + 1] = dq[m][n][2 * hi + 1];
                mx = fmaxf(mx, tc_store_row64(dqkv + ((long long)bi * t + row) * width + h * 64 + c, v, cosTable, sinTable, row, c));
            }
        }
    }
    if (amax) warp_amax(amax, bf16_round(mx));
}

// ---------------------------------------------------------------------------------------------
// dk, dv: a block per (128 keys j0 .. j0 + 127, kv head), warp w owns keys j0 + 32 w .. + 31 (two
// m16 tiles). K fragments in registers; V rows of the block in shared memory (read as A fragments
// with ldmatrix: the 255-register budget holds K, dk and dv for 32 keys but not V as well; at
// 128 dk + dv accumulators + 64 K, V fragments + 32 s, dp ptxas spills). It walks every query
// head of the group, and for each every 32-query tile from the diagonal (i0 = j0) to the end, as
// one flat sequence of tiles so the pipeline runs across heads; dk and dv sum the whole group in
// registers (fixed order: head, query tile, 16-query chunk).
// Transposed products: S^T = K Q^T, dP^T = V dO^T (rows keys, columns queries), dv += P^T dO,
// dk += dS^T Q, per 16-query chunk.
extern "C" __global__ void __launch_bounds__(attn_mma::THREADS, 2)
attention_mma_sm80_backward_dkv_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                                     const float* cosTable, const float* sinTable, unsigned* amax, int t, int nh, int nkv) {
    using namespace attn_mma;
    __shared__ __align__(128) Row vsm[128];         // V rows j0 .. j0 + 127 (zero past t)
    __shared__ __align__(128) Row qd[2][2][32];     // [stage][Q, dO][row]
    __shared__ __align__(16) float stat[2][2][32];  // [stage][lse, dot][row], raw values
    const int width = (nh + 2 * nkv) * 64, group = nh / nkv;
    int kb, g, bi;
    tc_key_block(kb, g, bi);
    const int j0 = kb * TC_BLOCK_ROWS;
    const int per = ((t + 31) >> 5) - 4 * kb, total = group * per;   // 32-query tiles from j0; per >= 1

    // Copies of flat tile `it` (head g * group + it / per, query rows j0 + 32 (it % per) .. + 31)
    // into stage st, as one cp.async group (with whatever copies were issued before it).
    auto load = [&](int it, int st) {
        const int tid = tc_tid();
        const int hh = it / per, h = g * group + hh, i0 = j0 + (it - hh * per) * 32, valid = t - i0;
        const long long row0 = (long long)bi * t + i0;
        cp_tile32(qd[st][0], qkv + row0 * width + h * 64, width, valid, tid);
        cp_tile32(qd[st][1], dout + row0 * (nh * 64) + h * 64, nh * 64, valid, tid);
        if (tid < 64) {
            const int r = tid & 31;   // 64 threads: 32 lse, then 32 dot
            const float* src = (tid < 32 ? lse : dot) + ((long long)bi * nh + h) * t + i0;
            tc_cp_async4(tc_smem(&stat[st][tid >> 5][r]), r < valid ? src + r : src, r < valid);
        }
        tc_cp_commit();
    };

    {   // V rows j0 .. j0 + 127 of kv head g (the first group, with tile 0)
        const int tid = threadIdx.x;
        const bf16* src = qkv + ((long long)bi * t + j0) * width + (nh + nkv + g) * 64;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const int idx = tid + k * THREADS, r = idx >> 3, col = (idx & 7) * 8;
            const bool ok = r < t - j0;
            tc_cp_async16(tc_smem(&vsm[r][col]), src + (ok ? (long long)r * width + col : 0), ok);
        }
    }
    load(0, 0);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int w0 = j0 + warp * 32;   // this warp's first key
    uint32_t kf[2][4][4];
#pragma unroll
    for (int m = 0; m < 2; m++) {
        const int keyA = w0 + m * 16 + (lane >> 2), keyB = keyA + 8;
        const bf16* rowA = qkv + ((long long)bi * t + keyA) * width + (nh + g) * 64 + c;
        tc_a_fragments_global(kf[m], rowA, keyA < t, rowA + 8LL * width, keyB < t);
    }
    const Row* vw = vsm + warp * 32;   // this warp's V rows

    float dk[2][8][4], dv[2][8][4];
#pragma unroll
    for (int m = 0; m < 2; m++)
#pragma unroll
        for (int n = 0; n < 8; n++) {
            dk[m][n][0] = dk[m][n][1] = dk[m][n][2] = dk[m][n][3] = 0.f;
            dv[m][n][0] = dv[m][n][1] = dv[m][n][2] = dv[m][n][3] = 0.f;
        }

    int i0 = j0;   // first query of tile it
    for (int it = 0; it < total; it++) {
        tc_cp_wait_all();
        __syncthreads();   // tile it (and V) visible; every warp is done with tile it - 1's buffers
        if (it + 1 < total) load(it + 1, (it + 1) & 1);
        const Row* qs = qd[it & 1][0];
        const Row* dos = qd[it & 1][1];
        const float* lses = stat[it & 1][0];
        const float* dots = stat[it & 1][1];
        // query i0 + col >= key w0 + 16 m + lane / 4 + 8 hi  <=>  col + rel >= 16 m + 8 hi
        const int rel = i0 - w0 - (lane >> 2);
        // Chunks whose every query precedes every key of the warp (i0 + 16 ch + 15 < w0: p = 0
        // throughout) are skipped: start at the first chunk that reaches the warp's first
        // key, ch0 = floor((w0 - i0) / 16) (> 0 only in the first four tiles of a head). The
        // per-element test needs no flag: it holds everywhere in a chunk at or after the warp's keys.
        const int ch0 = min(2, max(0, (w0 - i0) >> 4));
        i0 = i0 + 32 < t ? i0 + 32 : j0;   // the next tile's, or the next head's first
#pragma unroll 1
        for (int ch = ch0; ch < 2; ch++) {
            float s[2][2][4], dp[2][2][4];   // [m][n]: 32 keys x 16 queries
            mma2_abt<1>(s, kf, qs, ch * 16, lane);
            // dp = V dO^T: A fragments of V from shared memory, B of dO shared by both row tiles.
#pragma unroll
            for (int m = 0; m < 2; m++)
#pragma unroll
                for (int n = 0; n < 2; n++) dp[m][n][0] = dp[m][n][1] = dp[m][n][2] = dp[m][n][3] = 0.f;
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                uint32_t b[4];
                tc_ldmatrix4(b, &dos[ch * 16 + (lane & 7) + (lane >> 4) * 8][kk * 16 + ((lane >> 3) & 1) * 8]);
#pragma unroll
                for (int m = 0; m < 2; m++) {
                    uint32_t a[4];
                    tc_ldmatrix4(a, &vw[m * 16 + (lane & 7) + ((lane >> 3) & 1) * 8][kk * 16 + (lane >> 4) * 8]);
                    tc_mma(dp[m][0], a, b[0], b[1]);
                    tc_mma(dp[m][1], a, b[2], b[3]);
                }
            }
#pragma unroll
            for (int n = 0; n < 2; n++) {
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int col = ch * 16 + n * 8 + c + e;
                    const float l2 = lses[col] * LOG2E, d = dots[col];
#pragma unroll
                    for (int m = 0; m < 2; m++) {
#pragma unroll
                        for (int hi = 0; hi < 2; hi++) {   // key row w0 + 16 m + lane / 4 (+ 8 hi)
                            const int x = hi * 2 + e;
                            const bool valid = col + rel >= 16 * m + 8 * hi;
                            const float p = valid ? exp2f(s[m][n][x] * (SCALE * LOG2E) - l2) : 0.f;
                            s[m][n][x] = p;
                            dp[m][n][x] = p * (dp[m][n][x] - d) * SCALE;
                        }
                    }
                }
            }
            uint32_t pa[2][4], da[2][4];
#pragma unroll
            for (int m = 0; m < 2; m++) {
                pa[m][0] = tc_pack(s[m][0][0], s[m][0][1]);
                pa[m][1] = tc_pack(s[m][0][2], s[m][0][3]);
                pa[m][2] = tc_pack(s[m][1][0], s[m][1][1]);
                pa[m][3] = tc_pack(s[m][1][2], s[m][1][3]);
                da[m][0] = tc_pack(dp[m][0][0], dp[m][0][1]);
                da[m][1] = tc_pack(dp[m][0][2], dp[m][0][3]);
                da[m][2] = tc_pack(dp[m][1][0], dp[m][1][1]);
                da[m][3] = tc_pack(dp[m][1][2], dp[m][1][3]);
            }
            mma2_av(dv, pa, dos, ch * 16, lane);
            mma2_av(dk, da, qs, ch * 16, lane);
        }
    }
    float mx = 0.f;
#pragma unroll
    for (int m = 0; m < 2; m++) {
#pragma unroll
        for (int hi = 0; hi < 2; hi++) {
            const int key = w0 + m * 16 + (lane >> 2) + 8 * hi;
            if (key < t) {
                bf16* row = dqkv + ((long long)bi * t + key) * width + c;
                float k[16], v[16];
#pragma unroll
                for (int n = 0; n < 8; n++) {
                    k[2 * n] = dk[m][n][2 * hi], k[2 * n + 1] = dk[m][n][2 * hi + 1];
                    v[2 * n] = dv[m][n][2 * hi], v[2 * n + 1] = dv[m][n][2 * hi + 1];
                }
                mx = fmaxf(mx, tc_store_row64(row + (nh + g) * 64, k, cosTable, sinTable, key, c));
                mx = fmaxf(mx, tc_store_row64(row + (nh + nkv + g) * 64, v, nullptr, nullptr, key, c));
            }
        }
    }
    if (amax) warp_amax(amax, bf16_round(mx));
}

// Launch geometry, read by the host from the module (TensorCoreAttention.java): one definition
// for both sides. Dynamic shared memory: none (the kernels' shared memory is static).
extern "C" {
__constant__ int attention_mma_sm80_rows = TC_BLOCK_ROWS;   // queries (forward, dq) or keys (dkv) per block
__constant__ int attention_mma_sm80_threads = attn_mma::THREADS;
__constant__ int attention_mma_sm80_forward_shared = 0;
__constant__ int attention_mma_sm80_dq_shared = 0;
__constant__ int attention_mma_sm80_dkv_shared = 0;
}
