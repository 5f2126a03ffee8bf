// Tensor-core building blocks shared by the attention kernels (attention_mma_sm80.cu,
// attention_wgmma_sm90.cu): bf16 packing, the mma.sync m16n8k16 tile product, ldmatrix loads,
// cp.async copies, and the block-to-tile mapping of the 128-row kernels. Fragment layouts are PTX's
// for m16n8k16 with bf16 operands and fp32 accumulators: a thread holds rows lane / 4 and
// lane / 4 + 8, columns (lane % 4) * 2 and + 1 of each 8-column tile.
#pragma once
#include "common.cuh"

// Two fp32 values -> one register of two bf16 (round to nearest even), lo in the low half.
__device__ __forceinline__ uint32_t tc_pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ uint32_t tc_smem(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// c += a . b, one m16n8k16 tile: a row-major 16x16 bf16, b col-major 16x8 bf16, c 16x8 fp32.
__device__ __forceinline__ void tc_mma(float* c, const uint32_t* a, uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 bf16 matrices from shared memory; lane i gives the address (a shared-memory byte
// address, or a pointer) of row i % 8 of matrix i / 8.
__device__ __forceinline__ void tc_ldmatrix4(uint32_t* r, uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address)
                 : "memory");
}

__device__ __forceinline__ void tc_ldmatrix4(uint32_t* r, const bf16* p) {
    tc_ldmatrix4(r, tc_smem(p));
}

// The same, each matrix transposed.
__device__ __forceinline__ void tc_ldmatrix4_trans(uint32_t* r, uint32_t address) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address)
                 : "memory");
}

__device__ __forceinline__ void tc_ldmatrix4_trans(uint32_t* r, const bf16* p) {
    tc_ldmatrix4_trans(r, tc_smem(p));
}

// ---- asynchronous copies (cp.async) and global fragment loads, for the 128-row kernels ----

// Query (forward, dq) or key (dkv) rows per block of the tensor-core attention kernels.
constexpr int TC_BLOCK_ROWS = 128;

constexpr int TC_LD = 72;      // a shared tile row of 64 bf16, padded so ldmatrix and cp.async are conflict free
typedef bf16 TcRow[TC_LD];

// 16-byte asynchronous global -> shared copy; when !valid nothing is read and 16 zero bytes are
// written (src-size 0); src must still be a valid address (callers pass the tile's first row).
__device__ __forceinline__ void tc_cp_async16(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}

// The same for 4 bytes (cached in L1: lse and dot rows).
__device__ __forceinline__ void tc_cp_async4(uint32_t dst, const void* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0)
                 : "memory");
}

__device__ __forceinline__ void tc_cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

__device__ __forceinline__ void tc_cp_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// 64 rows x 64 bf16 (row stride `stride` elements, src = the tile's first row, which must exist)
// -> dst[64][TC_LD]; rows >= valid are zero-filled without reading. THREADS threads, each
// 64 * 8 / THREADS copies of 16 bytes.
template <int THREADS>
__device__ __forceinline__ void tc_cp_tile(TcRow* dst, const bf16* src, int stride, int valid, int tid) {
#pragma unroll
    for (int k = 0; k < 64 * 8 / THREADS; k++) {
        const int idx = tid + k * THREADS, r = idx >> 3, col = (idx & 7) * 8;
        const bool ok = r < valid;
        tc_cp_async16(tc_smem(&dst[r][col]), src + (ok ? r * stride + col : 0), ok);
    }
}

// What a query-side kernel (forward, dq) owns: 128 queries from q0 of head h (kv head g) in batch
// row bi, and the 64-key tiles 0 .. nkt - 1 the causal mask reaches (k0 < t and k0 <= q0 + 64).
struct QueryTile {
    int h, bi, g, q0, nkt;
};

// A (query block, head, batch) grid numbered with the query block slowest and the last (the
// longest under the causal mask) first: blocks are handed out roughly in linear order, so the
// long blocks start in the first wave and the short ones fill the tail.
__device__ __forceinline__ QueryTile tc_query_tile(int t, int nh, int nkv) {
    const int hb = gridDim.y * gridDim.z;
    const int lin = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const int qi = lin / hb, rem = lin - qi * hb;
    const int qb = gridDim.x - 1 - qi, h = rem % gridDim.y, bi = rem / gridDim.y;
    return {h, bi, h / (nh / nkv), qb * TC_BLOCK_ROWS, min(2 * qb + 2, (t + 63) >> 6)};
}

