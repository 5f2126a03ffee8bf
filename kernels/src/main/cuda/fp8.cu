// FP8 operands with per-tensor current scaling, for the matmuls of train.precision fp8-mixed.
//   fp8_amax:  amax[0] = max(amax[0], max |x|) over a bf16 tensor (the caller zeroes amax first)
//   fp8_cast:  s = FMAX / amax (1 when amax is 0), FMAX = 448 (e4m3) or 57344 (e5m2);
//              y = fp8(x * s) [rows, cols] and/or yt = its transpose [cols, rows] (either may be
//              null), rounded to nearest even and saturated to +-FMAX; block (0, 0) writes
//              scale_inv[0] = 1 / s, the factor cuBLASLt multiplies the products by.
// Tricks: |x| >= 0 orders as its float bits, so the amax is an atomicMax on unsigned bits (the
// maximum is the same whatever the order: the same bits every run; common.cuh's warp_amax, which
// producers such as the SwiGLU kernels also call to spare this pass). The cast goes through 64 x
// 64 tiles in shared memory so that both the row-major and the transposed writes are 8-byte
// runs; a tile on the edge of the tensor (or a shape whose rows are not 8-byte runs) takes a
// one-value path.
#include "common.cuh"
#include <cuda_fp8.h>

#define FP8_TILE 64

// vec8: n is a multiple of 8 and x 16-byte aligned (the launcher's check). grid: any, blocks of a multiple of 32.
extern "C" __global__ void fp8_amax(unsigned* amax, const bf16* x, long long n, int vec8) {
    float m = 0.f;
    if (vec8) {
        GRID_STRIDE(i, n / 8) {
            VecN<bf16, 8> v = reinterpret_cast<const VecN<bf16, 8>*>(x)[i];
#pragma unroll
            for (int k = 0; k < 8; k++) m = fmaxf(m, fabsf(__bfloat162float(v.v[k])));
        }
    } else {
        GRID_STRIDE(i, n) { m = fmaxf(m, fabsf(__bfloat162float(x[i]))); }
    }
    warp_amax(amax, m);
}

__device__ __forceinline__ uint8_t fp8_of(float v, int e5m2) {
    return (uint8_t)__nv_cvt_float_to_fp8(v, __NV_SATFINITE, e5m2 ? __NV_E5M2 : __NV_E4M3);
}

// 8 FP8 values as one 8-byte store
__device__ __forceinline__ uint2 pack8(const uint8_t* q) {
    return make_uint2(q[0] | q[1] << 8 | q[2] << 16 | (uint32_t)q[3] << 24, q[4] | q[5] << 8 | q[6] << 16 | (uint32_t)q[7] << 24);
}

// grid (ceil(cols / 64), ceil(rows / 64)), 256 threads: each thread moves 8 columns of 2 rows.
// aligned: x is 16-byte aligned, y and yt 8-byte (the launcher's check).
extern "C" __global__ void fp8_cast(uint8_t* y, uint8_t* yt, float* scale_inv, const bf16* x, const unsigned* amax, int rows,
                                    int cols, int e5m2, int aligned) {
    // rows 66 bytes apart: the transposed reads (a column, 8 rows apart across a warp) and the
    // row writes hit distinct banks, where 72 gave 4-way and 3-way conflicts
    __shared__ uint8_t tile[FP8_TILE][FP8_TILE + 2];
    float a = __uint_as_float(*amax);
    float s = a > 0.f ? (e5m2 ? 57344.f : 448.f) / a : 1.f;
    if (blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) scale_inv[0] = 1.f / s;
    int r0 = blockIdx.y * FP8_TILE, c0 = blockIdx.x * FP8_TILE;
    int tr = threadIdx.x >> 3, tc = (threadIdx.x & 7) * 8;
    bool full = aligned && r0 + FP8_TILE <= rows && c0 + FP8_TILE <= cols;
    bool rowRuns = full && cols % 8 == 0, colRuns = full && rows % 8 == 0;
    for (int pass = 0; pass < 2; pass++) {
        int r = tr + pass * 32;
        const bf16* src = x + (long long)(r0 + r) * cols + c0 + tc;
        uint8_t q[8];
        if (rowRuns) {
            VecN<bf16, 8> v = *reinterpret_cast<const VecN<bf16, 8>*>(src);
#pragma unroll
            for (int k = 0; k < 8; k++) q[k] = fp8_of(__bfloat162float(v.v[k]) * s, e5m2);
            if (y) *reinterpret_cast<uint2*>(y + (long long)(r0 + r) * cols + c0 + tc) = pack8(q);
        } else {
            for (int k = 0; k < 8; k++) {
                bool in = r0 + r < rows && c0 + tc + k < cols;
                q[k] = in ? fp8_of(__bfloat162float(src[k]) * s, e5m2) : 0;
                if (in && y) y[(long long)(r0 + r) * cols + c0 + tc + k] = q[k];
            }
        }
#pragma unroll
        for (int k = 0; k < 8; k++) tile[r][tc + k] = q[k];
    }
    if (!yt) return;
    __syncthreads();
    for (int pass = 0; pass < 2; pass++) {
        int c = tr + pass * 32;  // a column of x, a row of yt
        uint8_t q[8];
#pragma unroll
        for (int k = 0; k < 8; k++) q[k] = tile[tc + k][c];
        uint8_t* dst = yt + (long long)(c0 + c) * rows + r0 + tc;
        if (colRuns) {
            *reinterpret_cast<uint2*>(dst) = pack8(q);
        } else {
            for (int k = 0; k < 8; k++) {
                if (c0 + c < cols && r0 + tc + k < rows) dst[k] = q[k];
            }
        }
    }
}
