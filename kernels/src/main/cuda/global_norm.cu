// Sum of squares of a flat fp32 run (the global gradient norm for clipping is its sqrt, summed
// over parameter ranges on the host).
//   out += sum_i x_i^2        out: one double, zeroed by the caller
// Trick: each thread sums in double over a grid-stride run, then one warp reduction and one
// double atomic per warp; 1e9 values keep about 1e-12 relative accuracy.
#include "common.cuh"

extern "C" __global__ void sum_of_squares(double* out, const float* x, long long n) {
    double sum = 0.0;
    GRID_STRIDE(i, n) { double v = x[i]; sum += v * v; }
    sum = warp_sum_double(sum);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, sum);
}
