// AdamW over fp32 master weights, as torch.optim.AdamW (decoupled decay, bias correction):
//   g = grad * gradScale
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p = p (1 - lr wd) - lr (m / c1) / (sqrt(v / c2) + eps),  c1 = 1 - b1^t, c2 = 1 - b2^t
// params, grads, m, v: flat runs of n fp32 values. The bias corrections come from the host,
// computed as the CPU reference computes them, so both backends do the same fp32 arithmetic.
// Trick: none; the matmuls read bf16 casts of these fp32 masters (elementwise.cu).
#include "common.cuh"

extern "C" __global__ void adamw_update(float* params, const float* grads, float* m, float* v, long long n,
                                        float lr, float beta1, float beta2, float eps, float weightDecay,
                                        float correction1, float correction2, float gradScale) {
    float decay = 1.f - lr * weightDecay;
    GRID_STRIDE(i, n) {
        float grad = grads[i] * gradScale;
        float mi = beta1 * m[i] + (1.f - beta1) * grad;
        float vi = beta2 * v[i] + (1.f - beta2) * grad * grad;
        m[i] = mi;
        v[i] = vi;
        float mHat = mi / correction1;
        float vHat = vi / correction2;
        params[i] = params[i] * decay - lr * mHat / (sqrtf(vHat) + eps);
    }
}
