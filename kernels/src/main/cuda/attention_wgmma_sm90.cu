// Causal grouped-query attention on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a
// only), head size 64, bf16 storage: the training kernels on H100 / H200. The same math, layouts
// and outputs as attention_mma_sm80.cu:
//   qkv [b, t, (nh + 2 nkv) 64]: q heads, then k heads, then v heads; query head h reads kv head
//   h / (nh / nkv). s_ij = q_i . k_j / 8 for keys j <= i, p = softmax_j(s), o_i = sum_j p_ij v_j.
//   forward:  out [b, t, nh 64] bf16; lse [b, nh, t] fp32, the natural-log logsumexp of s.
//   backward: with dot = rowsum(dout * out) [b, nh, t] (attention_backward_dot, attention.cu),
//             p = exp(s - lse), ds = p (dout . v - dot) / 8; dq = ds k, dk = ds^T q, dv = p^T dout.
//             The dq kernel writes the q columns of dqkv, the dkv kernel the k and v columns.
//             Given RoPE's cos / sin tables (else null), dq and dk are written turned back by
//             their positions' angles: the gradient with respect to qkv before RoPE (the
//             model's RoPE backward, done in the stores: tc_store_row64). Given amax (else
//             null), the largest magnitude each kernel stores joins amax[0] (warp_amax): what
//             an FP8 q/k/v matmul reading dqkv needs, without a pass of its own.
// Launch: forward and dq grid (ceil(t / 128), nh, b), dkv grid (ceil(t / 128), nkv, b); 256
// threads (2 warpgroups of 64 rows); dynamic shared memory above the 48 KB default, so each kernel
// needs cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES) once. The host reads rows, threads and
// shared bytes from the constants at the end. Any t >= 1, nh a multiple of nkv, bases 16-byte
// aligned. The sm_80 and compute_90 builds of these kernels trap.
// Numerics: those of attention_mma_sm80.cu, value for value: bf16 operands, fp32 accumulation
// (wgmma m64n64k16), S and dP as chains of 4 k-steps of 16 from zero, the same fp32 softmax
// expressions in log2 units, p and ds rounded to bf16 as A operands, the same accumulation orders.
// 2^x is ex2.approx.ftz.f32 throughout (the mma backward's exp2f differs only where p would be
// subnormal, < 2^-126: 0 here). Where the mma kernels skip work these add exact zeros. So the
// outputs are meant to be the mma kernels' bits (up to the sign of an exact zero); only agreement
// to bf16 rounding is promised. Every output element is written once by one thread; no
// atomics: deterministic.
// Design (FlashAttention-3's, without its producer warpgroup):
// - Warpgroup wg owns 64 rows of the block as the M = 64 of every wgmma. The resident operands
//   (Q in the forward, K and V in dkv) are register A operands, loaded once straight from global
//   memory in the mma.sync A layout, which is wgmma's register-A layout per warp; dq keeps Q and
//   dO in shared memory instead, freeing registers for a second set of S / dP accumulators. The
//   exponentiated S accumulators, packed to bf16, are the A fragments of the second products
//   (wgmma.cuh), so no score goes through shared memory. dkv works on transposed products
//   (S^T = K Q^T, dP^T = V dO^T, dV += P^T dO, dK += dS^T Q) so none needs a transpose.
// - The streamed tiles (K / V; Q / dO, lse and dot in dkv) go through 3 stages of cp.async into
//   the 128-byte-swizzled layout that one descriptor reads two ways: K-major (B[k = dim][n = row],
//   +32 bytes per k-step) and MN-major with the transpose flag (B[k = row][n = dim], +2048 bytes).
//   One barrier per tile: at the top of iteration i every thread waits for its copies of tile i
//   and fences them to the async proxy (cp.async writes are generic-proxy writes, wgmma reads
//   through the async proxy); the barrier publishes tile i, then tile i + 1 is copied into the
//   stage of tile i - 2, whose last wgmma was waited for in iteration i - 1. The third stage lets
//   a tile's last products stay in flight across the next barrier (dq: 4 stages, see there).
// - The forward overlaps per tile S of tile kt with P V of tile kt - 1 (two commit groups; wait for
//   S only), so the exponentials of tile kt run while P V of kt - 1 is on the tensor cores.
// - dq issues tile kt + 1's S / dP before tile kt's ds, so its tensor cores run through the
//   elementwise phase (about 10% faster than waiting for them tile by tile; the same bits).
// - A warpgroup skips a tile whose keys all follow its rows (or queries all precede its keys; dq
//   computes its one such tile, fully masked, to keep branches away from its wgmma) and
//   masks per element only on its diagonal tile (a template flag: other tiles carry no compare).
//   Keys >= t occur only on a diagonal tile, where they are masked; zero-filled rows past t give
//   exact zero contributions and are not written.
// - ptxas (-Xptxas -v after any change): no spills, and no C7513 / C7515 / C7518 (wgmma
//   serialization). That takes: accumulators never written by ordinary instructions while a wgmma
//   using them may be in flight (the softmax only reads S; ds goes straight into packed
//   fragments; the first k-step of a product declares its accumulators write-only), A-fragment
//   registers kept live until the wgmma reading them has completed (wg_fence_regs_u), and no wait
//   in a divergent branch around in-flight wgmma.
// - Longest blocks first, as in attention_mma_sm80.cu.
#ifndef TINYLLAMA_ATTENTION_WGMMA_SM90   // also included by the test sources' fused backward experiment
#define TINYLLAMA_ATTENTION_WGMMA_SM90
#include "tensor_core.cuh"
#include "wgmma.cuh"

