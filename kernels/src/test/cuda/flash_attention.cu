// Causal grouped-query attention on the tensor cores, head size 64, FlashAttention-2 style: the
// first tensor-core generation, kept among the test sources as a reference for the attention
// harness (attention_harness.cu); the backend runs attention_mma_sm80.cu / attention_wgmma_sm90.cu.
// Same math, layouts and outputs as attention.cu (the plain version):
//   qkv [b, t, (nh + 2 nkv) 64] (fp32 or bf16 storage), query head h reads kv head h / (nh / nkv);
//   s_ij = q_i . k_j / 8;  o_i = sum_j softmax_j(s)_ij v_j;  out [b, t, nh 64];  lse [b, nh, t];
//   backward with D_i = do_i . o_i (attention_backward_dot): p_ij = exp(s_ij - lse_i),
//   ds_ij = p_ij (do_i . v_j - D_i) / 8, dq = ds k, dk = ds^T q, dv = p^T do.
// Precision: tiles are loaded from fp32 and rounded (or copied from bf16) into shared memory, multiplied with
// mma.sync m16n8k16 (bf16 in, fp32 accumulate); softmax, lse and the ds arithmetic are fp32; p and
// ds are rounded to bf16 as they become the A operand of the second product.
// Tiling: a block is 4 warps over a 64-row tile, each warp owning 16 rows; the other operand
// streams through shared memory in 64-row tiles (rows padded to 72 bf16, so fragment loads and
// ldmatrix are bank-conflict free). The trick (FA-2): the fp32 accumulator fragment of the first
// product (S = Q K^T) has exactly the register layout of the A fragment of the second (P V), so P
// never leaves registers; B operands that must be read transposed come from ldmatrix.trans.
//   forward: a block per (64 queries, head), grid (ceil(t / 64), nh, b), 128 threads; online
//            softmax over the key tiles up to the diagonal.
//   dq:      a block per (64 queries, head), the same grid; recomputes s and dp per key tile, dq = ds k.
//   dk, dv:  a block per (64 keys, kv head), grid (ceil(t / 64), nkv, b); walks every query head of
//            the group and every query tile from the diagonal on, so dk/dv sum the group in
//            registers: no atomics, no partial buffers, each element of dqkv written exactly once.
// Longest blocks are scheduled first (the causal triangle makes work per block uneven).
// Assumes hs == 64 and tq == tk (training).
#include "../../main/cuda/tensor_core.cuh"

#define FA_HS 64
#define FA_TILE 64
#define FA_THREADS 128
#define FA_LD 72

typedef __nv_bfloat16 FaTile[FA_TILE][FA_LD];

__device__ __forceinline__ uint32_t fa_word(const __nv_bfloat16* p) {
    return *reinterpret_cast<const uint32_t*>(p);
}

// B fragments of two adjacent 8-column tiles from a row-major [k][n] tile in shared memory:
// rows k0..k0+15, columns n0..n0+15. r0,r1 serve columns n0..n0+7; r2,r3 columns n0+8..n0+15.
__device__ __forceinline__ void fa_ldmatrix_trans(uint32_t* r, const FaTile& tile, int k0, int n0, int lane) {
    tc_ldmatrix4_trans(r, &tile[k0 + (lane & 7) + ((lane >> 3) & 1) * 8][n0 + (lane >> 4) * 8]);
}

// One 16-byte chunk of a source row, and how it lands in a bf16 tile: 4 fp32 values (rounded
// here) or 8 bf16 values (copied).
template <typename T>
struct FaChunk;

template <>
struct FaChunk<float> {
    static constexpr int VALUES = 4;
    typedef float4 Raw;
    static __device__ __forceinline__ Raw zero() { return make_float4(0.f, 0.f, 0.f, 0.f); }
    static __device__ __forceinline__ void store(bf16* dst, Raw a) {
        *reinterpret_cast<uint2*>(dst) = make_uint2(tc_pack(a.x, a.y), tc_pack(a.z, a.w));
    }
};

template <>
struct FaChunk<bf16> {
    static constexpr int VALUES = 8;
    typedef uint4 Raw;
    static __device__ __forceinline__ Raw zero() { return make_uint4(0u, 0u, 0u, 0u); }
    static __device__ __forceinline__ void store(bf16* dst, Raw a) { *reinterpret_cast<uint4*>(dst) = a; }
};

