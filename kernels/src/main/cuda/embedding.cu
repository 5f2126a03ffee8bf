// Token embedding (PyTorch: out = wte(tokens)).
//   forward:  out[i, :] = table[tokens[i], :]            out [n, c], table [V, c], tokens [n]
//   backward: dtable[tokens[i], :] += dout[i, :]          (for i = 0, 1, ..., n - 1 in order)
// Trick: the backward is deterministic without atomics (a per-row owner scheme): the host
// groups the positions by token (a sort of the n ids; they are on the host anyway) into a plan
//   plan = [ids[u] | starts[u + 1] | positions[n]]     u distinct tokens, positions ascending
// and one block per (distinct token, column chunk) adds that token's rows of dout in position
// order into the table row it alone owns. So the result is the same every run, and the same
// bits as the CPU's sequential loop (one fp32 add per occurrence, in the same order).
// Token ids are range-checked on the host before they are uploaded.
#include "common.cuh"

// grid (min(n, 65535)), block 256: a block copies whole rows (no per-value division), 16 bytes at
// a time when vec4 (c % 4 == 0 and both bases 16-byte aligned; the launcher checks).
extern "C" __global__ void embedding_forward(float* out, const float* table, const int* tokens, int n, int c, int vec4) {
    for (int i = blockIdx.x; i < n; i += gridDim.x) {
        const float* src = table + (long long)tokens[i] * c;
        float* dst = out + (long long)i * c;
        if (vec4) {
            for (int j = 4 * threadIdx.x; j < c; j += 4 * blockDim.x) {
                *reinterpret_cast<float4*>(dst + j) = *reinterpret_cast<const float4*>(src + j);
            }
        } else {
            for (int j = threadIdx.x; j < c; j += blockDim.x) dst[j] = src[j];
        }
    }
}

// grid (unique, ceil(c / blockDim.x)); plan as above.
extern "C" __global__ void embedding_backward(float* dtable, const float* dout, const int* plan, int unique, int c) {
    const int* starts = plan + unique;
    const int* positions = plan + 2 * unique + 1;
    int u = blockIdx.x;
    int j = blockIdx.y * blockDim.x + threadIdx.x;
    if (j >= c) return;
    float* dst = dtable + (long long)plan[u] * c + j;
    float acc = *dst;
    int end = starts[u + 1];
    for (int k = starts[u]; k < end; k++) acc += dout[(long long)positions[k] * c + j];
    *dst = acc;
}