namespace attn_wgmma {
constexpr float LOG2E = 1.4426950408889634f;
constexpr float SCALE = 0.125f;                            // 1 / sqrt(64)
constexpr int THREADS = 256;
constexpr int STAGES = 3;
constexpr int TILE_BYTES = 64 * 128;                        // 64 rows x 64 bf16, swizzled
constexpr int STAT_OFF = STAGES * 2 * TILE_BYTES;           // [stage][Q, dO] tiles, then stats
constexpr int SMEM_USED = STAT_OFF + STAGES * 2 * 64 * 4;   // + [stage][lse, dot][64] fp32
constexpr int SMEM_BYTES = SMEM_USED + 1024;                // + slack to align the base to 1024

// 64 rows x 64 bf16 (row stride `stride` elements) -> the swizzled tile at shared address dst;
// rows >= valid zero-filled without reading. 256 threads, 2 chunks of 16 bytes each.
__device__ __forceinline__ void cp_tile64_swz(uint32_t dst, const bf16* src, int stride, int valid, int tid) {
#pragma unroll
    for (int k = 0; k < 2; k++) {
        const int idx = tid + k * THREADS, r = idx >> 3, ch = idx & 7;
        const bool ok = r < valid;
        tc_cp_async16(dst + wg_swz(r, ch), src + (ok ? (long long)r * stride + ch * 8 : 0), ok);
    }
}

// The K/V stages of the dq kernel and of the forward: STAGES of a K tile and a V tile each, in
// dynamic shared memory aligned up to 1024 bytes.
constexpr int KV_STAGE = 2 * TILE_BYTES;
constexpr int KV_SMEM_BYTES = STAGES * KV_STAGE + 1024;          // + alignment slack = 50,176

// The 1024-byte aligned base of dynamic shared memory (swizzle atoms need it; the byte counts
// above carry the slack).
__device__ __forceinline__ uint32_t smem_base(const unsigned char* raw) { return (tc_smem(raw) + 1023) & ~1023u; }

// K and V rows kt * 64 .. + 63 of kv head g (batch bi) -> stage st at sbase, one cp.async group.
__device__ __forceinline__ void load_kv(uint32_t sbase, int st, const bf16* qkv, int bi, int kt, int t, int width, int nh,
                                        int nkv, int g) {
    const int tid = tc_tid(), k0 = kt * 64;
    const bf16* src = qkv + ((long long)bi * t + k0) * width + (nh + g) * 64;
    cp_tile64_swz(sbase + st * KV_STAGE, src, width, t - k0, tid);
    cp_tile64_swz(sbase + st * KV_STAGE + TILE_BYTES, src + nkv * 64, width, t - k0, tid);
    tc_cp_commit();
}

// 2^x as ex2.approx.ftz.f32: exp2f's MUFU.EX2 without the range test and fix-up multiplies that
// only serve subnormal results (p < 2^-126, then 0 here).
__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

// First half of a tile: S^T = K Q^T and dP^T = V dO^T (64 keys x 64 queries) issued as two
// commit groups, S^T's first, so that p can start before dP^T completes; qs / dos the shared
// addresses of the stage's Q and dO tiles.
__device__ __forceinline__ void dkv_start(float (&s)[32], float (&dp)[32], const uint32_t (&kf)[4][4],
                                          const uint32_t (&vf)[4][4], uint32_t qs, uint32_t dos) {
    wg_fence();
    wg_mma_rs_first<0>(s, kf[0], wg_desc_kmajor(qs));
#pragma unroll
    for (int kk = 1; kk < 4; kk++) wg_mma_rs<0>(s, kf[kk], wg_desc_kmajor(qs + kk * 32), 1);
    wg_commit();
    wg_mma_rs_first<0>(dp, vf[0], wg_desc_kmajor(dos));
#pragma unroll
    for (int kk = 1; kk < 4; kk++) wg_mma_rs<0>(dp, vf[kk], wg_desc_kmajor(dos + kk * 32), 1);
    wg_commit();
}

// S = A_s B_s^T and dP = A_dp B_dp^T (64 x 64, head dim 64) with both operands read from shared
// tiles (K-major), one commit group: the dq kernel's S / dP (A = Q / dO, B = K / V).
__device__ __forceinline__ void ss_start(float (&s)[32], float (&dp)[32], uint32_t as, uint32_t adp, uint32_t bs, uint32_t bdp) {
    wg_fence();
    wg_mma_ss_first<0, 0>(s, wg_desc_kmajor(as), wg_desc_kmajor(bs));
#pragma unroll
    for (int kk = 1; kk < 4; kk++) wg_mma_ss<0, 0>(s, wg_desc_kmajor(as + kk * 32), wg_desc_kmajor(bs + kk * 32), 1);
    wg_mma_ss_first<0, 0>(dp, wg_desc_kmajor(adp), wg_desc_kmajor(bdp));
#pragma unroll
    for (int kk = 1; kk < 4; kk++) wg_mma_ss<0, 0>(dp, wg_desc_kmajor(adp + kk * 32), wg_desc_kmajor(bdp + kk * 32), 1);
    wg_commit();
}

// Second half, once S^T / dP^T are complete: p, then dV += P^T dO issued (its 4 wgmma run while
// ds is computed), then dK += dS^T Q; two commit groups. rel = first query - key row krow; diag:
// mask per element (query < key -> p = 0). STORE_DS (a kernel that also needs dS itself): ds, as
// rounded for dK, also goes to the swizzled shared tile ds_tile [key row][query], this thread's key
// rows being lrow and lrow + 8 of it. WAIT_DP: dP^T was issued as a commit group of its own after
// S^T's and may still be in flight on entry (dkv_start): waited for behind dV's issue, so that dP^T
// runs while p is computed (1-2% faster alone than waiting for both first; the same bits).
template <bool DIAG, bool STORE_DS = false, bool WAIT_DP = false>
__device__ __forceinline__ void dkv_finish(float (&s)[32], float (&dp)[32], float (&dk)[32], float (&dv)[32],
                                           uint32_t qs, uint32_t dos, const float* lses, const float* dots,
                                           int rel, int c, uint32_t ds_tile = 0, int lrow = 0) {
    uint32_t pa[4][4], da[4][4];
#pragma unroll
    for (int n = 0; n < 8; n++) {
        const float2 l2 = *reinterpret_cast<const float2*>(lses + n * 8 + c);
#pragma unroll
        for (int x = 0; x < 4; x++) {   // i = 4 n + x: key row krow + 8 (x / 2), query 8 n + c + x % 2
            const int i = 4 * n + x, col = n * 8 + c + (x & 1);
            const bool valid = !DIAG || col - 8 * (x >> 1) + rel >= 0;
            s[i] = valid ? fast_exp2(s[i] * (SCALE * LOG2E) - ((x & 1) ? l2.y : l2.x) * LOG2E) : 0.f;
        }
    }
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int j = 0; j < 4; j++) pa[kk][j] = tc_pack(s[8 * kk + 2 * j], s[8 * kk + 2 * j + 1]);
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wg_mma_rs<1>(dv, pa[kk], wg_desc_mnmajor(dos + kk * 2048), 1);
    wg_commit();
    if (WAIT_DP) {
        wg_wait<1>();   // dP^T; dV runs on
        wg_fence_regs(dp);
    }
    // ds straight into the packed A fragments: writing it back into dp (an accumulator of the
    // next S^T / dP^T, while dV's wgmma are in flight) would make ptxas serialize every wgmma.
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {   // columns 16 kk + 8 h + c, + 1
            const float2 d2 = *reinterpret_cast<const float2*>(dots + kk * 16 + h * 8 + c);
#pragma unroll
            for (int r = 0; r < 2; r++) {   // key rows krow + 8 r
                const int i = 8 * kk + 4 * h + 2 * r;
                da[kk][2 * h + r] = tc_pack(s[i] * (dp[i] - d2.x) * SCALE, s[i + 1] * (dp[i + 1] - d2.y) * SCALE);
                if (STORE_DS)   // key row lrow + 8 r, queries 16 kk + 8 h + c, + 1: chunk 2 kk + h, bytes 2 c in it
                    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(ds_tile + wg_swz(lrow + 8 * r, 2 * kk + h) + 2 * c),
                                 "r"(da[kk][2 * h + r])
                                 : "memory");
            }
        }
    }
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wg_mma_rs<1>(dk, da[kk], wg_desc_mnmajor(qs + kk * 2048), 1);
    wg_commit();
}

