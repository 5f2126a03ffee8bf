// Shared helpers for every kernel family: bf16 rounding, block reductions, grid-stride loops.
//
// Storage convention of the CUDA backend (see docs/gpu-correctness.md): every tensor the
// Backend interface hands out is fp32 in device memory; "bf16 compute" happens where the
// operands enter the arithmetic (cuBLASLt bf16 matmuls with fp32 accumulation, attention
// loading q/k/v/dout rounded to bf16). So the rounding helper below is the one place a value
// becomes bf16 outside the matmul casts.
#pragma once
#include <cuda_bf16.h>
#include <math_constants.h>

__device__ __forceinline__ float bf16_round(float x) {
    return __bfloat162float(__float2bfloat16(x));
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

__device__ __forceinline__ double warp_sum_double(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    }
    return v;
}

// Sum over the whole block; every thread gets the result. blockDim.x must be a multiple of 32
// and at most 1024. `scratch` holds 32 floats.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.f;
    return warp_sum(v);
}

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)
