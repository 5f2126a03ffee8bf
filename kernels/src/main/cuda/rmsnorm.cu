// RMSNorm (Hugging Face LlamaRMSNorm): y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
//   x, y, dx, dy [n, c]; w, dw [c]; rstd [n] saved by the forward.
// Backward per row, with g = w * dy:
//   dx += rstd * g - x * rstd^3 * mean(g * x)     (accumulates: the residual path adds to dx)
//   dw += sum over rows of dy * x * rstd
// Trick: the backward gives each block a run of rows; every thread owns fixed columns and keeps
// their dw partial sums in shared memory across the rows, then writes the block's partial row
// to partials [blocks, c]; a second kernel sums the partials over the blocks in a fixed order
// and adds them to dw. No atomics, so dw has the same bits on every run.
#include "common.cuh"

#define RMSNORM_ROWS_PER_BLOCK 32

extern "C" __global__ void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight,
                                           int n, int c, float eps) {
    __shared__ float scratch[32];
    int row = blockIdx.x;
    const float* x = inp + (long long)row * c;
    float sum = 0.f;
    for (int j = threadIdx.x; j < c; j += blockDim.x) sum += x[j] * x[j];
    sum = block_sum(sum, scratch);
    float s = 1.f / sqrtf(sum / c + eps);
    if (threadIdx.x == 0) rstd[row] = s;
    float* y = out + (long long)row * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) y[j] = x[j] * s * weight[j];
}

// dynamic shared memory: c floats (the block's dw partials)
extern "C" __global__ void rmsnorm_backward(float* dinp, float* partials, const float* dout, const float* inp,
                                            const float* weight, const float* rstd, int n, int c) {
    extern __shared__ float dw[];
    __shared__ float scratch[32];
    for (int j = threadIdx.x; j < c; j += blockDim.x) dw[j] = 0.f;
    int first = blockIdx.x * RMSNORM_ROWS_PER_BLOCK;
    int last = min(first + RMSNORM_ROWS_PER_BLOCK, n);
    for (int row = first; row < last; row++) {
        const float* x = inp + (long long)row * c;
        const float* dy = dout + (long long)row * c;
        float* dx = dinp + (long long)row * c;
        float s = rstd[row];
        float dot = 0.f;
        for (int j = threadIdx.x; j < c; j += blockDim.x) dot += weight[j] * dy[j] * x[j];
        dot = block_sum(dot, scratch);
        float k = dot / c * s * s * s;
        for (int j = threadIdx.x; j < c; j += blockDim.x) {
            dx[j] += s * weight[j] * dy[j] - k * x[j];
            dw[j] += dy[j] * x[j] * s;
        }
    }
    float* mine = partials + (long long)blockIdx.x * c;
    for (int j = threadIdx.x; j < c; j += blockDim.x) mine[j] = dw[j];
}

// dweight[j] += sum_b partials[b, j]. 256 threads per block: 32 columns x 8 strided runs of
// blocks (coalesced 128-byte rows), the 8 run sums then added in order: a fixed tree.
// grid ceil(c / 32).
extern "C" __global__ void rmsnorm_dweight_reduce(float* dweight, const float* partials, int blocks, int c) {
    __shared__ float runs[8][33];
    int col = threadIdx.x & 31, run = threadIdx.x >> 5;
    int j = blockIdx.x * 32 + col;
    float sum = 0.f;
    if (j < c) {
        for (int b = run; b < blocks; b += 8) sum += partials[(long long)b * c + j];
    }
    runs[run][col] = sum;
    __syncthreads();
    if (run == 0 && j < c) {
        float total = runs[0][col];
        for (int r = 1; r < 8; r++) total += runs[r][col];
        dweight[j] += total;
    }
}