// ---- forward ----

// One key tile of the online softmax for this thread's rows qrow (r = 0) and qrow + 8 (r = 1): s
// (the S accumulators: s[4 n + 2 r + e] is key k0 + 8 n + c + e, raw q.k) -> p = 2^(s (log2(e) / 8)
// - max), packed into pb, the A fragments of P V (accumulator columns 16 kk .. + 15 = k-step kk);
// mx / l the running max (log2 units) and per-thread partial sums, updated; corr the rescale of o
// (applied by the caller). s is only read (see the header's ptxas note). The mma kernel's values
// all the same: the max is taken on raw scores and then scaled, which equals the max of the scaled
// scores (rounding is monotone); masked scores are skipped by the max and give p = 0, as the mma
// kernel's -inf does. rel = k0 - qrow; DIAG: mask key > row.
template <bool DIAG>
__device__ __forceinline__ void fwd_probs(const float (&s)[32], float (&mx)[2], float (&l)[2], float (&corr)[2],
                                          uint32_t (&pb)[4][4], int rel, int c) {
    auto masked = [&](int i) { return DIAG && 8 * (i >> 2) + c + (i & 1) + rel > 8 * ((i >> 1) & 1); };
    float x[2] = {-CUDART_INF_F, -CUDART_INF_F};
#pragma unroll
    for (int i = 0; i < 32; i++) {
        const int r = (i >> 1) & 1;
        x[r] = fmaxf(x[r], masked(i) ? -CUDART_INF_F : s[i]);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        x[r] = fmaxf(mx[r], x[r] * (SCALE * LOG2E));
        x[r] = fmaxf(x[r], __shfl_xor_sync(0xffffffffu, x[r], 1));
        x[r] = fmaxf(x[r], __shfl_xor_sync(0xffffffffu, x[r], 2));
        corr[r] = fast_exp2(mx[r] - x[r]);
        mx[r] = x[r];
        l[r] *= corr[r];
    }
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
#pragma unroll
        for (int j = 0; j < 4; j++) {   // accumulators i, i + 1: row r, keys 16 kk + 8 (j / 2) + c, + 1
            const int i = 8 * kk + 2 * j, r = j & 1;
            // Masked: the argument -inf, 2^-inf = 0 (the mma kernel's value). __fmul_rn (mul.rn) is
            // never contracted into an fma, as the mma kernel's product, which also feeds its max,
            // is not; a plain product here, used once, would be.
            auto arg = [&](int k) { return masked(k) ? -CUDART_INF_F : __fmul_rn(s[k], SCALE * LOG2E) - x[r]; };
            const float p0 = fast_exp2(arg(i)), p1 = fast_exp2(arg(i + 1));
            l[r] += p0 + p1;
            pb[kk][j] = tc_pack(p0, p1);
        }
    }
}

