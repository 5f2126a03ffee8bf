#!/usr/bin/env python3
"""Offline check of attention_wgmma_sm90_forward_hs64's index logic (attention_wgmma_sm90.cu)
without a GPU.

Emulates, per block and warpgroup, the kernel's fragment layout (thread = warp w, lane l; the
accumulator element i of a 64 x 64 tile is row 16 w + l / 4 + 8 ((i / 2) % 2), column
8 (i / 4) + 2 (l % 4) + i % 2), its tile range (nkt), skip test, diagonal mask expression,
per-thread max / quad shuffles / partial sums, bf16 packing of P, and the output / lse
expressions (max over raw scores, then scaled; asserted equal, bit for bit, to the mma kernel's order:
scale, mask to -inf, max), in float32 with numpy; compares out and lse against a float64 causal
GQA reference on bf16-rounded inputs, and checks that every row < t is written (rows >= t are
not: out / lse are sized t). The tensor-core products are float64 rounded to float32 and 2^x is
numpy's exp2 (not ex2.approx), so it checks indexing and the softmax logic, not rounding; the
issue order of the wgmma products does not change any value and is not emulated.
Usage: python3 attention_wgmma_sm90_forward_emulation.py
"""
import numpy as np

LOG2E = np.float32(1.4426950408889634)
SCALE = np.float32(0.125)


