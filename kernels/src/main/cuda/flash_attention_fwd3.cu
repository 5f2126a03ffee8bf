// Causal GQA attention forward on the tensor cores, head size 64, bf16 storage only: a faster
// replacement of flash2_forward_hs64 (flash_attention_pipelined.cu, removed once this kernel gave
// the same bits 20% faster on the H100; "flash2" below names it, see git history). Same arguments, layouts,
// numerics and outputs: per output row the same mma products on the same operands in the same
// order (key tiles ascending, S as a chain of 4 k-steps from 0, P.V k-steps ascending), the same
// fp32 softmax expressions, so out and lse are meant to be flash2's bits (see "Numerics").
//
// Launch contract (static shared memory only, no dynamic shared memory, no attribute call):
//   flash3_forward_hs64(bf16* out, float* lse, const bf16* qkv, int t, int nh, int nkv)
//       grid (ceil(t / 128), nh, b), block 128 threads (4 warps), 36,864 bytes static shared,
//       compiled for 2 blocks per SM (launch_bounds(128, 2): <= 255 registers, 8 warps per SM).
//   The grid is flash2's; only the block size changes (256 -> 128), as for flash3_backward_*.
//   Layouts: qkv [b, t, (nh + 2 nkv) 64] bf16 (q heads, k heads, v heads), query head h reads kv
//   head h / (nh / nkv); out [b, t, nh 64] bf16; lse [b, nh, t] fp32, natural-log logsumexp of the
//   scaled scores q.k / 8. Any t >= 1; nh a multiple of nkv; bases 256-byte aligned.
//
// Numerics: mma.sync m16n8k16 (bf16 in, fp32 accumulate); s = (q.k) * (log2(e) / 8) in fp32, masked
// scores -inf, running max per 64-key tile, p = 2^(s - max), corr = 2^(max_old - max_new),
// l = l * corr + p-sums, o = o * corr + bf16(p) . V; out = o * (1 / l), lse = max / log2(e) + ln(l),
// with flash2's expressions written the same way (tc_online_softmax's, copied). One deliberate
// difference: 2^x uses ex2.approx.ftz.f32 where flash2's exp2f is ex2.approx.f32. Both are the
// same MUFU.EX2 for x >= -126; the non-ftz form wraps every exp in a range test and two predicated
// multiplies (3 more instructions per score) only to return a subnormal p (< 2^-126, a score more
// than 87 below its row max) where ftz returns 0. Such a p adds nothing to l (l >= 1 at the end)
// and at most 2^-126 |v| to o, so the outputs differ from flash2's only in such contrived cases
// (kFtzExp = false below restores exp2f, at ~200 more issued instructions per warp-tile, +30%;
// the 3-instruction expansion is ptxas's usual one, not checked here: no disassembler at hand).
// Also bit-neutral: o *= corr is skipped when corr == 1 for all 32 rows of the warp (x * 1 == x),
// and the all-masked half of a diagonal tile is skipped (see "Causal skipping").
// Every element of out and lse is written exactly once, by one thread; no atomics.
//
// Design (what changed against flash2, and why):
// - 32 query rows per warp instead of 16, as two m16 tiles that share every B fragment: each
//   ldmatrix.x4 of K (S = Q K^T) or V (O += P V) feeds 4 mma instead of 2. Per warp and 64-key
//   tile: 128 mma, 32 ldmatrix.x4 (flash2 per 16-row warp: 64 mma, 32 ldmatrix.x4), i.e. the
//   shared-memory bytes per score halve (16 -> 8) and there are twice as many independent
//   mma chains per warp (16 accumulators of 4-step chains for S, 16 for P.V).
// - 4 warps x 32 rows = 128 queries per block (flash2's grid), 255-register budget, 2 blocks per SM
//   (8 warps per SM, as FlashAttention-2's hdim-64 forward: 4 warps, 128 x 128, ~2 blocks/SM).
//   Registers live across the loop: o 64, Q fragments 32, max / sum 8; the 32 x 64 score tile 64.
// - K/V streaming as in flash2: 64-key tiles, double buffered with cp.async (16-byte cp.async.cg,
//   zero-fill through src-size 0 for rows past t: nothing past t is read), one __syncthreads per
//   tile: at the top of iteration kt every thread waits for its own copies of tile kt
//   (cp.async.wait_group 0), the barrier makes tile kt visible to all and guarantees every warp has
//   finished computing on tile kt - 1, whose buffer (stage (kt + 1) & 1) is then refilled with
//   tile kt + 1 while tile kt is computed. Q is read straight from global memory into A-fragment
//   registers (overlapping the copy of tile 0). 2 stages x (K, V) x 64 rows x 72 bf16 = 36,864 B.
// - Causal skipping (exact): key tiles 0 .. min(2 qb + 1, ceil(t / 64) - 1) are loaded; warp w
//   (rows w0 = q0 + 32 w .. w0 + 31) computes tile k0 iff k0 <= w0 (both multiples of 32, so this
//   is "some key <= some row", and also exactly flash2's test for each of the two 16-row halves);
//   the per-element mask (key > row) is applied only on the tile containing the diagonal
//   (k0 + 64 > w0, i.e. k0 == w0 or k0 == w0 - 32). When k0 == w0 the keys k0 + 32 .. k0 + 63
//   follow every row of the warp: their S products and P.V k-steps are skipped (flash2 computes
//   them and adds p = 0, exact zeros; only the sign of an exact zero may differ).
// - The mask is applied in a separate warp-uniform branch, so the 15 of ~16 tiles per warp that
//   do not cross the diagonal pay no per-score mask instructions (flash2 selects on every tile).
// - Rows past t: keys >= t only occur in the last key tile, which crosses the diagonal of every
//   warp that has a valid row (key >= t > row), so the mask removes them; query rows >= t are
//   computed on zeros and never written; a warp with no valid row computes nothing (it still
//   executes the barriers and its share of the copies).
// - Longest blocks first across the whole grid: the linear block index is remapped so that the
//   query block varies slowest (last query block first) and the head fastest (the heads of one
//   kv group run side by side: their K/V tiles are shared in L2). flash2 numbers blockIdx.x
//   fastest, so its "longest first" holds only within a head.
//
// Cost model, b = 8, t = 2048, nh = 32 (8 * 32 * 2048^2 / 2 = 5.37e8 scores needed):
//   flash2 computes 540,672 warp-tiles of 16 x 64 scores, flash3 270,336 of 32 x 64 (the same
//   5.54e8 scores, minus the skipped diagonal halves: -1.5%). Per warp-tile, counted in the PTX of
//   the loop (non-mov instructions; SASS adds 3 per non-ftz exp2f, flash2's 34 included below):
//                                 flash2 (16 x 64)    flash3 (32 x 64)
//     mma.sync m16n8k16                 64                 128
//     ldmatrix.x4 (mma per ldmatrix)    32 (2)              32 (4)
//     ex2 (MUFU)                        34                  68
//     cp.async + addressing             63                  57     (8 copies: 4 / thread before)
//     all issued (SASS estimate)       ~650                ~700     (/ score: 0.63 -> 0.34)
//   Per SM sub-partition (528 of them, 1.755 GHz; per SMSP a warp-tile costs: issue 1 clk per
//   instruction, shared memory 16 clk per ldmatrix.x4 (128 B/clk per SM), mma.sync ~6.2 clk each
//   (~0.65 per clk per SM, about 2/3 of H100's dense peak), MUFU 8 clk per warp instruction):
//     flash2: issue 0.38 ms, shared memory 0.30, mma 0.23, MUFU 0.16  -> measured 0.657 ms
//             (= 0.72 x issue + shared + mma, or 1.7 x the largest of them)
//     flash3: issue 0.20 ms, shared memory 0.15, mma 0.23, MUFU 0.16  -> 0.72 x 0.58 = 0.42 ms,
//             1.7 x 0.23 = 0.40 ms; at FlashAttention-2's efficiency on the same per-score
//             budget (SDPA's 0.375 ms = 0.63 x its sum) 0.37 ms.
//   Predicted: 0.41 ms (0.37 - 0.46 ms; 300 - 370 TFLOP/s), now bound by the tensor pipe and
//   MUFU rather than by shared memory and issue; ~0.25 ms saved per forward call (~6 ms of the
//   15.3 ms of forward attention per training step).
#include "tensor_core.cuh"

