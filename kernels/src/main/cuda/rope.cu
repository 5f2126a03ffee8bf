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
// grid (ceil(rotatedHeads * half / VEC / blockDim), min(rows, 65535)). VEC = 16 / sizeof(T)
// when half is a multiple of it and the rows are 16-byte aligned (the launcher checks), else 1.
template <typename T, int VEC>
__device__ void rope_rows(T* qkv, const float* cosTable, const float* sinTable,
                          int rows, int t, int rotatedHeads, int width, int hs, int startPos, float sign) {
    int half = hs / 2, chunks = half / VEC;
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= rotatedHeads * chunks) return;
    int head = idx / chunks, i0 = (idx % chunks) * VEC;
    for (int row = blockIdx.y; row < rows; row += gridDim.y) {
        int pos = startPos + row % t;
        float cos[VEC], sin[VEC], x1[VEC], x2[VEC], y1[VEC], y2[VEC];
        load_vec<float, VEC>(cos, cosTable + (long long)pos * half + i0);
        load_vec<float, VEC>(sin, sinTable + (long long)pos * half + i0);
        T* x = qkv + (long long)row * width + (long long)head * hs + i0;
        load_vec<T, VEC>(x1, x);
        load_vec<T, VEC>(x2, x + half);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            float s = sign * sin[k];
            y1[k] = x1[k] * cos[k] - x2[k] * s;
            y2[k] = x2[k] * cos[k] + x1[k] * s;
        }
        store_vec<T, VEC>(x, y1);
        store_vec<T, VEC>(x + half, y2);
    }
}

#define ROPE_KERNELS(SUFFIX, T)                                                                                    \
    extern "C" __global__ void rope_rotate##SUFFIX(T* qkv, const float* cosTable, const float* sinTable, int rows,  \
                                                   int t, int rotatedHeads, int width, int hs, int startPos,       \
                                                   float sign, int vec) {                                          \
        if (vec == 1) rope_rows<T, 1>(qkv, cosTable, sinTable, rows, t, rotatedHeads, width, hs, startPos, sign);  \
        else rope_rows<T, 16 / sizeof(T)>(qkv, cosTable, sinTable, rows, t, rotatedHeads, width, hs, startPos, sign); \
    }

ROPE_KERNELS(, float)
ROPE_KERNELS(_bf16, bf16)
