// Experiment (test sources, not in the fatbin): the attention backward as one kernel on Hopper,
// FlashAttention-3's 5 products a tile instead of the 7 of the dq + dkv pair
// (attention_wgmma_sm90.cu), with dQ summed across key blocks in a fixed order so that the bits
// repeat. Measured against the pair by scripts/gpu-attention-harness (its "fused" run).
//
// Math and layouts: those of attention_wgmma_sm90.cu's dkv kernel (a block per 128 keys of a kv
// head, warpgroup wg owning keys kw0 = j0 + 64 wg .. + 63 as the M of S^T = K Q^T, dP^T = V dO^T,
// dV += P^T dO, dK += dS^T Q, looping over the query heads of its group and their 64-query tiles),
// plus per tile dQ_tile = dS K over the block's 128 keys: each warpgroup stores its dS^T (bf16,
// the A fragments of dK) into a swizzled shared tile [key][query] and multiplies it (A read
// MN-major) by its K tile (B, MN-major) into a 64 x 64 part; the two parts meet in shared memory
// and are summed (warpgroup 0's first) two tiles later. K and V sit in shared memory, read K-major
// as the A operands of S^T and dP^T.
//
// The fixed order: a query tile m (64 rows of a head) gets contributions from key blocks
// n = m / 2 (its diagonal block, which stores) down to 0, each after the previous one: a counter
// per (batch, head, m) in global memory counts the blocks that have added; block n waits until it
// reads m / 2 - n (acquire), adds with fp32 reductions, and after a fence and a barrier raises it
// (release). So every dQ element is the same sum in the same order each run. Blocks take their
// work from a ticket counter, shortest first (n = nb - 1 down to 0): block n waits only on block
// n + 1, which took an earlier ticket and so is running, and which reaches each tile two tiles a
// head ahead of block n; no deadlock, and little waiting. A last kernel rounds the fp32 dQ into
// dqkv's q columns.
//
// Launch: attention_fused_sm90_backward_split{1,2,4}_hs64 grid (ceil(t / 128) * nkv * b * split),
// 256 threads, SMEM_BYTES dynamic shared memory; sem (1 + b * nh * ceil(t / 64) ints) zeroed before
// each launch; dq_acc b * nh * t * 64 floats (not zeroed: each tile's first contributor stores);
// dkv_acc split * b * t * nkv * 128 floats past split 1. Then attention_fused_sm90_dq_round and,
// past split 1, attention_fused_sm90_dkv_round (any grid, 256 threads). The _unordered and _no_dq
// kernels (splits 1 and 4) time what the order and the dQ adds cost; the first needs dq_acc zeroed.
//
// Measured (H100, b=8 t=2048 32/4 heads): 2.0-2.2x the pair's time. The order costs nothing (unordered
// atomics are no faster); the synchronous dQ adds cost 1.0 ms and the body the rest (docs/perf-notes.md).
#include "../../main/cuda/attention_wgmma_sm90.cu"

