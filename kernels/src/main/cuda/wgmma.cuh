// Hopper warpgroup matrix multiply (wgmma, sm_90a only) building blocks: shared-memory matrix
// descriptors for 128-byte-swizzled bf16 tiles, the m64n64k16 product with A from registers or from
// shared memory, and the fence / commit / wait that order it. Everything here compiles to nothing
// useful on other targets; callers guard their use with WG_ENABLED.
//
// Layouts (PTX ISA, "Asynchronous Warpgroup Level Matrix Multiply"):
// - Tiles are 64 rows x 64 bf16 (128 bytes per row), 1024-byte aligned, stored with the 128-byte
//   swizzle: the 16-byte chunk c of row r sits at chunk c ^ (r % 8) of that row (what the hardware
//   undoes from address bits [4:6] ^ [7:9], hence the 1024-byte alignment).
// - Such a tile [row][col] is B (K x N) either K-major (rows = N, cols = K: B[k][n] = tile[n][k],
//   transpose flag 0) or MN-major (rows = K, cols = N: B[k][n] = tile[k][n], flag 1). The 8-row
//   groups are 1024 bytes apart; a k-step of 16 is +32 bytes on the start address (K-major,
//   inside the swizzle atom, which the hardware swizzles by absolute address) or +2048 bytes
//   (MN-major, two 8-row groups).
// - Accumulator (m64nN, fp32) of thread (warp w of the warpgroup, lane l): d[i] is row
//   16 w + l / 4 + 8 ((i / 2) % 2), column 8 (i / 4) + 2 (l % 4) + i % 2.
// - A from registers (m64k16, bf16): 4 registers, the mma.sync m16n8k16 A fragment of rows
//   16 w .. 16 w + 15: {row l/4, k 2(l%4)..+1}, {row l/4 + 8, same}, {row l/4, k + 8}, {row l/4 + 8, k + 8}.
//   So accumulator columns 16 kk .. 16 kk + 15, packed in pairs d[8 kk + 2 j], d[8 kk + 2 j + 1]
//   (j = 0 .. 3), are the A fragment of k-step kk: the FlashAttention register reuse.
#pragma once
#include "common.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define WG_ENABLED 1
#else
#define WG_ENABLED 0
#endif

// Byte offset of the 16-byte chunk `chunk` (0..7) of row `row` in a 128-byte-swizzled tile.
__host__ __device__ __forceinline__ uint32_t wg_swz(int row, int chunk) {
    return (uint32_t)(row * 128 + ((chunk ^ (row & 7)) << 4));
}

// Matrix descriptor: start address, leading / stride byte offsets, 128-byte swizzle (mode 1 in
// bits 62-63). Base offset 0: tiles are 1024-byte aligned.
__device__ __forceinline__ uint64_t wg_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
           ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}

// K-major B (tile rows are N): LBO unused with the 128-byte swizzle (1 as CUTLASS sets it), SBO
// the 8-row group stride.
__device__ __forceinline__ uint64_t wg_desc_kmajor(uint32_t saddr) { return wg_desc(saddr, 16, 1024); }
// MN-major B (tile rows are K, N = 64 = one swizzle atom wide): SBO = the 8-row (k) group stride;
// LBO (stride between 64-wide atoms in N) is never used at N = 64; set to the same 1024.
__device__ __forceinline__ uint64_t wg_desc_mnmajor(uint32_t saddr) { return wg_desc(saddr, 1024, 1024); }

__device__ __forceinline__ void wg_fence() {
#if WG_ENABLED
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit() {
#if WG_ENABLED
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void wg_wait() {
#if WG_ENABLED
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Ordinary (generic-proxy) shared-memory writes, cp.async included, made visible to wgmma's
// async-proxy reads; each writing thread, before the barrier.
__device__ __forceinline__ void wg_fence_proxy() {
#if WG_ENABLED
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Keeps the compiler from moving accesses to accumulator registers across a wgmma wait.
template <int N>
__device__ __forceinline__ void wg_fence_regs(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}

// The same for A-fragment registers: used after a wait, keeps them live (and their registers
// unavailable to other values) until the wgmma that read them has completed.
__device__ __forceinline__ void wg_fence_regs_u(uint32_t (&a)[4][4]) {
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) asm volatile("" : "+r"(a[i][j])::"memory");
}

// The 32 accumulator operands of an m64n64 product: "{%0, .., %31}, " in the instruction, and their
// constraints, read-write (WG_RW) or write-only (WG_WO, a product's first k-step).
#define WG_D32_OPERANDS                                                                       \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                 \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
#define WG_RW(x) "+f"(x)
#define WG_WO(x) "=f"(x)
#define WG_D32(c)                                                                                                       \
    c(d[0]), c(d[1]), c(d[2]), c(d[3]), c(d[4]), c(d[5]), c(d[6]), c(d[7]), c(d[8]), c(d[9]), c(d[10]), c(d[11]), c(d[12]), \
        c(d[13]), c(d[14]), c(d[15]), c(d[16]), c(d[17]), c(d[18]), c(d[19]), c(d[20]), c(d[21]), c(d[22]), c(d[23]),      \
        c(d[24]), c(d[25]), c(d[26]), c(d[27]), c(d[28]), c(d[29]), c(d[30]), c(d[31])

// d (64 x 64 fp32) = (accumulate ? d : 0) + a (64 x 16, registers) . B (16 x 64, descriptor).
template <int TRANS_B>
__device__ __forceinline__ void wg_mma_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc, int accumulate) {
#if WG_ENABLED
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        WG_D32_OPERANDS
        "{%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
        : WG_D32(WG_RW)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "r"(accumulate), "n"(TRANS_B));
#endif
}

// d (64 x 64 fp32) = a (64 x 16, registers) . B (16 x 64, descriptor): the first k-step of a
// product, d write-only, so its old values are dead (no false dependency on whatever last wrote
// those registers, which would make ptxas serialize the wgmma pipeline).
template <int TRANS_B>
__device__ __forceinline__ void wg_mma_rs_first(float (&d)[32], const uint32_t (&a)[4], uint64_t desc) {
#if WG_ENABLED
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        WG_D32_OPERANDS
        "{%32, %33, %34, %35}, %36, p, 1, 1, %37;\n}\n"
        : WG_D32(WG_WO)
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "n"(TRANS_B));
#endif
}

// d (64 x 64 fp32) (+)= A (64 x 16, shared descriptor) . B (16 x 64, shared descriptor).
template <int TRANS_A, int TRANS_B>
__device__ __forceinline__ void wg_mma_ss(float (&d)[32], uint64_t a, uint64_t b, int accumulate) {
#if WG_ENABLED
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        WG_D32_OPERANDS
        "%32, %33, p, 1, 1, %35, %36;\n}\n"
        : WG_D32(WG_RW)
        : "l"(a), "l"(b), "r"(accumulate), "n"(TRANS_A), "n"(TRANS_B));
#endif
}

// The first k-step of such a product: d write-only (see wg_mma_rs_first).
template <int TRANS_A, int TRANS_B>
__device__ __forceinline__ void wg_mma_ss_first(float (&d)[32], uint64_t a, uint64_t b) {
#if WG_ENABLED
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, 0, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        WG_D32_OPERANDS
        "%32, %33, p, 1, 1, %34, %35;\n}\n"
        : WG_D32(WG_WO)
        : "l"(a), "l"(b), "n"(TRANS_A), "n"(TRANS_B));
#endif
}
