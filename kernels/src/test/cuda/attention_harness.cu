// Standalone GPU check of the wgmma attention kernels against flash3's on the same inputs.
// Forward (flash_attention_wgmma_fwd.cu vs flash_attention_fwd3.cu): relative Frobenius error of
// out and lse, whether the bits are equal, NaN check, determinism (two runs bitwise equal), the
// same elements written (sentinel-filled buffers with guard rows past the end). Backward
// (flash_attention_wgmma.cu vs flash_attention_bwd3.cu): relative Frobenius error of dk / dv (and
// dq when flash4_backward_dq_hs64 is present), NaN check, determinism, untouched columns
// (sentinel-filled dqkv). Timings of all at b=8 t=2048 nh=32 nkv=4 (median of 20 after 3 warm-up
// launches, CUDA events).
// Built and run by scripts/gpu-attention-harness; exits non-zero on any failure.
#include "../../main/cuda/tinyllama.cu"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#define CK(x)                                                                                       \
    do {                                                                                            \
        cudaError_t e_ = (x);                                                                       \
        if (e_ != cudaSuccess) {                                                                    \
            fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #x); \
            exit(2);                                                                                \
        }                                                                                           \
    } while (0)

static uint32_t rng = 12345u;
static float frand() {   // uniform [-1, 1), xorshift
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (rng >> 8) * (2.0f / 16777216.0f) - 1.0f;
}
static uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}
static float bf2f(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#ifndef HARNESS_DQ
#define HARNESS_DQ 0
#endif

struct Case {
    int b, t, nh, nkv;
};

static int failures = 0;

static void check(bool ok, const char* what) {
    if (!ok) {
        printf("  FAIL: %s\n", what);
        failures++;
    }
}

// Relative Frobenius error of columns [c0, c0 + n) of rows of width w (all b t rows) of x vs ref;
// sets nan if any NaN/Inf in x.
static double rel_err(const std::vector<uint16_t>& x, const std::vector<uint16_t>& ref, long long rows, int w, int c0,
                      int n, bool& nan) {
    double num = 0, den = 0;
    for (long long r = 0; r < rows; r++)
        for (int c = c0; c < c0 + n; c++) {
            const double a = bf2f(x[r * w + c]), b = bf2f(ref[r * w + c]);
            if (!std::isfinite(a)) nan = true;
            num += (a - b) * (a - b);
            den += b * b;
        }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

typedef void (*Kernel)(bf16*, const bf16*, const bf16*, const float*, const float*, int, int, int);

// Dynamic shared memory of each kernel (flash4 dkv: see its launch contract).
static size_t smem_of(Kernel k) {
    if (k == (Kernel)flash4_backward_dkv_hs64) return fa4::SMEM_BYTES;
#if HARNESS_DQ
    if (k == (Kernel)flash4_backward_dq_hs64) return fa4::KV_SMEM_BYTES;
#endif
    return 0;
}

static void launch(Kernel k, dim3 grid, int threads, bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                   const float* dot, const Case& cs) {
    k<<<grid, threads, smem_of(k)>>>(dqkv, dout, qkv, lse, dot, cs.t, cs.nh, cs.nkv);
    CK(cudaGetLastError());
}

// Median of 20 timed calls of f() after 3 warm-up calls, in ms.
template <class F>
static float time_fn(F f) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    for (int i = 0; i < 3; i++) f();
    CK(cudaDeviceSynchronize());
    std::vector<float> ms;
    for (int i = 0; i < 20; i++) {
        CK(cudaEventRecord(e0));
        f();
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float m;
        CK(cudaEventElapsedTime(&m, e0, e1));
        ms.push_back(m);
    }
    std::sort(ms.begin(), ms.end());
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return ms[ms.size() / 2];
}

static float time_ms(Kernel k, dim3 grid, int threads, bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                     const float* dot, const Case& cs) {
    return time_fn([&] { launch(k, grid, threads, dqkv, dout, qkv, lse, dot, cs); });
}

// flash4_forward_hs64's variants, checked and timed beside it so that one GPU call can choose:
// the other loop (FA4_FWD_PIPE; see fa4::fwd_body), the exponent as one fma (FUSED,
// FlashAttention-3's form; not flash3's bits), and one block per SM (launch_bounds(256, 1): up to
// 255 registers instead of 128, 8 warps per SM instead of 16).
#if WG_ENABLED
#define HARNESS_FWD(name, minBlocks, ...)                                                           \
    extern "C" __global__ void __launch_bounds__(256, minBlocks)                                    \
    name(bf16* out, float* lse, const bf16* qkv, int t, int nh, int nkv) {                          \
        fa4::fwd_body<__VA_ARGS__>(out, lse, qkv, t, nh, nkv);                                      \
    }
#else
#define HARNESS_FWD(name, minBlocks, ...)                                                           \
    extern "C" __global__ void name(bf16*, float*, const bf16*, int, int, int) { __trap(); }
#endif
HARNESS_FWD(harness_flash4_forward_alt, 2, FA4_FWD_PIPE == 0)
HARNESS_FWD(harness_flash4_forward_fused, 2, FA4_FWD_PIPE != 0, true)
HARNESS_FWD(harness_flash4_forward_1cta, 1, FA4_FWD_PIPE != 0)

typedef void (*FwdKernel)(bf16*, float*, const bf16*, int, int, int);
struct FwdVariant {
    const char* name;
    FwdKernel kernel;
    int threads, smem;
};
static const FwdVariant kFwd[] = {
    {"flash3", flash3_forward_hs64, 128, 0},
    {FA4_FWD_PIPE ? "flash4 (PIPE 1)" : "flash4 (PIPE 0)", flash4_forward_hs64, fa4::FWD_THREADS, fa4::KV_SMEM_BYTES},
    {"flash4 again", flash4_forward_hs64, fa4::FWD_THREADS, fa4::KV_SMEM_BYTES},
    {FA4_FWD_PIPE ? "variant PIPE 0" : "variant PIPE 1", harness_flash4_forward_alt, fa4::FWD_THREADS, fa4::KV_SMEM_BYTES},
    {"variant fused exponent", harness_flash4_forward_fused, fa4::FWD_THREADS, fa4::KV_SMEM_BYTES},
    {"variant 1 block/SM", harness_flash4_forward_1cta, fa4::FWD_THREADS, fa4::KV_SMEM_BYTES},
};
constexpr int NFWD = sizeof(kFwd) / sizeof(kFwd[0]);

// Forward: flash4_forward_hs64 (2 runs) and its variants vs flash3_forward_hs64 on qkv. Buffers
// are filled with a sentinel and have guard space past the end (GUARD_ROWS rows of out, GUARD
// floats of lse).
static void forward_case(const Case& cs, const bf16* qkv, bool timing) {
    constexpr long long GUARD_ROWS = 130, GUARD = 4096;
    const long long rows = (long long)cs.b * cs.t;
    const size_t nout = (rows + GUARD_ROWS) * cs.nh * 64, nlse = (size_t)cs.b * cs.nh * cs.t + GUARD;
    const size_t vout = rows * cs.nh * 64, vlse = (size_t)cs.b * cs.nh * cs.t;   // the valid parts
    bf16* o[NFWD];
    float* l[NFWD];
    for (int k = 0; k < NFWD; k++) {
        CK(cudaMalloc(&o[k], nout * 2));
        CK(cudaMalloc(&l[k], nlse * 4));
        CK(cudaMemset(o[k], 0x5A, nout * 2));
        CK(cudaMemset(l[k], 0x5A, nlse * 4));
    }
    const dim3 grid((cs.t + 127) / 128, cs.nh, cs.b);
    auto run = [&](int k) {   // variant k into buffer k
        kFwd[k].kernel<<<grid, kFwd[k].threads, kFwd[k].smem>>>(o[k], l[k], qkv, cs.t, cs.nh, cs.nkv);
        CK(cudaGetLastError());
    };
    for (int k = 0; k < NFWD; k++) run(k);
    CK(cudaDeviceSynchronize());
    std::vector<uint16_t> ho[NFWD];
    std::vector<float> hl[NFWD];
    for (int k = 0; k < NFWD; k++) {
        ho[k].resize(nout);
        hl[k].resize(nlse);
        CK(cudaMemcpy(ho[k].data(), o[k], nout * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hl[k].data(), l[k], nlse * 4, cudaMemcpyDeviceToHost));
    }
    {
        bool refnan = false;
        std::vector<uint16_t> zero(nout, 0);
        const double n3 = rel_err(ho[0], zero, rows, cs.nh * 64, 0, cs.nh * 64, refnan);
        check(n3 > 0 && !refnan, "flash3 forward out nonzero and finite (reference sane)");
    }
    uint32_t sent;
    memset(&sent, 0x5A, 4);
    for (int k = 1; k < NFWD; k++) {
        if (k == 2) continue;   // the second run: compared with the first below
        bool nan = false, lnan = false;
        const double eo = rel_err(ho[k], ho[0], rows, cs.nh * 64, 0, cs.nh * 64, nan);
        double num = 0, den = 0;
        for (size_t i = 0; i < vlse; i++) {
            const double a = hl[k][i], r = hl[0][i];
            if (!std::isfinite(a)) lnan = true;
            num += (a - r) * (a - r);
            den += r * r;
        }
        const double el = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
        size_t odiff = 0, ldiff = 0;
        for (size_t i = 0; i < vout; i++) odiff += ho[k][i] != ho[0][i];
        for (size_t i = 0; i < vlse; i++) ldiff += memcmp(&hl[k][i], &hl[0][i], 4) != 0;
        printf("  forward %s: rel err out %.3e lse %.3e%s; flash3's bits: out %s (%zu of %zu differ), lse %s (%zu differ)\n",
               kFwd[k].name, eo, el, nan || lnan ? " (NaN/Inf!)" : "", odiff ? "no" : "yes", odiff, vout, ldiff ? "no" : "yes", ldiff);
        check(!nan && !lnan, "forward out/lse finite");
        check(eo < 1e-2 && el < 1e-2, "forward out/lse rel err < 1e-2");
        // The same elements written as flash3 (sentinel where flash3 left it, nothing else), guards intact.
        bool same = true, guard = true;
        for (size_t i = 0; i < nout; i++) {
            if ((ho[k][i] == 0x5A5A) != (ho[0][i] == 0x5A5A)) same = false;
            if (i >= vout && ho[k][i] != 0x5A5A) guard = false;
        }
        for (size_t i = 0; i < nlse; i++) {
            uint32_t a, r;
            memcpy(&a, &hl[k][i], 4);
            memcpy(&r, &hl[0][i], 4);
            if ((a == sent) != (r == sent)) same = false;
            if (i >= vlse && a != sent) guard = false;
        }
        check(same, "forward: written elements are flash3's (sentinels elsewhere)");
        check(guard, "forward: nothing written past the end (rows >= t)");
    }
    check(memcmp(ho[1].data(), ho[2].data(), nout * 2) == 0 && memcmp(hl[1].data(), hl[2].data(), nlse * 4) == 0,
          "forward: two runs of flash4 bitwise equal");
    for (int k = 3; k < NFWD; k++)
        printf("  forward: %s bitwise equal to flash4: %s\n", kFwd[k].name,
               memcmp(ho[1].data(), ho[k].data(), nout * 2) == 0 && memcmp(hl[1].data(), hl[k].data(), nlse * 4) == 0 ? "yes" : "no");
    if (timing) {
        float ms[NFWD];
        for (int k = 0; k < NFWD; k++)
            if (k != 2) ms[k] = time_fn([&] { run(k); });
        for (int k = 0; k < NFWD; k++)
            if (k != 2) printf("  timing forward %s: %.3f ms, ratio to flash3 %.3f\n", kFwd[k].name, ms[k], ms[k] / ms[0]);
    }
    for (int k = 0; k < NFWD; k++) {
        CK(cudaFree(o[k]));
        CK(cudaFree(l[k]));
    }
}

static void run_case(const Case& cs, bool timing) {
    const int w = (cs.nh + 2 * cs.nkv) * 64;
    const long long rows = (long long)cs.b * cs.t;
    const size_t nqkv = rows * w, ndo = rows * cs.nh * 64, nst = (size_t)cs.b * cs.nh * cs.t;
    printf("case b=%d t=%d nh=%d nkv=%d\n", cs.b, cs.t, cs.nh, cs.nkv);
    std::vector<uint16_t> hq(nqkv), hd(ndo);
    for (auto& v : hq) v = f2bf(frand());
    for (auto& v : hd) v = f2bf(frand());
    bf16 *qkv, *dout, *out, *ref, *a, *b2;
    float *lse, *dot;
    CK(cudaMalloc(&qkv, nqkv * 2));
    CK(cudaMalloc(&dout, ndo * 2));
    CK(cudaMalloc(&out, ndo * 2));
    CK(cudaMalloc(&ref, nqkv * 2));
    CK(cudaMalloc(&a, nqkv * 2));
    CK(cudaMalloc(&b2, nqkv * 2));
    CK(cudaMalloc(&lse, nst * 4));
    CK(cudaMalloc(&dot, nst * 4));
    CK(cudaMemcpy(qkv, hq.data(), nqkv * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dout, hd.data(), ndo * 2, cudaMemcpyHostToDevice));
    forward_case(cs, qkv, timing);
    flash3_forward_hs64<<<dim3((cs.t + 127) / 128, cs.nh, cs.b), 128>>>(out, lse, qkv, cs.t, cs.nh, cs.nkv);
    CK(cudaGetLastError());
    attention_backward_dot_bf16<<<1024, 256>>>(dot, dout, out, cs.b, cs.t, cs.nh, 64);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());

    const dim3 gkv((cs.t + 127) / 128, cs.nkv, cs.b);
    CK(cudaMemset(ref, 0x5A, nqkv * 2));
    CK(cudaMemset(a, 0x5A, nqkv * 2));
    CK(cudaMemset(b2, 0x5A, nqkv * 2));
    launch(flash3_backward_dkv_hs64, gkv, 128, ref, dout, qkv, lse, dot, cs);
    launch(flash4_backward_dkv_hs64, gkv, 256, a, dout, qkv, lse, dot, cs);
    launch(flash4_backward_dkv_hs64, gkv, 256, b2, dout, qkv, lse, dot, cs);
    CK(cudaDeviceSynchronize());
    std::vector<uint16_t> hr(nqkv), ha(nqkv), hb(nqkv);
    CK(cudaMemcpy(hr.data(), ref, nqkv * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(ha.data(), a, nqkv * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hb.data(), b2, nqkv * 2, cudaMemcpyDeviceToHost));
    bool nan = false;
    const double ek = rel_err(ha, hr, rows, w, cs.nh * 64, cs.nkv * 64, nan);
    const double ev = rel_err(ha, hr, rows, w, (cs.nh + cs.nkv) * 64, cs.nkv * 64, nan);
    printf("  dkv: rel err dk %.3e dv %.3e%s\n", ek, ev, nan ? " (NaN/Inf!)" : "");
    check(!nan, "dk/dv finite");
    check(ek < 1e-2 && ev < 1e-2, "dk/dv rel err < 1e-2");
    bool refnan = false;
    {
        std::vector<uint16_t> zero(nqkv, 0);
        const double nk = rel_err(hr, zero, rows, w, cs.nh * 64, cs.nkv * 64, refnan);
        check(nk > 0 && !refnan, "flash3 dk nonzero and finite (reference sane)");
    }
    bool qok = true;
    for (long long r = 0; r < rows && qok; r++)
        for (int c = 0; c < cs.nh * 64; c++)
            if (ha[r * w + c] != 0x5A5A) {
                qok = false;
                break;
            }
    check(qok, "dq columns untouched by flash4 dkv");
    check(memcmp(ha.data(), hb.data(), nqkv * 2) == 0, "dkv: two runs bitwise equal");
#if HARNESS_DQ
    const dim3 gq((cs.t + 127) / 128, cs.nh, cs.b);
    CK(cudaMemset(ref, 0x5A, nqkv * 2));
    CK(cudaMemset(a, 0x5A, nqkv * 2));
    CK(cudaMemset(b2, 0x5A, nqkv * 2));
    launch(flash3_backward_dq_hs64, gq, 128, ref, dout, qkv, lse, dot, cs);
    launch(flash4_backward_dq_hs64, gq, 256, a, dout, qkv, lse, dot, cs);
    launch(flash4_backward_dq_hs64, gq, 256, b2, dout, qkv, lse, dot, cs);
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(hr.data(), ref, nqkv * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(ha.data(), a, nqkv * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hb.data(), b2, nqkv * 2, cudaMemcpyDeviceToHost));
    bool qnan = false;
    const double eq = rel_err(ha, hr, rows, w, 0, cs.nh * 64, qnan);
    printf("  dq: rel err %.3e%s\n", eq, qnan ? " (NaN/Inf!)" : "");
    check(!qnan, "dq finite");
    check(eq < 1e-2, "dq rel err < 1e-2");
    bool kvok = true;
    for (long long r = 0; r < rows && kvok; r++)
        for (int c = cs.nh * 64; c < w; c++)
            if (ha[r * w + c] != 0x5A5A) {
                kvok = false;
                break;
            }
    check(kvok, "k/v columns untouched by flash4 dq");
    check(memcmp(ha.data(), hb.data(), nqkv * 2) == 0, "dq: two runs bitwise equal");
#endif
    if (timing) {
        const float t3 = time_ms(flash3_backward_dkv_hs64, gkv, 128, ref, dout, qkv, lse, dot, cs);
        const float t4 = time_ms(flash4_backward_dkv_hs64, gkv, 256, a, dout, qkv, lse, dot, cs);
        printf("  timing dkv: flash3 %.3f ms, flash4 %.3f ms, ratio flash4/flash3 %.3f\n", t3, t4, t4 / t3);
#if HARNESS_DQ
        const float q3 = time_ms(flash3_backward_dq_hs64, gq, 128, ref, dout, qkv, lse, dot, cs);
        const float q4 = time_ms(flash4_backward_dq_hs64, gq, 256, a, dout, qkv, lse, dot, cs);
        printf("  timing dq: flash3 %.3f ms, flash4 %.3f ms, ratio flash4/flash3 %.3f\n", q3, q4, q4 / q3);
#endif
    }
    CK(cudaFree(qkv));
    CK(cudaFree(dout));
    CK(cudaFree(out));
    CK(cudaFree(ref));
    CK(cudaFree(a));
    CK(cudaFree(b2));
    CK(cudaFree(lse));
    CK(cudaFree(dot));
}

int main() {
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, sm_%d%d\n", prop.name, prop.major, prop.minor);
    if (prop.major != 9) {
        printf("FAIL: needs a Hopper GPU (sm_90)\n");
        return 1;
    }
    for (const FwdVariant& v : kFwd)
        if (v.smem > 48 * 1024) CK(cudaFuncSetAttribute(v.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, v.smem));
    printf("flash4 forward: %d bytes dynamic shared memory\n", fa4::KV_SMEM_BYTES);
    CK(cudaFuncSetAttribute(flash4_backward_dkv_hs64, cudaFuncAttributeMaxDynamicSharedMemorySize, fa4::SMEM_BYTES));
    printf("flash4 dkv: %d bytes dynamic shared memory\n", fa4::SMEM_BYTES);
#if HARNESS_DQ
    CK(cudaFuncSetAttribute(flash4_backward_dq_hs64, cudaFuncAttributeMaxDynamicSharedMemorySize, fa4::KV_SMEM_BYTES));
    printf("flash4 dq: %d bytes dynamic shared memory\n", fa4::KV_SMEM_BYTES);
#endif
    const Case cases[] = {{8, 2048, 32, 4}, {1, 1000, 32, 4}, {2, 333, 8, 1}, {1, 64, 4, 2}, {1, 130, 4, 4}};
    for (const Case& cs : cases) run_case(cs, cs.b == 8 && cs.t == 2048);
    printf(failures ? "FAILED (%d checks)\n" : "PASSED\n", failures);
    return failures ? 1 : 0;
}
