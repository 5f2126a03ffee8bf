// Standalone GPU check of the wgmma attention kernels (attention_wgmma_sm90.cu) against the mma
// ones (attention_mma_sm80.cu) on the same inputs, and of the FlashAttention-2 style kernels kept
// among the test sources (flash_attention.cu) against the same reference. Forward: relative
// Frobenius error of out and lse, whether the bits are equal, NaN check, determinism (two runs
// bitwise equal), the same elements written (sentinel-filled buffers with guard rows past the
// end). Backward (dq, and dk / dv): relative Frobenius error, NaN check, determinism, untouched
// columns (sentinel-filled dqkv). Timings of all at b=8 t=2048 nh=32 nkv=4 (median of 20 after 3
// warm-up launches, CUDA events).
// `attention_harness fused` runs instead the fused backward experiment of the test sources
// (attention_fused_sm90.cu) against the same reference and the wgmma dq + dkv pair's time.
// D = rowsum(dO * O) (attention.cu's kernel, which every tensor-core backward reads) against a
// float64 host sum, every element written, two runs bitwise equal; timed alone and with the wgmma
// dq and dk / dv kernels behind it (the whole backward sequence).
// Built and run by scripts/gpu-attention-harness; exits non-zero on any failure.
#include "../../main/cuda/tinyllama.cu"
#include "flash_attention.cu"
#include "attention_fused_sm90.cu"

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
// The production backward kernels also take RoPE's cos / sin tables and an amax slot; the harness
// passes none, so they store dq and dk as computed.
typedef void (*RopeKernel)(bf16*, const bf16*, const bf16*, const float*, const float*, const float*, const float*, unsigned*, int,
                           int, int);

// Dynamic shared memory of each kernel (the wgmma ones: see their launch contract).
static size_t smem_of(RopeKernel k) {
    if (k == attention_wgmma_sm90_backward_dkv_hs64) return attn_wgmma::SMEM_BYTES;
    if (k == attention_wgmma_sm90_backward_dq_hs64) return attn_wgmma::DQ_SMEM_BYTES;
    return 0;
}

static void launch(Kernel k, dim3 grid, int threads, bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                   const float* dot, const Case& cs) {
    k<<<grid, threads>>>(dqkv, dout, qkv, lse, dot, cs.t, cs.nh, cs.nkv);
    CK(cudaGetLastError());
}

static void launch(RopeKernel k, dim3 grid, int threads, bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                   const float* dot, const Case& cs) {
    k<<<grid, threads, smem_of(k)>>>(dqkv, dout, qkv, lse, dot, nullptr, nullptr, nullptr, cs.t, cs.nh, cs.nkv);
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

template <class K>
static float time_ms(K k, dim3 grid, int threads, bf16* dqkv, const bf16* dout, const bf16* qkv, const float* lse,
                     const float* dot, const Case& cs) {
    return time_fn([&] { launch(k, grid, threads, dqkv, dout, qkv, lse, dot, cs); });
}

typedef void (*FwdKernel)(bf16*, float*, const bf16*, int, int, int);
struct FwdVariant {
    const char* name;
    FwdKernel kernel;
    int rows, threads, smem;   // rows per block: grid (ceil(t / rows), nh, b)
};
// [0] the reference, [2] the second run of [1] (determinism).
static const FwdVariant kFwd[] = {
    {"mma", attention_mma_sm80_forward_hs64, 128, attn_mma::THREADS, 0},
    {"wgmma", attention_wgmma_sm90_forward_hs64, 128, attn_wgmma::THREADS, attn_wgmma::KV_SMEM_BYTES},
    {"wgmma again", attention_wgmma_sm90_forward_hs64, 128, attn_wgmma::THREADS, attn_wgmma::KV_SMEM_BYTES},
    {"flash (test sources)", flash_attention_forward_hs64_bf16, FA_TILE, FA_THREADS, 0},
};
constexpr int NFWD = sizeof(kFwd) / sizeof(kFwd[0]);

// Forward: the wgmma kernel (2 runs) and the test-source one against the mma kernel on qkv. Buffers
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
    auto run = [&](int k) {   // variant k into buffer k
        const dim3 grid((cs.t + kFwd[k].rows - 1) / kFwd[k].rows, cs.nh, cs.b);
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
        check(n3 > 0 && !refnan, "mma forward out nonzero and finite (reference sane)");
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
        printf("  forward %s: rel err out %.3e lse %.3e%s; the mma kernel's bits: out %s (%zu of %zu differ), lse %s (%zu differ)\n",
               kFwd[k].name, eo, el, nan || lnan ? " (NaN/Inf!)" : "", odiff ? "no" : "yes", odiff, vout, ldiff ? "no" : "yes", ldiff);
        check(!nan && !lnan, "forward out/lse finite");
        check(eo < 1e-2 && el < 1e-2, "forward out/lse rel err < 1e-2");
        // The same elements written as the reference (sentinel where it left it, nothing else), guards intact.
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
        check(same, "forward: written elements are the reference's (sentinels elsewhere)");
        check(guard, "forward: nothing written past the end (rows >= t)");
    }
    check(memcmp(ho[1].data(), ho[2].data(), nout * 2) == 0 && memcmp(hl[1].data(), hl[2].data(), nlse * 4) == 0,
          "forward: two runs of wgmma bitwise equal");
    if (timing) {
        float ms[NFWD];
        for (int k = 0; k < NFWD; k++)
            if (k != 2) ms[k] = time_fn([&] { run(k); });
        for (int k = 0; k < NFWD; k++)
            if (k != 2) printf("  timing forward %s: %.3f ms, ratio to mma %.3f\n", kFwd[k].name, ms[k], ms[k] / ms[0]);
    }
    for (int k = 0; k < NFWD; k++) {
        CK(cudaFree(o[k]));
        CK(cudaFree(l[k]));
    }
}