def bf16(x):
    """Round float32 to bf16 (nearest even), returned as float32."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def layout():
    w = np.arange(4)[:, None, None]
    lane = np.arange(32)[None, :, None]
    i = np.arange(32)[None, None, :]
    row = 16 * w + lane // 4 + 8 * ((i // 2) % 2)
    col = 8 * (i // 4) + 2 * (lane % 4) + i % 2
    return np.broadcast_to(row, (4, 32, 32)), np.broadcast_to(col, (4, 32, 32))


ROW, COL = layout()
C = np.broadcast_to(2 * (np.arange(32) % 4)[None, :], (4, 32))


def quad_max(x):  # x [4 warps, 32 lanes]: __shfl_xor 1 then 2
    x = np.maximum(x, x[:, np.arange(32) ^ 1])
    return np.maximum(x, x[:, np.arange(32) ^ 2])


def quad_sum(x):
    x = x + x[:, np.arange(32) ^ 1]
    return x + x[:, np.arange(32) ^ 2]


def kernel(qkv, t, nh, nkv):
    b = qkv.shape[0]
    width = (nh + 2 * nkv) * 64
    group = nh // nkv
    out = np.full((b, t, nh * 64), np.nan, np.float32)   # NaN: never written
    lse = np.full((b, nh, t), np.nan, np.float32)
    gx = (t + 127) // 128
    for bi in range(b):
        for h in range(nh):
            g = h // group
            for qb in range(gx):
                q0 = qb * 128
                nkt = min(2 * qb + 2, (t + 63) >> 6)
                for wg in range(2):
                    qw0 = q0 + 64 * wg
                    live = qw0 < t
                    rows = qw0 + np.arange(64)
                    q = np.zeros((64, 64), np.float32)
                    ok = rows < t
                    q[ok] = qkv[bi, rows[ok], h * 64:(h + 1) * 64]
                    o = np.zeros((4, 32, 32), np.float32)
                    mx = np.full((4, 32, 2), -np.inf, np.float32)
                    l = np.zeros((4, 32, 2), np.float32)
                    for kt in range(nkt):
                        k0 = kt * 64
                        if not live or k0 > qw0:
                            continue
                        keys = k0 + np.arange(64)
                        kok = keys < t
                        K = np.zeros((64, 64), np.float32)
                        V = np.zeros((64, 64), np.float32)
                        K[kok] = qkv[bi, keys[kok], (nh + g) * 64:(nh + g + 1) * 64]
                        V[kok] = qkv[bi, keys[kok], (nh + nkv + g) * 64:(nh + nkv + g + 1) * 64]
                        S = (q.astype(np.float64) @ K.T.astype(np.float64)).astype(np.float32)
                        raw = S[ROW, COL]                       # the S accumulators, raw q.k
                        masked = np.zeros(raw.shape, bool)
                        if k0 == qw0:
                            qrow = qw0 + np.broadcast_to((16 * np.arange(4)[:, None] + np.arange(32)[None, :] // 4)[:, :, None], (4, 32, 32))
                            rel = k0 - qrow
                            i = np.arange(32)[None, None, :]
                            masked = 8 * (i >> 2) + C[:, :, None] + (i & 1) + rel > 8 * ((i >> 1) & 1)
                        # The kernel (fwd_probs): max of the raw unmasked scores, then scaled.
                        x = mx.copy()
                        for r in range(2):
                            sel = [4 * n + 2 * r + e for n in range(8) for e in range(2)]
                            m = np.where(masked, np.float32(-np.inf), raw)[:, :, sel].max(axis=2)
                            x[:, :, r] = np.maximum(mx[:, :, r], (m * (SCALE * LOG2E)).astype(np.float32))
                            x[:, :, r] = quad_max(x[:, :, r])
                        # the mma kernel's order (scale, mask to -inf, max): must give the same max bits.
                        s3 = np.where(masked, np.float32(-np.inf), raw * (SCALE * LOG2E))
                        for r in range(2):
                            sel = [4 * n + 2 * r + e for n in range(8) for e in range(2)]
                            x3 = quad_max(np.maximum(mx[:, :, r], s3[:, :, sel].max(axis=2)))
                            assert np.array_equal(x3.view(np.uint32), x[:, :, r].view(np.uint32)), "max differs from the mma kernel's"
                        corr = np.exp2(mx - x).astype(np.float32)
                        mx = x
                        l = l * corr
                        p = np.empty_like(raw)
                        for n in range(8):
                            for r in range(2):
                                for i0 in (4 * n + 2 * r, 4 * n + 2 * r + 1):
                                    arg = np.where(masked[:, :, i0], np.float32(-np.inf),
                                                   (raw[:, :, i0] * (SCALE * LOG2E)).astype(np.float32) - x[:, :, r])
                                    p[:, :, i0] = np.exp2(arg.astype(np.float32))
                                i0 = 4 * n + 2 * r
                                l[:, :, r] = l[:, :, r] + (p[:, :, i0] + p[:, :, i0 + 1])
                        for i0 in range(32):
                            o[:, :, i0] *= corr[:, :, (i0 >> 1) & 1]
                        P = np.zeros((64, 64), np.float32)
                        P[ROW, COL] = bf16(p)
                        o += (P.astype(np.float64) @ V.astype(np.float64)).astype(np.float32)[ROW, COL]
                    for r in range(2):
                        lr = quad_sum(l[:, :, r])
                        inv = np.float32(1) / lr
                        for w in range(4):
                            for lane in range(32):
                                row = qw0 + 16 * w + lane // 4 + 8 * r
                                if row < t:
                                    c = 2 * (lane % 4)
                                    for n in range(8):
                                        for e in range(2):
                                            out[bi, row, h * 64 + 8 * n + c + e] = bf16(o[w, lane, 4 * n + 2 * r + e] * inv[w, lane])
                                    if lane % 4 == 0:
                                        lse[bi, h, row] = mx[w, lane, r] / LOG2E + np.log(lr[w, lane])
    return out, lse


def reference(qkv, t, nh, nkv):
    b = qkv.shape[0]
    group = nh // nkv
    x = qkv.astype(np.float64)
    out = np.zeros((b, t, nh * 64))
    lse = np.zeros((b, nh, t))
    mask = np.tril(np.ones((t, t), bool))
    for bi in range(b):
        for h in range(nh):
            g = h // group
            q = x[bi, :, h * 64:(h + 1) * 64]
            k = x[bi, :, (nh + g) * 64:(nh + g + 1) * 64]
            v = x[bi, :, (nh + nkv + g) * 64:(nh + nkv + g + 1) * 64]
            s = np.where(mask, q @ k.T / 8, -np.inf)
            m = s.max(axis=1, keepdims=True)
            e = np.exp(s - m)
            z = e.sum(axis=1, keepdims=True)
            out[bi, :, h * 64:(h + 1) * 64] = (e / z) @ v
            lse[bi, h] = (m + np.log(z))[:, 0]
    return out, lse


def main():
    rng = np.random.default_rng(1)
    fails = 0
    for (b, t, nh, nkv) in [(1, 1, 4, 2), (1, 64, 4, 2), (1, 130, 4, 4), (2, 333, 8, 1), (1, 256, 2, 1)]:
        qkv = bf16(rng.uniform(-1, 1, (b, t, (nh + 2 * nkv) * 64)).astype(np.float32) * np.float32(2.0))
        out, lse = kernel(qkv, t, nh, nkv)
        ro, rl = reference(qkv, t, nh, nkv)
        written = not np.isnan(out).any() and not np.isnan(lse).any()
        eo = np.sqrt(((out - ro) ** 2).sum() / (ro ** 2).sum())
        el = np.abs(lse - rl).max()
        ok = written and eo < 1e-2 and el < 1e-4
        fails += not ok
        print(f"b={b} t={t} nh={nh} nkv={nkv}: out rel err {eo:.3e}, lse max abs err {el:.3e}, all rows < t written: {written}"
              f" -> {'ok' if ok else 'FAIL'}")
    print("PASSED" if fails == 0 else f"FAILED ({fails})")
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