// o *= corr, skipped (as the mma kernel does) when no row of the warp changed its max (x * 1 == x:
// the same bits; once the maxima settle, most tiles). Called only with no wgmma on o in flight.
__device__ __forceinline__ void fwd_rescale(float (&o)[32], const float (&corr)[2]) {
    if (__any_sync(0xffffffffu, corr[0] != 1.f || corr[1] != 1.f)) {
#pragma unroll
        for (int i = 0; i < 32; i++) o[i] *= corr[(i >> 1) & 1];
    }
}

// S = Q K^T (4 k-steps from zero, K tile K-major) and O += P V (V tile MN-major, transposed), each
// issued without fence / commit.
__device__ __forceinline__ void fwd_qk(float (&s)[32], const uint32_t (&qf)[4][4], uint32_t ks) {
    wg_mma_rs_first<0>(s, qf[0], wg_desc_kmajor(ks));
#pragma unroll
    for (int kk = 1; kk < 4; kk++) wg_mma_rs<0>(s, qf[kk], wg_desc_kmajor(ks + kk * 32), 1);
}
__device__ __forceinline__ void fwd_pv(float (&o)[32], const uint32_t (&pa)[4][4], uint32_t vs) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wg_mma_rs<1>(o, pa[kk], wg_desc_mnmajor(vs + kk * 2048), 1);
}

// The forward (FlashAttention-3's intra-warpgroup overlap): per tile S of tile kt and P V of tile
// kt - 1 issued together, wait for S only, the exponentials of tile kt run while P V of kt - 1 is on
// the tensor cores, then wait for it, rescale o and pack P of kt (its P V is issued with the next
// S, or after the loop). The first processed tile (kt = 0) issues a P V of zeros (pa = 0, o stays
// 0) so that the loop has no branch around its waits; nothing is in flight across a barrier.
__device__ __forceinline__ void fwd_body(bf16* out, float* lse, const bf16* qkv, int t, int nh, int nkv) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t sbase = smem_base(smem_raw);
    const int width = (nh + 2 * nkv) * 64;
    const QueryTile tile = tc_query_tile(t, nh, nkv);
    const int h = tile.h, bi = tile.bi, g = tile.g, q0 = tile.q0, nkt = tile.nkt;

    auto load = [&](int kt, int st) { load_kv(sbase, st, qkv, bi, kt, t, width, nh, nkv, g); };
    load(0, 0);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int qw0 = q0 + (warp >> 2) * 64;                   // this warpgroup's first row
    const int qrow = qw0 + (warp & 3) * 16 + (lane >> 2);    // this thread's rows qrow, qrow + 8
    uint32_t qf[4][4];
    {
        const bf16* qA = qkv + ((long long)bi * t + qrow) * width + h * 64 + c;
        tc_a_fragments_global(qf, qA, qrow < t, qA + 8LL * width, qrow + 8 < t);
    }
    const bool live = qw0 < t;   // some row of this warpgroup exists

    float o[32], s[32], mx[2] = {-CUDART_INF_F, -CUDART_INF_F}, l[2] = {0.f, 0.f}, corr[2];
    uint32_t pa[4][4];
#pragma unroll
    for (int i = 0; i < 32; i++) o[i] = 0.f;
