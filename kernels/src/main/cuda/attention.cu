// Causal grouped-query attention, flash-attention style, straight from fused qkv rows.
//   qkv [b, tk, (nh + 2 nkv) hs]: q heads, then k heads, then v heads; query head h reads kv
//   head h / (nh / nkv) (Hugging Face repeat_kv). Queries are the last tq rows (tq < tk with a
//   KV cache); query i sits at position pos = tk - tq + i and sees keys j <= pos.
//   s_ij = q_i . k_j / sqrt(hs);  p = softmax_j(s);  o_i = sum_j p_ij v_j
//   out [b, tq, nh hs]; lse [b, nh, tq] = log sum_j exp(s_ij), kept for the backward.
// Backward (tq == tk == t), with D_i = do_i . o_i:
//   p_ij = exp(s_ij - lse_i);  dp_ij = do_i . v_j;  ds_ij = p_ij (dp_ij - D_i) / sqrt(hs)
//   dq_i = sum_j ds_ij k_j;  dk_j = sum_i ds_ij q_i;  dv_j = sum_i p_ij do_i
// Precision: q, k, v and do are rounded to bf16 as they are loaded (exact when stored in bf16);
// every sum is fp32.
// Trick: no T x T matrix exists. The forward gives each thread one query row and streams
// key/value tiles through shared memory with an online softmax. The backward runs kernels that
// each recompute p from lse: one thread per query row accumulates dq; one thread per key row
// accumulates that row's dk and dv contribution from one query head, into a per-query-head
// partial buffer [b, t, nh, 2, hs] that a last kernel sums over each kv head's group. So no
// atomics are needed, each dqkv element is written exactly once, and the dk/dv work spreads
// over nh (not nkv) blocks per key tile.
// This is the plain, safe version (a thread per row, fp32 FMA): the reference the tensor-core
// kernels (attention_mma_sm80.cu, attention_wgmma_sm90.cu) are checked against, and the path for
// the shapes they do not cover (head sizes other than 64, fp32 storage, decoding with tq < tk).
// attention_backward_dot serves the tensor-core backwards too.
// Head sizes: one instantiation per HS_MAX in {32, 64, 128} serves any even hs <= HS_MAX.
#include "common.cuh"

#define ATTN_ROWS 64   // query rows (threads) per forward and dq block

template <int HS_MAX>
struct AttnTiles {
    static constexpr int KEYS = HS_MAX <= 64 ? 64 : 32;        // key rows per shared tile (fwd, dq)
    static constexpr int KV_ROWS = HS_MAX <= 64 ? 64 : 32;     // key rows per dkv block
    static constexpr int QUERIES = HS_MAX <= 64 ? 16 : 8;      // query rows per shared tile (dkv)
};

// Key and value rows k0 .. k0 + KEYS - 1 of kv head kvHead (rounded to bf16) into shared tiles;
// rows past lastKey and columns past hs are zeros. The whole block takes part.
template <int HS_MAX, int KEYS, typename T>
__device__ __forceinline__ void attn_load_kv(float (*ks)[HS_MAX], float (*vs)[HS_MAX], const T* batch, int k0, int lastKey,
                                             int width, int nh, int nkv, int kvHead, int hs) {
    for (int idx = threadIdx.x; idx < KEYS * HS_MAX; idx += blockDim.x) {
        int r = idx / HS_MAX, d = idx % HS_MAX, j = k0 + r;
        bool ok = j <= lastKey && d < hs;
        const T* row = batch + (long long)j * width;
        ks[r][d] = ok ? ld_bf16(&row[(nh + kvHead) * hs + d]) : 0.f;
        vs[r][d] = ok ? ld_bf16(&row[(nh + nkv + kvHead) * hs + d]) : 0.f;
    }
}

