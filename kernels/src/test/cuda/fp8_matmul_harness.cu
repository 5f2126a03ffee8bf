// What FP8 would buy a TinyLlama-1.1B training step on this GPU, measured before building it: each
// matmul of the step (b * t = 16384 rows, lm_head left out) timed as CublasLt.java calls it today
// (bf16 operands, the heuristic's first algorithm) and in cuBLASLt's FP8 form, which on Hopper takes
// only "TN" operands (A transposed, B not): the forward as today (W and x both e4m3), the input
// gradient from a transposed e4m3 copy of W and the e5m2 output gradient, the weight gradient
// from transposed copies of x (e4m3) and of the output gradient (e5m2). Per-tensor scales by
// device pointer (16-byte aligned: cuBLASLt 13.1 refuses a 4-byte aligned one), fp32 accumulation,
// with and without CUBLASLT_MATMUL_DESC_FAST_ACCUM; C kept apart from D as PyTorch keeps it (beta is
// 0, so C is any other operand). Also the
// price of current scaling: an amax pass and a scaled cast (and a cast that also writes the
// transpose) over the step's largest activation. And finer scales than one per tensor, which keep
// more of FP8's precision where a tensor's rows differ in size: whether cuBLASLt has an algorithm
// for each mode on this GPU and what it costs, on the gate/up and down forwards (one scale per
// row of x and per output column, DeepSeek-V3's 1 x 128 and 128 x 128 blocks). Median of 15
// launches after 3 warm-up ones.
// Built and run by scripts/gpu-fp8-harness on a GPU host; cublaslt_abi.cuh stands in for cublasLt.h.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <algorithm>
#include <vector>

#include "cublaslt_abi.cuh"

static __global__ void fill_bytes(uint8_t* p, size_t n, uint32_t seed, int e5m2) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float f = hashed_value(i, seed, 8.f);
        p[i] = e5m2 ? __nv_fp8_e5m2(f).__x : __nv_fp8_e4m3(f).__x;
    }
}

static __global__ void fill_bf16(__nv_bfloat16* p, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        p[i] = __float2bfloat16(hashed_value(i, seed, 0.25f));
    }
}

// amax of a bf16 tensor, 8 values a thread a load, one atomicMax a block (non-negative floats
// order as their bits do)
static __global__ void amax_bf16(const uint4* x, size_t n8, unsigned* out) {
    float m = 0.f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n8; i += (size_t)gridDim.x * blockDim.x) {
        uint4 v = x[i];
        const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
        for (int j = 0; j < 4; j++) {
            float2 f = __bfloat1622float2(h[j]);
            m = fmaxf(m, fmaxf(fabsf(f.x), fabsf(f.y)));
        }
    }
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    __shared__ float w[32];
    if ((threadIdx.x & 31) == 0) w[threadIdx.x >> 5] = m;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int i = 1; i < blockDim.x / 32; i++) m = fmaxf(m, w[i]);
        atomicMax(out, __float_as_uint(m));
    }
}

// 8 bf16 values (16 bytes) times s to e4m3 (8 bytes)
static __device__ __forceinline__ uint2 e4m3_of(uint4 v, float s) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    uint32_t out[2];
    for (int j = 0; j < 2; j++) {
        float2 a = __bfloat1622float2(h[2 * j]), b = __bfloat1622float2(h[2 * j + 1]);
        __nv_fp8x4_e4m3 q(make_float4(a.x * s, a.y * s, b.x * s, b.y * s));
        out[j] = q.__x;
    }
    return make_uint2(out[0], out[1]);
}

// x * (448 / amax) to e4m3, 8 values a thread
static __global__ void cast_e4m3(const uint4* x, uint2* y, size_t n8, const unsigned* amax) {
    float s = 448.f / fmaxf(__uint_as_float(*amax), 1e-12f);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n8; i += (size_t)gridDim.x * blockDim.x) {
        y[i] = e4m3_of(x[i], s);
    }
}

// x[rows, cols] to e4m3 as it is and transposed ([cols, rows]), 64 x 64 tiles through shared memory
static __global__ void cast_transpose_e4m3(const __nv_bfloat16* x, uint8_t* y, uint8_t* yt, int rows, int cols,
                                           const unsigned* amax) {
    __shared__ uint8_t tile[64][68];
    float s = 448.f / fmaxf(__uint_as_float(*amax), 1e-12f);
    int r0 = blockIdx.y * 64, c0 = blockIdx.x * 64;
    int tr = threadIdx.x / 8, tc = (threadIdx.x % 8) * 8;  // 256 threads: 32 rows x 8 groups of 8 columns
    for (int pass = 0; pass < 2; pass++) {
        int r = tr + pass * 32;
        uint2 q = e4m3_of(*reinterpret_cast<const uint4*>(x + (size_t)(r0 + r) * cols + c0 + tc), s);
        *reinterpret_cast<uint2*>(y + (size_t)(r0 + r) * cols + c0 + tc) = q;
        for (int j = 0; j < 8; j++) tile[r][tc + j] = (uint8_t)((j < 4 ? q.x : q.y) >> (8 * (j % 4)));
    }
    __syncthreads();
    for (int pass = 0; pass < 2; pass++) {
        int c = tr + pass * 32;
        uint32_t out[2] = {0, 0};
        for (int j = 0; j < 8; j++) out[j / 4] |= (uint32_t)tile[tc + j][c] << (8 * (j % 4));
        *reinterpret_cast<uint2*>(yt + (size_t)(c0 + c) * rows + r0 + tc) = make_uint2(out[0], out[1]);
    }
}

