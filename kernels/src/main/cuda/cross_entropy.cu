// Softmax cross-entropy over the vocabulary, fused with its backward (llm.c's fused classifier).
//   loss_i = logsumexp(z_i) - z_i[y_i]
//   dz_i   = (softmax(z_i) - onehot(y_i)) * scale      (overwrites the logits when backward != 0)
// z [n, V] fp32 or bf16 (the lm_head output of a bf16-mixed step, as under autocast; the gradient
// then goes back to the matmul in bf16 too, with no cast between), all arithmetic fp32;
// targets [n] (negative: ignored, loss 0 and gradient 0), losses [n] fp32; margins [n] fp32 or null:
// max_j z_ij - z_i[y_i], 0 when the target has the largest logit (scoring asks whether greedy
// decoding would pick it).
// Trick: one block per row walks the vocabulary in strided chunks keeping an online
// (max, sum of exp) pair per thread, merged across the block, so the row is read once for the
// statistics and once for the gradient and no [n, V] scratch exists; 16-byte accesses where the
// row allows.
#include "common.cuh"

// Online (max, sum of exp) update with one more value.
__device__ __forceinline__ void ce_push(float& m, float& s, float x) {
    if (x > m) { s = s * expf(m - x) + 1.f; m = x; } else { s += expf(x - m); }
}

// VEC values per thread step (16 / sizeof(T): 16-byte accesses, when v is a multiple of it and the
// logits are aligned; the launcher checks), else 1.
template <typename T, int VEC>
__device__ void cross_entropy_row(T* logits, float* losses, float* margins, const int* targets, int n, int v, float scale,
                                  int backward) {
    __shared__ float maxes[32], sums[32];
    __shared__ float rowStats[2];
    int row = blockIdx.x;
    T* z = logits + (long long)row * v;
    int target = targets[row];
    if (target < 0) {
        if (threadIdx.x == 0) {
            losses[row] = 0.f;
            if (margins) margins[row] = 0.f;
        }
        if (backward) for (int j = threadIdx.x; j < v; j += blockDim.x) st(z + j, 0.f);
        return;
    }
    float m = -CUDART_INF_F, s = 0.f;
    for (int j = threadIdx.x * VEC; j < v; j += blockDim.x * VEC) {
        float x[VEC];
        load_vec<T, VEC>(x, z + j);
#pragma unroll
        for (int e = 0; e < VEC; e++) ce_push(m, s, x[e]);
    }
    for (int offset = 16; offset > 0; offset >>= 1) {
        float om = __shfl_xor_sync(0xffffffffu, m, offset), os = __shfl_xor_sync(0xffffffffu, s, offset);
        float nm = fmaxf(m, om);
        s = (m == -CUDART_INF_F ? 0.f : s * expf(m - nm)) + (om == -CUDART_INF_F ? 0.f : os * expf(om - nm));
        m = nm;
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    if (lane == 0) { maxes[warp] = m; sums[warp] = s; }
    __syncthreads();
    if (threadIdx.x == 0) {
        float bm = -CUDART_INF_F;
        for (int w = 0; w < warps; w++) bm = fmaxf(bm, maxes[w]);
        float bs = 0.f;
        for (int w = 0; w < warps; w++) if (maxes[w] != -CUDART_INF_F) bs += sums[w] * expf(maxes[w] - bm);
        float logSum = logf(bs) + bm;
        rowStats[0] = logSum;
        losses[row] = logSum - ld(z + target);
        if (margins) margins[row] = bm - ld(z + target);
    }
    __syncthreads();
    if (!backward) return;
    float logSum = rowStats[0];
    for (int j = threadIdx.x * VEC; j < v; j += blockDim.x * VEC) {
        float x[VEC];
        load_vec<T, VEC>(x, z + j);
#pragma unroll
        for (int e = 0; e < VEC; e++) x[e] = expf(x[e] - logSum) * scale - (j + e == target ? scale : 0.f);
        store_vec<T, VEC>(z + j, x);
    }
}

// vec: the launcher's choice (16 / sizeof(T) or 1); one block per row.
#define CROSS_ENTROPY_KERNEL(SUFFIX, T)                                                                          \
    extern "C" __global__ void cross_entropy##SUFFIX(T* logits, float* losses, float* margins, const int* targets, int n, \
                                                     int v, float scale, int backward, int vec) {                        \
        if (vec == 1) cross_entropy_row<T, 1>(logits, losses, margins, targets, n, v, scale, backward);                   \
        else cross_entropy_row<T, 16 / sizeof(T)>(logits, losses, margins, targets, n, v, scale, backward);              \
    }

CROSS_ENTROPY_KERNEL(, float)
CROSS_ENTROPY_KERNEL(_bf16, bf16)