// One backward kernel against the reference's dqkv (host copy ref): the columns [c0, c0 + n) it
// owns must be within 1e-2 (relative Frobenius error) and finite, every other column untouched
// (sentinel-filled first), and with twice a second run bitwise equal to the first. Returns the
// run's dqkv.
template <class K>
static std::vector<uint16_t> backward_check(const char* name, K k, dim3 grid, int threads, const std::vector<uint16_t>& ref,
                                            int c0, int n, bool twice, bf16* buf, bf16* buf2, const bf16* dout,
                                            const bf16* qkv, const float* lse, const float* dot, const Case& cs) {
    const int w = (cs.nh + 2 * cs.nkv) * 64;
    const long long rows = (long long)cs.b * cs.t;
    const size_t nqkv = rows * w;
    CK(cudaMemset(buf, 0x5A, nqkv * 2));
    CK(cudaMemset(buf2, 0x5A, nqkv * 2));
    launch(k, grid, threads, buf, dout, qkv, lse, dot, cs);
    if (twice) launch(k, grid, threads, buf2, dout, qkv, lse, dot, cs);
    CK(cudaDeviceSynchronize());
    std::vector<uint16_t> ha(nqkv), hb(nqkv);
    CK(cudaMemcpy(ha.data(), buf, nqkv * 2, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hb.data(), buf2, nqkv * 2, cudaMemcpyDeviceToHost));
    bool nan = false;
    const double e = rel_err(ha, ref, rows, w, c0, n, nan);
    printf("  %s: rel err %.3e%s\n", name, e, nan ? " (NaN/Inf!)" : "");
    char what[160];
    snprintf(what, sizeof what, "%s finite", name);
    check(!nan, what);
    snprintf(what, sizeof what, "%s rel err < 1e-2", name);
    check(e < 1e-2, what);
    bool untouched = true;
    for (long long r = 0; r < rows && untouched; r++)
        for (int c = 0; c < w; c++)
            if ((c < c0 || c >= c0 + n) && ha[r * w + c] != 0x5A5A) {
                untouched = false;
                break;
            }
    snprintf(what, sizeof what, "%s: other columns untouched", name);
    check(untouched, what);
    if (twice) {
        snprintf(what, sizeof what, "%s: two runs bitwise equal", name);
        check(memcmp(ha.data(), hb.data(), nqkv * 2) == 0, what);
    }
    return ha;
}

