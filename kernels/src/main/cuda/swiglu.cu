// SwiGLU over the fused gate|up projection (PyTorch: silu(gate) * up).
//   h [n, 2H] holds gate (first H columns) then up; out [n, H]; fp32 or bf16 storage, fp32 math.
//   forward:  out = silu(g) * u, silu(g) = g * sigmoid(g)
//   backward: dg = dout * u * sig * (1 + g (1 - sig)), du = dout * silu(g)   (dh overwritten)
// The backward may also write out (not null): the forward's output bit for bit (the same
// expression), for a caller that did not keep it and needs it next (the down projection's weight
// gradient): one pass over h instead of a recomputing forward pass and then the backward's.
// amax (may be null): max |stored value| of the output (forward: out; backward: dh) joins
// amax[0], so that an FP8 matmul reading it needs no amax pass of its own (fp8.cu).
// Trick: a 2-D grid (column chunks x rows, rows grid-strided) so no 64-bit division per element;
// each thread moves 16 bytes of every operand at once (8 bf16 or 4 fp32) when H is a multiple
// of that and the bases are 16-byte aligned, else one value.
#include "common.cuh"

template <typename T, int VEC>
__device__ void swiglu_forward_rows(T* out, const T* h, int n, int hidden, unsigned* amax) {
    int j = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    float m = 0.f;
    for (int i = blockIdx.y; j < hidden && i < n; i += gridDim.y) {
        const T* row = h + (long long)i * 2 * hidden;
        float g[VEC], u[VEC], y[VEC];
        load_vec<T, VEC>(g, row + j);
        load_vec<T, VEC>(u, row + hidden + j);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            y[k] = g[k] / (1.f + expf(-g[k])) * u[k];
            m = fmaxf(m, fabsf(y[k]));
        }
        store_vec<T, VEC>(out + (long long)i * hidden + j, y);
    }
    if (amax) warp_amax(amax, stored(out, m));  // rounding keeps the order: the max rounds to the stored max
}

template <typename T, int VEC>
__device__ void swiglu_backward_rows(T* dh, T* out, const T* dout, const T* h, int n, int hidden, unsigned* amax) {
    int j = (blockIdx.x * blockDim.x + threadIdx.x) * VEC;
    float m = 0.f;
    for (int i = blockIdx.y; j < hidden && i < n; i += gridDim.y) {
        const T* row = h + (long long)i * 2 * hidden;
        T* drow = dh + (long long)i * 2 * hidden;
        float g[VEC], u[VEC], d[VEC], dg[VEC], du[VEC], y[VEC];
        load_vec<T, VEC>(g, row + j);
        load_vec<T, VEC>(u, row + hidden + j);
        load_vec<T, VEC>(d, dout + (long long)i * hidden + j);
#pragma unroll
        for (int k = 0; k < VEC; k++) {
            float sig = 1.f / (1.f + expf(-g[k]));
            dg[k] = d[k] * u[k] * sig * (1.f + g[k] * (1.f - sig));
            du[k] = d[k] * g[k] * sig;
            if (out) y[k] = g[k] / (1.f + expf(-g[k])) * u[k];  // the forward's expression: its bits
            m = fmaxf(m, fmaxf(fabsf(dg[k]), fabsf(du[k])));
        }
        store_vec<T, VEC>(drow + j, dg);
        store_vec<T, VEC>(drow + hidden + j, du);
        if (out) store_vec<T, VEC>(out + (long long)i * hidden + j, y);
    }
    if (amax) warp_amax(amax, stored(dh, m));
}

// vec: the launcher's choice (16 / sizeof(T) or 1); grid (ceil(hidden / (blockDim * vec)), min(n, 65535)),
// blockDim a multiple of 32 (warp_amax).
#define SWIGLU_KERNELS(SUFFIX, T)                                                                                  \
    extern "C" __global__ void swiglu_forward##SUFFIX(T* out, const T* h, int n, int hidden, int vec, unsigned* amax) { \
        if (vec == 1) swiglu_forward_rows<T, 1>(out, h, n, hidden, amax);                                          \
        else swiglu_forward_rows<T, 16 / sizeof(T)>(out, h, n, hidden, amax);                                      \
    }                                                                                                               \
    extern "C" __global__ void swiglu_backward##SUFFIX(T* dh, T* out, const T* dout, const T* h, int n, int hidden,   \
                                                       int vec, unsigned* amax) {                                  \
        if (vec == 1) swiglu_backward_rows<T, 1>(dh, out, dout, h, n, hidden, amax);                               \
        else swiglu_backward_rows<T, 16 / sizeof(T)>(dh, out, dout, h, n, hidden, amax);                           \
    }

SWIGLU_KERNELS(, float)
SWIGLU_KERNELS(_bf16, bf16)
