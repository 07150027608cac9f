"""float16 (IEEE binary16: 1 sign, 5 exponent, 10 fraction bits): F16 matrices and the scales of
every GGML block type.

float16 -> float32 is exact. In kernels the 16 bits are reinterpreted as an LLVM `half` (a bitcast,
no instruction) and widened with `fpext`, which LLVM compiles to the CPU's conversion instruction
(F16C's vcvtph2ps on x86): 16 values at a time in the vector loops (simd.load_f16), the scale of a
block straight into all 16 lanes (simd.splat_f16). The values are numpy's `astype` values, except that
a signalling NaN comes back quieted, as the instruction does.

An F16 matrix is treated like a bf16 one: the matrix-vector kernel reads each weight once as 16 bits
and widens it in a register; the many-rows (prefill) path widens a block of rows to float32 and hands
it to numpy's BLAS (see quantized.py).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from . import simd
from .gemm_f32 import TASK_ROWS, tile_rows


@intrinsic
def f16_to_f32(typingctx, bits):  # type: ignore[no-untyped-def]
    """Numba intrinsic: uint16 float16 bits -> float32 (bitcast to half, fpext to float). Exact."""
    if not isinstance(bits, types.Integer) or bits.bitwidth != 16:
        return None
    sig = types.float32(bits)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        half = builder.bitcast(args[0], ir.HalfType())
        return builder.fpext(half, ir.FloatType())

    return sig, codegen


# ---- dequantize: float16 rows -> float32 rows -------------------------------------------------------


@njit(cache=True, inline="always")
def _dequantize_row(src, dst):  # type: ignore[no-untyped-def]
    vectors_end = dst.size - dst.size % simd.LANES
    for t in range(0, vectors_end, simd.LANES):
        simd.store_f32(dst, t, simd.load_f16(src, t))
    for t in range(vectors_end, dst.size):
        dst[t] = f16_to_f32(src[t])


@njit(cache=True)
def dequantize_serial(src, dst):  # type: ignore[no-untyped-def]
    """src uint16 float16 bits [rows, cols] -> dst float32 [rows, cols]."""
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


# ---- GEMV: x [n, k] float32 times w [m, k] float16 -> out [n, m] ------------------------------------


@njit(cache=True, inline="always")
def _dot_row(x, w):  # type: ignore[no-untyped-def]
    k = x.size
    vectors_end = k - k % 32
    acc_a = simd.zeros()
    acc_b = simd.zeros()
    for t in range(0, vectors_end, 32):
        acc_a = simd.fma(simd.load_f16(w, t), simd.load_f32(x, t), acc_a)
        acc_b = simd.fma(simd.load_f16(w, t + 16), simd.load_f32(x, t + 16), acc_b)
    total = simd.hsum(acc_a + acc_b)
    for t in range(vectors_end, k):  # the last k % 32 weights one by one
        total += x[t] * f16_to_f32(w[t])
    return total


@njit(cache=True)
def gemv_serial(x, w, out):  # type: ignore[no-untyped-def]
    """x float32 [n, k], w uint16 float16 bits [m, k] -> out float32 [n, m]."""
    for j in range(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row(x[i], w[j])


@njit(cache=True, parallel=True)
def gemv_parallel(x, w, out):  # type: ignore[no-untyped-def]
    for j in prange(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row(x[i], w[j])


__all__ = ["f16_to_f32"]