// The fused backward of the test sources (attention_fused_sm90.cu), split 1, 2 and 4 where the
// split divides the query-head group, against the reference dqkv hr: every column within 1e-2, two
// runs bitwise equal, and its time against the wgmma dq + dkv pair (pair_ms); before them its
// unordered form (within 1e-2) and the kernel's time with no dQ work, with dQ computed but not added,
// unordered and in order. Run alone
// (`attention_harness fused`): a wrong wait order traps rather than hangs, which ends the
// process's CUDA context.
typedef void (*FusedKernel)(bf16*, float*, float*, int*, const bf16*, const bf16*, const float*, const float*, int, int, int);
static void fused_check(const Case& cs, const std::vector<uint16_t>& hr, bf16* a, bf16* b2, const bf16* dout, const bf16* qkv,
                        const float* lse, const float* dot, float pair_ms, bool timing) {
    const int w = (cs.nh + 2 * cs.nkv) * 64, nb = (cs.t + 127) / 128, mt = (cs.t + 63) / 64;
    const long long rows = (long long)cs.b * cs.t;
    const size_t nqkv = rows * w, nsem = 1 + (size_t)cs.b * cs.nh * mt, nacc = (size_t)cs.b * cs.nh * cs.t * 64;
    float *acc, *kvacc;
    int* sem;
    CK(cudaMalloc(&acc, nacc * 4));
    CK(cudaMalloc(&kvacc, 4 * (size_t)rows * cs.nkv * 128 * 4));
    CK(cudaMalloc(&sem, nsem * 4));
    // One variant (dQ summed in order unless `ordered` is false: then into a zeroed dq_acc, in no
    // fixed order) against the reference; in order, also two runs bitwise equal and its time.
    auto check_variant = [&](int split, FusedKernel kernel, bool ordered) {
        auto run = [&](bf16* dst) {
            CK(cudaMemsetAsync(sem, 0, nsem * 4));
            if (!ordered) CK(cudaMemsetAsync(acc, 0, nacc * 4));
            kernel<<<nb * cs.nkv * cs.b * split, attn_fused::THREADS, attn_fused::SMEM_BYTES>>>(dst, acc, kvacc, sem, dout, qkv, lse, dot,
                                                                                             cs.t, cs.nh, cs.nkv);
            CK(cudaGetLastError());
            attention_fused_sm90_dq_round<<<1056, 256>>>(dst, acc, cs.b, cs.t, cs.nh, cs.nkv);
            CK(cudaGetLastError());
            if (split > 1) {
                attention_fused_sm90_dkv_round<<<1056, 256>>>(dst, kvacc, split, cs.b, cs.t, cs.nh, cs.nkv);
                CK(cudaGetLastError());
            }
        };
        CK(cudaMemset(a, 0x5A, nqkv * 2));
        CK(cudaMemset(b2, 0x5A, nqkv * 2));
        run(a);
        if (ordered) run(b2);
        CK(cudaDeviceSynchronize());
        std::vector<uint16_t> ha(nqkv), hb(nqkv);
        CK(cudaMemcpy(ha.data(), a, nqkv * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hb.data(), b2, nqkv * 2, cudaMemcpyDeviceToHost));
        bool nan = false;
        const double eq = rel_err(ha, hr, rows, w, 0, cs.nh * 64, nan);
        const double ekv = rel_err(ha, hr, rows, w, cs.nh * 64, 2 * cs.nkv * 64, nan);
        printf("  fused split %d%s (test sources): rel err dq %.3e, dk/dv %.3e%s\n", split, ordered ? "" : ", dQ unordered", eq, ekv,
               nan ? " (NaN/Inf!)" : "");
        check(!nan, "fused finite");
        check(eq < 1e-2 && ekv < 1e-2, "fused rel err < 1e-2");
        if (!ordered) return;
        check(memcmp(ha.data(), hb.data(), nqkv * 2) == 0, "fused: two runs bitwise equal");
        if (timing) {
            const float f = time_fn([&] { run(a); });
            printf("  timing fused split %d (with its zeroed counters and the roundings): %.3f ms; wgmma dq + dkv %.3f ms (ratio %.3f)\n",
                   split, f, pair_ms, f / pair_ms);
        }
    };
    // First what runs without the wait protocol, so that a hang in it (ended by the timeout) still
    // leaves these lines: the unordered sum against the reference, and where the time goes.
    check_variant(1, attention_fused_sm90_backward_unordered_split1_hs64, false);
    if (timing) {   // the kernel alone: no dQ work, dQ computed but not added, unordered, in the fixed order
        const struct {
            int split;
            const char* what;
            bool zero_acc;
            FusedKernel kernel;
        } parts[] = {{1, "neither added nor computed", false, attention_fused_sm90_backward_no_dq_product_split1_hs64},
                     {1, "computed, not added", false, attention_fused_sm90_backward_no_dq_split1_hs64},
                     {4, "computed, not added", false, attention_fused_sm90_backward_no_dq_split4_hs64},
                     {1, "added unordered", true, attention_fused_sm90_backward_unordered_split1_hs64},
                     {4, "added unordered", true, attention_fused_sm90_backward_unordered_split4_hs64},
                     {1, "added in the fixed order", false, attention_fused_sm90_backward_split1_hs64},
                     {4, "added in the fixed order", false, attention_fused_sm90_backward_split4_hs64}};
        for (const auto& v : parts) {
            const float f = time_fn([&] {
                CK(cudaMemsetAsync(sem, 0, nsem * 4));
                if (v.zero_acc) CK(cudaMemsetAsync(acc, 0, nacc * 4));
                v.kernel<<<nb * cs.nkv * cs.b * v.split, attn_fused::THREADS, attn_fused::SMEM_BYTES>>>(a, acc, kvacc, sem, dout, qkv, lse,
                                                                                                     dot, cs.t, cs.nh, cs.nkv);
                CK(cudaGetLastError());
            });
            printf("  timing fused split %d kernel alone, dQ %s: %.3f ms\n", v.split, v.what, f);
        }
    }
    const struct {
        int split;
        FusedKernel kernel;
    } variants[] = {{1, attention_fused_sm90_backward_split1_hs64}, {2, attention_fused_sm90_backward_split2_hs64},
                    {4, attention_fused_sm90_backward_split4_hs64}};
    for (const auto& v : variants)
        if ((cs.nh / cs.nkv) % v.split == 0) check_variant(v.split, v.kernel, true);
    CK(cudaFree(acc));
    CK(cudaFree(kvacc));
    CK(cudaFree(sem));
}

