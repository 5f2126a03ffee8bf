// Standalone harness (no Java): the memory-bound kernels of the step at TinyLlama-1.1B's shape
// (micro-batch 8 x 2048 = 16384 rows, dim 2048, intermediate 5632, bf16 activations), each
// against another form of the same work, timed in the same process, with their outputs compared bit for bit:
//   - RMSNorm's vector backward (rmsnorm.cu) against the form it replaced and other candidates
//     (below);
//   - the residual add + RMSNorm forward (rmsnorm.cu) against its earlier form and other shapes (below);
//   - SwiGLU's backward writing the recomputed output in its pass (swiglu.cu) against the forward
//     recomputation followed by the plain backward.
// Times: median of 20 launches after 3, CUDA events around each launch; the bytes each form must
// move and the rate that gives. Build and run: scripts/gpu-elementwise-harness.
#include "../../main/cuda/rmsnorm.cu"
#include "../../main/cuda/swiglu.cu"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        cudaError_t e = (x);                                                                       \
        if (e != cudaSuccess) {                                                                    \
            fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e));      \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

// RMSNorm's vector backward (rmsnorm.cu's rmsnorm_backward_vec: a block of c / 4 threads walks
// 32 rows with one block-wide sum each; x and dy loaded a row ahead, dx before the sum) against
// the form it replaced, which loaded a row's x and dy at the top of its iteration and its dx after
// the sum (two round trips and two barriers a row), kept here as it was:
template <typename T>
__device__ void rmsnorm_backward_rows_at_top_impl(float* dinp, bf16* dinpCopy, float* partials, const T* dout, const float* inp,
                                          const float* weight, const float* rstd, int n, int c, unsigned* amax) {
    __shared__ float scratch[32];
    const int j = 4 * threadIdx.x;
    const bool mine = j < c;
    float w[4], dw[4] = {0.f, 0.f, 0.f, 0.f};
    load_vec<float, 4>(w, mine ? weight + j : weight);
    int first = blockIdx.x * RMSNORM_ROWS_PER_BLOCK;
    int last = min(first + RMSNORM_ROWS_PER_BLOCK, n);
    float m = 0.f;  // max |dinp| written to the copy, for amax
    for (int row = first; row < last; row++) {
        float x[4] = {0.f, 0.f, 0.f, 0.f}, g[4] = {0.f, 0.f, 0.f, 0.f};
        if (mine) {
            load_vec<float, 4>(x, inp + (long long)row * c + j);
            load_vec<T, 4>(g, dout + (long long)row * c + j);
        }
        float dot = w[0] * g[0] * x[0] + w[1] * g[1] * x[1] + w[2] * g[2] * x[2] + w[3] * g[3] * x[3];
        dot = block_sum(dot, scratch);
        float s = rstd[row];
        float k = dot / c * s * s * s;
        if (mine) {
            float* dx = dinp + (long long)row * c + j;
            float d[4];
            load_vec<float, 4>(d, dx);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                d[e] += s * w[e] * g[e] - k * x[e];
                dw[e] += g[e] * x[e] * s;
                m = fmaxf(m, fabsf(d[e]));
            }
            store_vec<float, 4>(dx, d);
            if (dinpCopy) store_vec<bf16, 4>(dinpCopy + (long long)row * c + j, d);
        }
    }
    if (mine) store_vec<float, 4>(partials + (long long)blockIdx.x * c + j, dw);
    if (amax) warp_amax(amax, bf16_round(m));
}

__global__ void rmsnorm_backward_rows_at_top(float* dinp, bf16* dinpCopy, float* partials, const bf16* dout, const float* inp,
                                             const float* weight, const float* rstd, int n, int c, unsigned* amax) {
    rmsnorm_backward_rows_at_top_impl<bf16>(dinp, dinpCopy, partials, dout, inp, weight, rstd, n, c, amax);
}

// and against other candidates:
//   AHEAD  x and dy one row ahead, dx before the sum (rmsnorm.cu's form);
//   ALL    x, dy and dx one row ahead.
// MAXNREG: held at 40 registers (three blocks of 512 threads an SM, as the earlier form's 39 allow) or not.
enum RowLoads { AHEAD, ALL };