// Two 64 x 64 tiles (row strides in elements) -> bf16 tiles in shared memory; rows >= `rows`
// become zeros. All of a thread's 16-byte global loads are issued before the first shared
// store, so their latencies overlap.
template <typename T>
__device__ __forceinline__ void fa_load2(FaTile& dstA, const T* srcA, long long strideA,
                                         FaTile& dstB, const T* srcB, long long strideB, int rows) {
    typedef FaChunk<T> C;
    constexpr int PER_ROW = FA_HS / C::VALUES, PER_THREAD = FA_TILE * PER_ROW / FA_THREADS;
    constexpr int ROW_SHIFT = PER_ROW == 16 ? 4 : 3;   // log2(PER_ROW): chunks of a row
    typename C::Raw a[PER_THREAD], b[PER_THREAD];
#pragma unroll
    for (int k = 0; k < PER_THREAD; k++) {
        int idx = threadIdx.x + k * FA_THREADS, r = idx >> ROW_SHIFT, c = (idx & (PER_ROW - 1)) * C::VALUES;
        a[k] = r < rows ? __ldg(reinterpret_cast<const typename C::Raw*>(srcA + r * strideA + c)) : C::zero();
        b[k] = r < rows ? __ldg(reinterpret_cast<const typename C::Raw*>(srcB + r * strideB + c)) : C::zero();
    }
#pragma unroll
    for (int k = 0; k < PER_THREAD; k++) {
        int idx = threadIdx.x + k * FA_THREADS, r = idx >> ROW_SHIFT, c = (idx & (PER_ROW - 1)) * C::VALUES;
        C::store(&dstA[r][c], a[k]);
        C::store(&dstB[r][c], b[k]);
    }
}

// K and V rows k0 .. k0 + 63 of kv head g (batch rows start at `batch`, rows of `width`) -> ks, vs.
template <typename T>
__device__ __forceinline__ void fa_load_kv(FaTile& ks, FaTile& vs, const T* batch, int width, int nh, int nkv, int g,
                                           int k0, int t) {
    fa_load2(ks, batch + (long long)k0 * width + (nh + g) * FA_HS, width,
             vs, batch + (long long)k0 * width + (nh + nkv + g) * FA_HS, width, min(FA_TILE, t - k0));
}

// One tile, the same way.
template <typename T>
__device__ __forceinline__ void fa_load(FaTile& dst, const T* src, long long stride, int rows) {
    typedef FaChunk<T> C;
    constexpr int PER_ROW = FA_HS / C::VALUES, PER_THREAD = FA_TILE * PER_ROW / FA_THREADS;
    constexpr int ROW_SHIFT = PER_ROW == 16 ? 4 : 3;   // log2(PER_ROW): chunks of a row
    typename C::Raw a[PER_THREAD];
#pragma unroll
    for (int k = 0; k < PER_THREAD; k++) {
        int idx = threadIdx.x + k * FA_THREADS, r = idx >> ROW_SHIFT, c = (idx & (PER_ROW - 1)) * C::VALUES;
        a[k] = r < rows ? __ldg(reinterpret_cast<const typename C::Raw*>(src + r * stride + c)) : C::zero();
    }
#pragma unroll
    for (int k = 0; k < PER_THREAD; k++) {
        int idx = threadIdx.x + k * FA_THREADS, r = idx >> ROW_SHIFT, c = (idx & (PER_ROW - 1)) * C::VALUES;
        C::store(&dst[r][c], a[k]);
    }
}

// A fragments (4 k-steps of 16 columns) of rows row0..row0+15 of a tile.
__device__ __forceinline__ void fa_a_fragments(uint32_t (*a)[4], const FaTile& tile, int row0, int lane) {
    int r = row0 + (lane >> 2), c = (lane & 3) * 2;
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        a[kk][0] = fa_word(&tile[r][kk * 16 + c]);
        a[kk][1] = fa_word(&tile[r + 8][kk * 16 + c]);
        a[kk][2] = fa_word(&tile[r][kk * 16 + c + 8]);
        a[kk][3] = fa_word(&tile[r + 8][kk * 16 + c + 8]);
    }
}

// acc[n] (16 x 64 as 8 tiles of 8 columns) = a . tile^T: the tile's rows are the output columns.
// One ldmatrix.x4 gives the B fragments of two column tiles for one 16-wide k-step.
__device__ __forceinline__ void fa_abt(float (*acc)[4], const uint32_t (*a)[4], const FaTile& tile, int lane) {
#pragma unroll
    for (int n = 0; n < 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
#pragma unroll
    for (int np = 0; np < 4; np++) {
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t b[4];
            tc_ldmatrix4(b, &tile[np * 16 + (lane & 7) + (lane >> 4) * 8][kk * 16 + ((lane >> 3) & 1) * 8]);
            tc_mma(acc[2 * np], a[kk], b[0], b[1]);
            tc_mma(acc[2 * np + 1], a[kk], b[2], b[3]);
        }
    }
}

