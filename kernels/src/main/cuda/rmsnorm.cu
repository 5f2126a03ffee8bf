// RMSNorm (Hugging Face LlamaRMSNorm): y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
//   x, y, dx, dy [n, c]; w, dw [c]; rstd [n] saved by the forward. y may be stored in bf16
//   (it is a matmul input); x, dx, dy, w and dw are fp32.
// residual_rmsnorm_forward fuses the residual add before it: r = x + delta, y = rmsnorm(r); delta
// (a matmul output, like y an activation) has y's storage type, r is fp32 as autocast keeps it.
// Backward per row, with g = w * dy:
//   dx += rstd * g - x * rstd^3 * mean(g * x)     (accumulates: the residual path adds to dx)
//   dw += sum over rows of dy * x * rstd
// dx_copy (optional, bf16): the new dx rounded, for the matmul backward that reads it next (one
// store here instead of a separate cast pass that reads dx again); amax (may be null, only with
// dx_copy): max |dx_copy| joins amax[0], for that matmul in FP8 (fp8.cu).
// Trick: the backward gives each block a run of rows; every thread owns fixed columns and keeps
// their dw partial sums in shared memory across the rows, then writes the block's partial row
// to partials [blocks, c]; a second kernel sums the partials over the blocks in a fixed order
// and adds them to dw. No atomics, so dw has the same bits on every run.
#include "common.cuh"

#define RMSNORM_ROWS_PER_BLOCK 32
#define RMSNORM_WARPS 8       // forward: 8 warps a block of 256 threads,
#define RMSNORM_ROW_WARPS 4   // four to a row (two rows a block), each summing a quarter of it
#define ROW_VECS 16           // forward: rows of up to 16 x 128 columns (TinyLlama's 2048) stay in registers
#define RMSNORM_REDUCE_RUNS 8   // dweight reduce: warps per block, each summing a strided run of partials
static_assert(RMSNORM_WARPS == 2 * RMSNORM_ROW_WARPS, "two rows a block, on named barriers 1 and 2");

__device__ __forceinline__ void st4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void st4(bf16* p, float4 v) {
    __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    *reinterpret_cast<uint2*>(p) = make_uint2(*reinterpret_cast<uint32_t*>(&lo), *reinterpret_cast<uint32_t*>(&hi));
}

// Four warps a row (RMSNORM_ROW_WARPS): warp `part` of a row takes its columns in runs of 128
// (16-byte accesses) or 32, every fourth run from run `part`; each warp sums its squares, the four
// sums meet in shared memory in part order (a named barrier per row, so a block's last row may
// be past n). A quarter of a row in registers leaves 40 registers a thread, 6 blocks (48 warps) an
// SM, where a warp a row took 80 and 3: 7% faster at TinyLlama's shape (2.83 against 2.64 TB/s).
// With delta: residual = x + delta is written first (the residual add fused into the norm that
// follows it; residual may be x itself), and the norm reads residual. Without: the norm reads x.
// out (fp32 or bf16 storage) = r * rstd * w; amax (may be null): max |stored out| joins amax[0],
// for the FP8 matmul that reads out next (fp8.cu). 16-byte accesses when every row start is
// 16-byte aligned (c % 4 == 0 and aligned bases), else one value per lane.
__device__ __forceinline__ float abs_max4(float4 v) {
    return fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
}