template <RowLoads LOADS>
__device__ __forceinline__ void rmsnorm_backward_candidate(float* dinp, bf16* dinpCopy, float* partials, const bf16* dout,
                                                           const float* inp, const float* weight, const float* rstd, int n, int c) {
    __shared__ float scratch[32];
    const int j = 4 * threadIdx.x;
    const bool mine = j < c;
    float w[4], dw[4] = {0.f, 0.f, 0.f, 0.f};
    load_vec<float, 4>(w, mine ? weight + j : weight);
    int first = blockIdx.x * RMSNORM_ROWS_PER_BLOCK, last = min(first + RMSNORM_ROWS_PER_BLOCK, n);
    float x[4] = {0.f, 0.f, 0.f, 0.f}, g[4] = {0.f, 0.f, 0.f, 0.f}, d[4] = {0.f, 0.f, 0.f, 0.f};
    auto load_row = [&](int row, float* xr, float* gr, float* dr) {
        if (mine && row < last) {
            load_vec<float, 4>(xr, inp + (long long)row * c + j);
            load_vec<bf16, 4>(gr, dout + (long long)row * c + j);
            if (LOADS == ALL) load_vec<float, 4>(dr, dinp + (long long)row * c + j);
        }
    };
    load_row(first, x, g, d);
    for (int row = first; row < last; row++) {
        float xn[4] = {0.f, 0.f, 0.f, 0.f}, gn[4] = {0.f, 0.f, 0.f, 0.f}, dn[4] = {0.f, 0.f, 0.f, 0.f};
        if (LOADS == AHEAD && mine) load_vec<float, 4>(d, dinp + (long long)row * c + j);
        load_row(row + 1, xn, gn, dn);
        float dot = w[0] * g[0] * x[0] + w[1] * g[1] * x[1] + w[2] * g[2] * x[2] + w[3] * g[3] * x[3];
        dot = block_sum(dot, scratch);
        float s = rstd[row], k = dot / c * s * s * s;
        if (mine) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                d[e] += s * w[e] * g[e] - k * x[e];
                dw[e] += g[e] * x[e] * s;
            }
            store_vec<float, 4>(dinp + (long long)row * c + j, d);
            store_vec<bf16, 4>(dinpCopy + (long long)row * c + j, d);
        }
#pragma unroll
        for (int e = 0; e < 4; e++) {
            x[e] = xn[e];
            g[e] = gn[e];
            if (LOADS == ALL) d[e] = dn[e];
        }
    }
    if (mine) store_vec<float, 4>(partials + (long long)blockIdx.x * c + j, dw);
}

#define RMSNORM_CANDIDATE(NAME, LOADS, BOUNDS)                                                                                   \
    __global__ void BOUNDS NAME(float* dinp, bf16* dinpCopy, float* partials, const bf16* dout, const float* inp,              \
                                const float* weight, const float* rstd, int n, int c, unsigned*) {                              \
        rmsnorm_backward_candidate<LOADS>(dinp, dinpCopy, partials, dout, inp, weight, rstd, n, c);                            \
    }
RMSNORM_CANDIDATE(rmsnorm_backward_ahead_40, AHEAD, __maxnreg__(40))
RMSNORM_CANDIDATE(rmsnorm_backward_all_40, ALL, __maxnreg__(40))
RMSNORM_CANDIDATE(rmsnorm_backward_all, ALL, )

