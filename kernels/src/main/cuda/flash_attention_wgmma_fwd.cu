// Causal GQA attention forward on Hopper's warpgroup tensor-core instructions (wgmma, sm_90a),
// head size 64, bf16 storage only: a drop-in replacement of flash3_forward_hs64
// (flash_attention_fwd3.cu). Same arguments, layouts, numerics and outputs. Uses the building
// blocks of wgmma.cuh and fa4's tile copy / exp2 (flash_attention_wgmma.cu, included before this
// file by tinyllama.cu).
//
// Launch contract (dynamic shared memory; needs, once per process and device,
// cudaFuncSetAttribute(flash4_forward_hs64, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes)
// since the bytes exceed the 48 KB default; cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)
// with the driver API):
//   flash4_forward_hs64(bf16* out, float* lse, const bf16* qkv, int t, int nh, int nkv)
//       grid (ceil(t / 128), nh, b) (flash3's), block 256 threads (2 warpgroups of 64 query rows),
//       50,176 bytes dynamic shared memory (fa4::KV_SMEM_BYTES), no static shared memory,
//       launch_bounds(256, 2): <= 128 registers, 2 blocks (16 warps) per SM.
//   Layouts as flash3: qkv [b, t, (nh + 2 nkv) 64] bf16 (q heads, k heads, v heads), query head h
//   reads kv head h / (nh / nkv); out [b, t, nh 64] bf16; lse [b, nh, t] fp32, the natural-log
//   logsumexp of the scaled scores q.k / 8. Rows >= t of out and lse are not written. Any t >= 1;
//   nh a multiple of nkv; bases 16-byte aligned. Only sm_90a (H100 / H200) runs it: the sm_80 and
//   compute_90 builds trap.
//
// Numerics: flash3's, value for value: bf16 operands, fp32 accumulation (wgmma m64n64k16 instead
// of mma.sync m16n8k16), S as a chain of 4 k-steps of 16 from zero, s = (q.k) * (log2(e) / 8),
// masked scores excluded (flash3: -inf), running max per 64-key tile, corr = 2^(max_old - max_new),
// p = 2^(s - max) with ex2.approx.ftz.f32 (masked: 2^-inf = 0), l = l * corr, then l += p0 + p1
// per column pair in column order, o = o * corr + bf16(p) . V with the 16-key k-steps ascending;
// out = o * (1 / l), lse = max / log2(e) + ln(l) (l summed over the row's 4 lanes as tc_row_sum).
// One rewrite, value-preserving: the tile max is taken over the raw scores and then scaled
// (round(c max s) == max round(c s) for c > 0: rounding is monotone), so that S's accumulators are
// only read (see "ptxas"). Where flash3 skips work this kernel adds exact zeros instead: the
// all-masked half of its diagonal tile (p = 0 there: o + 0 . v == o, l + 0 == l; only the sign of
// an exact zero may differ). So the outputs are meant to be flash3's bits where wgmma rounds as mma.sync does (as
// measured for the backward kernels); only agreement to bf16 rounding is promised. Deterministic:
// every element of out and lse is written once, by one thread; no atomics.
//
// Design (FlashAttention-3's forward without its producer warpgroup and its ping-pong barriers):
// - A block per (128 queries q0 .. q0 + 127, query head, batch), warpgroup wg owns rows
//   qw0 = q0 + 64 wg .. + 63 as the M = 64 of every wgmma. Q rows are A operands from registers
//   (16 registers, loaded once straight from global memory in the mma.sync A layout, which is
//   wgmma's register-A layout per warp). K / V stream in 64-key tiles (those with k0 < t and
//   k0 <= q0 + 64) with cp.async into the 128-byte-swizzled layout: K read K-major for
//   S = Q K^T (B[k = dim][n = key], +32 bytes per k-step), V MN-major with the transpose flag for
//   O += P V (B[k = key][n = dim], +2048 bytes per k-step). P never goes through shared memory:
//   the exponentiated S accumulators, packed to bf16, are P's A fragments (wgmma.cuh); rows are
//   spread over the 4 lanes of a quad exactly as in flash3's mma.sync layout (the same 2 shuffles).
// - Two loops (fa4::fwd_body<PIPE>; FA4_FWD_PIPE picks the one flash4_forward_hs64 runs, the
//   harness checks and times the other too):
//   PIPE = 1 (default), FlashAttention-3's intra-warpgroup overlap: per tile, S of tile kt and P V
//     of the previous tile are issued together (two commit groups), wait for S only (wait 1), the
//     max / exponentials / sums of tile kt run while P V of kt - 1 is on the tensor cores, then
//     wait 0, o *= corr, and P of kt (computed into spare registers pb, since pa still feeds the
//     P V in flight) moves to pa. The first tile issues a P V of zeros (pa = 0, o stays 0) and the
//     last P V is issued after the loop by every warpgroup (zeros for one with no valid row), so
//     no wgmma or wait sits in a branch. Nothing is in flight across a barrier.
//   PIPE = 0: per tile S, wait, softmax, P V left in flight through the next barrier and the next
//     tile's S (whose wait covers it); exponentials and tensor cores overlap only across warpgroups.
//   Both rely on occupancy too: 128 registers (o 32, s 32, Q 16, P 16 + 16) fit 2 blocks per SM
//   (4 warpgroups, one warp of each per SM sub-partition), 2 x 50 KB of shared memory.
// - Three stages, one barrier per tile (the scheme of flash4_backward_dq_hs64): at the top of
//   iteration kt every thread waits for its copies of tile kt and fences them to the async proxy;
//   the barrier publishes tile kt, then tile kt + 1 is copied into the stage of tile kt - 2, whose
//   last reader (P V of kt - 2) was waited for in iteration kt - 1 (PIPE 1: issued and waited in
//   iteration kt - 1; PIPE 0: issued in kt - 2, waited in kt - 1), before that barrier.
// - A warpgroup skips a tile whose keys all follow its rows (k0 > qw0: wg 0's last tile; it joins
//   every barrier and copy) and masks per element only in its diagonal tile (k0 == qw0, a
//   template flag: the other tiles carry no compare; selects, not branches). The last processed
//   tile is the diagonal one, whose stage is never refilled (tile kd + 3 does not exist), so PIPE
//   1's P V after the loop reads intact V. Keys >= t occur only in the tile containing t - 1,
//   the diagonal tile of any warpgroup with a valid row that reads it, so the mask removes them;
//   they are zero-filled (nothing past t is read). Query rows >= t are computed on zero Q and not
//   written; a warpgroup with no valid row (qw0 >= t) skips every tile.
// - Longest blocks first, as flash3: the last query block first, the heads of a kv group side by
//   side (their K / V tiles are shared in L2).
// - ptxas (nvcc 13.0, -O3, sm_90a, -Xptxas -v): PIPE 1 128 registers, PIPE 0 126; 0 bytes stack,
//   0 spills; no C7513 / C7515 / C7518 (wgmma serialization). What it took (PIPE 1): S's
//   accumulators only read by the softmax (the first version wrote p back into them while P V
//   was in flight and drew C7515, though the conditional last P V below was there too); pa kept live until the wait 0 with an empty asm (wg_fence_regs_u), else ptxas gives
//   pb pa's registers, written while P V still reads them (C7513); the last P V unconditional
//   (inside `if (live)`: C7515). Masked scores are written as selects of the exponent's
//   argument (not shown to matter: NVVM still emits short branches for them on the diagonal tile).
//   Harness-only variants (attention_harness.cu): FUSED exponent 128 registers with a 4-byte
//   spill; launch_bounds(256, 1) (one block per SM) 138 registers: 128 is a squeeze, not a fit.
//
// Not yet run on a GPU (written offline; checked with kernels/src/test/cuda/attention_harness.cu
// through scripts/gpu-attention-harness, and its index / softmax logic emulated in numpy by
// kernels/src/test/cuda/flash4_forward_emulation.py).
#include "tensor_core.cuh"
#include "wgmma.cuh"