template <typename T>
__device__ void rmsnorm_forward_impl(float* residual, T* out, float* rstd, const float* x, const T* delta,
                                     const float* weight, int n, int c, float eps, unsigned* amax) {
    constexpr int PARTS = RMSNORM_ROW_WARPS, VECS = ROW_VECS / PARTS;
    __shared__ float partSums[RMSNORM_WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, part = warp % PARTS, group = warp / PARTS;
    const int row = blockIdx.x * (RMSNORM_WARPS / PARTS) + group;
    if (row >= n) return;
    const float* xr = x + (long long)row * c;
    const T* dr = delta ? delta + (long long)row * c : nullptr;
    float* rr = delta ? residual + (long long)row * c : nullptr;
    const float* src = delta ? rr : xr;
    T* y = out + (long long)row * c;
    bool vec = c % 4 == 0 && ((reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(out) | reinterpret_cast<uintptr_t>(weight)
                               | reinterpret_cast<uintptr_t>(delta) | reinterpret_cast<uintptr_t>(residual)) & 15) == 0
;
    // this row's four warps add their sums in part order, on barrier 1 + group (0 is __syncthreads')
    auto row_sum = [&](float mine) {
        mine = warp_sum(mine);
        if (lane == 0) partSums[warp] = mine;
        if (group == 0) {  // immediate barrier ids: a register id would reserve all 16 of the block's barriers
            asm volatile("bar.sync 1, %0;" ::"n"(32 * PARTS) : "memory");
        } else {
            asm volatile("bar.sync 2, %0;" ::"n"(32 * PARTS) : "memory");
        }
        float total = partSums[group * PARTS];
#pragma unroll
        for (int p = 1; p < PARTS; p++) total += partSums[group * PARTS + p];
        return total;
    };
    float sum = 0.f, m = 0.f;  // m: max |y| of this lane before rounding (rounding keeps the order: the max rounds to the stored max)
    if (vec && c % 128 == 0 && c <= 128 * ROW_VECS) {
        // The warp's runs stay in registers between the sum and the scaling (no second read of
        // the residual) and every load is in flight at once: the same arithmetic in the same
        // order as the loop below, so the same bits.
        float4 v[VECS];
        const int nv = c / 128;
#pragma unroll
        for (int k = 0; k < VECS; k++) {
            if (k * PARTS + part < nv) {
                const int j = (k * PARTS + part) * 128 + lane * 4;
                v[k] = *reinterpret_cast<const float4*>(xr + j);
                if (delta) {
                    float d[4];
                    load_vec<T, 4>(d, dr + j);
                    v[k].x += d[0]; v[k].y += d[1]; v[k].z += d[2]; v[k].w += d[3];
                    *reinterpret_cast<float4*>(rr + j) = v[k];
                }
                sum += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
            }
        }
        sum = row_sum(sum);
        float s = 1.f / sqrtf(sum / c + eps);
        if (lane == 0 && part == 0) rstd[row] = s;
#pragma unroll
        for (int k = 0; k < VECS; k++) {
            if (k * PARTS + part < nv) {
                const int j = (k * PARTS + part) * 128 + lane * 4;
                float4 w = *reinterpret_cast<const float4*>(weight + j);
                float4 o = make_float4(v[k].x * s * w.x, v[k].y * s * w.y, v[k].z * s * w.z, v[k].w * s * w.w);
                st4(y + j, o);
                m = fmaxf(m, abs_max4(o));
            }
        }
        if (amax) warp_amax(amax, stored(y, m));
        return;
    }
    if (vec) {
        for (int j = part * 128 + lane * 4; j < c; j += 128 * PARTS) {
            float4 v = *reinterpret_cast<const float4*>(xr + j);
            if (delta) {
                float d[4];
                load_vec<T, 4>(d, dr + j);
                v.x += d[0]; v.y += d[1]; v.z += d[2]; v.w += d[3];
                *reinterpret_cast<float4*>(rr + j) = v;
            }
            sum += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
        }
    } else {
        for (int j = part * 32 + lane; j < c; j += 32 * PARTS) {
            float v = xr[j];
            if (delta) {
                v += ld(&dr[j]);
                rr[j] = v;
            }
            sum += v * v;
        }
    }
    sum = row_sum(sum);  // its barrier also orders the residual writes above before the reads below
    float s = 1.f / sqrtf(sum / c + eps);
    if (lane == 0 && part == 0) rstd[row] = s;
    if (vec) {
        for (int j = part * 128 + lane * 4; j < c; j += 128 * PARTS) {
            float4 v = *reinterpret_cast<const float4*>(src + j), w = *reinterpret_cast<const float4*>(weight + j);
            float4 o = make_float4(v.x * s * w.x, v.y * s * w.y, v.z * s * w.z, v.w * s * w.w);
            st4(y + j, o);
            m = fmaxf(m, abs_max4(o));
        }
    } else {
        for (int j = part * 32 + lane; j < c; j += 32 * PARTS) {
            float o = src[j] * s * weight[j];
            st(&y[j], o);
            m = fmaxf(m, fabsf(o));
        }
    }
    if (amax) warp_amax(amax, stored(y, m));
}

#define RMSNORM_FORWARD_KERNELS(SUFFIX, T)                                                                          \
    extern "C" __global__ void __launch_bounds__(32 * RMSNORM_WARPS, 6)                                              \
    rmsnorm_forward##SUFFIX(T* out, float* rstd, const float* inp, const float* weight, int n, int c, float eps,       \
                            unsigned* amax) {                                                                        \
        rmsnorm_forward_impl<T>(nullptr, out, rstd, inp, static_cast<const T*>(nullptr), weight, n, c, eps, amax);   \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(32 * RMSNORM_WARPS, 6)                                              \
    residual_rmsnorm_forward##SUFFIX(float* residual, T* out, float* rstd, const float* x, const T* delta,             \
                                     const float* weight, int n, int c, float eps, unsigned* amax) {                 \
        rmsnorm_forward_impl<T>(residual, out, rstd, x, delta, weight, n, c, eps, amax);                            \
    }