namespace fa3f {

constexpr int LD = 72;                        // padded row of a shared tile, in bf16 (conflict free)
constexpr float LOG2E = 1.4426950408889634f;
constexpr float SCALE = 0.125f;               // 1 / sqrt(64)
constexpr bool kFtzExp = true;                // false: exp2f exactly as flash2 (see header)

typedef bf16 Row[LD];

// 2^x: ex2.approx.ftz.f32 (= exp2f's MUFU.EX2 for x >= -126, 0 instead of a subnormal below).
__device__ __forceinline__ float ex2(float x) {
    if (kFtzExp) {
        float y;
        asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
        return y;
    }
    return exp2f(x);
}

constexpr uint32_t ROWB = LD * 2;              // bytes per shared row
constexpr uint32_t TILEB = 64 * ROWB;          // bytes per 64-row tile (K or V)
constexpr uint32_t STAGEB = 2 * TILEB;         // bytes per stage (K, V)

// Thread tid copies, of every 64-key tile, the 16-byte chunks (row crow + 16 j, columns ccol ..
// ccol + 7) of K and of V for j = 0 .. 3 (crow = tid / 8, ccol = 8 (tid % 8)): 8 cp.async per tile.
// src points at K row crow of tile kt (global), dst at kv[stage][0][crow][ccol] (shared); rows
// >= t are zero-filled without reading (their source operand is the valid address `any`).
__device__ __forceinline__ void cp_kv(uint32_t dst, const bf16* src, long long width, int nkv64, int valid,
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
// each a chain of the 4 k-steps from zero, as flash2's mma_abt). One ldmatrix.x4 = B of two
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

// o[m] (16 x 64) += bf16(p[m]) . V[0 .. 16 KS) for both row tiles, k-steps of 16 keys ascending
// (flash2's mma_pv order). One ldmatrix.x4.trans = B of two 8-column tiles: 4 mma. vaddr: this
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

}  // namespace fa3f

// ---------------------------------------------------------------------------------------------
// A block per (128 queries, head), warp w owns rows q0 + 32 w .. + 31 (two m16 tiles, Q fragments
// in registers); K/V stream in 64-key tiles 0 .. min(2 qb + 1, ceil(t / 64) - 1).
extern "C" __global__ void __launch_bounds__(128, 2)
flash3_forward_hs64(bf16* out, float* lse, const bf16* qkv, int t, int nh, int nkv) {
    using namespace fa3f;
    __shared__ __align__(128) Row kv[2][2][64];   // [stage][K, V][row]
    const int width = (nh + 2 * nkv) * 64;
    const QueryTile tile = tc_query_tile(t, nh, nkv);
    const int h = tile.h, bi = tile.bi, g = tile.g, q0 = tile.q0, nkt = tile.nkt;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int w0 = q0 + warp * 32;   // this warp's rows w0 .. w0 + 31
    const bf16* batch = qkv + (long long)bi * t * width;

    // Copy plan (see cp_kv): K row crow of tile 0, and this thread's shared destination in stage 0.
    const int crow = threadIdx.x >> 3, ccol = (threadIdx.x & 7) * 8;
    const bf16* kvsrc = batch + (long long)crow * width + (nh + g) * 64 + ccol;
    const uint32_t kvdst = tc_smem(&kv[0][0][crow][ccol]);
    cp_kv(kvdst, kvsrc, width, nkv * 64, t - crow, qkv);

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
            cp_kv(kvdst + ((kt + 1) & 1) * STAGEB, kvsrc + (long long)(k0 + 64) * width, width, nkv * 64, t - k0 - 64 - crow, qkv);
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
        // Online softmax of both row tiles: tc_online_softmax (tensor_core.cuh) with ex2 for exp2f
        // and the same expressions (l *= corr, then l += p0 + p1 per column pair, in n order); the
        // rescale of o is skipped when no row of the warp changed its maximum (o * 1 == o).
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