template <int HS_MAX, typename T>
__device__ void attention_forward_impl(T* out, float* lse, const T* qkv, int tq, int tk, int nh, int nkv, int hs) {
    constexpr int KEYS = AttnTiles<HS_MAX>::KEYS;
    __shared__ float ks[KEYS][HS_MAX];
    __shared__ float vs[KEYS][HS_MAX];
    int width = (nh + 2 * nkv) * hs, group = nh / nkv;
    int bi = blockIdx.z, h = blockIdx.y, kvHead = h / group;
    int past = tk - tq;
    int i = blockIdx.x * ATTN_ROWS + threadIdx.x;
    bool active = i < tq;
    int pos = past + i;
    const T* batch = qkv + (long long)bi * tk * width;
    float scale = 1.f / sqrtf((float)hs);
    float q[HS_MAX], o[HS_MAX];
#pragma unroll
    for (int d = 0; d < HS_MAX; d++) {
        q[d] = (active && d < hs) ? ld_bf16(&batch[(long long)pos * width + h * hs + d]) : 0.f;
        o[d] = 0.f;
    }
    float m = -CUDART_INF_F, l = 0.f;
    int lastKey = past + min((int)(blockIdx.x + 1) * ATTN_ROWS, tq) - 1;
    for (int k0 = 0; k0 <= lastKey; k0 += KEYS) {
        attn_load_kv<HS_MAX, KEYS>(ks, vs, batch, k0, lastKey, width, nh, nkv, kvHead, hs);
        __syncthreads();
        if (active) {
            int count = min(KEYS, pos - k0 + 1);
            for (int r = 0; r < count; r++) {
                float s = 0.f;
#pragma unroll
                for (int d = 0; d < HS_MAX; d++) s += q[d] * ks[r][d];
                s *= scale;
                if (s > m) {
                    float correction = expf(m - s);
                    l *= correction;
#pragma unroll
                    for (int d = 0; d < HS_MAX; d++) o[d] *= correction;
                    m = s;
                }
                float p = expf(s - m);
                l += p;
#pragma unroll
                for (int d = 0; d < HS_MAX; d++) o[d] += p * vs[r][d];
            }
        }
        __syncthreads();
    }
    if (active) {
        float inv = 1.f / l;
        T* dst = out + ((long long)bi * tq + i) * nh * hs + h * hs;
#pragma unroll
        for (int d = 0; d < HS_MAX; d++) if (d < hs) st(&dst[d], o[d] * inv);
        lse[((long long)bi * nh + h) * tq + i] = m + logf(l);
    }
}