namespace attn_fused {
using namespace attn_wgmma;
constexpr int THREADS = 256;
constexpr int K_OFF = STAGES * 2 * TILE_BYTES;           // [stage][Q, dO] tiles first; then [wg] K tiles
constexpr int V_OFF = K_OFF + 2 * TILE_BYTES;            // [wg] V tiles
constexpr int DS_OFF = V_OFF + 2 * TILE_BYTES;           // [parity][wg] dS^T tiles (double-buffered: see the loop)
constexpr int FSTAT_OFF = DS_OFF + 4 * TILE_BYTES;       // [stage][lse, dot][64] fp32
constexpr int XB_BYTES = 2 * 32 * 128 * 4;              // [wg][accumulator][thread] fp32: each warpgroup's dQ part
constexpr int XB_OFF = FSTAT_OFF + STAGES * 2 * 64 * 4;  // [parity] of those
constexpr int TICKET_OFF = XB_OFF + 2 * XB_BYTES;
constexpr int SMEM_BYTES = TICKET_OFF + 16 + 1024;       // + slack to align the base to 1024
constexpr long long SPIN_LIMIT = 1ll << 24;              // a wait this long is a bug: trap rather than hang

__device__ __forceinline__ int ld_acquire(const int* p) {
    int v;
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// *p += 1 with release semantics by the thread where `one` holds; a predicated instruction rather
// than a branch, so that no divergent path sits beside the wgmma in flight (ptxas would serialize them).
__device__ __forceinline__ void red_release_inc(int* p, bool one) {
    asm volatile("{\n.reg .pred q;\nsetp.ne.b32 q, %1, 0;\n@q red.release.gpu.global.add.s32 [%0], 1;\n}\n" ::"l"(p), "r"((int)one)
                 : "memory");
}

// S^T = K Q^T and dP^T = V dO^T (64 keys x 64 queries), A = this warpgroup's K / V tiles (K-major),
// B = the stage's Q / dO tiles (K-major); one commit group.
__device__ __forceinline__ void fused_start(float (&s)[32], float (&dp)[32], uint32_t ks, uint32_t vs, uint32_t qs, uint32_t dos) {
    wg_fence();
    wg_mma_ss_first<0, 0>(s, wg_desc_kmajor(ks), wg_desc_kmajor(qs));
#pragma unroll
    for (int kk = 1; kk < 4; kk++) wg_mma_ss<0, 0>(s, wg_desc_kmajor(ks + kk * 32), wg_desc_kmajor(qs + kk * 32), 1);
    wg_mma_ss_first<0, 0>(dp, wg_desc_kmajor(vs), wg_desc_kmajor(dos));
#pragma unroll
    for (int kk = 1; kk < 4; kk++) wg_mma_ss<0, 0>(dp, wg_desc_kmajor(vs + kk * 32), wg_desc_kmajor(dos + kk * 32), 1);
    wg_commit();
}

// This thread's half of one query tile's dQ (rows q0 .. q0 + 63 of a head; the accumulator columns
// 8 n .. 8 n + 7 for n = 4 half .. 4 half + 3) into dq_acc in the fixed order: sum the two
// warpgroups' parts (xb: [wg][accumulator][thread], warpgroup 0's first), wait until the count
// reads `expected` (lane 0 of each warp), then store (the first contributor) or add. Rows >= t are
// left alone.
// How dQ is summed: in the fixed order (the design), or, to time what that order costs, with
// unordered fp32 atomics into a zeroed dq_acc (FlashAttention-3's way, not deterministic), or not at
// all (the body's time alone; dQ wrong).
enum DqSum { ORDERED, UNORDERED, NO_DQ };

template <DqSum SUM>
__device__ __forceinline__ void add_dq(const float* xb, int tid128, int half, float* dq_acc, const int* counter, int expected,
                                       long long rowbase, int q0, int t, int warp, int lane, int c) {
    float v[16];
#pragma unroll
    for (int j = 0; j < 16; j++) {
        const int i = 16 * half + j;
        v[j] = xb[i * 128 + tid128] + xb[(32 + i) * 128 + tid128];
    }
    if (SUM == ORDERED && expected > 0) {
        if (lane == 0) {
            long long spins = 0;
            while (ld_acquire(counter) < expected)
                if (++spins > SPIN_LIMIT) __trap();
        }
        __syncwarp();
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = q0 + (warp & 3) * 16 + (lane >> 2) + 8 * r;
        if (row < t) {
            float* dst = dq_acc + (rowbase + row) * 64 + c;
#pragma unroll
            for (int k = 0; k < 4; k++) {   // accumulators 4 n + 2 r, + 1 with n = 4 half + k
                const float2 x = make_float2(v[4 * k + 2 * r], v[4 * k + 2 * r + 1]);
                float* d = dst + (4 * half + k) * 8;
                if (SUM == ORDERED && expected == 0)
                    *reinterpret_cast<float2*>(d) = x;
                else
                    atomicAdd(reinterpret_cast<float2*>(d), x);
            }
        }
    }
}

// SPLIT: the blocks a (key block, kv head) is split into, each over group / SPLIT of its query heads
// (SPLIT must divide the group). Past 1 each writes its fp32 dK / dV part to dkv_acc
// [SPLIT, b, t, nkv, 2, 64] and attention_fused_sm90_dkv_round sums them in order; more, shorter
// blocks shorten the tail of the shortest-first schedule.
template <int SPLIT, DqSum SUM>
__device__ __forceinline__ void backward_body(bf16* dqkv, float* dq_acc, float* dkv_acc, int* sem, const bf16* dout,
                                              const bf16* qkv, const float* lse, const float* dot, int t, int nh, int nkv) {
    extern __shared__ __align__(1024) unsigned char smem_raw[];
    const uint32_t raw = tc_smem(smem_raw), sbase = smem_base(smem_raw);
    unsigned char* sgen = smem_raw + (sbase - raw);
    const float* stat = reinterpret_cast<const float*>(sgen + FSTAT_OFF);
    int* ticket = reinterpret_cast<int*>(sgen + TICKET_OFF);
    const int width = (nh + 2 * nkv) * 64, group = nh / nkv;
    const int nb = (t + 127) >> 7, mt = (t + 63) >> 6, batch = gridDim.x / (nb * nkv * SPLIT);
    if (threadIdx.x == 0) *ticket = atomicAdd(sem, 1);
    __syncthreads();
    const int w = *ticket, gb = nkv * batch * SPLIT;
    const int n = nb - 1 - w / gb, g = (w % gb) % nkv, part = (w % gb) / nkv % SPLIT, bi = (w % gb) / (nkv * SPLIT);   // shortest first
    const int heads = group / SPLIT, h0 = g * group + part * heads;   // this block's query heads h0 .. h0 + heads - 1
    int* counters = sem + 1;
    const int j0 = n * 128;
    const int per = (t - j0 + 63) >> 6, total = heads * per;   // 64-query tiles from j0 per head; per >= 1

    auto load = [&](int it, int st) {
        const int tid = tc_tid();
        const int hh = it / per, h = h0 + hh, i0 = j0 + (it - hh * per) * 64, valid = t - i0;
        const long long row0 = (long long)bi * t + i0;
        cp_tile64_swz(sbase + (2 * st) * TILE_BYTES, qkv + row0 * width + h * 64, width, valid, tid);
        cp_tile64_swz(sbase + (2 * st + 1) * TILE_BYTES, dout + row0 * (nh * 64) + h * 64, nh * 64, valid, tid);
        if (tid < 128) {
            const int r = tid & 63;
            const float* src = (tid < 64 ? lse : dot) + ((long long)bi * nh + h) * t + i0;
            tc_cp_async4(sbase + FSTAT_OFF + ((2 * st + (tid >> 6)) * 64 + r) * 4, r < valid ? src + r : src, r < valid);
        }
        tc_cp_commit();
    };
    {   // the block's K and V rows: 2 tiles each (rows past t zero-filled; the source row clamped inside the tensor)
        const int tid = tc_tid();
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int k0 = j0 + 64 * half, valid = t - k0;
            const bf16* src = qkv + ((long long)bi * t + min(k0, t - 1)) * width + (nh + g) * 64;
            cp_tile64_swz(sbase + K_OFF + half * TILE_BYTES, src, width, valid, tid);
            cp_tile64_swz(sbase + V_OFF + half * TILE_BYTES, src + nkv * 64, width, valid, tid);
        }
    }
    load(0, 0);   // one commit group with the K and V copies

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int wg = warp >> 2;
    const int kw0 = j0 + wg * 64;
    const int lrow = (warp & 3) * 16 + (lane >> 2);   // this thread's first key row in the warpgroup's tile
    const int krow = kw0 + lrow;
    const uint32_t ks = sbase + K_OFF + wg * TILE_BYTES, vs = sbase + V_OFF + wg * TILE_BYTES;

    float dk[32], dv[32], s[32], dp[32], dq[32];
#pragma unroll
    for (int i = 0; i < 32; i++) dk[i] = dv[i] = dq[i] = 0.f;

    // The dQ parts go through shared memory (xb, by tile parity) and are added two tiles later, right
    // after the wait at the top of an iteration, when no wgmma is in flight: ptxas serializes every
    // wgmma of the kernel when those stores and waits sit beside wgmma in flight.
    auto xb = [&](int tile) { return reinterpret_cast<float*>(sgen + XB_OFF + (tile & 1) * XB_BYTES); };
    const int tid128 = threadIdx.x & 127;
    int h1 = 0, q1 = 0, h2 = 0, q2 = 0;   // head and first query of tiles it - 1 and it - 2
    auto counter = [&](int hd, int q) { return counters + ((long long)bi * nh + hd) * mt + (q >> 6); };
    auto add = [&](int tile, int hd, int q) {   // tile's dQ (head hd, first query q), both parts in xb
        const int m = q >> 6;
        if constexpr (SUM != NO_DQ)
            add_dq<SUM>(xb(tile), tid128, wg, dq_acc, counter(hd, q), (m >> 1) - n, ((long long)bi * nh + hd) * t, q, t, warp, lane, c);
        __threadfence();   // performed before the count is raised
    };
    auto keep = [&](int tile) {   // this warpgroup's part of tile's dQ into xb
        float* x = xb(tile);
#pragma unroll
        for (int i = 0; i < 32; i++) x[(32 * wg + i) * 128 + tid128] = dq[i];
    };
    for (int it = 0; it < total; it++) {
        tc_cp_wait_all();
        wg_fence_proxy();
        __syncthreads();   // [A] tile it visible to the tensor cores; every wgmma on tile it - 2 done
        if (it + 1 < total) load(it + 1, (it + 1) % STAGES);
        const int st = it % STAGES, hh = it / per, h = h0 + hh, q0 = j0 + (it - hh * per) * 64;
        const uint32_t qs = sbase + (2 * st) * TILE_BYTES, dos = qs + TILE_BYTES;
        // The previous tile's dV, dK and dQ part. A warpgroup whose keys all follow the tile's queries
        // (warpgroup 1 on the first tile of a head) computes the tile anyway: the mask makes its p and
        // dS exact zeros, and no branch sits around the wgmma.
        wg_wait<0>();
        wg_fence_regs(dq);
        if (it >= 2) add(it - 2, h2, q2);   // both parts written before barrier B of it - 1
        if (it >= 1) keep(it - 1);
        fused_start(s, dp, ks, vs, qs, dos);
        wg_wait<0>();   // S^T / dP^T
        const uint32_t dst = sbase + DS_OFF + (2 * (it & 1) + wg) * TILE_BYTES;
        wg_fence_regs(s);
        wg_fence_regs(dp);
        const float* lses = stat + st * 128;
        if (q0 < kw0 + 64)
            dkv_finish<true, true>(s, dp, dk, dv, qs, dos, lses, lses + 64, q0 - krow, c, dst, lrow);
        else
            dkv_finish<false, true>(s, dp, dk, dv, qs, dos, lses, lses + 64, q0 - krow, c, dst, lrow);
        wg_fence_proxy();   // the dS stores, for the dQ product's async-proxy reads
        __syncthreads();    // [B] both dS tiles of this tile and both dQ parts of the previous one written; tile it - 2 added
        red_release_inc(counter(h2, q2), threadIdx.x == 0 && it >= 2);   // tile it - 2
        // this warpgroup's part of dQ = dS K: A = its dS [query][key] from the [key][query] tile
        // (MN-major), B = its K tile [key][dim] (MN-major). The parity it & 1 tiles are rewritten only at
        // it + 2, after both warpgroups' waits of it + 1 and barrier A of it + 2.
        const uint32_t ds = sbase + DS_OFF + (2 * (it & 1) + wg) * TILE_BYTES;
        wg_fence();
        wg_mma_ss_first<1, 1>(dq, wg_desc_mnmajor(ds), wg_desc_mnmajor(ks));
#pragma unroll
        for (int kk = 1; kk < 4; kk++) wg_mma_ss<1, 1>(dq, wg_desc_mnmajor(ds + kk * 2048), wg_desc_mnmajor(ks + kk * 2048), 1);
        wg_commit();
        h2 = h1;
        q2 = q1;
        h1 = h;
        q1 = q0;
    }
    // the last two tiles' dQ
    wg_wait<0>();
    wg_fence_regs(dk);
    wg_fence_regs(dv);
    wg_fence_regs(dq);
    if (total >= 2) add(total - 2, h2, q2);
    keep(total - 1);
    __syncthreads();
    red_release_inc(counter(h2, q2), threadIdx.x == 0 && total >= 2);
    add(total - 1, h1, q1);
    __syncthreads();
    red_release_inc(counter(h1, q1), threadIdx.x == 0);

#pragma unroll
    for (int hi = 0; hi < 2; hi++) {
        const int key = krow + 8 * hi;
        if (key < t) {
            if (SPLIT == 1) {
                bf16* row = dqkv + ((long long)bi * t + key) * width + c;
#pragma unroll
                for (int nn = 0; nn < 8; nn++) {
                    st2(row + (nh + g) * 64 + nn * 8, dk[4 * nn + 2 * hi], dk[4 * nn + 2 * hi + 1]);
                    st2(row + (nh + nkv + g) * 64 + nn * 8, dv[4 * nn + 2 * hi], dv[4 * nn + 2 * hi + 1]);
                }
            } else {
                float* row = dkv_acc + (((long long)part * batch + bi) * t + key) * nkv * 128 + g * 128 + c;
#pragma unroll
                for (int nn = 0; nn < 8; nn++) {
                    st2(row + nn * 8, dk[4 * nn + 2 * hi], dk[4 * nn + 2 * hi + 1]);
                    st2(row + 64 + nn * 8, dv[4 * nn + 2 * hi], dv[4 * nn + 2 * hi + 1]);
                }
            }
        }
    }
}
}  // namespace attn_fused

