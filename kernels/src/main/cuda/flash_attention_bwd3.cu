// Causal GQA attention backward on the tensor cores, head size 64, bf16 storage only: a faster
// deterministic replacement of flash2_backward_dq_hs64 / flash2_backward_dkv_hs64
// (flash_attention_pipelined.cu, removed once these kernels gave the same bits 13% faster on the
// H100; "flash2" below names them, see git history). Same arguments, layouts, numerics and outputs: the same
// products in the same order on the same operands, so the outputs are meant to be the same bits
// as flash2's (up to the sign of an exact zero, see "Causal skipping").
//
// Launch contract (static shared memory only, no dynamic shared memory, no attribute call):
//   flash3_backward_dq_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
//                           const float* dot, int t, int nh, int nkv)
//       grid (ceil(t / 128), nh, b), block 128 threads (4 warps), 36,864 bytes static shared
//   flash3_backward_dkv_hs64(same arguments as dq)
//       grid (ceil(t / 128), nkv, b), block 128 threads (4 warps), 37,376 bytes static shared
//   Both compiled for 2 blocks per SM (launch_bounds(128, 2): <= 255 registers per thread, so
//   8 warps per SM). The grids are those of flash2; only the block size changes (256 -> 128).
//   dot = rowsum(dO * O) [b, nh, t] comes from attention_backward_dot as for flash2; the two
//   kernels write disjoint parts of dqkv (dq: the Q columns, dkv: the K and V columns) and may
//   run in either order.
//
// Numerics: mma.sync m16n8k16 (bf16 in, fp32 accumulate), fp32 p / ds arithmetic with exactly
// flash2's expressions (p = exp2f(s * log2(e) / 8 - lse * log2(e)), ds = p * (dp - dot) / 8), p and
// ds rounded to bf16 as A operands; every accumulator receives its mma in flash2's order (dq: key
// chunks of 16 ascending; dk, dv: query head, then 16-query chunk ascending) on the same operand
// values (S and dP each as a chain of 4 k-steps from 0, as in flash2).
// Every element of dqkv is written exactly once, by one thread; no atomics: deterministic.
//
// Design (what changed against flash2, and why):
// - 32 rows per warp instead of 16 (dq: 32 queries; dkv: 32 keys), as two m16 tiles that share
//   every B fragment: each ldmatrix.x4 of a B operand feeds 4 mma instead of 2. At 2 mma per
//   ldmatrix.x4 the 128 B/clk shared-memory port (512 bytes = 4 clk per ldmatrix.x4 per SM, about
//   2.5 mma.sync m16n8k16 at the tensor rate mma.sync reaches on H100) was the bound of both flash2
//   kernels. Shared-memory bytes read per score: dq 24 -> 12, dkv 32 -> 24 (see the V note below).
// - Register budget 255 (4 warps per block, 2 blocks per SM, 8 warps per SM) instead of 128: the
//   resident operands of a 32-row warp stay in registers (dq: Q, dO fragments 64 registers, dq
//   accumulators 64; dkv: K fragments 32, dk, dv accumulators 128), with 4 to 16 independent mma
//   chains per step instead of 2 to 8. Blocks keep 128 rows: the grids are flash2's.
// - dkv keeps V in shared memory (the block's 128 rows, loaded once) and reads its A fragments
//   with ldmatrix (8 per 16-query chunk): K, V, dk and dv of 32 keys (192 registers) plus the
//   32 x 16 s and dp tiles do not fit 255 registers without spills (ptxas spilled 12 to 56 bytes in
//   every arrangement tried). To make room under 48 KB, dkv streams Q / dO in 32-query tiles
//   (2 stages x 2 x 32 rows) instead of 64: 18,432 (V) + 18,432 (Q, dO) + 512 (lse, dot) bytes.
//   Per chunk: 16 B-operand ldmatrix (4 mma each) + 8 for V (2 mma each) = 24 for 64 mma.
// - dq walks each 64-key tile in two halves of 32 keys (s, dp: 32 x 32 per warp, 64 registers);
//   dkv walks each 32-query tile in two chunks of 16 queries (s, dp: 32 x 16, 32 registers).
// - Streaming as in flash2: the streamed operand (K/V for dq; Q/dO, lse, dot for dkv) is double
//   buffered with cp.async (zero-fill past t, rows past t are never read), one __syncthreads per
//   tile: at the top of iteration i every thread waits for its copies of tile i, the barrier makes
//   tile i visible and guarantees that every warp is done with tile i - 1, whose buffer is then
//   refilled with tile i + 1 while tile i is computed. The resident operand is read straight from
//   global memory into A fragments (dkv's V: cp.async in the first group, never overwritten).
// - Causal skipping per warp at the granularity of the inner step: dq processes a 32-key half
//   iff its first key <= the warp's first row (w0, a multiple of 32), and masks per element only in
//   the half whose keys are the warp's rows (k0 == w0); dkv starts each tile at the first 16-query
//   chunk whose last query reaches the warp's first key, and applies the exact per-element test
//   everywhere (it holds on every element past the diagonal). Skipped steps are those flash2
//   computes with p = 0 (it adds exact zeros), so the sums are the same (a -0 that flash2 would
//   turn into +0 by adding a zero product may stay -0 here).
// - Rows past t: as in flash2. dq: keys >= t only occur in the diagonal half (k0 == w0 < t, keys
//   past t exceed every valid row and are masked); query rows >= t are computed on zeros and not
//   written; a warp with no valid row computes nothing (it still executes the barriers). dkv:
//   queries >= t have zero Q, dO, lse and dot (zero-filled), so p = 1 and ds = 0, and their
//   contributions p * dO and ds * Q are exact zeros; keys >= t are not written.
// - Longest blocks first: the linear block index is remapped so that the row block varies
//   slowest (dq: the last query block first; dkv: the first key block first); blocks are handed
//   out roughly in linear order, so the long blocks start in the first wave and the short ones
//   fill the tail (flash2 numbers blockIdx.x fastest, so its "longest first" holds only within a
//   head).
#include "tensor_core.cuh"