namespace fa4 {
constexpr int FWD_THREADS = 256;

#ifndef FA4_FWD_PIPE
#define FA4_FWD_PIPE 1   // which loop flash4_forward_hs64 runs (see fwd_body); the harness times both
#endif

// One key tile of the online softmax for this thread's rows qrow (r = 0) and qrow + 8 (r = 1): s
// (the S accumulators: s[4 n + 2 r + e] is key k0 + 8 n + c + e, raw q.k) -> p = 2^(s (log2(e) / 8)
// - max), packed into pb, the A fragments of P V (accumulator columns 16 kk .. + 15 = k-step kk);
// mx / l the running max (log2 units) and per-thread partial sums, updated; corr the rescale of o
// (applied by the caller). s is only read (see the header's ptxas note). flash3's values all
// the same: the max is taken on raw scores and then scaled, which equals the max of the scaled
// scores (rounding is monotone); masked scores are skipped by the max and give p = 0, as flash3's
// -inf does. rel = k0 - qrow; DIAG: mask key > row. FUSED: the exponent s c - max as one fma
// (FlashAttention-3's form; one rounding fewer than flash3's s * c, then - max: not flash3's bits,
// 32 instructions fewer per tile; only the harness builds it, to time it).
template <bool DIAG, bool FUSED>
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
            // Masked: the argument -inf, 2^-inf = 0 (flash3's value).
            // Not FUSED: __fmul_rn (mul.rn) is never contracted into an fma, as flash3's product,
            // which also feeds its max, is not; a plain product here, used once, would be.
            auto arg = [&](int k) {
                return masked(k) ? -CUDART_INF_F : FUSED ? fmaf(s[k], SCALE * LOG2E, -x[r]) : __fmul_rn(s[k], SCALE * LOG2E) - x[r];
            };
            const float p0 = fast_exp2(arg(i)), p1 = fast_exp2(arg(i + 1));
            l[r] += p0 + p1;
            pb[kk][j] = tc_pack(p0, p1);
        }
    }
}