#define ATTN_FUSED_KERNEL(S, SUM, NAME)                                                                                         \
    extern "C" __global__ void __launch_bounds__(attn_fused::THREADS, 1) attention_fused_sm90_backward##NAME##_split##S##_hs64( \
        bf16* dqkv, float* dq_acc, float* dkv_acc, int* sem, const bf16* dout, const bf16* qkv, const float* lse, const float* dot, \
        int t, int nh, int nkv) {                                                                                               \
        if (WG_ENABLED) attn_fused::backward_body<S, attn_fused::SUM>(dqkv, dq_acc, dkv_acc, sem, dout, qkv, lse, dot, t, nh, nkv); \
        else __trap();                                                                                                           \
    }
ATTN_FUSED_KERNEL(1, ORDERED, )
ATTN_FUSED_KERNEL(2, ORDERED, )
ATTN_FUSED_KERNEL(4, ORDERED, )
// What the order costs: the same kernels with unordered atomics (dq_acc zeroed first), and without dQ.
ATTN_FUSED_KERNEL(1, UNORDERED, _unordered)
ATTN_FUSED_KERNEL(4, UNORDERED, _unordered)
ATTN_FUSED_KERNEL(1, NO_DQ, _no_dq)
ATTN_FUSED_KERNEL(4, NO_DQ, _no_dq)