#pragma unroll
    for (int kk = 0; kk < 4; kk++) pa[kk][0] = pa[kk][1] = pa[kk][2] = pa[kk][3] = 0u;
    uint32_t pvs = sbase + TILE_BYTES;   // the V tile of the pending P V (tile 0's for the zeros)

    for (int kt = 0; kt < nkt; kt++) {
        tc_cp_wait_all();
        wg_fence_proxy();
        __syncthreads();   // tile kt visible to the tensor cores; every wgmma on tile kt - 2 done
        if (kt + 1 < nkt) load(kt + 1, (kt + 1) % STAGES);
        const int k0 = kt * 64;
        if (!live || k0 > qw0) continue;   // every key follows every row of this warpgroup (or no row exists)
        const uint32_t ks = sbase + (kt % STAGES) * KV_STAGE, vs = ks + TILE_BYTES;
        wg_fence();
        fwd_qk(s, qf, ks);
        wg_commit();
        // P V of the previous processed tile (kt - 1; zeros at kt = 0). Its stage is refilled only
        // at iteration kt + 1, after this iteration's wait.
        fwd_pv(o, pa, pvs);
        wg_commit();
        wg_wait<1>();   // S
        wg_fence_regs(s);
        uint32_t pb[4][4];   // P of this tile (pa still feeds the P V in flight)
        if (k0 == qw0)   // the diagonal tile: mask per element
            fwd_probs<true>(s, mx, l, corr, pb, k0 - qrow, c);
        else
            fwd_probs<false>(s, mx, l, corr, pb, k0 - qrow, c);
        wg_wait<0>();   // P V of tile kt - 1
        wg_fence_regs(o);
        wg_fence_regs_u(pa);   // pa live up to here: pb must not take its registers
        fwd_rescale(o, corr);
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int j = 0; j < 4; j++) pa[kk][j] = pb[kk][j];
        pvs = vs;
    }
    // P V of the last processed tile (the diagonal one: its stage is never refilled)
    wg_fence();
    fwd_pv(o, pa, pvs);
    wg_commit();
    wg_wait<0>();
    wg_fence_regs(o);
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = qrow + 8 * r;
        const float lr = tc_row_sum(l[r]);   // all lanes: the shuffles need the whole warp
        if (row < t) {
            const float inv = 1.f / lr;
            bf16* dst = out + ((long long)bi * t + row) * nh * 64 + h * 64 + c;
#pragma unroll
            for (int n = 0; n < 8; n++) st2(dst + n * 8, o[4 * n + 2 * r] * inv, o[4 * n + 2 * r + 1] * inv);
            if ((lane & 3) == 0) lse[((long long)bi * nh + h) * t + row] = mx[r] / LOG2E + logf(lr);
        }
    }
}

// ---- backward ----

// ds of one key tile -> the packed A fragments of dQ += dS K. S / dP accumulator i: query row
// qrow + 8 ((i / 2) % 2), key k0 + 8 (i / 4) + c + i % 2; rel = k0 - qrow; DIAG: mask key > query.
template <bool DIAG>
__device__ __forceinline__ void dq_ds(uint32_t (&da)[4][4], const float (&s)[32], const float (&dp)[32],
                                      const float (&lse2)[2], const float (&dotv)[2], int rel, int c) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {     // key columns 16 kk + 8 hh + c, + 1
#pragma unroll
            for (int r = 0; r < 2; r++) {    // query rows qrow + 8 r
                const int i = 8 * kk + 4 * hh + 2 * r, col = 16 * kk + 8 * hh + c;
                float v[2];
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const bool masked = DIAG && col + e + rel > 8 * r;
                    const float p = masked ? 0.f : fast_exp2(s[i + e] * (SCALE * LOG2E) - lse2[r]);
                    v[e] = p * (dp[i + e] - dotv[r]) * SCALE;
                }
                da[kk][2 * hh + r] = tc_pack(v[0], v[1]);
            }
        }
    }
}

// The lse (in log2 units) and dot of the dq kernel's rows qrow and qrow + 8 of query head h; zeros
// for rows past t.
__device__ __forceinline__ void dq_stats(float (&lse2)[2], float (&dotv)[2], const float* lse, const float* dot, int bi, int h,
                                         int qrow, int t, int nh) {
    const bool okA = qrow < t, okB = qrow + 8 < t;
    const long long sb = ((long long)bi * nh + h) * t;
    lse2[0] = okA ? lse[sb + qrow] * LOG2E : 0.f;
    lse2[1] = okB ? lse[sb + qrow + 8] * LOG2E : 0.f;
    dotv[0] = okA ? dot[sb + qrow] : 0.f;
    dotv[1] = okB ? dot[sb + qrow + 8] : 0.f;
}

// The dQ accumulators of rows qrow, qrow + 8 -> the q columns of head h in dqkv (bf16), rows past t
// skipped; with RoPE's tables, turned back by their positions first (tc_store_row64). Returns the
// largest magnitude stored, before rounding.
__device__ __forceinline__ float dq_store(bf16* dqkv, const float (&dq)[32], int bi, int h, int qrow, int c, int t, int width,
                                          const float* cosTable, const float* sinTable) {
    float m = 0.f;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = qrow + 8 * r;
        if (row < t) {
            float v[16];
#pragma unroll
            for (int n = 0; n < 8; n++) v[2 * n] = dq[4 * n + 2 * r], v[2 * n + 1] = dq[4 * n + 2 * r + 1];
            m = fmaxf(m, tc_store_row64(dqkv + ((long long)bi * t + row) * width + h * 64 + c, v, cosTable, sinTable, row, c));
        }
    }
    return m;
}

}  // namespace attn_wgmma

