// Rotary position embedding, rotate-half convention (Hugging Face Llama, lit-gpt), in place on
// the q and k heads of fused qkv rows [b, t, (nh + 2 nkv) hs]; element i of a head pairs with
// i + hs/2 and turns by the angle of position pos at frequency i:
//   y_i     = x_i cos - x_{i+h} sin
//   y_{i+h} = x_{i+h} cos + x_i sin
// The backward is the same kernel with sign = -1 (rotation by -angle). qkv in fp32 or bf16 storage
// (rounded once after the rotation, as PyTorch's bf16 RoPE is).
// Trick: each thread rotates 16 bytes of each half of a head at once; cos/sin come from a [positions, hs/2] table the host builds exactly as the CPU
// reference does (fp32 inverse frequencies and angles), so RoPE matches it bit for bit.
#include "common.cuh"

// One thread per VEC consecutive i of one head, rows grid-strided along y:
// grid (ceil((rotatedHeads + readHeads) * half / VEC / blockDim), min(rows, 65535)), blockDim a
// multiple of 32. VEC = 16 / sizeof(T) when half is a multiple of it and the rows are 16-byte
// aligned (the launcher checks), else 1. amax (may be null): max |stored value| of every head
// the kernel covers joins amax[0]: the rotated heads as written, and readHeads more after them,
// read only (the v heads, so that the amax is the whole row's for an FP8 matmul: fp8.cu).
template <typename T, int VEC>
__device__ void rope_rows(T* qkv, const float* cosTable, const float* sinTable, int rows, int t, int rotatedHeads,
                          int readHeads, int width, int hs, int startPos, float sign, unsigned* amax) {
    int half = hs / 2, chunks = half / VEC;
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    int head = idx / chunks, i0 = (idx % chunks) * VEC;
    bool rotates = head < rotatedHeads, reads = !rotates && head < rotatedHeads + readHeads;
    float m = 0.f;
    for (int row = blockIdx.y; (rotates || reads) && row < rows; row += gridDim.y) {
        T* x = qkv + (long long)row * width + (long long)head * hs + i0;
        float x1[VEC], x2[VEC];
        load_vec<T, VEC>(x1, x);
        load_vec<T, VEC>(x2, x + half);
        if (reads) {
#pragma unroll
            for (int k = 0; k < VEC; k++) m = fmaxf(m, fmaxf(fabsf(x1[k]), fabsf(x2[k])));
            continue;
        }
        int pos = startPos + row % t;
        float cos[VEC], sin[VEC], y1[VEC], y2[VEC];
        load_vec<float, VEC>(cos, cosTable + (long long)pos * half + i0);
        load_vec<float, VEC>(sin, sinTable + (long long)pos * half + i0);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            float s = sign * sin[k];
            y1[k] = x1[k] * cos[k] - x2[k] * s;
            y2[k] = x2[k] * cos[k] + x1[k] * s;
            m = fmaxf(m, fmaxf(fabsf(y1[k]), fabsf(y2[k])));
        }
        store_vec<T, VEC>(x, y1);
        store_vec<T, VEC>(x + half, y2);
    }
    if (amax) warp_amax(amax, stored(qkv, m));  // rounding keeps the order: the max rounds to the stored max
}

#define ROPE_KERNELS(SUFFIX, T)                                                                                    \
    extern "C" __global__ void rope_rotate##SUFFIX(T* qkv, const float* cosTable, const float* sinTable, int rows,  \
                                                   int t, int rotatedHeads, int readHeads, int width, int hs,      \
                                                   int startPos, float sign, int vec, unsigned* amax) {            \
        if (vec == 1)                                                                                              \
            rope_rows<T, 1>(qkv, cosTable, sinTable, rows, t, rotatedHeads, readHeads, width, hs, startPos, sign, amax); \
        else                                                                                                       \
            rope_rows<T, 16 / sizeof(T)>(qkv, cosTable, sinTable, rows, t, rotatedHeads, readHeads, width, hs, startPos, \
                                         sign, amax);                                                              \
    }

ROPE_KERNELS(, float)
ROPE_KERNELS(_bf16, bf16)
