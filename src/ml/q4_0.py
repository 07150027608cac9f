"""Q4_0: 32 values in 18 bytes, a float16 scale d and 4 bits per value.

    bytes 0-1    d    float16 (little-endian)
    bytes 2-17   qs   16 bytes: byte t holds value t in its low nibble and value t + 16 in its high one
    value = d * (q - 8), q = 0..15 (the product rounded to float32, as gguf-py does)

The two kernels share `_block_values`, so the matrix-vector product multiplies exactly the weights
that `dequantize` produces; only the order of the float32 sum differs from the dequantized matrix's.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import simd
from .gemm_f32 import TASK_ROWS, tile_rows

BLOCK_SIZE = 32
BLOCK_BYTES = 18


@njit(cache=True, inline="always")
def _block_values(row, o):  # type: ignore[no-untyped-def]
    """The block at byte o of a uint8 row -> (values 0..15, values 16..31) as F32x16."""
    d = simd.splat_f16(row, o)
    q = simd.load_u8(row, o + 2)
    return simd.to_f32((q & 15) - 8) * d, simd.to_f32((q >> 4) - 8) * d


# ---- dequantize: rows of blocks -> float32 rows ----------------------------------------------------


@njit(cache=True, inline="always")
def _dequantize_row(src, dst):  # type: ignore[no-untyped-def]
    for b in range(dst.size // BLOCK_SIZE):
        low, high = _block_values(src, b * BLOCK_BYTES)
        simd.store_f32(dst, b * BLOCK_SIZE, low)
        simd.store_f32(dst, b * BLOCK_SIZE + 16, high)


@njit(cache=True)
def dequantize_serial(src, dst):  # type: ignore[no-untyped-def]
    """src uint8 [rows, cols // 32 * 18] -> dst float32 [rows, cols]."""
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


# ---- GEMV: x [n, k] float32 times the blocks of w [m, k] -> out [n, m] -----------------------------


@njit(cache=True, inline="always")
def _dot_row(x, w):  # type: ignore[no-untyped-def]
    acc_low = simd.zeros()
    acc_high = simd.zeros()
    for b in range(x.size // BLOCK_SIZE):
        low, high = _block_values(w, b * BLOCK_BYTES)
        acc_low = simd.fma(low, simd.load_f32(x, b * BLOCK_SIZE), acc_low)
        acc_high = simd.fma(high, simd.load_f32(x, b * BLOCK_SIZE + 16), acc_high)
    return simd.hsum(acc_low + acc_high)


@njit(cache=True)
def gemv_serial(x, w, out):  # type: ignore[no-untyped-def]
    """x float32 [n, k], w uint8 [m, k // 32 * 18] -> out float32 [n, m]."""
    for j in range(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row(x[i], w[j])


@njit(cache=True, parallel=True)
def gemv_parallel(x, w, out):  # type: ignore[no-untyped-def]
    for j in prange(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row(x[i], w[j])
