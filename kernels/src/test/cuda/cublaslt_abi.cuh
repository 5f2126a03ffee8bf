// What the standalone cuBLASLt harnesses (matmul_harness.cu, fp8_matmul_harness.cu) share: prototypes
// that stand in for cublasLt.h (the machines that build the project have none) and follow its ABI
// (opaque handles, enums as int), the enum values CublasLt.java also uses, a CUDA status check,
// the hash the harnesses fill their operands from, and their median timing.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

extern "C" {
typedef void* LtHandle;
typedef void* LtDesc;
typedef void* LtLayout;
typedef void* LtPref;
struct LtAlgo { uint64_t data[8]; };
struct LtResult { LtAlgo algo; size_t workspaceSize; int state; float wavesCount; int reserved[4]; };
int cublasLtCreate(LtHandle*);
int cublasLtMatmulDescCreate(LtDesc*, int computeType, int scaleType);
int cublasLtMatmulDescDestroy(LtDesc);
int cublasLtMatmulDescSetAttribute(LtDesc, int attr, const void* buf, size_t size);
int cublasLtMatrixLayoutCreate(LtLayout*, int type, uint64_t rows, uint64_t cols, int64_t ld);
int cublasLtMatmulPreferenceCreate(LtPref*);
int cublasLtMatmulPreferenceSetAttribute(LtPref, int attr, const void* buf, size_t size);
int cublasLtMatmulAlgoGetHeuristic(LtHandle, LtDesc, LtLayout a, LtLayout b, LtLayout c, LtLayout d, LtPref, int requested,
                                   LtResult* results, int* returned);
int cublasLtMatmulAlgoConfigGetAttribute(const LtAlgo*, int attr, void* buf, size_t size, size_t* written);
int cublasLtMatmul(LtHandle, LtDesc, const void* alpha, const void* a, LtLayout, const void* b, LtLayout, const void* beta,
                   const void* c, LtLayout, void* d, LtLayout, const LtAlgo*, void* workspace, size_t workspaceSize,
                   cudaStream_t);
}

// cublasLt.h / library_types.h values (the same as CublasLt.java's)
static const int COMPUTE_32F = 68, R_32F = 0, R_16BF = 14, R_8F_E4M3 = 28, R_8F_E5M2 = 29;
static const int DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_A_SCALE = 17, DESC_B_SCALE = 18, DESC_FAST_ACCUM = 25;
// how a scale pointer is read (cublasLtMatmulMatrixScale_t): one float for the tensor, one per row or
// column (outer vector), one per 128 values along k, one per 128 x 128 block
static const int DESC_A_SCALE_MODE = 31, DESC_B_SCALE_MODE = 32;
static const int SCALE_SCALAR_32F = 0, SCALE_OUTER_VEC_32F = 3, SCALE_VEC128_32F = 4, SCALE_BLK128x128_32F = 5;
static const int PREF_WORKSPACE = 1, PREF_ALIGN_A = 5, PREF_ALIGN_B = 6, PREF_ALIGN_C = 7, PREF_ALIGN_D = 8;
static const size_t WORKSPACE = 32u << 20;

#define CK(x)                                                                                         \
    do {                                                                                              \
        cudaError_t e_ = (x);                                                                         \
        if (e_ != cudaSuccess) {                                                                      \
            fprintf(stderr, "CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
            exit(2);                                                                                  \
        }                                                                                             \
    } while (0)

// A value in [-scale / 2, scale / 2) from element i and a seed: operands with no structure a kernel could exploit.
static __device__ __forceinline__ float hashed_value(size_t i, uint32_t seed, float scale) {
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    return ((h >> 8) * (1.0f / 16777216.0f) - 0.5f) * scale;
}

// The median of 15 timed calls of launch() after 3 warm-up ones, in ms, between two events.
template <typename F>
static float median_ms(cudaEvent_t e0, cudaEvent_t e1, F launch) {
    std::vector<float> ts;
    for (int it = 0; it < 18; it++) {
        CK(cudaEventRecord(e0));
        launch();
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (it >= 3) ts.push_back(ms);
    }
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
}
