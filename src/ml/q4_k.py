"""Q4_K: super-blocks of 256 values in 144 bytes, 8 sub-blocks of 32 with 6-bit scales and minimums.

    bytes 0-1     d      float16: the scale of the sub-block scales
    bytes 2-3     dmin   float16: the scale of the sub-block minimums
    bytes 4-15    12 bytes packing 8 six-bit scales sc[s] and 8 six-bit minimums mn[s]:
                  s < 4:   sc[s] = S[s] & 63                          mn[s] = S[s + 4] & 63
                  s >= 4:  sc[s] = (S[s + 4] & 15) | (S[s - 4] >> 6) << 4
                           mn[s] = (S[s + 4] >> 4) | (S[s] >> 6) << 4
    bytes 16-143  128 bytes of 4-bit values, in 4 groups of 32 bytes: group g holds sub-block 2g in
                  its low nibbles and sub-block 2g + 1 in its high nibbles (values 64g .. 64g + 63)
    value = (d * sc[s]) * q - (dmin * mn[s]), q = 0..15 (each product rounded to float32, then the
            difference: gguf-py's order)

`Q4_K_M` downloads (the most common) store most matrices this way. Rows must be whole super-blocks
(a multiple of 256 values).

The two kernels share `_group_values`, so the matrix-vector product multiplies exactly the weights
that `dequantize` produces; only the order of the float32 sum differs from the dequantized matrix's.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import simd
from .gemm_f32 import TASK_ROWS, tile_rows

BLOCK_SIZE = 256
BLOCK_BYTES = 144


@njit(cache=True, inline="always")
def _group_values(row, o, g, h, sc_low, mn_low, sc_high, mn_high):  # type: ignore[no-untyped-def]
    """Half h (16 bytes) of group g of the super-block at byte o, whose sub-blocks 2g and 2g + 1 have
    the 6-bit scales and minimums given -> (values 64g + 16h + 0..15 of sub-block 2g, values
    64g + 32 + 16h + 0..15 of sub-block 2g + 1) as F32x16."""
    d = simd.splat_f16(row, o)
    dmin = simd.splat_f16(row, o + 2)
    q = simd.load_u8(row, o + 16 + 32 * g + 16 * h)
    low = simd.to_f32(q & 15) * (d * np.float32(sc_low)) - dmin * np.float32(mn_low)
    high = simd.to_f32(q >> 4) * (d * np.float32(sc_high)) - dmin * np.float32(mn_high)
    return low, high


@njit(cache=True, inline="always")
def _first_scales(row, o, s):  # type: ignore[no-untyped-def]
    """(sc[s], mn[s]) for s = 0..3: the low 6 bits of S[s] and S[s + 4]. S[i] is byte o + 4 + i."""
    return np.int32(row[o + 4 + s]) & 63, np.int32(row[o + 8 + s]) & 63


@njit(cache=True, inline="always")
def _last_scales(row, o, s):  # type: ignore[no-untyped-def]
    """(sc[s], mn[s]) for s = 4..7: a nibble of S[s + 4] (low for sc, high for mn) below the top 2
    bits of S[s - 4] (for sc) or of S[s] (for mn). S[i] is byte o + 4 + i."""
    packed = np.int32(row[o + 8 + s])
    sc = (packed & 15) | ((np.int32(row[o + s]) >> 6) << 4)
    mn = (packed >> 4) | ((np.int32(row[o + 4 + s]) >> 6) << 4)
    return sc, mn


# ---- dequantize: rows of super-blocks -> float32 rows ----------------------------------------------


@njit(cache=True, inline="always")
def _dequantize_row(src, dst):  # type: ignore[no-untyped-def]
    # groups 0-1 (sub-blocks 0-3) and 2-3 (sub-blocks 4-7) pack their scales differently; two loops
    # keep the loop bodies free of branches
    for b in range(dst.size // BLOCK_SIZE):
        o = b * BLOCK_BYTES
        for g in range(2):
            sc_low, mn_low = _first_scales(src, o, 2 * g)
            sc_high, mn_high = _first_scales(src, o, 2 * g + 1)
            for h in range(2):
                low, high = _group_values(src, o, g, h, sc_low, mn_low, sc_high, mn_high)
                start = b * BLOCK_SIZE + 64 * g + 16 * h
                simd.store_f32(dst, start, low)
                simd.store_f32(dst, start + 32, high)
        for g in range(2, 4):
            sc_low, mn_low = _last_scales(src, o, 2 * g)
            sc_high, mn_high = _last_scales(src, o, 2 * g + 1)
            for h in range(2):
                low, high = _group_values(src, o, g, h, sc_low, mn_low, sc_high, mn_high)
                start = b * BLOCK_SIZE + 64 * g + 16 * h
                simd.store_f32(dst, start, low)
                simd.store_f32(dst, start + 32, high)


@njit(cache=True)
def dequantize_serial(src, dst):  # type: ignore[no-untyped-def]
    """src uint8 [rows, cols // 256 * 144] -> dst float32 [rows, cols]."""
    for r in range(src.shape[0]):
        _dequantize_row(src[r], dst[r])


@njit(cache=True, parallel=True)
def dequantize_parallel(src, dst):  # type: ignore[no-untyped-def]
    for r in prange(src.shape[0]):
        _dequantize_row(src[r], dst[r])

# ---- GEMM (prefill): many rows of x, a tile of dequantized weight rows per task (gemm_f32.py) ----


@njit(cache=True, parallel=True)
def gemm_parallel(x, w, out):  # type: ignore[no-untyped-def]
    """x float32 [n, k] @ w^T -> out float32 [n, m] (zeroed): each task dequantizes TASK_ROWS rows of w
    with `_dequantize_row` (the weights `dequantize` gives) into a cache-sized float32 tile."""
    m, k = w.shape[0], x.shape[1]
    for task in prange((m + TASK_ROWS - 1) // TASK_ROWS):
        j0 = task * TASK_ROWS
        tile = np.empty((min(m, j0 + TASK_ROWS) - j0, k), dtype=np.float32)
        for r in range(tile.shape[0]):
            _dequantize_row(w[j0 + r], tile[r])
        tile_rows(x, tile, out, j0)


# ---- GEMV: x [n, k] float32 times the super-blocks of w [m, k] -> out [n, m] ------------------------


@njit(cache=True, inline="always")
def _dot_row(x, w):  # type: ignore[no-untyped-def]
    acc_low = simd.zeros()
    acc_high = simd.zeros()
    for b in range(x.size // BLOCK_SIZE):
        o = b * BLOCK_BYTES
        for g in range(2):
            sc_low, mn_low = _first_scales(w, o, 2 * g)
            sc_high, mn_high = _first_scales(w, o, 2 * g + 1)
            for h in range(2):
                low, high = _group_values(w, o, g, h, sc_low, mn_low, sc_high, mn_high)
                start = b * BLOCK_SIZE + 64 * g + 16 * h
                acc_low = simd.fma(low, simd.load_f32(x, start), acc_low)
                acc_high = simd.fma(high, simd.load_f32(x, start + 32), acc_high)
        for g in range(2, 4):
            sc_low, mn_low = _last_scales(w, o, 2 * g)
            sc_high, mn_high = _last_scales(w, o, 2 * g + 1)
            for h in range(2):
                low, high = _group_values(w, o, g, h, sc_low, mn_low, sc_high, mn_high)
                start = b * BLOCK_SIZE + 64 * g + 16 * h
                acc_low = simd.fma(low, simd.load_f32(x, start), acc_low)
                acc_high = simd.fma(high, simd.load_f32(x, start + 32), acc_high)
    return simd.hsum(acc_low + acc_high)


@njit(cache=True)
def gemv_serial(x, w, out):  # type: ignore[no-untyped-def]
    """x float32 [n, k], w uint8 [m, k // 256 * 144] -> out float32 [n, m]."""
    for j in range(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row(x[i], w[j])


@njit(cache=True, parallel=True)
def gemv_parallel(x, w, out):  # type: ignore[no-untyped-def]
    for j in prange(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row(x[i], w[j])