namespace fa3 {

constexpr int LD = 72;                        // padded row of a shared tile, in bf16 (conflict free)
constexpr float LOG2E = 1.4426950408889634f;
constexpr float SCALE = 0.125f;               // 1 / sqrt(64)
constexpr int THREADS = 128;

typedef bf16 Row[LD];

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
__device__ __forceinline__ void cp_kv(Row (*kv)[64], const bf16* qkv, int t, int nh, int nkv, int g, int bi, int k0) {
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

}  // namespace fa3

// ---------------------------------------------------------------------------------------------
// dq: a block per (128 queries, head), warp w owns queries q0 + 32 w .. + 31 (two m16 tiles; Q
// and dO fragments in registers). K/V stream in 64-key tiles 0 .. min(2 qb + 1, ceil(t / 64) - 1);
// per tile two halves of 32 keys: s = q k^T, dp = do v^T, ds = p (dp - D) / 8, dq += ds k.
extern "C" __global__ void __launch_bounds__(128, 2)
flash3_backward_dq_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                        int t, int nh, int nkv) {
    using namespace fa3;
    __shared__ __align__(128) Row kv[2][2][64];   // [stage][K, V][row]
    const int width = (nh + 2 * nkv) * 64;
    const QueryTile tile = tc_query_tile(t, nh, nkv);
    const int h = tile.h, bi = tile.bi, g = tile.g, q0 = tile.q0, nkt = tile.nkt;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int w0 = q0 + warp * 32;   // this warp's rows w0 .. w0 + 31
    const bf16* batch = qkv + (long long)bi * t * width;

    cp_kv(kv[0], qkv, t, nh, nkv, g, bi, 0);

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
        if (kt + 1 < nkt) cp_kv(kv[(kt + 1) & 1], qkv, t, nh, nkv, g, bi, (kt + 1) * 64);
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
#pragma unroll
    for (int m = 0; m < 2; m++) {
        const int rowA = w0 + m * 16 + (lane >> 2), rowB = rowA + 8;
        if (rowA < t) {
            bf16* dst = dqkv + ((long long)bi * t + rowA) * width + h * 64 + c;
#pragma unroll
            for (int n = 0; n < 8; n++) st2(dst + n * 8, dq[m][n][0], dq[m][n][1]);
        }
        if (rowB < t) {
            bf16* dst = dqkv + ((long long)bi * t + rowB) * width + h * 64 + c;
#pragma unroll
            for (int n = 0; n < 8; n++) st2(dst + n * 8, dq[m][n][2], dq[m][n][3]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// dk, dv: a block per (128 keys j0 .. j0 + 127, kv head), warp w owns keys j0 + 32 w .. + 31 (two
// m16 tiles). K fragments in registers; V rows of the block in shared memory (read as A fragments
// with ldmatrix: the 255-register budget holds K, dk and dv for 32 keys but not V as well; at
// 128 dk + dv accumulators + 64 K, V fragments + 32 s, dp ptxas spills). It walks every query
// head of the group, and for each every 32-query tile from the diagonal (i0 = j0) to the end, as
// one flat sequence of tiles so the pipeline runs across heads; dk and dv sum the whole group in
// registers (fixed order: head, query tile, 16-query chunk; the same chunk sequence as flash2).
// Transposed products: S^T = K Q^T, dP^T = V dO^T (rows keys, columns queries), dv += P^T dO,
// dk += dS^T Q, per 16-query chunk.
extern "C" __global__ void __launch_bounds__(128, 2)
flash3_backward_dkv_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                         int t, int nh, int nkv) {
    using namespace fa3;
    __shared__ __align__(128) Row vsm[128];         // V rows j0 .. j0 + 127 (zero past t)
    __shared__ __align__(128) Row qd[2][2][32];     // [stage][Q, dO][row]
    __shared__ __align__(16) float stat[2][2][32];  // [stage][lse, dot][row], raw values
    const int width = (nh + 2 * nkv) * 64, group = nh / nkv;
    int kb, g, bi;
    tc_key_block(kb, g, bi);
    const int j0 = kb * 128;
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
        // Chunks whose every query precedes every key of the warp (i0 + 16 ch + 15 < w0: flash2
        // adds them with p = 0) are skipped: start at the first chunk that reaches the warp's first
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
#pragma unroll
    for (int m = 0; m < 2; m++) {
        const int keyA = w0 + m * 16 + (lane >> 2), keyB = keyA + 8;
        if (keyA < t) {
            bf16* row = dqkv + ((long long)bi * t + keyA) * width + c;
#pragma unroll
            for (int n = 0; n < 8; n++) {
                st2(row + (nh + g) * 64 + n * 8, dk[m][n][0], dk[m][n][1]);
                st2(row + (nh + nkv + g) * 64 + n * 8, dv[m][n][0], dv[m][n][1]);
            }
        }
        if (keyB < t) {
            bf16* row = dqkv + ((long long)bi * t + keyB) * width + c;
#pragma unroll
            for (int n = 0; n < 8; n++) {
                st2(row + (nh + g) * 64 + n * 8, dk[m][n][2], dk[m][n][3]);
                st2(row + (nh + nkv + g) * 64 + n * 8, dv[m][n][2], dv[m][n][3]);
            }
        }
    }
}
