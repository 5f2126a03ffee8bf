// Token embedding (PyTorch: out = wte(tokens)).
//   forward:  out[i, :] = table[tokens[i], :]            out [n, c], table [V, c], tokens [n]
//   backward: dtable[tokens[i], :] += dout[i, :]
// Trick: the backward scatters with fp32 atomics, so repeated tokens add up without a sort
// (the order of the additions, and so the last bits, can differ from run to run).
// Token ids are range-checked on the host before they are uploaded.
#include "common.cuh"

extern "C" __global__ void embedding_forward(float* out, const float* table, const int* tokens, int n, int c) {
    long long total = (long long)n * c;
    GRID_STRIDE(idx, total) {
        long long i = idx / c, j = idx % c;
        out[idx] = table[(long long)tokens[i] * c + j];
    }
}

extern "C" __global__ void embedding_backward(float* dtable, const float* dout, const int* tokens, int n, int c) {
    long long total = (long long)n * c;
    GRID_STRIDE(idx, total) {
        long long i = idx / c, j = idx % c;
        atomicAdd(&dtable[(long long)tokens[i] * c + j], dout[idx]);
    }
}
