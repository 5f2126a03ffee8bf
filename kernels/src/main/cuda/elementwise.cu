// Elementwise helpers: fp32 -> bf16 casts of matmul operands, dst += src, t *= f.
//   cast_bf16:  out[i] = bf16(in[i])          (round to nearest even, as torch's .to(bfloat16))
//   accumulate: dst[i] += src[i]               (the residual add, gradient accumulation)
//   scale:      t[i] *= factor
// Shapes: flat runs of n values. Trick: none; grid-stride loops so one launch shape fits all n.
#include "common.cuh"

extern "C" __global__ void cast_bf16(__nv_bfloat16* out, const float* in, long long n) {
    GRID_STRIDE(i, n) { out[i] = __float2bfloat16(in[i]); }
}

extern "C" __global__ void accumulate(float* dst, const float* src, long long n) {
    GRID_STRIDE(i, n) { dst[i] += src[i]; }
}

extern "C" __global__ void scale(float* t, float factor, long long n) {
    GRID_STRIDE(i, n) { t[i] *= factor; }
}
