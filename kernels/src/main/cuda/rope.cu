// Rotary position embedding, rotate-half convention (Hugging Face Llama, lit-gpt), in place on
// the q and k heads of fused qkv rows [b, t, (nh + 2 nkv) hs]; element i of a head pairs with
// i + hs/2 and turns by the angle of position pos at frequency i:
//   y_i     = x_i cos - x_{i+h} sin
//   y_{i+h} = x_{i+h} cos + x_i sin
// The backward is the same kernel with sign = -1 (rotation by -angle). qkv in fp32 or bf16 storage
// (rounded once after the rotation, as PyTorch's bf16 RoPE is).
// Trick: cos/sin come from a [positions, hs/2] table the host builds exactly as the CPU
// reference does (fp32 inverse frequencies and angles), so RoPE matches it bit for bit.
#include "common.cuh"

template <typename T>
__device__ void rope_rotate_impl(T* qkv, const float* cosTable, const float* sinTable,
                                 int rows, int t, int rotatedHeads, int width, int hs, int startPos, float sign) {
    int half = hs / 2;
    long long total = (long long)rows * rotatedHeads * half;
    GRID_STRIDE(idx, total) {
        int i = (int)(idx % half);
        long long rest = idx / half;
        int head = (int)(rest % rotatedHeads);
        long long row = rest / rotatedHeads;
        int pos = startPos + (int)(row % t);
        float cos = cosTable[(long long)pos * half + i];
        float sin = sign * sinTable[(long long)pos * half + i];
        T* x = qkv + row * width + (long long)head * hs;
        float x1 = ld(&x[i]), x2 = ld(&x[i + half]);
        st(&x[i], x1 * cos - x2 * sin);
        st(&x[i + half], x2 * cos + x1 * sin);
    }
}

#define ROPE_KERNELS(SUFFIX, T)                                                                                    \
    extern "C" __global__ void rope_rotate##SUFFIX(T* qkv, const float* cosTable, const float* sinTable, int rows,  \
                                                   int t, int rotatedHeads, int width, int hs, int startPos,       \
                                                   float sign) {                                                   \
        rope_rotate_impl<T>(qkv, cosTable, sinTable, rows, t, rotatedHeads, width, hs, startPos, sign);           \
    }

ROPE_KERNELS(, float)
ROPE_KERNELS(_bf16, bf16)