struct Call {
    const char* name;
    int transA, transB, m, n, k, lda, ldb, ldc, typeA, typeB, typeD;
};

static LtHandle handle;
static void* workspace;
static float* scales;
static cudaEvent_t e0, e1;
static bool verbose = false;


// The heuristic's first algorithm for the call, timed; a negative number when it offers none
static float time_call(const Call& c, bool fastAccum, const void* a, const void* b, void* d, int aMode = SCALE_SCALAR_32F,
                       int bMode = SCALE_SCALAR_32F, float* aScales = nullptr, float* bScales = nullptr) {
    LtDesc desc;
    LtLayout la, lb, ld;
    LtPref pref;
    bool fp8 = c.typeA != R_16BF;
    if (cublasLtMatmulDescCreate(&desc, COMPUTE_32F, R_32F)) return -1;
    cublasLtMatmulDescSetAttribute(desc, DESC_TRANSA, &c.transA, 4);
    cublasLtMatmulDescSetAttribute(desc, DESC_TRANSB, &c.transB, 4);
    if (fp8) {
        float* aScale = aScales ? aScales : scales;
        float* bScale = bScales ? bScales : scales + 64;  // 256 bytes on: a 4-byte aligned scale pointer is refused
        cublasLtMatmulDescSetAttribute(desc, DESC_A_SCALE, &aScale, sizeof aScale);
        cublasLtMatmulDescSetAttribute(desc, DESC_B_SCALE, &bScale, sizeof bScale);
        if (aMode != SCALE_SCALAR_32F || bMode != SCALE_SCALAR_32F) {
            if (cublasLtMatmulDescSetAttribute(desc, DESC_A_SCALE_MODE, &aMode, 4) ||
                cublasLtMatmulDescSetAttribute(desc, DESC_B_SCALE_MODE, &bMode, 4)) {
                printf("    %s: scale modes %d, %d refused by the descriptor\n", c.name, aMode, bMode);
                cublasLtMatmulDescDestroy(desc);
                return -1;
            }
        }
        int8_t fast = fastAccum ? 1 : 0;
        cublasLtMatmulDescSetAttribute(desc, DESC_FAST_ACCUM, &fast, 1);
    }
    cublasLtMatrixLayoutCreate(&la, c.typeA, c.transA == 0 ? c.m : c.k, c.transA == 0 ? c.k : c.m, c.lda);
    cublasLtMatrixLayoutCreate(&lb, c.typeB, c.transB == 0 ? c.k : c.n, c.transB == 0 ? c.n : c.k, c.ldb);
    cublasLtMatrixLayoutCreate(&ld, c.typeD, c.m, c.n, c.ldc);
    cublasLtMatmulPreferenceCreate(&pref);
    uint64_t wsBytes = WORKSPACE;
    uint32_t align = 256;
    cublasLtMatmulPreferenceSetAttribute(pref, PREF_WORKSPACE, &wsBytes, 8);
    if (!getenv("NO_ALIGN")) {  // the promises CublasLt.java makes; NO_ALIGN=1 leaves them out
        cublasLtMatmulPreferenceSetAttribute(pref, PREF_ALIGN_A, &align, 4);
        cublasLtMatmulPreferenceSetAttribute(pref, PREF_ALIGN_B, &align, 4);
        cublasLtMatmulPreferenceSetAttribute(pref, PREF_ALIGN_C, &align, 4);
        cublasLtMatmulPreferenceSetAttribute(pref, PREF_ALIGN_D, &align, 4);
    }
    LtResult results[8];
    int returned = 0;
    int status = cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, ld, ld, pref, 8, results, &returned);
    if (status != 0 || returned == 0) {
        printf("    %s: no algorithm (status %d)\n", c.name, status);
        return -1;
    }
    const float one = 1.f, zero = 0.f;
    // the first algorithm that runs (the heuristic's first unless it refuses these operands)
    int use = -1;
    for (int r = 0; r < returned && use < 0; r++) {
        int s = results[r].state != 0 ? results[r].state
                                      : cublasLtMatmul(handle, desc, &one, a, la, b, lb, &zero, fp8 ? a : d, ld, d, ld,
                                                       &results[r].algo, workspace, WORKSPACE, 0);
        if (s == 0) use = r;
        else if (verbose) printf("    %s: candidate %d of %d: state %d, status %d\n", c.name, r, returned, results[r].state, s);
    }
    if (use < 0) return -2;
    if (use > 0) printf("    %s: ran candidate %d\n", c.name, use);
    float ms = median_ms(e0, e1, [&] {
        cublasLtMatmul(handle, desc, &one, a, la, b, lb, &zero, fp8 ? a : d, ld, d, ld, &results[use].algo, workspace, WORKSPACE, 0);
    });
    CK(cudaDeviceSynchronize());
    cublasLtMatmulDescDestroy(desc);
    return ms;
}