// The float64 sums of D = dO . O over the bf16 inputs, and the sums of |products| ([b, nh, t]).
struct DotReference {
    std::vector<double> sum, mag;
};

static DotReference dot_reference(const Case& cs, const std::vector<uint16_t>& hd, const bf16* out) {
    const size_t ndo = (size_t)cs.b * cs.t * cs.nh * 64, nst = (size_t)cs.b * cs.nh * cs.t;
    std::vector<uint16_t> ho(ndo);
    CK(cudaMemcpy(ho.data(), out, ndo * 2, cudaMemcpyDeviceToHost));
    DotReference ref{std::vector<double>(nst), std::vector<double>(nst)};
    for (int bi = 0; bi < cs.b; bi++)
        for (int i = 0; i < cs.t; i++)
            for (int h = 0; h < cs.nh; h++) {
                const size_t base = (((size_t)bi * cs.t + i) * cs.nh + h) * 64, at = ((size_t)bi * cs.nh + h) * cs.t + i;
                double sum = 0, mag = 0;
                for (int d = 0; d < 64; d++) {
                    const double p = (double)bf2f(hd[base + d]) * bf2f(ho[base + d]);
                    sum += p;
                    mag += fabs(p);
                }
                ref.sum[at] = sum;
                ref.mag[at] = std::max(mag, 1e-30);
            }
    return ref;
}