// ptxas: see the header.
extern "C" __global__ void __launch_bounds__(attn_wgmma::THREADS, 2)
attention_wgmma_sm90_forward_hs64(bf16* out, float* lse, const bf16* qkv, int t, int nh, int nkv) {
#if WG_ENABLED
    attn_wgmma::fwd_body(out, lse, qkv, t, nh, nkv);
#else
    __trap();   // wgmma exists only on sm_90a
#endif
}

namespace attn_wgmma {
__device__ __forceinline__ void dkv_body(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                                         const float* cosTable, const float* sinTable, unsigned* amax, int t, int nh, int nkv) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    // Swizzle atoms need 1024-byte alignment: align the base up (SMEM_BYTES has the slack).
    const uint32_t raw = tc_smem(smem_raw), sbase = smem_base(smem_raw);
    const float* stat = reinterpret_cast<const float*>(smem_raw + (sbase - raw) + STAT_OFF);
    const int width = (nh + 2 * nkv) * 64, group = nh / nkv;
    int kb, g, bi;
    tc_key_block(kb, g, bi);
    const int j0 = kb * TC_BLOCK_ROWS;
    const int per = (t - j0 + 63) >> 6, total = group * per;   // 64-query tiles from j0; per >= 1

    // Copies of flat tile `it` (head g group + it / per, queries j0 + 64 (it % per) ..) into
    // stage st, as one cp.async group.
    auto load = [&](int it, int st) {
        const int tid = tc_tid();
        const int hh = it / per, h = g * group + hh, i0 = j0 + (it - hh * per) * 64, valid = t - i0;
        const long long row0 = (long long)bi * t + i0;
        cp_tile64_swz(sbase + (2 * st) * TILE_BYTES, qkv + row0 * width + h * 64, width, valid, tid);
        cp_tile64_swz(sbase + (2 * st + 1) * TILE_BYTES, dout + row0 * (nh * 64) + h * 64, nh * 64, valid, tid);
        if (tid < 128) {
            const int r = tid & 63;   // 128 threads: 64 lse, then 64 dot
            const float* src = (tid < 64 ? lse : dot) + ((long long)bi * nh + h) * t + i0;
            tc_cp_async4(sbase + STAT_OFF + ((2 * st + (tid >> 6)) * 64 + r) * 4, r < valid ? src + r : src, r < valid);
        }
        tc_cp_commit();
    };
    load(0, 0);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int wg = warp >> 2;
    const int kw0 = j0 + wg * 64;                            // this warpgroup's first key
    const int krow = kw0 + (warp & 3) * 16 + (lane >> 2);    // this thread's key rows krow, krow + 8
    uint32_t kf[4][4], vf[4][4];   // A fragments (4 k-steps over the head dim) of K and V rows
    {
        const bf16* rowA = qkv + ((long long)bi * t + krow) * width + (nh + g) * 64 + c;
        const bool okA = krow < t, okB = krow + 8 < t;
        tc_a_fragments_global(kf, rowA, okA, rowA + 8LL * width, okB);
        tc_a_fragments_global(vf, rowA + nkv * 64, okA, rowA + 8LL * width + nkv * 64, okB);
    }

    float dk[32], dv[32], s[32], dp[32];
#pragma unroll
    for (int i = 0; i < 32; i++) dk[i] = dv[i] = 0.f;

    int i0 = j0;   // first query of tile it
    for (int it = 0; it < total; it++) {
        tc_cp_wait_all();
        wg_fence_proxy();
        __syncthreads();   // tile it visible to the tensor cores; every wgmma on tile it - 2 done
        if (it + 1 < total) load(it + 1, (it + 1) % STAGES);
        const int st = it % STAGES, q0 = i0;
        i0 = i0 + 64 < t ? i0 + 64 : j0;   // the next tile's, or the next head's first
        if (q0 + 63 < kw0) {   // every query precedes every key of this warpgroup
            wg_wait<0>();      // the previous tile's dV / dK: its stage is refilled next iteration
            continue;
        }
        const uint32_t qs = sbase + (2 * st) * TILE_BYTES;
        dkv_start(s, dp, kf, vf, qs, qs + TILE_BYTES);
        wg_wait<1>();   // S^T and the previous tile's dV / dK; dP^T runs on
        wg_fence_regs(s);
        if (q0 < kw0 + 64)   // the diagonal tile: mask per element
            dkv_finish<true, false, true>(s, dp, dk, dv, qs, qs + TILE_BYTES, stat + st * 128, stat + st * 128 + 64, q0 - krow, c);
        else
            dkv_finish<false, false, true>(s, dp, dk, dv, qs, qs + TILE_BYTES, stat + st * 128, stat + st * 128 + 64, q0 - krow, c);
        // No wait here: dV / dK of tile it run on through the barrier and the next tile's S^T / dP^T
        // (tile it's stage is refilled only at iteration it + 2, after the wait of it + 1).
    }
    wg_wait<0>();
    wg_fence_regs(dk);
    wg_fence_regs(dv);

