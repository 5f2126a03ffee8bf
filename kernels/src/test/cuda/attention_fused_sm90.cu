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
// MN-major) by its K tile (B, MN-major) into a 64 x 64 part; the two parts meet in shared memory,
// are summed there (warpgroup 0's first) into a tile in dq_acc's row layout, and one thread adds
// that tile to dq_acc by an asynchronous bulk reduction (cp.reduce.async.bulk, fp32 adds in L2), as
// FlashAttention-3 does, so no warp waits on the adds. K and V sit in shared memory, read K-major as
// the A operands of S^T and dP^T; each tile's S^T / dP^T are issued behind the previous tile's
// dV, dK and dQ products.
//
// The fixed order: a query tile m (64 rows of a head) gets contributions from key blocks
// n = m / 2 (its diagonal block, which stores) down to 0, each after the previous one: a counter
// per (batch, head, m) in global memory counts the blocks that have added; block n waits until it
// reads m / 2 - n (acquire), adds, and once its bulk addition is complete raises it (release).
// So every dQ element is the same sum in the same order each run. Blocks take their work from a
// ticket counter, shortest first (n = nb - 1 down to 0): block n waits only on block
// n + 1, which took an earlier ticket and so is running, and which reaches each tile two tiles a
// head ahead of block n; no deadlock, and little waiting. A last kernel rounds the fp32 dQ into
// dqkv's q columns.
//
// Launch: attention_fused_sm90_backward_split{1,2,4}_hs64 grid (ceil(t / 128) * nkv * b * split),
// 256 threads, SMEM_BYTES dynamic shared memory; sem (1 + b * nh * ceil(t / 64) ints) zeroed before
// each launch; dq_acc b * nh * t * 64 floats (not zeroed: each tile's first contributor stores);
// dkv_acc split * b * t * nkv * 128 floats past split 1. Then attention_fused_sm90_dq_round and,
// past split 1, attention_fused_sm90_dkv_round (any grid, 256 threads). The _unordered and _no_dq
// kernels (splits 1 and 4) time what the order and the dQ adds cost, the first with dq_acc zeroed;
// _no_dq_product (split 1) the dk/dv work alone in this kernel's form.
//
// The version before this one (every thread adding its dQ by fp32 atomics, waited for; the dQ
// products drained before each tile's S^T) measured 2.0-2.2x the pair's time on an H100 (b=8 t=2048
// 32/4 heads): the order cost nothing, the adds 1.0 ms, the body the rest. This one measured 1.65-1.81x
// (2.09-2.29 ms): its dk/dv work alone 0.24 ms above the dk/dv kernel's, the fifth product 0.39 ms, the
// adds 0.47 ms and their order 0.48 ms more (docs/perf-notes.md).
#include "../../main/cuda/attention_wgmma_sm90.cu"