// acc (16 x 64) += p . tile, p given as fp32 accumulator fragments (16 x 64) rounded to bf16 here.
__device__ __forceinline__ void fa_pv(float (*acc)[4], const float (*p)[4], const FaTile& tile, int lane) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        uint32_t a[4] = {tc_pack(p[2 * kk][0], p[2 * kk][1]), tc_pack(p[2 * kk][2], p[2 * kk][3]),
                         tc_pack(p[2 * kk + 1][0], p[2 * kk + 1][1]), tc_pack(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
        for (int nd = 0; nd < 4; nd++) {
            uint32_t b[4];
            fa_ldmatrix_trans(b, tile, kk * 16, nd * 16, lane);
            tc_mma(acc[2 * nd], a, b[0], b[1]);
            tc_mma(acc[2 * nd + 1], a, b[2], b[3]);
        }
    }
}

// One key tile of the online softmax for a thread's two rows (A: lane / 4, B: lane / 4 + 8).
// s holds the tile's scores in log2 units (scaled by log2(e) / sqrt(hs); masked ones -inf), xA/xB
// the thread's running maxima over its own columns including this tile. Reduces the maxima over
// the row's 4 threads, rescales o and the sums l by the change of maximum, and replaces s by
// p = 2^(s - max), adding them to l (per thread; the caller reduces l at the end).
__device__ __forceinline__ void fa_online_softmax(float (*s)[4], float (*o)[4], float xA, float xB,
                                                  float& mA, float& mB, float& lA, float& lB) {
    xA = fmaxf(xA, __shfl_xor_sync(0xffffffffu, xA, 1));
    xA = fmaxf(xA, __shfl_xor_sync(0xffffffffu, xA, 2));
    xB = fmaxf(xB, __shfl_xor_sync(0xffffffffu, xB, 1));
    xB = fmaxf(xB, __shfl_xor_sync(0xffffffffu, xB, 2));
    const float corrA = exp2f(mA - xA), corrB = exp2f(mB - xB);
    mA = xA;
    mB = xB;
    lA *= corrA;
    lB *= corrB;
#pragma unroll
    for (int n = 0; n < 8; n++) {
        o[n][0] *= corrA;
        o[n][1] *= corrA;
        o[n][2] *= corrB;
        o[n][3] *= corrB;
        s[n][0] = exp2f(s[n][0] - xA);
        s[n][1] = exp2f(s[n][1] - xA);
        s[n][2] = exp2f(s[n][2] - xB);
        s[n][3] = exp2f(s[n][3] - xB);
        lA += s[n][0] + s[n][1];
        lB += s[n][2] + s[n][3];
    }
}

#define FA_LOG2E 1.4426950408889634f
#define FA_SCALE 0.125f   // 1 / sqrt(64)

template <typename T>
__device__ __forceinline__ void flash_forward(T* out, float* lse, const T* qkv, int t, int nh, int nkv) {
    __shared__ __align__(16) FaTile qs, ks, vs;
    const int width = (nh + 2 * nkv) * FA_HS, group = nh / nkv;
    const int qTile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, bi = blockIdx.z, g = h / group;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int q0 = qTile * FA_TILE;
    const T* batch = qkv + (long long)bi * t * width;
    fa_load(qs, batch + (long long)q0 * width + h * FA_HS, width, min(FA_TILE, t - q0));
    __syncthreads();
    uint32_t qf[4][4];
    fa_a_fragments(qf, qs, warp * 16, lane);
    const int rowA = q0 + warp * 16 + (lane >> 2), rowB = rowA + 8;
    float o[8][4];
#pragma unroll
    for (int n = 0; n < 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
    float mA = -CUDART_INF_F, mB = -CUDART_INF_F, lA = 0.f, lB = 0.f;
    for (int kt = 0; kt <= qTile; kt++) {
        const int k0 = kt * FA_TILE;
        __syncthreads();
        fa_load_kv(ks, vs, batch, width, nh, nkv, g, k0, t);
        __syncthreads();
        float s[8][4];
        fa_abt(s, qf, ks, lane);
        float xA = mA, xB = mB;
#pragma unroll
        for (int n = 0; n < 8; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = k0 + n * 8 + c + (e & 1);
                bool masked = kt == qTile && key > (e < 2 ? rowA : rowB);
                s[n][e] = masked ? -CUDART_INF_F : s[n][e] * (FA_SCALE * FA_LOG2E);
            }
            xA = fmaxf(xA, fmaxf(s[n][0], s[n][1]));
            xB = fmaxf(xB, fmaxf(s[n][2], s[n][3]));
        }
        fa_online_softmax(s, o, xA, xB, mA, mB, lA, lB);
        fa_pv(o, s, vs, lane);
    }
    lA = tc_row_sum(lA);
    lB = tc_row_sum(lB);
    const float invA = 1.f / lA, invB = 1.f / lB;
    if (rowA < t) {
        T* dst = out + ((long long)bi * t + rowA) * nh * FA_HS + h * FA_HS + c;
#pragma unroll
        for (int n = 0; n < 8; n++) st2(dst + n * 8, o[n][0] * invA, o[n][1] * invA);
        if ((lane & 3) == 0) lse[((long long)bi * nh + h) * t + rowA] = mA / FA_LOG2E + logf(lA);
    }
    if (rowB < t) {
        T* dst = out + ((long long)bi * t + rowB) * nh * FA_HS + h * FA_HS + c;
#pragma unroll
        for (int n = 0; n < 8; n++) st2(dst + n * 8, o[n][2] * invB, o[n][3] * invB);
        if ((lane & 3) == 0) lse[((long long)bi * nh + h) * t + rowB] = mB / FA_LOG2E + logf(lB);
    }
}

