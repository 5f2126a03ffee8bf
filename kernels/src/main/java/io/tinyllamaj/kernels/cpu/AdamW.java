package io.tinyllamaj.kernels.cpu;

import io.tinyllamaj.kernels.AdamWStep;

/**
 * AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias correction):
 *   g = grad * gradScale
 *   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2
 *   p = p * (1 - lr wd) - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 */
final class AdamW {

    private AdamW() {
    }

    static void update(CpuTensor params, CpuTensor grads, CpuTensor m, CpuTensor v, AdamWStep s) {
        float[] p = params.data(), g = grads.data(), mm = m.data(), vv = v.data();
        int po = params.offset(), go = grads.offset(), mo = m.offset(), vo = v.offset();
        float correction1 = (float) (1 - Math.pow(s.beta1(), s.step()));
        float correction2 = (float) (1 - Math.pow(s.beta2(), s.step()));
        float decay = 1f - s.lr() * s.weightDecay();
        int n = params.length32();
        Parallel.forChunks(n, 12L * n, (start, end) -> {
            for (int i = start; i < end; i++) {
                float grad = g[go + i] * s.gradScale();
                float mi = s.beta1() * mm[mo + i] + (1f - s.beta1()) * grad;
                float vi = s.beta2() * vv[vo + i] + (1f - s.beta2()) * grad * grad;
                mm[mo + i] = mi;
                vv[vo + i] = vi;
                float mHat = mi / correction1;
                float vHat = vi / correction2;
                p[po + i] = p[po + i] * decay - s.lr() * mHat / ((float) Math.sqrt(vHat) + s.eps());
            }
        });
    }
}
