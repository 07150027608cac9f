"""Q6_K: super-blocks of 256 values in 210 bytes, 16 sub-blocks of 16 with int8 scales, 6 bits a value.

    bytes 0-127    ql      the low 4 bits of each value
    bytes 128-191  qh      the high 2 bits of each value, four values to a byte
    bytes 192-207  scales  16 x int8, one per 16 values
    bytes 208-209  d       float16 (little-endian): the scale of the scales
    The super-block is two halves of 128 values; in half h, for l = 0..31, the bytes
      a = ql[64h + l], b = ql[64h + 32 + l], c = qh[32h + l]
    hold four values (each q = low | high << 4, minus 32):
      value 128h + l       low a & 15,  high c & 3
      value 128h + 32 + l  low b & 15,  high (c >> 2) & 3
      value 128h + 64 + l  low a >> 4,  high (c >> 4) & 3
      value 128h + 96 + l  low b >> 4,  high c >> 6
    value = (d * scales[v // 16]) * q, q = -32..31 (each product rounded to float32: gguf-py's order)

`Q4_K_M` downloads store some matrices (often the classifier and half the FFN down projections) this
way. Rows must be whole super-blocks (a multiple of 256 values).

The two kernels share `_quarter_values`, so the matrix-vector product multiplies exactly the weights
that `dequantize` produces; only the order of the float32 sum differs from the dequantized matrix's.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import simd
from .gemm_f32 import TASK_ROWS, tile_rows

BLOCK_SIZE = 256
BLOCK_BYTES = 210


@njit(cache=True, inline="always")
def _scale(row, o, d, index):  # type: ignore[no-untyped-def]
    """d * scales[index] in every lane (F32x16) for the super-block at byte o, given d in every lane."""
    return d * np.float32(np.int8(row[o + 192 + index]))


@njit(cache=True, inline="always")
def _quarter_values(row, o, h, l0):  # type: ignore[no-untyped-def]
    """Positions l = l0 .. l0 + 15 (l0 = 0 or 16) of half h of the super-block at byte o ->
    the four F32x16 of values 128h + l, 128h + 32 + l, 128h + 64 + l, 128h + 96 + l."""
    d = simd.splat_f16(row, o + 208)
    a = simd.load_u8(row, o + 64 * h + l0)
    b = simd.load_u8(row, o + 64 * h + 32 + l0)
    c = simd.load_u8(row, o + 128 + 32 * h + l0)
    s = 8 * h + l0 // 16
    v1 = simd.to_f32(((a & 15) | ((c & 3) << 4)) - 32) * _scale(row, o, d, s)
    v2 = simd.to_f32(((b & 15) | (((c >> 2) & 3) << 4)) - 32) * _scale(row, o, d, s + 2)
    v3 = simd.to_f32(((a >> 4) | (((c >> 4) & 3) << 4)) - 32) * _scale(row, o, d, s + 4)
    v4 = simd.to_f32(((b >> 4) | ((c >> 6) << 4)) - 32) * _scale(row, o, d, s + 6)
    return v1, v2, v3, v4


# ---- dequantize: rows of super-blocks -> float32 rows ----------------------------------------------


@njit(cache=True, inline="always")
def _dequantize_row(src, dst):  # type: ignore[no-untyped-def]
    for b in range(dst.size // BLOCK_SIZE):
        for h in range(2):
            for l0 in range(0, 32, 16):
                v1, v2, v3, v4 = _quarter_values(src, b * BLOCK_BYTES, h, l0)
                start = b * BLOCK_SIZE + 128 * h + l0
                simd.store_f32(dst, start, v1)
                simd.store_f32(dst, start + 32, v2)
                simd.store_f32(dst, start + 64, v3)
                simd.store_f32(dst, start + 96, v4)


@njit(cache=True)
def dequantize_serial(src, dst):  # type: ignore[no-untyped-def]
    """src uint8 [rows, cols // 256 * 210] -> dst float32 [rows, cols]."""
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
    acc_1 = simd.zeros()
    acc_2 = simd.zeros()
    for b in range(x.size // BLOCK_SIZE):
        for h in range(2):
            for l0 in range(0, 32, 16):
                v1, v2, v3, v4 = _quarter_values(w, b * BLOCK_BYTES, h, l0)
                start = b * BLOCK_SIZE + 128 * h + l0
                acc_1 = simd.fma(v1, simd.load_f32(x, start), acc_1)
                acc_2 = simd.fma(v2, simd.load_f32(x, start + 32), acc_2)
                acc_1 = simd.fma(v3, simd.load_f32(x, start + 64), acc_1)
                acc_2 = simd.fma(v4, simd.load_f32(x, start + 96), acc_2)
    return simd.hsum(acc_1 + acc_2)


@njit(cache=True)
def gemv_serial(x, w, out):  # type: ignore[no-untyped-def]
    """x float32 [n, k], w uint8 [m, k // 256 * 210] -> out float32 [n, m]."""
    for j in range(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row(x[i], w[j])


@njit(cache=True, parallel=True)
def gemv_parallel(x, w, out):  # type: ignore[no-untyped-def]
    for j in prange(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row(x[i], w[j])
