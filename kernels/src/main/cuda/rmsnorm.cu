// RMSNorm (Hugging Face LlamaRMSNorm): y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
//   x, y, dx, dy [n, c]; w, dw [c]; rstd [n] saved by the forward.
// Backward per row, with g = w * dy:
//   dx += rstd * g - x * rstd^3 * mean(g * x)     (accumulates: the residual path adds to dx)
//   dw += sum over rows of dy * x * rstd
// Trick: the backward gives each block a run of rows; every thread owns fixed columns, keeps
// their dw partial sums in shared memory across the rows, and adds them to dw with one atomic
// per column per block instead of one per element.
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
extern "C" __global__ void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
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
    for (int j = threadIdx.x; j < c; j += blockDim.x) atomicAdd(&dweight[j], dw[j]);
}