namespace attn_fused {
using namespace attn_wgmma;
constexpr int THREADS = 256;
constexpr int K_OFF = STAGES * 2 * TILE_BYTES;           // [stage][Q, dO] tiles first; then [wg] K tiles
constexpr int V_OFF = K_OFF + 2 * TILE_BYTES;            // [wg] V tiles
constexpr int DS_OFF = V_OFF + 2 * TILE_BYTES;           // [parity][wg] dS^T tiles (double-buffered: see the loop)
constexpr int FSTAT_OFF = DS_OFF + 4 * TILE_BYTES;       // [stage][lse, dot][64] fp32
constexpr int PART_BYTES = 64 * 64 * 4;                 // one 64 x 64 fp32 dQ tile
constexpr int PART_OFF = FSTAT_OFF + STAGES * 2 * 64 * 4;  // [parity][wg] dQ parts, 16-byte chunks swizzled by row
constexpr int SUM_OFF = PART_OFF + 4 * PART_BYTES;        // the two parts' sum in dq_acc's row layout: the bulk add's source
constexpr int TICKET_OFF = SUM_OFF + PART_BYTES;
constexpr int SMEM_BYTES = TICKET_OFF + 16 + 1024;       // + slack to align the base to 1024
constexpr long long SPIN_LIMIT = 1ll << 24;              // a wait this long is a bug: trap rather than hang

// How dQ is summed: in the fixed order (the design), or, to time what that order costs, unordered
// (every tile added into a zeroed dq_acc: FlashAttention-3's way, not deterministic), or not at all
// (the body's time alone; dQ wrong), or not even computed (no dS store, no dQ product: the dk/dv
// kernel's work in this kernel's form).
enum DqSum { ORDERED, UNORDERED, NO_DQ, NO_DQ_PRODUCT };

__device__ __forceinline__ int ld_acquire(const int* p) {
    int v;
    asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// The one-thread operations below are predicated instructions rather than branches: ptxas
// serializes every wgmma of the kernel when a divergent path sits beside a wgmma in flight.

// *p += 1 with release semantics where `one` holds.
__device__ __forceinline__ void red_release_inc(int* p, bool one) {
    asm volatile("{\n.reg .pred q;\nsetp.ne.b32 q, %1, 0;\n@q red.release.gpu.global.add.s32 [%0], 1;\n}\n" ::"l"(p), "r"((int)one)
                 : "memory");
}

// An asynchronous bulk copy of `bytes` from shared memory to dst, added (fp32, in L2) where `add`
// holds and stored where `store` holds, as one bulk group of this thread.
__device__ __forceinline__ void bulk_to_global(float* dst, uint32_t src, int bytes, bool add, bool store) {
    asm volatile(
        "{\n.reg .pred a, s;\nsetp.ne.b32 a, %3, 0;\nsetp.ne.b32 s, %4, 0;\n"
        "@a fence.proxy.async.global;\n@s fence.proxy.async.global;\n"
        "@a cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n"
        "@s cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;\n"
        "@a cp.async.bulk.commit_group;\n@s cp.async.bulk.commit_group;\n}\n" ::"l"(dst),
        "r"(src), "r"(bytes), "r"((int)add), "r"((int)store)
        : "memory");
}

// Where `one` holds: this thread's bulk groups have read their shared-memory sources.
__device__ __forceinline__ void bulk_wait_read(bool one) {
    asm volatile("{\n.reg .pred q;\nsetp.ne.b32 q, %0, 0;\n@q cp.async.bulk.wait_group.read 0;\n}\n" ::"r"((int)one) : "memory");
}

// Where `one` holds: this thread's bulk groups are complete, their writes ordered before this
// thread's later generic accesses (a release that follows publishes them).
__device__ __forceinline__ void bulk_wait_done(bool one) {
    asm volatile("{\n.reg .pred q;\nsetp.ne.b32 q, %0, 0;\n@q cp.async.bulk.wait_group 0;\n@q fence.proxy.async.global;\n}\n"
                 ::"r"((int)one)
                 : "memory");
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
    const bool leader = threadIdx.x == 0;   // waits for the dQ turns and runs the bulk adds
    constexpr bool ADDS = SUM == ORDERED || SUM == UNORDERED, PRODUCT = SUM != NO_DQ_PRODUCT;

    float dk[32], dv[32], s[32], dp[32], dq[32];
#pragma unroll
    for (int i = 0; i < 32; i++) dk[i] = dv[i] = dq[i] = 0.f;

    // A tile's dQ goes from the two warpgroups' registers into their parts (shared memory, by tile
    // parity) one tile later, is summed (warpgroup 0's first) into the sum tile two tiles later, and
    // added to dq_acc by one bulk operation of the leader after that tile's barrier B; the count
    // is raised one tile later still, once the operation is complete. The stores and the waits sit
    // right after a wgmma wait, when no wgmma is in flight.
    auto head_of = [&](int tile) { return h0 + tile / per; };
    auto query_of = [&](int tile) { return j0 + (tile % per) * 64; };   // the tile's first query
    auto counter = [&](int tile) { return counters + ((long long)bi * nh + head_of(tile)) * mt + (query_of(tile) >> 6); };
    auto turn = [&](int tile) { return ((query_of(tile) >> 6) >> 1) - n; };   // the blocks that add to tile's queries before this one
    auto keep = [&](int tile) {   // this warpgroup's part of tile's dQ, rows of 64 floats, 16-byte chunk k of row r at k ^ (r & 7)
        float* x = reinterpret_cast<float*>(sgen + PART_OFF + (2 * (tile & 1) + wg) * PART_BYTES);
#pragma unroll
        for (int nn = 0; nn < 8; nn++)
#pragma unroll
            for (int rr = 0; rr < 2; rr++) {
                const int row = lrow + 8 * rr, col = 8 * nn + c;
                *reinterpret_cast<float2*>(x + row * 64 + (((col >> 2) ^ (row & 7)) << 2) + (col & 3)) =
                    make_float2(dq[4 * nn + 2 * rr], dq[4 * nn + 2 * rr + 1]);
            }
    };
    auto sum = [&](int tile) {   // tile's two parts -> the sum tile, each float4 chunk read where keep put it
        const float4* x0 = reinterpret_cast<const float4*>(sgen + PART_OFF + 2 * (tile & 1) * PART_BYTES);
        const float4* x1 = x0 + PART_BYTES / 16;
        float4* out = reinterpret_cast<float4*>(sgen + SUM_OFF);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const int e = k * THREADS + threadIdx.x, row = e >> 4, at = row * 16 + ((e & 15) ^ (row & 7));
            const float4 a = x0[at], b = x1[at];
            out[e] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
        }
    };
    auto wait_turn = [&](int tile) {   // the leader, until the blocks before this one have added to tile
        if (SUM == ORDERED && leader && turn(tile) > 0) {
            long long spins = 0;
            while (ld_acquire(counter(tile)) < turn(tile))
                if (++spins > SPIN_LIMIT) __trap();
        }
    };
    auto add = [&](int tile, bool when) {   // the sum tile into dq_acc (stored by the tile's first contributor)
        const int q = query_of(tile);
        const bool first = SUM == ORDERED && turn(tile) == 0;
        bulk_to_global(dq_acc + (((long long)bi * nh + head_of(tile)) * t + q) * 64, sbase + SUM_OFF, min(64, t - q) * 256,
                       ADDS && leader && when && !first, ADDS && leader && when && first);
    };
    auto done = [&](int tile, bool when) {   // the leader: the last add complete, then the tile's count raised
        bulk_wait_done(ADDS && leader && when);
        red_release_inc(counter(tile), SUM == ORDERED && leader && when);
    };
    // a do-while (total >= 1): with a path that skips the loop, the accumulators merge with zeros
    // after it, and ptxas serializes every wgmma
    int it = 0;
    do {
        tc_cp_wait_all();
        wg_fence_proxy();
        bulk_wait_read(ADDS && leader && it >= 3);   // tile it - 3's add has read the sum tile
        __syncthreads();   // [A] tile it visible to the tensor cores; every wgmma on tile it - 2 done
        if (it + 1 < total) load(it + 1, (it + 1) % STAGES);
        const int st = it % STAGES, q0 = query_of(it);
        const uint32_t qs = sbase + (2 * st) * TILE_BYTES, dos = qs + TILE_BYTES;
        // S^T / dP^T of this tile queue behind the previous tile's dV, dK and dQ products. A
        // warpgroup whose keys all follow the tile's queries (warpgroup 1 on the first tile of a head)
        // computes the tile anyway: the mask makes its p and dS exact zeros, and no branch sits
        // around the wgmma.
        ss_start(s, dp, ks, vs, qs, dos);   // S^T = K Q^T, dP^T = V dO^T: A = this warpgroup's K / V tiles
        wg_wait<0>();
        wg_fence_regs(dq);
        wg_fence_regs(s);
        wg_fence_regs(dp);
        if (ADDS && it >= 2) {
            sum(it - 2);   // both parts written before barrier B of it - 1
            wait_turn(it - 2);
        }
        if (PRODUCT && it >= 1) keep(it - 1);
        const uint32_t dst = sbase + DS_OFF + (2 * (it & 1) + wg) * TILE_BYTES;
        const float* lses = stat + st * 128;
        if (q0 < kw0 + 64)
            dkv_finish<true, PRODUCT>(s, dp, dk, dv, qs, dos, lses, lses + 64, q0 - krow, c, dst, lrow);
        else
            dkv_finish<false, PRODUCT>(s, dp, dk, dv, qs, dos, lses, lses + 64, q0 - krow, c, dst, lrow);
        wg_fence_proxy();   // the dS stores and the sum tile, for the async proxy's reads
        __syncthreads();    // [B] both dS tiles of this tile and both dQ parts of the previous one written; tile it - 2 summed
        done(it - 3, it >= 3);
        add(it - 2, it >= 2);
        // this warpgroup's part of dQ = dS K: A = its dS [query][key] from the [key][query] tile
        // (MN-major), B = its K tile [key][dim] (MN-major). The parity it & 1 tiles are rewritten only at
        // it + 2, after both warpgroups' waits of it + 1 and barrier A of it + 2.
        if constexpr (PRODUCT) {
            const uint32_t ds = sbase + DS_OFF + (2 * (it & 1) + wg) * TILE_BYTES;
            wg_fence();
            wg_mma_ss_first<1, 1>(dq, wg_desc_mnmajor(ds), wg_desc_mnmajor(ks));
#pragma unroll
            for (int kk = 1; kk < 4; kk++) wg_mma_ss<1, 1>(dq, wg_desc_mnmajor(ds + kk * 2048), wg_desc_mnmajor(ks + kk * 2048), 1);
            wg_commit();
        }
    } while (++it < total);
    // the last three tiles' dQ: tile total - 3 being added, total - 2 in its parts, total - 1 in registers
    wg_wait<0>();
    wg_fence_regs(dk);
    wg_fence_regs(dv);
    wg_fence_regs(dq);
    if (ADDS) {
        done(total - 3, total >= 3);
        __syncthreads();   // the sum tile free
        keep(total - 1);
        if (total >= 2) sum(total - 2);
        wg_fence_proxy();
        __syncthreads();
        if (total >= 2) {
            wait_turn(total - 2);
            add(total - 2, true);
            done(total - 2, true);
        }
        __syncthreads();   // the sum tile free
        sum(total - 1);
        wg_fence_proxy();
        __syncthreads();
        wait_turn(total - 1);
        add(total - 1, true);
        done(total - 1, true);
    }

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
ATTN_FUSED_KERNEL(1, NO_DQ_PRODUCT, _no_dq_product)

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