// The residual add + RMSNorm forward (rmsnorm.cu: four warps a row, two rows a block of 256
// threads, each warp's quarter of the row in registers, 40 registers: 6 blocks an SM) against
// other shapes of the same work:
//   PARTS       warps a row (1, 2 or 4): warp `part` takes every PARTS-th run of 128 columns from
//               run `part`, as rmsnorm.cu does; the sums meet through shared memory (with 4 the
//               same order as rmsnorm.cu's, so the same bits; with 1 or 2 another order);
//   WARPS       warps a block; BOUNDS  the registers allowed, through the blocks an SM asked for.
template <int WARPS, int PARTS>
__device__ __forceinline__ void residual_rmsnorm_candidate(float* residual, bf16* out, float* rstd, const float* x, const bf16* delta,
                                                           const float* weight, int n, int c, float eps) {
    constexpr int VECS = ROW_VECS / PARTS;
    __shared__ float parts[WARPS];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int part = warp % PARTS;
    const int row = blockIdx.x * (WARPS / PARTS) + warp / PARTS;
    const float* xr = x + (long long)row * c;
    const bf16* dr = delta + (long long)row * c;
    float* rr = residual + (long long)row * c;
    bf16* y = out + (long long)row * c;
    float4 v[VECS];
    float sum = 0.f;
#pragma unroll
    for (int k = 0; k < VECS; k++) {
        const int j = (k * PARTS + part) * 128 + lane * 4;
        v[k] = *reinterpret_cast<const float4*>(xr + j);
        float d[4];
        load_vec<bf16, 4>(d, dr + j);
        v[k].x += d[0]; v[k].y += d[1]; v[k].z += d[2]; v[k].w += d[3];
        *reinterpret_cast<float4*>(rr + j) = v[k];
        sum += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
    }
    sum = warp_sum(sum);
    if (PARTS > 1) {
        if (lane == 0) parts[warp] = sum;
        __syncthreads();
        const int first = warp - part;
        sum = parts[first];
#pragma unroll
        for (int p = 1; p < PARTS; p++) sum += parts[first + p];
    }
    float s = 1.f / sqrtf(sum / c + eps);
    if (lane == 0 && part == 0) rstd[row] = s;
#pragma unroll
    for (int k = 0; k < VECS; k++) {
        const int j = (k * PARTS + part) * 128 + lane * 4;
        float4 w = *reinterpret_cast<const float4*>(weight + j);
        st4(y + j, make_float4(v[k].x * s * w.x, v[k].y * s * w.y, v[k].z * s * w.z, v[k].w * s * w.w));
    }
}

#define RESIDUAL_CANDIDATE(NAME, WARPS, PARTS, BOUNDS)                                                                       \
    __global__ void BOUNDS NAME(float* residual, bf16* out, float* rstd, const float* x, const bf16* delta, const float* weight, \
                                int n, int c, float eps, unsigned*) {                                                        \
        residual_rmsnorm_candidate<WARPS, PARTS>(residual, out, rstd, x, delta, weight, n, c, eps);                         \
    }
RESIDUAL_CANDIDATE(residual_rmsnorm_one_warp, 8, 1, __launch_bounds__(256, 3))
RESIDUAL_CANDIDATE(residual_rmsnorm_two_warps, 8, 2, __launch_bounds__(256, 4))
RESIDUAL_CANDIDATE(residual_rmsnorm_four_warps, 8, 4, __launch_bounds__(256, 6))
RESIDUAL_CANDIDATE(residual_rmsnorm_four_warps_8, 8, 4, __launch_bounds__(256, 8))

static float* device_floats(size_t n, unsigned seed, float scale) {
    std::vector<float> h(n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        h[i] = scale * ((seed >> 8) * (1.f / 16777216.f) - 0.5f);
    }
    float* d;
    CHECK(cudaMalloc(&d, n * 4));
    CHECK(cudaMemcpy(d, h.data(), n * 4, cudaMemcpyHostToDevice));
    return d;
}

__global__ void to_bf16(bf16* out, const float* in, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) out[i] = __float2bfloat16(in[i]);
}

static bf16* device_bf16(size_t n, unsigned seed, float scale) {
    float* f = device_floats(n, seed, scale);
    bf16* b;
    CHECK(cudaMalloc(&b, n * 2));
    to_bf16<<<1024, 256>>>(b, f, n);
    CHECK(cudaFree(f));
    return b;
}