// D[b, nh, t] = do_i . o_i. bf16 storage with hs / 8 a power of two up to 32 and 16-byte aligned
// tensors: hs / 8 lanes a (row, head), 16 bytes each, so that a warp's loads read 512 contiguous
// bytes (a thread a (row, head) reads 128 bytes at a 128-byte stride and reaches only 1.23 TB/s on
// an H100). Each lane sums its 8 products in order, then the lanes' sums meet in a fixed butterfly:
// deterministic. Otherwise one thread a (row, head), 16 bytes at a time where hs is a multiple of 8.
// Launch with b t nh max(1, hs / 8) threads for bf16 (b t nh for fp32); grid stride, blocks of whole warps.
template <typename T>
__device__ void attention_backward_dot_impl(float* dot, const T* dout, const T* out, int b, int t, int nh, int hs) {
    const int lanes = hs / 8;
    const bool aligned = (((uintptr_t)dout | (uintptr_t)out) & 15) == 0;
    if (sizeof(T) == 2 && hs % 8 == 0 && lanes <= 32 && (lanes & (lanes - 1)) == 0 && aligned) {
        const int lane = threadIdx.x & 31;
        const long long n = (long long)b * t * nh * lanes, stride = (long long)gridDim.x * blockDim.x;
        // warp-uniform trips, so every lane reaches the shuffles
        for (long long w0 = (long long)blockIdx.x * blockDim.x + (threadIdx.x & ~31); w0 < n; w0 += stride) {
            const long long idx = w0 + lane, pair = idx / lanes;   // pair = (bi * t + i) * nh + h
            const int part = (int)(idx - pair * lanes);
            float sum = 0.f;
            if (idx < n) {
                float a[8], c[8];
                load_vec<T, 8>(a, dout + pair * hs + part * 8);
                load_vec<T, 8>(c, out + pair * hs + part * 8);
#pragma unroll
                for (int e = 0; e < 8; e++) sum += a[e] * c[e];
            }
            for (int off = lanes / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
            if (idx < n && part == 0) {
                const int h = (int)(pair % nh);
                const long long row = pair / nh, bi = row / t, i = row % t;
                dot[(bi * nh + h) * t + i] = sum;
            }
        }
        return;
    }
    long long total = (long long)b * t * nh;
    bool wide = sizeof(T) == 2 && hs % 8 == 0 && aligned;
    GRID_STRIDE(idx, total) {
        int h = (int)(idx % nh);
        long long row = idx / nh;            // bi * t + i
        long long bi = row / t, i = row % t;
        const T* dy = dout + row * nh * hs + (long long)h * hs;
        const T* y = out + row * nh * hs + (long long)h * hs;
        float sum = 0.f;
        if (wide) {
            for (int d = 0; d < hs; d += 8) {
                float a[8], c[8];
                load_vec<T, 8>(a, dy + d);
                load_vec<T, 8>(c, y + d);
#pragma unroll
                for (int e = 0; e < 8; e++) sum += a[e] * c[e];
            }
        } else {
            for (int d = 0; d < hs; d++) sum += ld_bf16(&dy[d]) * ld(&y[d]);
        }
        dot[(bi * nh + h) * t + i] = sum;
    }
}

template <int HS_MAX, typename T>
__device__ void attention_backward_dq_impl(T* dqkv, const T* dout, const T* qkv, const float* lse,
                                           const float* dot, int t, int nh, int nkv, int hs) {
    constexpr int KEYS = AttnTiles<HS_MAX>::KEYS;
    __shared__ float ks[KEYS][HS_MAX];
    __shared__ float vs[KEYS][HS_MAX];
    int width = (nh + 2 * nkv) * hs, group = nh / nkv;
    int bi = blockIdx.z, h = blockIdx.y, kvHead = h / group;
    int i = blockIdx.x * ATTN_ROWS + threadIdx.x;
    bool active = i < t;
    const T* batch = qkv + (long long)bi * t * width;
    float scale = 1.f / sqrtf((float)hs);
    float q[HS_MAX], dy[HS_MAX], dq[HS_MAX];
    const T* gy = dout + ((long long)bi * t + i) * nh * hs + h * hs;
#pragma unroll
    for (int d = 0; d < HS_MAX; d++) {
        q[d] = (active && d < hs) ? ld_bf16(&batch[(long long)i * width + h * hs + d]) : 0.f;
        dy[d] = (active && d < hs) ? ld_bf16(&gy[d]) : 0.f;
        dq[d] = 0.f;
    }
    float lseI = active ? lse[((long long)bi * nh + h) * t + i] : 0.f;
    float dotI = active ? dot[((long long)bi * nh + h) * t + i] : 0.f;
    int lastKey = min((int)(blockIdx.x + 1) * ATTN_ROWS, t) - 1;
    for (int k0 = 0; k0 <= lastKey; k0 += KEYS) {
        attn_load_kv<HS_MAX, KEYS>(ks, vs, batch, k0, lastKey, width, nh, nkv, kvHead, hs);
        __syncthreads();
        if (active) {
            int count = min(KEYS, i - k0 + 1);
            for (int r = 0; r < count; r++) {
                float s = 0.f, dp = 0.f;
#pragma unroll
                for (int d = 0; d < HS_MAX; d++) { s += q[d] * ks[r][d]; dp += dy[d] * vs[r][d]; }
                float p = expf(s * scale - lseI);
                float ds = p * (dp - dotI) * scale;
#pragma unroll
                for (int d = 0; d < HS_MAX; d++) dq[d] += ds * ks[r][d];
            }
        }
        __syncthreads();
    }
    if (active) {
        T* dst = dqkv + ((long long)bi * t + i) * width + h * hs;
#pragma unroll
        for (int d = 0; d < HS_MAX; d++) if (d < hs) st(&dst[d], dq[d]);
    }
}

template <int HS_MAX, typename T>
__device__ void attention_backward_dkv_impl(float* partial, const T* dout, const T* qkv, const float* lse,
                                            const float* dot, int t, int nh, int nkv, int hs) {
    constexpr int KV_ROWS = AttnTiles<HS_MAX>::KV_ROWS;
    constexpr int QUERIES = AttnTiles<HS_MAX>::QUERIES;
    __shared__ float kOwn[KV_ROWS][HS_MAX + 1];     // padded: each thread walks its own row
    __shared__ float vOwn[KV_ROWS][HS_MAX + 1];
    __shared__ float qs[QUERIES][HS_MAX];
    __shared__ float dys[QUERIES][HS_MAX];
    __shared__ float lses[QUERIES], dots[QUERIES];
    int width = (nh + 2 * nkv) * hs, group = nh / nkv;
    int bi = blockIdx.z, h = blockIdx.y, kvHead = h / group;
    int j0 = blockIdx.x * KV_ROWS;
    int j = j0 + threadIdx.x;
    bool active = j < t;
    const T* batch = qkv + (long long)bi * t * width;
    float scale = 1.f / sqrtf((float)hs);
    for (int idx = threadIdx.x; idx < KV_ROWS * HS_MAX; idx += blockDim.x) {
        int r = idx / HS_MAX, d = idx % HS_MAX;
        bool ok = j0 + r < t && d < hs;
        const T* row = batch + (long long)(j0 + r) * width;
        kOwn[r][d] = ok ? ld_bf16(&row[(nh + kvHead) * hs + d]) : 0.f;
        vOwn[r][d] = ok ? ld_bf16(&row[(nh + nkv + kvHead) * hs + d]) : 0.f;
    }
    float dk[HS_MAX], dv[HS_MAX];
#pragma unroll
    for (int d = 0; d < HS_MAX; d++) { dk[d] = 0.f; dv[d] = 0.f; }
    for (int q0 = j0; q0 < t; q0 += QUERIES) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < QUERIES * HS_MAX; idx += blockDim.x) {
            int r = idx / HS_MAX, d = idx % HS_MAX, i = q0 + r;
            bool ok = i < t && d < hs;
            qs[r][d] = ok ? ld_bf16(&batch[(long long)i * width + h * hs + d]) : 0.f;
            dys[r][d] = ok ? ld_bf16(&dout[((long long)bi * t + i) * nh * hs + h * hs + d]) : 0.f;
        }
        if (threadIdx.x < QUERIES) {
            int i = q0 + threadIdx.x;
            lses[threadIdx.x] = i < t ? lse[((long long)bi * nh + h) * t + i] : 0.f;
            dots[threadIdx.x] = i < t ? dot[((long long)bi * nh + h) * t + i] : 0.f;
        }
        __syncthreads();
        if (active) {
            int count = min(QUERIES, t - q0);
            for (int r = 0; r < count; r++) {
                if (q0 + r < j) continue;
                float s = 0.f, dp = 0.f;
#pragma unroll
                for (int d = 0; d < HS_MAX; d++) { s += qs[r][d] * kOwn[threadIdx.x][d]; dp += dys[r][d] * vOwn[threadIdx.x][d]; }
                float p = expf(s * scale - lses[r]);
                float ds = p * (dp - dots[r]) * scale;
#pragma unroll
                for (int d = 0; d < HS_MAX; d++) { dk[d] += ds * qs[r][d]; dv[d] += p * dys[r][d]; }
            }
        }
    }
    if (active) {
        float* row = partial + (((long long)bi * t + j) * nh + h) * 2 * hs;
#pragma unroll
        for (int d = 0; d < HS_MAX; d++) {
            if (d < hs) {
                row[d] = dk[d];
                row[hs + d] = dv[d];
            }
        }
    }
}

