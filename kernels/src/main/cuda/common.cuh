// Shared helpers for every kernel family: bf16 rounding, block reductions, grid-stride loops.
//
// Storage convention of the CUDA backend (CudaBackend.java): parameters, gradients,
// optimizer state, the residual stream and the loss are fp32; the activations a step keeps for
// its backward (matmul inputs and outputs, q/k/v, attention output, SwiGLU) may be stored in
// bf16. Kernels over activations are templates on their storage type T (float or bf16), built
// as `name` (float) and `name_bf16`; every sum is fp32 either way. ld/st move one value between
// storage and fp32 arithmetic; ld_bf16 is the load of an operand that enters bf16 arithmetic
// (attention's q/k/v/dout): rounded to bf16 when stored in fp32, exact when stored in bf16.
#pragma once
#include <cuda_bf16.h>
#include <math_constants.h>
#include <stdint.h>

__device__ __forceinline__ float bf16_round(float x) {
    return __bfloat162float(__float2bfloat16(x));
}

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float ld(const float* p) { return *p; }
__device__ __forceinline__ float ld(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ float ld_bf16(const float* p) { return bf16_round(*p); }
__device__ __forceinline__ float ld_bf16(const bf16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st(float* p, float v) { *p = v; }
__device__ __forceinline__ void st(bf16* p, float v) { *p = __float2bfloat16(v); }
// Two adjacent values (p 8-byte aligned for float, 4-byte for bf16).
__device__ __forceinline__ void st2(float* p, float a, float b) { *reinterpret_cast<float2*>(p) = make_float2(a, b); }
__device__ __forceinline__ void st2(bf16* p, float a, float b) { *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b); }

// N values of T moved as one access: aligned to its size, so a load or store of one is a single
// 16-byte (or 32-byte: two) access (a plain array of bf16 would be 2-byte aligned and split).
template <typename T, int N>
struct __align__(sizeof(T) * N) VecN {
    T v[N];
};

// dst[0..N) = the N values at src, widened to fp32 (src aligned to N * sizeof(T)).
template <typename T, int N>
__device__ __forceinline__ void load_vec(float* dst, const T* src) {
    if constexpr (N == 1) {
        dst[0] = ld(src);
    } else {
        VecN<T, N> p = *reinterpret_cast<const VecN<T, N>*>(src);
#pragma unroll
        for (int k = 0; k < N; k++) dst[k] = ld(&p.v[k]);
    }
}

template <typename T, int N>
__device__ __forceinline__ void store_vec(T* dst, const float* src) {
    if constexpr (N == 1) {
        st(dst, src[0]);
    } else {
        VecN<T, N> p;
#pragma unroll
        for (int k = 0; k < N; k++) st(&p.v[k], src[k]);
        *reinterpret_cast<VecN<T, N>*>(dst) = p;
    }
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

// The value a store of v into T keeps: what a later reader of the tensor sees.
__device__ __forceinline__ float stored(const float*, float v) { return v; }
__device__ __forceinline__ float stored(const bf16*, float v) { return bf16_round(v); }

// amax[0] = max(amax[0], m) over the warp's 32 lanes (all must call it; m >= 0, never NaN: its
// float bits then order as unsigned, so the result does not depend on the order). One atomicMax
// per warp, skipped where amax[0] already holds as much: it only grows, so an older value read
// here is still a safe test.
__device__ __forceinline__ void warp_amax(unsigned* amax, float m) {
    unsigned u = __reduce_max_sync(0xffffffffu, __float_as_uint(m));
    if ((threadIdx.x & 31) == 0 && u > *amax) atomicMax(amax, u);
}

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)