// dkv_acc's SPLIT parts summed in order (part 0 first) -> the k and v columns of dqkv, bf16; 8 values a thread.
extern "C" __global__ void attention_fused_sm90_dkv_round(bf16* dqkv, const float* dkv_acc, int split, int b, int t, int nh, int nkv) {
    const long long rows = (long long)b * t, total = rows * nkv * 16;   // chunks of 8 of [b t][nkv][2][64]
    const int width = (nh + 2 * nkv) * 64;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        const long long row = i / (nkv * 16);
        const int rem = (int)(i - row * nkv * 16), g = rem >> 4, kind = (rem >> 3) & 1, chunk = rem & 7;
        float v[8];
        for (int p = 0; p < split; p++) {
            const float* src = dkv_acc + ((long long)p * rows + row) * nkv * 128 + g * 128 + kind * 64 + chunk * 8;
            const float4 a = *reinterpret_cast<const float4*>(src), z = *reinterpret_cast<const float4*>(src + 4);
            const float x[8] = {a.x, a.y, a.z, a.w, z.x, z.y, z.z, z.w};
            for (int j = 0; j < 8; j++) v[j] = p == 0 ? x[j] : v[j] + x[j];
        }
        __nv_bfloat162 o[4];
        for (int j = 0; j < 4; j++) o[j] = __floats2bfloat162_rn(v[2 * j], v[2 * j + 1]);
        *reinterpret_cast<uint4*>(dqkv + row * width + (nh + kind * nkv + g) * 64 + chunk * 8) = *reinterpret_cast<uint4*>(o);
    }
}