template <typename T>
__device__ __forceinline__ void flash_backward_dq(T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dot,
                                                  int t, int nh, int nkv) {
    __shared__ __align__(16) FaTile qs, dos, ks, vs;
    const int width = (nh + 2 * nkv) * FA_HS, group = nh / nkv;
    const int qTile = gridDim.x - 1 - blockIdx.x, h = blockIdx.y, bi = blockIdx.z, g = h / group;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int q0 = qTile * FA_TILE, rows = min(FA_TILE, t - q0);
    const T* batch = qkv + (long long)bi * t * width;
    fa_load2(qs, batch + (long long)q0 * width + h * FA_HS, width,
             dos, dout + ((long long)bi * t + q0) * nh * FA_HS + h * FA_HS, nh * FA_HS, rows);
    __syncthreads();
    uint32_t qf[4][4], df[4][4];
    fa_a_fragments(qf, qs, warp * 16, lane);
    fa_a_fragments(df, dos, warp * 16, lane);
    const int rowA = q0 + warp * 16 + (lane >> 2), rowB = rowA + 8;
    const long long statBase = ((long long)bi * nh + h) * t;
    const float lseA = rowA < t ? lse[statBase + rowA] * FA_LOG2E : 0.f, lseB = rowB < t ? lse[statBase + rowB] * FA_LOG2E : 0.f;
    const float dotA = rowA < t ? dot[statBase + rowA] : 0.f, dotB = rowB < t ? dot[statBase + rowB] : 0.f;
    float dq[8][4];
#pragma unroll
    for (int n = 0; n < 8; n++) dq[n][0] = dq[n][1] = dq[n][2] = dq[n][3] = 0.f;
    for (int kt = 0; kt <= qTile; kt++) {
        const int k0 = kt * FA_TILE;
        __syncthreads();
        fa_load_kv(ks, vs, batch, width, nh, nkv, g, k0, t);
        __syncthreads();
        float s[8][4], dp[8][4];
        fa_abt(s, qf, ks, lane);
        fa_abt(dp, df, vs, lane);
#pragma unroll
        for (int n = 0; n < 8; n++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int key = k0 + n * 8 + c + (e & 1);
                bool masked = kt == qTile && key > (e < 2 ? rowA : rowB);
                float p = masked ? 0.f : exp2f(s[n][e] * (FA_SCALE * FA_LOG2E) - (e < 2 ? lseA : lseB));
                s[n][e] = p * (dp[n][e] - (e < 2 ? dotA : dotB)) * FA_SCALE;
            }
        }
        fa_pv(dq, s, ks, lane);
    }
    if (rowA < t) {
        T* dst = dqkv + ((long long)bi * t + rowA) * width + h * FA_HS + c;
#pragma unroll
        for (int n = 0; n < 8; n++) st2(dst + n * 8, dq[n][0], dq[n][1]);
    }
    if (rowB < t) {
        T* dst = dqkv + ((long long)bi * t + rowB) * width + h * FA_HS + c;
#pragma unroll
        for (int n = 0; n < 8; n++) st2(dst + n * 8, dq[n][2], dq[n][3]);
    }
}