static bool same_bytes(const void* a, const void* b, size_t bytes) {
    std::vector<unsigned char> x(bytes), y(bytes);
    CHECK(cudaMemcpy(x.data(), a, bytes, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(y.data(), b, bytes, cudaMemcpyDeviceToHost));
    return memcmp(x.data(), y.data(), bytes) == 0;
}

// Median milliseconds of `launch` over 20 runs after 3; `reset` (untimed) before each.
template <typename Reset, typename Launch>
static float time_ms(Reset reset, Launch launch) {
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    std::vector<float> ms;
    for (int i = 0; i < 23; i++) {
        reset();
        CHECK(cudaEventRecord(a));
        launch();
        CHECK(cudaEventRecord(b));
        CHECK(cudaEventSynchronize(b));
        CHECK(cudaGetLastError());
        float m;
        CHECK(cudaEventElapsedTime(&m, a, b));
        if (i >= 3) ms.push_back(m);
    }
    std::sort(ms.begin(), ms.end());
    CHECK(cudaEventDestroy(a));
    CHECK(cudaEventDestroy(b));
    return ms[ms.size() / 2];
}

static void report(const char* what, float ms, double bytes, bool same) {
    printf("%-58s %8.4f ms %7.2f TB/s   %s\n", what, ms, bytes / (ms * 1e-3) / 1e12, same ? "bits equal" : "BITS DIFFER");
}

int main() {
    cudaDeviceProp prop;
    CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s (sm_%d%d, %d SMs)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount);
    bool ok = true;
    const int n = 16384, c = 2048, hidden = 5632;

    {   // RMSNorm backward: dinp += ..., its bf16 copy, the block partials of dweight
        const int blocks = (n + RMSNORM_ROWS_PER_BLOCK - 1) / RMSNORM_ROWS_PER_BLOCK, threads = c / 4;
        float *x = device_floats((size_t)n * c, 1, 4.f), *w = device_floats(c, 2, 2.f), *rstd = device_floats(n, 3, 1.f);
        float* dinp0 = device_floats((size_t)n * c, 4, 1e-3f);
        bf16* dy = device_bf16((size_t)n * c, 5, 1e-2f);
        typedef void (*Candidate)(float*, bf16*, float*, const bf16*, const float*, const float*, const float*, int, int, unsigned*);
        const Candidate candidates[] = {rmsnorm_backward_rows_at_top, rmsnorm_backward_ahead_40, rmsnorm_backward_all_40,
                                        rmsnorm_backward_all};
        const char* names[] = {"  rows loaded at the top, dx after the sum (the earlier form)",
                               "  x, dy a row ahead, dx before the sum; 40 registers", "  x, dy and dx a row ahead; 40 registers",
                               "  x, dy and dx a row ahead"};
        float *dinp[5], *partials[5];
        bf16* copy[5];
        for (int v = 0; v < 5; v++) {
            CHECK(cudaMalloc(&dinp[v], (size_t)n * c * 4));
            CHECK(cudaMalloc(&copy[v], (size_t)n * c * 2));
            CHECK(cudaMalloc(&partials[v], (size_t)blocks * c * 4));
        }
        auto reset = [&](int v) { return [&, v] { CHECK(cudaMemcpy(dinp[v], dinp0, (size_t)n * c * 4, cudaMemcpyDeviceToDevice)); }; };
        // read dy (bf16) and x, read and write dinp, write its copy: 14 bytes an element
        const double bytes = (double)n * c * (2 + 4 + 4 + 4 + 2);
        printf("rmsnorm backward, n=%d c=%d, bf16 dy and copy\n", n, c);
        float now = time_ms(reset(0), [&] {
            rmsnorm_backward_vec_bf16<<<blocks, threads>>>(dinp[0], copy[0], partials[0], dy, x, w, rstd, n, c, nullptr);
        });
        report("  x, dy a row ahead, dx before the sum (rmsnorm.cu)", now, bytes, true);
        for (int v = 1; v < 5; v++) {
            float ms = time_ms(reset(v), [&] { candidates[v - 1]<<<blocks, threads>>>(dinp[v], copy[v], partials[v], dy, x, w, rstd, n, c, nullptr); });
            bool same = same_bytes(dinp[0], dinp[v], (size_t)n * c * 4) && same_bytes(copy[0], copy[v], (size_t)n * c * 2) &&
                        same_bytes(partials[0], partials[v], (size_t)blocks * c * 4);
            report(names[v - 1], ms, bytes, same);
            ok = ok && same;
        }
    }
    {   // residual add + RMSNorm forward: residual = x + delta, out = rmsnorm(residual) in bf16, rstd
        float *x = device_floats((size_t)n * c, 11, 4.f), *w = device_floats(c, 12, 2.f);
        bf16* delta = device_bf16((size_t)n * c, 13, 1.f);
        const int forms = 5;
        float *residual[forms], *rstd[forms];
        bf16* out[forms];
        for (int v = 0; v < forms; v++) {
            CHECK(cudaMalloc(&residual[v], (size_t)n * c * 4));
            CHECK(cudaMalloc(&out[v], (size_t)n * c * 2));
            CHECK(cudaMalloc(&rstd[v], (size_t)n * 4));
        }
        typedef void (*Form)(float*, bf16*, float*, const float*, const bf16*, const float*, int, int, float, unsigned*);
        const Form candidates[] = {residual_rmsnorm_one_warp, residual_rmsnorm_two_warps, residual_rmsnorm_four_warps,
                                   residual_rmsnorm_four_warps_8};
        const int blocks[] = {n / 8, n / 4, n / 2, n / 2};
        const bool sameOrder[] = {false, false, true, true};
        const char* names[] = {"  one warp a row, 8 rows a block, 3 blocks an SM (the earlier form)",
                               "  two warps a row, 4 blocks an SM (other sum order)",
                               "  four warps a row, 6 blocks an SM (the harness's build)",
                               "  four warps a row, 8 blocks an SM (12 bytes spilled)"};
        auto none = [] {};
        // read x (fp32) and delta (bf16), write residual (fp32) and out (bf16): 12 bytes an element
        const double bytes = (double)n * c * 12;
        printf("residual add + rmsnorm forward, n=%d c=%d, bf16 delta and out\n", n, c);
        float now = time_ms(none, [&] {
            residual_rmsnorm_forward_bf16<<<n / (RMSNORM_WARPS / RMSNORM_ROW_WARPS), 32 * RMSNORM_WARPS>>>(
                residual[0], out[0], rstd[0], x, delta, w, n, c, 1e-5f, nullptr);
        });
        report("  four warps a row, 6 blocks an SM (rmsnorm.cu)", now, bytes, true);
        for (int v = 1; v < forms; v++) {
            float ms = time_ms(none, [&] {
                candidates[v - 1]<<<blocks[v - 1], 256>>>(residual[v], out[v], rstd[v], x, delta, w, n, c, 1e-5f, nullptr);
            });
            bool same = same_bytes(residual[0], residual[v], (size_t)n * c * 4) && same_bytes(out[0], out[v], (size_t)n * c * 2) &&
                        same_bytes(rstd[0], rstd[v], (size_t)n * 4);
            report(names[v - 1], ms, bytes, same);
            if (sameOrder[v - 1]) ok = ok && same;
        }
    }
    {   // SwiGLU: the forward recomputation then the backward, against the backward writing the output too
        const size_t rows = n;
        bf16* h = device_bf16(rows * 2 * hidden, 6, 6.f);
        bf16* dout = device_bf16(rows * hidden, 7, 1e-2f);
        bf16 *out[2], *dh[2];
        for (int v = 0; v < 2; v++) {
            CHECK(cudaMalloc(&out[v], rows * hidden * 2));
            CHECK(cudaMalloc(&dh[v], rows * 2 * hidden * 2));
        }
        const int threads = 128, vec = 8;
        dim3 grid((hidden / vec + threads - 1) / threads, std::min(n, 65535));
        auto none = [] {};
        float two = time_ms(none, [&] {
            swiglu_forward_bf16<<<grid, threads>>>(out[0], h, n, hidden, vec, nullptr);
            swiglu_backward_bf16<<<grid, threads>>>(dh[0], nullptr, dout, h, n, hidden, vec, nullptr);
        });
        float one = time_ms(none, [&] { swiglu_backward_bf16<<<grid, threads>>>(dh[1], out[1], dout, h, n, hidden, vec, nullptr); });
        bool same = same_bytes(out[0], out[1], rows * hidden * 2) && same_bytes(dh[0], dh[1], rows * 2 * hidden * 2);
        printf("swiglu, n=%d hidden=%d, bf16\n", n, hidden);
        // forward: read h, write out; backward: read h and dout, write dh. One pass: read h and dout, write dh and out.
        report("  forward recomputation, then the backward", two, (double)rows * hidden * 2 * (2 + 1 + 2 + 1 + 2), true);
        report("  the backward writing the output too (swiglu.cu)", one, (double)rows * hidden * 2 * (2 + 1 + 2 + 1), same);
        ok = ok && same;
    }
    printf("%s\n", ok ? "elementwise harness: every form gives the same bits" : "elementwise harness: BITS DIFFER");
    return ok ? 0 : 1;
}
