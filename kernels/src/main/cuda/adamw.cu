// AdamW over fp32 master weights, as torch.optim.AdamW (decoupled decay, bias correction):
//   g = grad * gradScale
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p = p (1 - lr wd) - lr (m / c1) / (sqrt(v / c2) + eps),  c1 = 1 - b1^t, c2 = 1 - b2^t
// params, grads, m, v: flat runs of n fp32 values. The bias corrections come from the host,
// computed as the CPU reference computes them, so both backends do the same fp32 arithmetic.
// Trick: 16-byte accesses (4 values of each of the four arrays per thread step) when the
// bases allow: the update is bandwidth-bound (28 bytes per parameter). The matmuls read bf16
// copies of these fp32 masters: with copy (else null) the kernel writes the new value rounded to
// bf16 there too (2 more bytes per parameter instead of a cast pass of 6 before each use).
#include "common.cuh"

__device__ __forceinline__ void adamw_one(float& p, float g, float& m, float& v, float lr, float beta1, float beta2,
                                          float eps, float decay, float correction1, float correction2, float gradScale) {
    float grad = g * gradScale;
    float mi = beta1 * m + (1.f - beta1) * grad;
    float vi = beta2 * v + (1.f - beta2) * grad * grad;
    m = mi;
    v = vi;
    float mHat = mi / correction1;
    float vHat = vi / correction2;
    p = p * decay - lr * mHat / (sqrtf(vHat) + eps);
}

// vec4 (the launcher's choice: every base 16-byte aligned, copy 8-byte): elements 4i .. 4i+3 of n / 4 groups,
// then the tail one by one; otherwise one element per step. The same arithmetic per element
// either way, so the result does not depend on the choice.
extern "C" __global__ void adamw_update(float* params, bf16* copy, const float* grads, float* m, float* v, long long n,
                                        float lr, float beta1, float beta2, float eps, float weightDecay,
                                        float correction1, float correction2, float gradScale, int vec4) {
    float decay = 1.f - lr * weightDecay;
    long long first = 0;
    if (vec4) {
        long long groups = n / 4;
        GRID_STRIDE(i, groups) {
            float4 p = reinterpret_cast<float4*>(params)[i], g = reinterpret_cast<const float4*>(grads)[i];
            float4 mi = reinterpret_cast<float4*>(m)[i], vi = reinterpret_cast<float4*>(v)[i];
            adamw_one(p.x, g.x, mi.x, vi.x, lr, beta1, beta2, eps, decay, correction1, correction2, gradScale);
            adamw_one(p.y, g.y, mi.y, vi.y, lr, beta1, beta2, eps, decay, correction1, correction2, gradScale);
            adamw_one(p.z, g.z, mi.z, vi.z, lr, beta1, beta2, eps, decay, correction1, correction2, gradScale);
            adamw_one(p.w, g.w, mi.w, vi.w, lr, beta1, beta2, eps, decay, correction1, correction2, gradScale);
            reinterpret_cast<float4*>(params)[i] = p;
            if (copy) {
                float q[4] = {p.x, p.y, p.z, p.w};
                store_vec<bf16, 4>(copy + 4 * i, q);
            }
            reinterpret_cast<float4*>(m)[i] = mi;
            reinterpret_cast<float4*>(v)[i] = vi;
        }
        first = groups * 4;
    }
    for (long long i = first + (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        adamw_one(params[i], grads[i], m[i], v[i], lr, beta1, beta2, eps, decay, correction1, correction2, gradScale);
        if (copy) copy[i] = __float2bfloat16(params[i]);
    }
}