template <typename T>
__device__ __forceinline__ void flash_backward_dkv(T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dot,
                                                   int t, int nh, int nkv) {
    __shared__ __align__(16) FaTile ks, vs, qs, dos;
    __shared__ float lses[FA_TILE], dots[FA_TILE];
    const int width = (nh + 2 * nkv) * FA_HS, group = nh / nkv;
    const int kvTile = blockIdx.x, g = blockIdx.y, bi = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, c = (lane & 3) * 2;
    const int j0 = kvTile * FA_TILE, tiles = gridDim.x;
    const T* batch = qkv + (long long)bi * t * width;
    fa_load_kv(ks, vs, batch, width, nh, nkv, g, j0, t);
    __syncthreads();
    uint32_t kf[4][4], vf[4][4];
    fa_a_fragments(kf, ks, warp * 16, lane);
    fa_a_fragments(vf, vs, warp * 16, lane);
    const int keyA = j0 + warp * 16 + (lane >> 2), keyB = keyA + 8;
    float dk[8][4], dv[8][4];
#pragma unroll
    for (int n = 0; n < 8; n++) {
        dk[n][0] = dk[n][1] = dk[n][2] = dk[n][3] = 0.f;
        dv[n][0] = dv[n][1] = dv[n][2] = dv[n][3] = 0.f;
    }
    for (int hh = 0; hh < group; hh++) {
        const int h = g * group + hh;
        const long long statBase = ((long long)bi * nh + h) * t;
        for (int qt = kvTile; qt < tiles; qt++) {
            const int i0 = qt * FA_TILE, rows = min(FA_TILE, t - i0);
            __syncthreads();
            fa_load2(qs, batch + (long long)i0 * width + h * FA_HS, width,
                     dos, dout + ((long long)bi * t + i0) * nh * FA_HS + h * FA_HS, nh * FA_HS, rows);
            if (threadIdx.x < FA_TILE) {
                bool ok = threadIdx.x < rows;
                lses[threadIdx.x] = ok ? lse[statBase + i0 + threadIdx.x] * FA_LOG2E : 0.f;
                dots[threadIdx.x] = ok ? dot[statBase + i0 + threadIdx.x] : 0.f;
            }
            __syncthreads();
            float s[8][4], dp[8][4];   // transposed: rows are keys, columns queries
            fa_abt(s, kf, qs, lane);
            fa_abt(dp, vf, dos, lane);
#pragma unroll
            for (int n = 0; n < 8; n++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int col = n * 8 + c + (e & 1), query = i0 + col;
                    bool valid = query < t && query >= (e < 2 ? keyA : keyB);
                    float p = valid ? exp2f(s[n][e] * (FA_SCALE * FA_LOG2E) - lses[col]) : 0.f;
                    s[n][e] = p;
                    dp[n][e] = p * (dp[n][e] - dots[col]) * FA_SCALE;
                }
            }
            fa_pv(dv, s, dos, lane);
            fa_pv(dk, dp, qs, lane);
        }
    }
    if (keyA < t) {
        T* row = dqkv + ((long long)bi * t + keyA) * width + c;
#pragma unroll
        for (int n = 0; n < 8; n++) {
            st2(row + (nh + g) * FA_HS + n * 8, dk[n][0], dk[n][1]);
            st2(row + (nh + nkv + g) * FA_HS + n * 8, dv[n][0], dv[n][1]);
        }
    }
    if (keyB < t) {
        T* row = dqkv + ((long long)bi * t + keyB) * width + c;
#pragma unroll
        for (int n = 0; n < 8; n++) {
            st2(row + (nh + g) * FA_HS + n * 8, dk[n][2], dk[n][3]);
            st2(row + (nh + nkv + g) * FA_HS + n * 8, dv[n][2], dv[n][3]);
        }
    }
}

// Entry points: `name` over fp32 storage, `name_bf16` over bf16 storage (common.cuh).
#define FLASH_KERNELS(SUFFIX, T)                                                                                   \
    extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_attention_forward_hs64##SUFFIX(                \
            T* out, float* lse, const T* qkv, int t, int nh, int nkv) {                                           \
        flash_forward<T>(out, lse, qkv, t, nh, nkv);                                                              \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_attention_backward_dq_hs64##SUFFIX(            \
            T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dot, int t, int nh, int nkv) {   \
        flash_backward_dq<T>(dqkv, dout, qkv, lse, dot, t, nh, nkv);                                             \
    }                                                                                                              \
    extern "C" __global__ void __launch_bounds__(FA_THREADS) flash_attention_backward_dkv_hs64##SUFFIX(           \
            T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dot, int t, int nh, int nkv) {   \
        flash_backward_dkv<T>(dqkv, dout, qkv, lse, dot, t, nh, nkv);                                            \
    }

FLASH_KERNELS(, float)
FLASH_KERNELS(_bf16, bf16)