RMSNORM_FORWARD_KERNELS(, float)
RMSNORM_FORWARD_KERNELS(_bf16, bf16)

// dynamic shared memory: c floats (the block's dw partials). dout (fp32 or bf16 storage: the
// gradient of a matmul input, which autocast keeps in bf16); everything else fp32.
template <typename T>
__device__ void rmsnorm_backward_impl(float* dinp, bf16* dinpCopy, float* partials, const T* dout, const float* inp,
                                      const float* weight, const float* rstd, int n, int c, unsigned* amax) {
    extern __shared__ float dw[];
    __shared__ float scratch[32];
    for (int j = threadIdx.x; j < c; j += blockDim.x) dw[j] = 0.f;
    int first = blockIdx.x * RMSNORM_ROWS_PER_BLOCK;
    int last = min(first + RMSNORM_ROWS_PER_BLOCK, n);
    float m = 0.f;  // max |dinp| written to the copy, for amax
    for (int row = first; row < last; row++) {
        const float* x = inp + (long long)row * c;
        const T* dy = dout + (long long)row * c;
        float* dx = dinp + (long long)row * c;
        float s = rstd[row];
        float dot = 0.f;
        for (int j = threadIdx.x; j < c; j += blockDim.x) dot += weight[j] * ld(&dy[j]) * x[j];
        dot = block_sum(dot, scratch);
        float k = dot / c * s * s * s;
        for (int j = threadIdx.x; j < c; j += blockDim.x) {
            float g = ld(&dy[j]);
            dx[j] += s * weight[j] * g - k * x[j];
            if (dinpCopy) st(dinpCopy + (long long)row * c + j, dx[j]);
            m = fmaxf(m, fabsf(dx[j]));
            dw[j] += g * x[j] * s;
        }
    }
    float* mine = partials + (long long)blockIdx.x * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) mine[j] = dw[j];
    if (amax) warp_amax(amax, bf16_round(m));
}

// The same, 16 bytes at a time, when c % 4 == 0, every base is aligned and c <= 4096 (the
// launcher checks and launches c / 4 threads, rounded up to a warp): each thread owns columns
// 4 tid .. 4 tid + 3, keeps their weights, x and dy in registers through a row and their dw
// partials across the block's rows, so each value is read once and there is no shared dw row.
// The block walks its rows one at a time with a block-wide sum in each: a row's x and dy are
// loaded one row ahead and the dx it adds to before the sum, so the loads are in flight during
// the block's barriers and stores instead of after them (11% faster at TinyLlama's shape than
// loading after the barriers, although the registers it takes leave two blocks an SM, not three).
template <typename T>
__device__ void rmsnorm_backward_vec_impl(float* dinp, bf16* dinpCopy, float* partials, const T* dout, const float* inp,
                                          const float* weight, const float* rstd, int n, int c, unsigned* amax) {
    __shared__ float scratch[32];
    const int j = 4 * threadIdx.x;
    const bool mine = j < c;
    float w[4], dw[4] = {0.f, 0.f, 0.f, 0.f};
    load_vec<float, 4>(w, mine ? weight + j : weight);
    int first = blockIdx.x * RMSNORM_ROWS_PER_BLOCK;
    int last = min(first + RMSNORM_ROWS_PER_BLOCK, n);
    float m = 0.f;  // max |dinp| written to the copy, for amax
    float x[4] = {0.f, 0.f, 0.f, 0.f}, g[4] = {0.f, 0.f, 0.f, 0.f}, d[4] = {0.f, 0.f, 0.f, 0.f};
    auto load_row = [&](int row, float* xr, float* gr) {
        if (mine && row < last) {
            load_vec<float, 4>(xr, inp + (long long)row * c + j);
            load_vec<T, 4>(gr, dout + (long long)row * c + j);
        }
    };
    load_row(first, x, g);
    for (int row = first; row < last; row++) {
        float xn[4] = {0.f, 0.f, 0.f, 0.f}, gn[4] = {0.f, 0.f, 0.f, 0.f};
        if (mine) load_vec<float, 4>(d, dinp + (long long)row * c + j);
        load_row(row + 1, xn, gn);
        float dot = w[0] * g[0] * x[0] + w[1] * g[1] * x[1] + w[2] * g[2] * x[2] + w[3] * g[3] * x[3];
        dot = block_sum(dot, scratch);
        float s = rstd[row];
        float k = dot / c * s * s * s;
        if (mine) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                d[e] += s * w[e] * g[e] - k * x[e];
                dw[e] += g[e] * x[e] * s;
                m = fmaxf(m, fabsf(d[e]));
            }
            store_vec<float, 4>(dinp + (long long)row * c + j, d);
            if (dinpCopy) store_vec<bf16, 4>(dinpCopy + (long long)row * c + j, d);
        }