// dk, dv of kv head g = the sum of the partials of the query heads of its group, written into
// the k and v heads of dqkv. One thread per output element.
template <typename T>
__device__ void attention_backward_dkv_reduce_impl(T* dqkv, const float* partial, int b, int t, int nh, int nkv, int hs) {
    int group = nh / nkv, width = (nh + 2 * nkv) * hs;
    long long total = (long long)b * t * 2 * nkv * hs;
    GRID_STRIDE(idx, total) {
        int d = (int)(idx % hs);
        long long rest = idx / hs;
        int kvHead = (int)(rest % nkv);
        rest /= nkv;
        int part = (int)(rest % 2);          // 0: dk, 1: dv
        long long row = rest / 2;            // bi * t + j
        const float* src = partial + (row * nh + (long long)kvHead * group) * 2 * hs + part * hs + d;
        float sum = 0.f;
        for (int g = 0; g < group; g++) sum += src[(long long)g * 2 * hs];
        st(&dqkv[row * width + (nh + part * nkv + kvHead) * hs + d], sum);
    }
}

// Entry points: `name` over fp32 storage, `name_bf16` over bf16 storage (common.cuh).
#define ATTENTION_KERNELS(HS, SUFFIX, T)                                                                          \
    extern "C" __global__ void __launch_bounds__(ATTN_ROWS) attention_forward_hs##HS##SUFFIX(                   \
            T* out, float* lse, const T* qkv, int tq, int tk, int nh, int nkv, int hs) {                        \
        attention_forward_impl<HS, T>(out, lse, qkv, tq, tk, nh, nkv, hs);                                       \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(ATTN_ROWS) attention_backward_dq_hs##HS##SUFFIX(               \
            T* dqkv, const T* dout, const T* qkv, const float* lse, const float* dot,                           \
            int t, int nh, int nkv, int hs) {                                                                    \
        attention_backward_dq_impl<HS, T>(dqkv, dout, qkv, lse, dot, t, nh, nkv, hs);                            \
    }                                                                                                             \
    extern "C" __global__ void __launch_bounds__(ATTN_ROWS) attention_backward_dkv_hs##HS##SUFFIX(              \
            float* partial, const T* dout, const T* qkv, const float* lse, const float* dot,                    \
            int t, int nh, int nkv, int hs) {                                                                    \
        attention_backward_dkv_impl<HS, T>(partial, dout, qkv, lse, dot, t, nh, nkv, hs);                        \
    }