// o *= corr, skipped (as flash3 does) when no row of the warp changed its max (x * 1 == x: the
// same bits; once the maxima settle, most tiles). Called only with no wgmma on o in flight.
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

// The kernel. PIPE false: per tile S, wait, softmax, P V left in flight through the next barrier
// and S (waited together with the next S). PIPE true (FlashAttention-3's intra-warpgroup
// overlap): per tile S of tile kt and P V of tile kt - 1 issued together, wait for S only, the
// exponentials of tile kt run while P V of kt - 1 is on the tensor cores, then wait for it,
// rescale o and pack P of kt (its P V is issued with the next S, or after the loop). The first
// processed tile (kt = 0) issues a P V of zeros (pa = 0, o stays 0) so that the loop has no branch
// around its waits; nothing is in flight across a barrier.
template <bool PIPE, bool FUSED = false>
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
    uint32_t pvs = sbase + TILE_BYTES;   // PIPE: the V tile of the pending P V (tile 0's for the zeros)

    for (int kt = 0; kt < nkt; kt++) {
        tc_cp_wait_all();
        wg_fence_proxy();
        __syncthreads();   // tile kt visible to the tensor cores; every wgmma on tile kt - 2 done
        if (kt + 1 < nkt) load(kt + 1, (kt + 1) % STAGES);
        const int k0 = kt * 64;
        if (!live || k0 > qw0) {       // every key follows every row of this warpgroup (or no row
            if (!PIPE) wg_wait<0>();   // exists); !PIPE: the previous P V, its stage is refilled next
            continue;
        }
        const uint32_t ks = sbase + (kt % STAGES) * KV_STAGE, vs = ks + TILE_BYTES;
        wg_fence();
        fwd_qk(s, qf, ks);
        wg_commit();
        if (PIPE) {
            // P V of the previous processed tile (kt - 1; zeros at kt = 0). Its stage is refilled only
            // at iteration kt + 1, after this iteration's wait.
            fwd_pv(o, pa, pvs);
            wg_commit();
            wg_wait<1>();   // S
            wg_fence_regs(s);
        } else {
            wg_wait<0>();   // S, and the previous tile's P V
            wg_fence_regs(s);
            wg_fence_regs(o);
        }
        uint32_t pb[4][4];   // P of this tile (PIPE: pa still feeds the P V in flight)
        if (k0 == qw0)   // the diagonal tile: mask per element
            fwd_probs<true, FUSED>(s, mx, l, corr, PIPE ? pb : pa, k0 - qrow, c);
        else
            fwd_probs<false, FUSED>(s, mx, l, corr, PIPE ? pb : pa, k0 - qrow, c);
        if (PIPE) {
            wg_wait<0>();   // P V of tile kt - 1
            wg_fence_regs(o);
            wg_fence_regs_u(pa);   // pa live up to here: pb must not take its registers
            fwd_rescale(o, corr);
#pragma unroll
            for (int kk = 0; kk < 4; kk++)
#pragma unroll
                for (int j = 0; j < 4; j++) pa[kk][j] = pb[kk][j];
            pvs = vs;
        } else {
            fwd_rescale(o, corr);
            wg_fence();
            fwd_pv(o, pa, vs);
            wg_commit();
            // No wait: this tile's P V runs on through the next barrier and S (its stage is refilled
            // only at iteration kt + 2, after the wait of kt + 1).
        }
    }
    if (PIPE) {   // P V of the last processed tile (the diagonal one: its stage is never refilled)
        wg_fence();
        fwd_pv(o, pa, pvs);
        wg_commit();
    }
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
}  // namespace fa4

// ptxas: see the header.
extern "C" __global__ void __launch_bounds__(256, 2)
flash4_forward_hs64(bf16* out, float* lse, const bf16* qkv, int t, int nh, int nkv) {
#if WG_ENABLED
    fa4::fwd_body<FA4_FWD_PIPE != 0>(out, lse, qkv, t, nh, nkv);
#else
    __trap();   // wgmma exists only on sm_90a
#endif
}