    float m = 0.f;
#pragma unroll
    for (int hi = 0; hi < 2; hi++) {
        const int key = krow + 8 * hi;
        if (key < t) {
            bf16* row = dqkv + ((long long)bi * t + key) * width + c;
            float k[16], v[16];
#pragma unroll
            for (int n = 0; n < 8; n++) {
                k[2 * n] = dk[4 * n + 2 * hi], k[2 * n + 1] = dk[4 * n + 2 * hi + 1];
                v[2 * n] = dv[4 * n + 2 * hi], v[2 * n + 1] = dv[4 * n + 2 * hi + 1];
            }
            m = fmaxf(m, tc_store_row64(row + (nh + g) * 64, k, cosTable, sinTable, key, c));
            m = fmaxf(m, tc_store_row64(row + (nh + nkv + g) * 64, v, nullptr, nullptr, key, c));
        }
    }
    if (amax) warp_amax(amax, bf16_round(m));
}
}  // namespace attn_wgmma

extern "C" __global__ void __launch_bounds__(attn_wgmma::THREADS, 1)
attention_wgmma_sm90_backward_dkv_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                                       const float* cosTable, const float* sinTable, unsigned* amax, int t, int nh, int nkv) {
#if WG_ENABLED
    attn_wgmma::dkv_body(dqkv, dout, qkv, lse, dot, cosTable, sinTable, amax, t, nh, nkv);
#else
    __trap();   // wgmma exists only on sm_90a
#endif
}

// ---------------------------------------------------------------------------------------------
// dq: a block per (128 queries q0 .. q0 + 127, query head, batch); warpgroup wg owns queries
// qw0 = q0 + 64 wg .. + 63 as M, its Q and dO tiles copied once into shared memory. K / V stream in
// 64-key tiles k0 = 0, 64, .. while k0 < t and k0 <= q0 + 64, DQ_STAGES of cp.async; per tile
// S = Q K^T, dP = dO V^T (A = Q / dO, B = K / V, both K-major), ds = p (dp - dot) / 8 -> register A,
// dQ += dS K (B = K tile, MN-major). The tensor cores stay fed through the elementwise phase: tile
// kt + 1's S / dP are issued before tile kt's ds is computed (two sets of S / dP accumulators, the
// loop unrolled by two so each set keeps its registers) and dQ(kt) is queued behind them; each tile
// waits only for its own S / dP (wgmma groups complete in order), the last dQ stays in flight. A
// stage is refilled two tiles after its dQ was issued, hence 4 stages. The diagonal tile (k0 = qw0)
// masks per element; the tile whose keys all follow a warpgroup's queries (warpgroup 0's last) is
// computed, not skipped: fully masked, its dS is zeros, and no branch sits around a wgmma (ptxas
// serializes every wgmma of a kernel where one does). Keys >= t only occur in a diagonal or fully
// masked tile; query rows >= t are computed on zeros and not written.
namespace attn_wgmma {
constexpr int DQ_STAGES = 4;
constexpr int DQ_QDO_OFF = DQ_STAGES * KV_STAGE;                      // [wg][Q, dO] tiles after the K / V stages
constexpr int DQ_SMEM_BYTES = DQ_QDO_OFF + 4 * TILE_BYTES + 1024;     // + alignment slack = 99,328

// One tile of the dq loop: tile kt's S / dP are in (s, dp), issued, with dQ(kt - 1) queued behind
// them (before tile 0, the wgmma that zeroes dQ). Unless LAST, tile kt + 1's S / dP are issued into
// (ns, ndp) before kt's ds is computed.
template <bool LAST>
__device__ __forceinline__ void dq_tile(float (&dq)[32], float (&s)[32], float (&dp)[32], float (&ns)[32], float (&ndp)[32],
                                        uint32_t qs, uint32_t dos, const float (&lse2)[2], const float (&dotv)[2], uint32_t sbase,
                                        int kt, int nkt, int qw0, int qrow, int c, const bf16* qkv, int bi, int t, int width, int nh,
                                        int nkv, int g) {
    wg_wait<1>();   // S / dP of tile kt and everything before them; dQ(kt - 1) runs on
    wg_fence_regs(s);
    wg_fence_regs(dp);
    if (!LAST) {
        tc_cp_wait_all();   // tile kt + 1 (copied one tile ago)
        wg_fence_proxy();
        __syncthreads();    // tile kt + 1 visible to the tensor cores; every wgmma on tile kt - 2 done
        if (kt + 2 < nkt) load_kv(sbase, (kt + 2) % DQ_STAGES, qkv, bi, kt + 2, t, width, nh, nkv, g);
        const uint32_t nks = sbase + ((kt + 1) % DQ_STAGES) * KV_STAGE;
        ss_start(ns, ndp, qs, dos, nks, nks + TILE_BYTES);
    }
    const int k0 = kt * 64;
    uint32_t da[4][4];
    if (k0 >= qw0)   // the diagonal tile (masked per element), or one wholly after the queries (all masked)
        dq_ds<true>(da, s, dp, lse2, dotv, k0 - qrow, c);
    else
        dq_ds<false>(da, s, dp, lse2, dotv, k0 - qrow, c);
    const uint32_t ks = sbase + (kt % DQ_STAGES) * KV_STAGE;
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wg_mma_rs<1>(dq, da[kk], wg_desc_mnmajor(ks + kk * 2048), 1);
    wg_commit();
}

__device__ __forceinline__ void dq_body(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                                        const float* cosTable, const float* sinTable, unsigned* amax, int t, int nh, int nkv) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t sbase = smem_base(smem_raw);
    const int width = (nh + 2 * nkv) * 64;
    const QueryTile tile = tc_query_tile(t, nh, nkv);
    const int h = tile.h, bi = tile.bi, g = tile.g, q0 = tile.q0, nkt = tile.nkt;