// A (key block, kv head, batch) grid numbered with the key block slowest and the first (the
// longest under the causal mask) first: lin = x + X (y + Y z) -> kb = lin / (Y Z), g, bi from the rest.
__device__ __forceinline__ void tc_key_block(int& kb, int& g, int& bi) {
    const int Y = gridDim.y, gb = Y * gridDim.z;
    const int lin = blockIdx.x + gridDim.x * (blockIdx.y + Y * blockIdx.z);
    kb = lin / gb;
    const int rem = lin - kb * gb;
    g = rem % Y;
    bi = rem / Y;
}

// threadIdx.x read from the special register at the point of use (the compiler may not keep it,
// or values derived from it, live in a register across a loop body).
__device__ __forceinline__ int tc_tid() {
    int v;
    asm volatile("mov.u32 %0, %%tid.x;\n" : "=r"(v));
    return v;
}

__device__ __forceinline__ uint32_t tc_ldg32(const bf16* p) {
    return __ldg(reinterpret_cast<const unsigned int*>(p));
}

// A fragments (4 k-steps of 16 columns) of the 16 x 64 bf16 rows rowA = row0 + lane / 4 and
// rowB = rowA + 8, straight from global memory (pointers to column (lane % 4) * 2 of each row);
// rows that do not exist (okA / okB false) are zeros and are not read.
__device__ __forceinline__ void tc_a_fragments_global(uint32_t (*a)[4], const bf16* pA, bool okA, const bf16* pB, bool okB) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        a[kk][0] = okA ? tc_ldg32(pA + kk * 16) : 0u;
        a[kk][1] = okB ? tc_ldg32(pB + kk * 16) : 0u;
        a[kk][2] = okA ? tc_ldg32(pA + kk * 16 + 8) : 0u;
        a[kk][3] = okB ? tc_ldg32(pB + kk * 16 + 8) : 0u;
    }
}

// Sum over the 4 threads that hold one accumulator row (lanes 4 r .. 4 r + 3).
__device__ __forceinline__ float tc_row_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// One row of a head's 64 gradient columns from the accumulators to bf16 storage. A thread of the
// m16n8 (mma.sync) or wgmma accumulator layout holds columns 8 n + c and 8 n + c + 1 of its row as
// v[2 n], v[2 n + 1] (n = 0 .. 7). With RoPE's cos / sin tables ([positions, 32] fp32, rope.cu's),
// dq or dk is first turned back by the angle of position pos, rope.cu's backward (sign -1) on the
// fp32 accumulators, so no separate pass reads and rewrites it and it is rounded once. Column i
// pairs with i + 32, which the same thread holds (n and n + 4). cosTable null: stored as is.
// Returns the row's largest magnitude before rounding (the caller's amax for an FP8 reader: rounding
// is monotone, so bf16_round of the max is the max of what was stored).
__device__ __forceinline__ float tc_store_row64(bf16* dst, float (&v)[16], const float* cosTable, const float* sinTable, int pos,
                                               int c) {
    if (cosTable) {
#pragma unroll
        for (int n = 0; n < 4; n++) {
            const float2 cs = __ldg(reinterpret_cast<const float2*>(cosTable + pos * 32 + n * 8 + c));
            const float2 sn = __ldg(reinterpret_cast<const float2*>(sinTable + pos * 32 + n * 8 + c));
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const float cosv = e ? cs.y : cs.x, s = -(e ? sn.y : sn.x);
                const float x1 = v[2 * n + e], x2 = v[2 * (n + 4) + e];
                v[2 * n + e] = x1 * cosv - x2 * s;
                v[2 * (n + 4) + e] = x2 * cosv + x1 * s;
            }
        }
    }
    float m = 0.f;
#pragma unroll
    for (int n = 0; n < 8; n++) {
        st2(dst + n * 8, v[2 * n], v[2 * n + 1]);
        m = fmaxf(m, fmaxf(fabsf(v[2 * n]), fabsf(v[2 * n + 1])));
    }
    return m;
}