#pragma unroll
        for (int e = 0; e < 4; e++) { x[e] = xn[e]; g[e] = gn[e]; }
    }
    if (mine) store_vec<float, 4>(partials + (long long)blockIdx.x * c + j, dw);
    if (amax) warp_amax(amax, bf16_round(m));
}

// Both backward forms (the launcher picks), per storage type of dout.
#define RMSNORM_BACKWARD_KERNELS(NAME, SUFFIX, T)                                                                    \
    extern "C" __global__ void NAME##SUFFIX(float* dinp, bf16* dinpCopy, float* partials, const T* dout,             \
            const float* inp, const float* weight, const float* rstd, int n, int c, unsigned* amax) {               \
        NAME##_impl<T>(dinp, dinpCopy, partials, dout, inp, weight, rstd, n, c, amax);                                \
    }

RMSNORM_BACKWARD_KERNELS(rmsnorm_backward, , float)
RMSNORM_BACKWARD_KERNELS(rmsnorm_backward, _bf16, bf16)
RMSNORM_BACKWARD_KERNELS(rmsnorm_backward_vec, , float)
RMSNORM_BACKWARD_KERNELS(rmsnorm_backward_vec, _bf16, bf16)

// dweight[j] += sum_b partials[b, j]. 256 threads per block: 32 columns (a lane each) x 8 strided
// runs of blocks (coalesced 128-byte rows), the 8 run sums then added in order: a fixed tree.
// grid ceil(c / 32).
extern "C" __global__ void rmsnorm_dweight_reduce(float* dweight, const float* partials, int blocks, int c, int accumulate) {
    __shared__ float runs[RMSNORM_REDUCE_RUNS][33];
    int col = threadIdx.x & 31, run = threadIdx.x >> 5;
    int j = blockIdx.x * 32 + col;
    float sum = 0.f;
    if (j < c) {
        for (int b = run; b < blocks; b += RMSNORM_REDUCE_RUNS) sum += partials[(long long)b * c + j];
    }
    runs[run][col] = sum;
    __syncthreads();
    if (run == 0 && j < c) {
        float total = runs[0][col];
        for (int r = 1; r < RMSNORM_REDUCE_RUNS; r++) total += runs[r][col];
        dweight[j] = accumulate ? dweight[j] + total : total;
    }
}

// Launch geometry, read by the host from the module (RmsNormKernels.java): rows and threads per
// forward block (four warps a row), rows per backward block (the dweight partials come one row per
// block), and the dweight reduce's block size (a warp per run).
extern "C" {
__constant__ int rmsnorm_forward_rows_per_block = RMSNORM_WARPS / RMSNORM_ROW_WARPS;
__constant__ int rmsnorm_forward_threads = 32 * RMSNORM_WARPS;
__constant__ int rmsnorm_backward_rows_per_block = RMSNORM_ROWS_PER_BLOCK;
__constant__ int rmsnorm_dweight_reduce_threads = 32 * RMSNORM_REDUCE_RUNS;
}