    {   // both warpgroups' Q and dO rows (zeros past t), in the first copy group
        const int tid = tc_tid();
#pragma unroll
        for (int w = 0; w < 2; w++) {
            const int r0 = min(q0 + 64 * w, t - 1), valid = t - (q0 + 64 * w);
            cp_tile64_swz(sbase + DQ_QDO_OFF + (2 * w) * TILE_BYTES, qkv + ((long long)bi * t + r0) * width + h * 64, width, valid, tid);
            cp_tile64_swz(sbase + DQ_QDO_OFF + (2 * w + 1) * TILE_BYTES, dout + ((long long)bi * t + r0) * (nh * 64) + h * 64, nh * 64,
                          valid, tid);
        }
    }
    load_kv(sbase, 0, qkv, bi, 0, t, width, nh, nkv, g);
    if (nkt > 1) load_kv(sbase, 1, qkv, bi, 1, t, width, nh, nkv, g);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2, wg = warp >> 2;
    const int qw0 = q0 + wg * 64;                               // this warpgroup's first query
    const int qrow = qw0 + (warp & 3) * 16 + (lane >> 2);       // this thread's rows qrow, qrow + 8
    const uint32_t qs = sbase + DQ_QDO_OFF + (2 * wg) * TILE_BYTES, dos = qs + TILE_BYTES;
    float lse2[2], dotv[2];
    dq_stats(lse2, dotv, lse, dot, bi, h, qrow, t, nh);

    float dq[32], s0[32], dp0[32], s1[32], dp1[32];
    tc_cp_wait_all();
    wg_fence_proxy();
    __syncthreads();   // Q, dO and tiles 0 and 1 visible
    ss_start(s0, dp0, qs, dos, sbase, sbase + TILE_BYTES);
    {   // dQ = 0 x K: zeroed by a wgmma behind S / dP of tile 0, so that every tile finds a dQ group
        // behind its S / dP (a branch between wait depths, or zeros written by other instructions,
        // makes ptxas serialize every wgmma)
        const uint32_t zero[4] = {0u, 0u, 0u, 0u};
        wg_fence();
        wg_mma_rs_first<1>(dq, zero, wg_desc_mnmajor(sbase));
        wg_commit();
    }
#define DQ_TILE(LAST, X, Y, K) \
    dq_tile<LAST>(dq, s##X, dp##X, s##Y, dp##Y, qs, dos, lse2, dotv, sbase, K, nkt, qw0, qrow, c, qkv, bi, t, width, nh, nkv, g)
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
    const float m = dq_store(dqkv, dq, bi, h, qrow, c, t, width, cosTable, sinTable);
    if (amax) warp_amax(amax, bf16_round(m));
}
}  // namespace attn_wgmma

extern "C" __global__ void __launch_bounds__(attn_wgmma::THREADS, 1)
attention_wgmma_sm90_backward_dq_hs64(bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse, const float* dot,
                                      const float* cosTable, const float* sinTable, unsigned* amax, int t, int nh, int nkv) {
#if WG_ENABLED
    attn_wgmma::dq_body(dqkv, dout, qkv, lse, dot, cosTable, sinTable, amax, t, nh, nkv);
#else
    __trap();   // wgmma exists only on sm_90a
#endif
}

// Launch geometry, read by the host from the module (TensorCoreAttention.java): one definition
// for both sides. The dynamic shared bytes include the slack that aligns the base to 1024.
extern "C" {
__constant__ int attention_wgmma_sm90_rows = TC_BLOCK_ROWS;   // queries (forward, dq) or keys (dkv) per block
__constant__ int attention_wgmma_sm90_threads = attn_wgmma::THREADS;
__constant__ int attention_wgmma_sm90_forward_shared = attn_wgmma::KV_SMEM_BYTES;
__constant__ int attention_wgmma_sm90_dq_shared = attn_wgmma::DQ_SMEM_BYTES;
__constant__ int attention_wgmma_sm90_dkv_shared = attn_wgmma::SMEM_BYTES;
}
#endif  // TINYLLAMA_ATTENTION_WGMMA_SM90
