// SwiGLU over the fused gate|up projection (PyTorch: silu(gate) * up).
//   h [n, 2H] holds gate (first H columns) then up; out [n, H].
//   forward:  out = silu(g) * u, silu(g) = g * sigmoid(g)
//   backward: dg = dout * u * sig * (1 + g (1 - sig)), du = dout * silu(g)   (dh overwritten)
// Trick: none; one thread per output element, gate and up read from the same row.
#include "common.cuh"

extern "C" __global__ void swiglu_forward(float* out, const float* h, int n, int hidden) {
    long long total = (long long)n * hidden;
    GRID_STRIDE(idx, total) {
        long long i = idx / hidden, j = idx % hidden;
        const float* row = h + i * 2 * hidden;
        float g = row[j];
        out[idx] = g / (1.f + expf(-g)) * row[hidden + j];
    }
}

extern "C" __global__ void swiglu_backward(float* dh, const float* dout, const float* h, int n, int hidden) {
    long long total = (long long)n * hidden;
    GRID_STRIDE(idx, total) {
        long long i = idx / hidden, j = idx % hidden;
        const float* row = h + i * 2 * hidden;
        float* drow = dh + i * 2 * hidden;
        float g = row[j], u = row[hidden + j], d = dout[idx];
        float sig = 1.f / (1.f + expf(-g));
        drow[j] = d * u * sig * (1.f + g * (1.f - sig));
        drow[hidden + j] = d * g * sig;
    }
}