// dq_acc [b, nh, t, 64] fp32 -> the q columns of dqkv [b, t, (nh + 2 nkv) 64], bf16; 8 values a thread.
extern "C" __global__ void attention_fused_sm90_dq_round(bf16* dqkv, const float* dq_acc, int b, int t, int nh, int nkv) {
    const long long total = (long long)b * nh * t * 8;   // chunks of 8
    const int width = (nh + 2 * nkv) * 64;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        const int chunk = (int)(i & 7);
        const long long row = i >> 3;   // (bi nh + h) t + q
        const int q = (int)(row % t);
        const long long bh = row / t;
        const int h = (int)(bh % nh), bi = (int)(bh / nh);
        const float4 a = *reinterpret_cast<const float4*>(dq_acc + row * 64 + chunk * 8);
        const float4 z = *reinterpret_cast<const float4*>(dq_acc + row * 64 + chunk * 8 + 4);
        __nv_bfloat162 o[4] = {__floats2bfloat162_rn(a.x, a.y), __floats2bfloat162_rn(a.z, a.w), __floats2bfloat162_rn(z.x, z.y),
                               __floats2bfloat162_rn(z.z, z.w)};
        *reinterpret_cast<uint4*>(dqkv + ((long long)bi * t + q) * width + h * 64 + chunk * 8) = *reinterpret_cast<uint4*>(o);
    }
}

// Launch geometry, as the main kernels publish theirs.
extern "C" {
__constant__ int attention_fused_sm90_threads = attn_fused::THREADS;
__constant__ int attention_fused_sm90_shared = attn_fused::SMEM_BYTES;
}