#define ATTENTION_SHARED_KERNELS(SUFFIX, T)                                                                       \
    extern "C" __global__ void attention_backward_dot##SUFFIX(float* dot, const T* dout, const T* out,           \
                                                              int b, int t, int nh, int hs) {                    \
        attention_backward_dot_impl<T>(dot, dout, out, b, t, nh, hs);                                            \
    }                                                                                                             \
    extern "C" __global__ void attention_backward_dkv_reduce##SUFFIX(T* dqkv, const float* partial,              \
                                                                     int b, int t, int nh, int nkv, int hs) {    \
        attention_backward_dkv_reduce_impl<T>(dqkv, partial, b, t, nh, nkv, hs);                                 \
    }

ATTENTION_KERNELS(32, , float)
ATTENTION_KERNELS(64, , float)
ATTENTION_KERNELS(128, , float)
ATTENTION_KERNELS(32, _bf16, bf16)
ATTENTION_KERNELS(64, _bf16, bf16)
ATTENTION_KERNELS(128, _bf16, bf16)
ATTENTION_SHARED_KERNELS(, float)
ATTENTION_SHARED_KERNELS(_bf16, bf16)

// Launch geometry, read by the host from the module (AttentionKernels.java): forward and dq blocks
// are attention_rows threads (a query row each), dkv blocks attention_dkv_rows_hsN (a key row each).
extern "C" {
__constant__ int attention_rows = ATTN_ROWS;
__constant__ int attention_dkv_rows_hs32 = AttnTiles<32>::KV_ROWS;
__constant__ int attention_dkv_rows_hs64 = AttnTiles<64>::KV_ROWS;
__constant__ int attention_dkv_rows_hs128 = AttnTiles<128>::KV_ROWS;
}
