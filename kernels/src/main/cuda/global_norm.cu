// Sum of squares of a flat fp32 run (the global gradient norm for clipping is its sqrt, summed
// over parameter ranges on the host).
//   partials[block] = sum over the block's grid-stride run of x_i^2     (pass 1, double)
//   out[0]          = sum_b partials[b]                                 (pass 2, one block)
// Trick: two passes with a fixed reduction tree (grid size a function of n only, warp
// butterflies, warps and partials summed in index order), so the result is the same bits on
// every run: no atomics. Doubles keep about 1e-12 relative accuracy over 1e9 values.
#include "common.cuh"

__device__ __forceinline__ double block_sum_double_ordered(double v, double* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum_double(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    double total = 0.0;
    if (threadIdx.x == 0) {
        for (int w = 0; w < warps; w++) total += scratch[w];
    }
    return total; // valid in thread 0
}

extern "C" __global__ void sum_of_squares(double* partials, const float* x, long long n) {
    __shared__ double scratch[32];
    double sum = 0.0;
    GRID_STRIDE(i, n) { double v = x[i]; sum += v * v; }
    sum = block_sum_double_ordered(sum, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// one block
extern "C" __global__ void sum_partials(double* out, const double* partials, int count) {
    __shared__ double scratch[32];
    double sum = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
    sum = block_sum_double_ordered(sum, scratch);
    if (threadIdx.x == 0) out[0] = sum;
}