int main(int argc, char** argv) {
    const int n = argc > 1 ? atoi(argv[1]) : 16384;  // a small n with CUBLASLT_LOG_LEVEL set: why cuBLASLt refuses
    verbose = argc > 1;
    struct Proj { const char* name; int c, oc; };
    Proj projs[] = {{"qkv", 2048, 2560}, {"attn_out", 2048, 2048}, {"gate_up", 2048, 11264}, {"down", 5632, 2048}};
    size_t maxBytes = (size_t)n * 11264 * 4;
    void *a, *b, *d;
    unsigned* amax;
    CK(cudaMalloc(&a, maxBytes));
    CK(cudaMalloc(&b, maxBytes));
    CK(cudaMalloc(&d, maxBytes));
    CK(cudaMalloc(&workspace, WORKSPACE));
    CK(cudaMalloc(&scales, 128 * sizeof(float)));
    CK(cudaMalloc(&amax, sizeof(unsigned)));
    float hostScales[2] = {0.01f, 0.02f};
    CK(cudaMemcpy(scales, hostScales, sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(scales + 64, hostScales + 1, sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    if (cublasLtCreate(&handle)) {
        fprintf(stderr, "cublasLtCreate failed\n");
        return 2;
    }
    printf("%-16s %6s %6s %6s  %9s %7s  %9s %7s  %9s %7s\n", "matmul", "m", "n", "k", "bf16 ms", "TF/s", "fp8 ms", "TF/s",
           "fp8fa ms", "TF/s");
    double stepBf16 = 0, stepFp8 = 0, stepFast = 0, stepFp8NoWgrad = 0;
    for (const Proj& p : projs) {
        // bf16 as CublasLt.java issues them; the FP8 forms (TN only), see the file comment
        Call bf[3] = {{"fwd", 1, 0, p.oc, n, p.c, p.c, p.c, p.oc, R_16BF, R_16BF, R_16BF},
                      {"dX", 0, 0, p.c, n, p.oc, p.c, p.oc, p.c, R_16BF, R_16BF, R_16BF},
                      {"dW", 0, 1, p.c, p.oc, n, p.c, p.oc, p.c, R_16BF, R_16BF, R_32F}};
        Call f8[3] = {{"fwd", 1, 0, p.oc, n, p.c, p.c, p.c, p.oc, R_8F_E4M3, R_8F_E4M3, R_16BF},
                      {"dX", 1, 0, p.c, n, p.oc, p.oc, p.oc, p.c, R_8F_E4M3, R_8F_E5M2, R_16BF},
                      {"dW", 1, 0, p.c, p.oc, n, n, n, p.c, R_8F_E4M3, R_8F_E5M2, R_32F}};
        for (int i = 0; i < 3; i++) {
            fill_bf16<<<1024, 256>>>((__nv_bfloat16*)a, maxBytes / 2, 1u);
            fill_bf16<<<1024, 256>>>((__nv_bfloat16*)b, maxBytes / 2, 2u);
            float tb = time_call(bf[i], false, a, b, d);
            fill_bytes<<<1024, 256>>>((uint8_t*)a, maxBytes, 3u, 0);
            fill_bytes<<<1024, 256>>>((uint8_t*)b, maxBytes, 4u, f8[i].typeB == R_8F_E5M2);
            float t8 = time_call(f8[i], false, a, b, d);
            float tf = time_call(f8[i], true, a, b, d);
            if (t8 < 0 && f8[i].typeD == R_32F) {  // no fp32 output: how fast with bf16
                Call alt = f8[i];
                alt.typeD = R_16BF;
                t8 = time_call(alt, false, a, b, d);
                tf = time_call(alt, true, a, b, d);
                printf("    (%s %s timed with bf16 output)\n", p.name, f8[i].name);
            }
            double flops = 2.0 * bf[i].m * bf[i].n * bf[i].k;
            char name[48];
            snprintf(name, sizeof name, "%s %s", p.name, bf[i].name);
            printf("%-16s %6d %6d %6d  %9.3f %7.0f  %9.3f %7.0f  %9.3f %7.0f\n", name, bf[i].m, bf[i].n, bf[i].k, tb,
                   flops / tb * 1e-9, t8, flops / t8 * 1e-9, tf, flops / tf * 1e-9);
            stepBf16 += 22 * tb;
            stepFp8 += 22 * t8;
            stepFast += 22 * (i == 0 ? tf : t8);
            stepFp8NoWgrad += 22 * (i == 2 ? tb : t8);
        }
    }
    printf("22 layers' matmuls: bf16 %.2f ms; fp8 %.2f ms (%.3fx); fp8 with fast accumulation in the forward %.2f ms (%.3fx); "
           "fp8 forward and dX, bf16 dW %.2f ms (%.3fx)\n",
           stepBf16, stepFp8, stepBf16 / stepFp8, stepFast, stepBf16 / stepFast, stepFp8NoWgrad, stepBf16 / stepFp8NoWgrad);

    // finer scales on the forwards (A = W, [oc, c] read transposed; B = x, [n, c]): per-tensor as
    // above, then per row and column, then 1 x 128 blocks of x with 128 x 128 blocks of W
    struct Mode { const char* name; int a, b; };
    Mode modes[] = {{"per tensor", SCALE_SCALAR_32F, SCALE_SCALAR_32F},
                    {"per row / column", SCALE_OUTER_VEC_32F, SCALE_OUTER_VEC_32F},
                    {"128x128 W, 1x128 x", SCALE_BLK128x128_32F, SCALE_VEC128_32F},
                    {"1x128 both", SCALE_VEC128_32F, SCALE_VEC128_32F}};
    float *aScales, *bScales;
    size_t scaleCount = (size_t)n * (5632 / 128 + 1);  // the most any mode reads: a scale per 128 values of x
    CK(cudaMalloc(&aScales, scaleCount * sizeof(float)));
    CK(cudaMalloc(&bScales, scaleCount * sizeof(float)));
    std::vector<float> ones(scaleCount, 1.f);
    CK(cudaMemcpy(aScales, ones.data(), scaleCount * sizeof(float), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(bScales, ones.data(), scaleCount * sizeof(float), cudaMemcpyHostToDevice));
    fill_bytes<<<1024, 256>>>((uint8_t*)a, maxBytes, 3u, 0);
    fill_bytes<<<1024, 256>>>((uint8_t*)b, maxBytes, 4u, 0);
    printf("%-22s", "forward scales");
    for (const Mode& m : modes) printf(" %20s", m.name);
    printf("\n");
    for (const Proj& p : projs) {
        if (p.oc != 11264 && p.c != 5632) continue;  // gate/up and down: the two largest
        Call fwd = {"fwd", 1, 0, p.oc, n, p.c, p.c, p.c, p.oc, R_8F_E4M3, R_8F_E4M3, R_16BF};
        double flops = 2.0 * p.oc * n * p.c;
        printf("%-22s", p.name);
        for (const Mode& m : modes) {
            float t = time_call(fwd, false, a, b, d, m.a, m.b, m.a == SCALE_SCALAR_32F ? nullptr : aScales,
                                m.b == SCALE_SCALAR_32F ? nullptr : bScales);
            if (t < 0) printf(" %20s", "no algorithm");
            else printf("   %7.3f ms %4.0f TF/s", t, flops / t * 1e-9);
        }
        printf("\n");
    }

    // current scaling's own passes, over the down projection's input [16384, 5632] (bf16)
    const int rows = n, cols = 5632;
    size_t elems = (size_t)rows * cols;
    fill_bf16<<<1024, 256>>>((__nv_bfloat16*)a, elems, 5u);
    float tAmax = median_ms(e0, e1, [&] {
        cudaMemsetAsync(amax, 0, 4);
        amax_bf16<<<132 * 8, 256>>>((const uint4*)a, elems / 8, amax);
    });
    float tCast = median_ms(e0, e1, [&] { cast_e4m3<<<132 * 8, 256>>>((const uint4*)a, (uint2*)b, elems / 8, amax); });
    float tCastT = median_ms(e0, e1, [&] {
        cast_transpose_e4m3<<<dim3(cols / 64, rows / 64), 256>>>((const __nv_bfloat16*)a, (uint8_t*)b, (uint8_t*)d, rows, cols,
                                                                amax);
    });
    CK(cudaGetLastError());
    double mb = elems * 1e-6;
    printf("over [%d, %d] bf16: amax %.3f ms (%.0f GB/s), cast to e4m3 %.3f ms (%.0f GB/s), cast + transpose %.3f ms (%.0f GB/s)\n",
           rows, cols, tAmax, 2 * mb / tAmax, tCast, 3 * mb / tCast, tCastT, 4 * mb / tCastT);
    return 0;
}