// The largest |d - sum| / sum |products| over a device D (infinite where an element is NaN: not
// written). fp32 rounding of 64 terms in any order stays below 64 x 2^-24 = 3.8e-6 of it.
static double dot_error(const float* dev, const DotReference& ref) {
    std::vector<float> d(ref.sum.size());
    CK(cudaMemcpy(d.data(), dev, d.size() * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (size_t k = 0; k < d.size(); k++)
        worst = std::isnan(d[k]) ? INFINITY : std::max(worst, fabs(d[k] - ref.sum[k]) / ref.mag[k]);
    return worst;
}

// D from attention.cu, twice into scratch (NaN sentinels before each run, so every element must be
// written), against the float64 sums; then timed alone, and D + dq + dk / dv in sequence.
static void dot_check(const Case& cs, const DotReference& ref, const bf16* dout, const bf16* out, const bf16* qkv, const float* lse,
                      float* scratch, bf16* dst, bool timing) {
    const size_t ndo = (size_t)cs.b * cs.t * cs.nh * 64, nst = ref.sum.size();
    const int blocks = (int)std::min<long long>(((long long)nst * 8 + 255) / 256, 16384);   // 8 lanes a (row, head), as the backend launches
    auto dot = [&] { attention_backward_dot_bf16<<<blocks, 256>>>(scratch, dout, out, cs.b, cs.t, cs.nh, 64); };
    std::vector<float> runs[2];
    double err = 0;
    for (auto& r : runs) {
        CK(cudaMemset(scratch, 0xFF, nst * 4));
        dot();
        CK(cudaGetLastError());
        err = std::max(err, dot_error(scratch, ref));
        r.resize(nst);
        CK(cudaMemcpy(r.data(), scratch, nst * 4, cudaMemcpyDeviceToHost));
    }
    const bool same = memcmp(runs[0].data(), runs[1].data(), nst * 4) == 0;
    printf("  D = rowsum(dO * O): within %.2e of the float64 sum (of sum |products|); two runs bitwise equal: %s\n", err,
           same ? "yes" : "no");
    check(err < 8e-6 && same, "D near the float64 sum, every element written, deterministic");
    if (timing) {
        const dim3 gq((cs.t + 127) / 128, cs.nh, cs.b), gkv((cs.t + 127) / 128, cs.nkv, cs.b);
        const float alone = time_fn(dot);
        const float all = time_fn([&] {
            dot();
            launch(attention_wgmma_sm90_backward_dq_hs64, gq, attn_wgmma::THREADS, dst, dout, qkv, lse, scratch, cs);
            launch(attention_wgmma_sm90_backward_dkv_hs64, gkv, attn_wgmma::THREADS, dst, dout, qkv, lse, scratch, cs);
        });
        printf("  timing D: %.3f ms (%.2f TB/s); D + wgmma dq + dkv in sequence %.3f ms\n", alone, ndo * 4 / (alone * 1e9), all);
    }
}

static void run_case(const Case& cs, bool timing, bool fused) {
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
    if (!fused) forward_case(cs, qkv, timing);
    attention_mma_sm80_forward_hs64<<<dim3((cs.t + 127) / 128, cs.nh, cs.b), attn_mma::THREADS>>>(out, lse, qkv, cs.t, cs.nh, cs.nkv);
    CK(cudaGetLastError());
    attention_backward_dot_bf16<<<1024, 256>>>(dot, dout, out, cs.b, cs.t, cs.nh, 64);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    float* scratch;
    CK(cudaMalloc(&scratch, nst * 4));
    DotReference dref;
    if (!fused) {
        dref = dot_reference(cs, hd, out);
        dot_check(cs, dref, dout, out, qkv, lse, scratch, a, timing);
    }

    // The reference: the mma kernels' dq and dk / dv in one buffer.
    const dim3 gq((cs.t + 127) / 128, cs.nh, cs.b), gkv((cs.t + 127) / 128, cs.nkv, cs.b);
    const dim3 gq64((cs.t + FA_TILE - 1) / FA_TILE, cs.nh, cs.b), gkv64((cs.t + FA_TILE - 1) / FA_TILE, cs.nkv, cs.b);
    CK(cudaMemset(ref, 0x5A, nqkv * 2));
    launch(attention_mma_sm80_backward_dq_hs64, gq, attn_mma::THREADS, ref, dout, qkv, lse, dot, cs);
    launch(attention_mma_sm80_backward_dkv_hs64, gkv, attn_mma::THREADS, ref, dout, qkv, lse, dot, cs);
    CK(cudaDeviceSynchronize());
    std::vector<uint16_t> hr(nqkv);
    CK(cudaMemcpy(hr.data(), ref, nqkv * 2, cudaMemcpyDeviceToHost));
    {
        bool refnan = false;
        std::vector<uint16_t> zero(nqkv, 0);
        const double nk = rel_err(hr, zero, rows, w, cs.nh * 64, cs.nkv * 64, refnan);
        const double nq = rel_err(hr, zero, rows, w, 0, cs.nh * 64, refnan);
        check(nk > 0 && nq > 0 && !refnan, "mma dq, dk nonzero and finite (reference sane)");
    }
    const int kv0 = cs.nh * 64, kvn = 2 * cs.nkv * 64;
    if (fused) {
        const float pair = timing ? time_ms(attention_wgmma_sm90_backward_dkv_hs64, gkv, attn_wgmma::THREADS, a, dout, qkv, lse, dot, cs)
                                        + time_ms(attention_wgmma_sm90_backward_dq_hs64, gq, attn_wgmma::THREADS, a, dout, qkv, lse, dot, cs)
                                  : 0.f;
        fused_check(cs, hr, a, b2, dout, qkv, lse, dot, pair, timing);
    } else {
    backward_check("wgmma dkv", attention_wgmma_sm90_backward_dkv_hs64, gkv, attn_wgmma::THREADS, hr,
                                                      kv0, kvn, true, a, b2, dout, qkv, lse, dot, cs);
    backward_check("wgmma dq", attention_wgmma_sm90_backward_dq_hs64, gq, attn_wgmma::THREADS, hr, 0, kv0, true, a, b2, dout, qkv,
                   lse, dot, cs);
    backward_check("flash dkv (test sources)", flash_attention_backward_dkv_hs64_bf16, gkv64, FA_THREADS, hr, kv0, kvn, false, a,
                   b2, dout, qkv, lse, dot, cs);
    backward_check("flash dq (test sources)", flash_attention_backward_dq_hs64_bf16, gq64, FA_THREADS, hr, 0, kv0, false, a, b2,
                   dout, qkv, lse, dot, cs);
    if (timing) {
        const float k3 = time_ms(attention_mma_sm80_backward_dkv_hs64, gkv, attn_mma::THREADS, ref, dout, qkv, lse, dot, cs);
        const float k4 = time_ms(attention_wgmma_sm90_backward_dkv_hs64, gkv, attn_wgmma::THREADS, a, dout, qkv, lse, dot, cs);
        const float k2 = time_ms(flash_attention_backward_dkv_hs64_bf16, gkv64, FA_THREADS, b2, dout, qkv, lse, dot, cs);
        printf("  timing dkv: mma %.3f ms, wgmma %.3f ms (ratio %.3f), flash %.3f ms\n", k3, k4, k4 / k3, k2);
        const float q3 = time_ms(attention_mma_sm80_backward_dq_hs64, gq, attn_mma::THREADS, ref, dout, qkv, lse, dot, cs);
        const float q4 = time_ms(attention_wgmma_sm90_backward_dq_hs64, gq, attn_wgmma::THREADS, a, dout, qkv, lse, dot, cs);
        const float q2 = time_ms(flash_attention_backward_dq_hs64_bf16, gq64, FA_THREADS, b2, dout, qkv, lse, dot, cs);
        printf("  timing dq: mma %.3f ms, wgmma %.3f ms (ratio %.3f), flash %.3f ms\n", q3, q4, q4 / q3, q2);
    }
    }
    CK(cudaFree(qkv));
    CK(cudaFree(dout));
    CK(cudaFree(out));
    CK(cudaFree(ref));
    CK(cudaFree(a));
    CK(cudaFree(b2));
    CK(cudaFree(lse));
    CK(cudaFree(dot));
    CK(cudaFree(scratch));
}

int main(int argc, char** argv) {
    setvbuf(stdout, nullptr, _IOLBF, 0);   // every line out before a hang's timeout ends the process
    const bool fused = argc > 1 && strcmp(argv[1], "fused") == 0;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, sm_%d%d\n", prop.name, prop.major, prop.minor);
    if (prop.major != 9) {
        printf("FAIL: needs a Hopper GPU (sm_90)\n");
        return 1;
    }
    for (const FwdVariant& v : kFwd)
        if (v.smem > 48 * 1024) CK(cudaFuncSetAttribute(v.kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, v.smem));
    CK(cudaFuncSetAttribute(attention_wgmma_sm90_backward_dkv_hs64, cudaFuncAttributeMaxDynamicSharedMemorySize, attn_wgmma::SMEM_BYTES));
    CK(cudaFuncSetAttribute(attention_wgmma_sm90_backward_dq_hs64, cudaFuncAttributeMaxDynamicSharedMemorySize, attn_wgmma::DQ_SMEM_BYTES));
    for (auto k : {attention_fused_sm90_backward_split1_hs64, attention_fused_sm90_backward_split2_hs64,
                   attention_fused_sm90_backward_split4_hs64, attention_fused_sm90_backward_unordered_split1_hs64,
                   attention_fused_sm90_backward_unordered_split4_hs64, attention_fused_sm90_backward_no_dq_split1_hs64,
                   attention_fused_sm90_backward_no_dq_split4_hs64, attention_fused_sm90_backward_no_dq_product_split1_hs64})
        CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, attn_fused::SMEM_BYTES));
    printf("wgmma dynamic shared memory: forward %d bytes, dq %d bytes, dkv %d bytes\n", attn_wgmma::KV_SMEM_BYTES, attn_wgmma::DQ_SMEM_BYTES,
           attn_wgmma::SMEM_BYTES);
    const Case cases[] = {{8, 2048, 32, 4}, {1, 1000, 32, 4}, {2, 333, 8, 1}, {1, 64, 4, 2}, {1, 130, 4, 4}};
    for (const Case& cs : cases) run_case(cs, cs.b == 8 && cs.t == 2048, fused);
    printf(failures ? "FAILED (%d checks)\n" : "PASSED\n", failures);
    return failures ? 1 : 0;
}
