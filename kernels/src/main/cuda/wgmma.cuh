// Hopper warpgroup matrix multiply (wgmma, sm_90a only) building blocks: shared-memory matrix
// descriptors for 128-byte-swizzled bf16 tiles, the m64n64k16 product with A from registers, and
// the fence / commit / wait that order it. Everything here compiles to nothing useful on other
// targets; callers guard their use with WG_ENABLED.
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

// d (64 x 64 fp32) = (accumulate ? d : 0) + a (64 x 16, registers) . B (16 x 64, descriptor).
template <int TRANS_B>
__device__ __forceinline__ void wg_mma_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc, int accumulate) {
#if WG_ENABLED
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
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
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
        "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
        "{%32, %33, %34, %35}, %36, p, 1, 1, %37;\n}\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3]), "=f"(d[4]), "=f"(d[5]), "=f"(d[6]), "=f"(d[7]),
          "=f"(d[8]), "=f"(d[9]), "=f"(d[10]), "=f"(d[11]), "=f"(d[12]), "=f"(d[13]), "=f"(d[14]), "=f"(d[15]),
          "=f"(d[16]), "=f"(d[17]), "=f"(d[18]), "=f"(d[19]), "=f"(d[20]), "=f"(d[21]), "=f"(d[22]), "=f"(d[23]),
          "=f"(d[24]), "=f"(d[25]), "=f"(d[26]), "=f"(d[27]), "=f"(d[28]), "=f"(d[29]), "=f"(d[30]), "=f"(d[31])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc), "n"(TRANS_B));
#endif
}
