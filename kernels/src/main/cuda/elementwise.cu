// Elementwise helpers: fp32 -> bf16 casts of matmul operands, dst += src, t *= f.
//   cast_bf16:  out[i] = bf16(in[i])          (round to nearest even, as torch's .to(bfloat16))
//   accumulate: dst[i] += src[i]               (the residual add, gradient accumulation; src fp32 or bf16)
//   scale:      t[i] *= factor
//   fingerprint: out += sum of mix(i, x[i]) over n 16-bit words (CublasLt's tuner compares the
//                outputs of candidate matmul algorithms with it; integer sums in any order agree)
// Shapes: flat runs of n values. Trick: none; grid-stride loops so one launch shape fits all n.
#include "common.cuh"

extern "C" __global__ void cast_bf16(__nv_bfloat16* out, const float* in, long long n) {
    GRID_STRIDE(i, n) { out[i] = __float2bfloat16(in[i]); }
}

extern "C" __global__ void accumulate(float* dst, const float* src, long long n) {
    GRID_STRIDE(i, n) { dst[i] += src[i]; }
}

// the residual add of a sub-layer output stored in bf16 (a matmul output, as under autocast)
extern "C" __global__ void accumulate_bf16(float* dst, const __nv_bfloat16* src, long long n) {
    GRID_STRIDE(i, n) { dst[i] += __bfloat162float(src[i]); }
}

extern "C" __global__ void scale(float* t, float factor, long long n) {
    GRID_STRIDE(i, n) { t[i] *= factor; }
}

extern "C" __global__ void fingerprint(unsigned long long* out, const unsigned short* x, long long n) {
    unsigned long long h = 0;
    GRID_STRIDE(i, n) {
        unsigned long long v = ((unsigned long long)i << 16) ^ x[i];  // splitmix64's finalizer
        v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ULL;
        v = (v ^ (v >> 27)) * 0x94d049bb133111ebULL;
        h += v ^ (v >> 31);
    }
    for (int offset = 16; offset > 0; offset >>= 1) h += __shfl_xor_sync(0xffffffffu, h, offset);
    if ((threadIdx.x & 31) == 0) atomicAdd(out, h);
}
