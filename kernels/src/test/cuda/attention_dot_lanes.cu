// Experiment (test sources, not in the fatbin): D = rowsum(dO * O) [b, nh, t], the first kernel of
// the attention backward (attention.cu's attention_backward_dot), with hs / 8 lanes a (row, head),
// 16 bytes each, so that each load of a warp reads 512 contiguous bytes. attention.cu's kernel has
// one thread a (row, head) read 128 bytes at a 128-byte stride, and reaches 1.23 TB/s (0.109 ms at
// b=8 t=2048 nh=32 hs=64 on an H100). Each lane sums its 8 products in order, then the lanes' sums
// meet in a fixed butterfly: deterministic, but not attention.cu's order, so not its bits.
// bf16 storage, hs / 8 a power of two up to 32, 16-byte aligned tensors. Launch with up to
// b t nh hs / 8 threads (grid stride, whole warps). Checked against attention.cu's D and timed by
// scripts/gpu-attention-harness.
#include "../../main/cuda/common.cuh"

extern "C" __global__ void attention_backward_dot_lanes_bf16(float* dot, const bf16* dout, const bf16* out, int b, int t, int nh,
                                                             int hs) {
    const int lanes = hs / 8, lane = threadIdx.x & 31;
    const long long n = (long long)b * t * nh * lanes, stride = (long long)gridDim.x * blockDim.x;
    // warp-uniform trips, so every lane reaches the shuffles
    for (long long w0 = (long long)blockIdx.x * blockDim.x + (threadIdx.x & ~31); w0 < n; w0 += stride) {
        const long long idx = w0 + lane, pair = idx / lanes;   // pair = (bi * t + i) * nh + h
        const int part = (int)(idx - pair * lanes);
        float sum = 0.f;
        if (idx < n) {
            float a[8], c[8];
            load_vec<bf16, 8>(a, dout + pair * hs + part * 8);
            load_vec<bf16, 8>(c, out + pair * hs + part * 8);
#pragma unroll
            for (int e = 0; e < 8; e++) sum += a[e] * c[e];
        }
        for (int off = lanes / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (idx < n && part == 0) {
            const int h = (int)(pair % nh);
            const long long row = pair / nh, bi = row / t, i = row % t;
            dot[(bi * nh + h) * t + i] = sum;
        }
    }
}
