"""The register-tiled float32 matrix product that the quantized prefill kernels share.

A block-quantized weight is multiplied by many rows of x (a prompt) a few rows at a time: each
dtype's `gemm_parallel` (q8_0.py, q4_1.py, ...) hands every thread a task of `TASK_ROWS` weight
rows, dequantizes them into a small float32 tile that stays in the level-1/level-2 cache, and calls
`tile_rows` here to multiply all the rows of x by it. Each weight is read from memory once per call
and widened once per call, and the float32 tile is used against every row of x while it is hot; the
former path (dequantize 8 MB of rows, hand them to numpy's BLAS) wrote and re-read every weight as
float32, and BLAS's own threads fought the kernels' threads on a busy machine.

The tile is the plan of the bf16 kernels (gemm_bf16.py): 4 rows of x by 4 rows of w (4 by 2 with
AVX2's 16 registers), 16 float32 partial sums in registers, each vector of weights loaded used
against 4 rows of x and each vector of x against 4 rows of w. The weights are the dequantized
float32 values and x is float32, so the result is the dequantized model's product up to the order of
the float32 sums, as for every quantized product.

Numba caches each dtype's `gemm_parallel` beside its own file and does not notice when this file
changes: after editing it, delete src/ml/__pycache__/q*.nbi, f16.*.nbi and their *.nbc.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .gemm_bf16 import _FMA_COLS, _FMA_LANES, _K_BLOCK, _store_tile4x2, _store_tile4x4
from .simd_bf16 import fma, load_f32, vzeros

TASK_ROWS = 16  # weight rows per parallel task: 16 x k float32 (36-96 KB for k = 576-1536) stay in L2


@njit(cache=True, fastmath=True, inline="always")
def _tile_4x4(x, i, nr, w, j, nc, k0, k1, out, col):  # type: ignore[no-untyped-def]
    """out[i:i+nr, col+j : col+j+nc] += x[i:i+nr, k0:k1] @ w[j:j+nc, k0:k1]^T (nr, nc at most 4).

    Rows past nr (nc) repeat the last valid one, so the loop keeps one shape; their sums are dropped.
    """
    L = _FMA_LANES
    x0, x1, x2, x3 = i, i + min(1, nr - 1), i + min(2, nr - 1), i + min(3, nr - 1)
    w0, w1, w2, w3 = j, j + min(1, nc - 1), j + min(2, nc - 1), j + min(3, nc - 1)
    a00 = vzeros(L); a01 = vzeros(L); a02 = vzeros(L); a03 = vzeros(L)  # noqa: E702
    a10 = vzeros(L); a11 = vzeros(L); a12 = vzeros(L); a13 = vzeros(L)  # noqa: E702
    a20 = vzeros(L); a21 = vzeros(L); a22 = vzeros(L); a23 = vzeros(L)  # noqa: E702
    a30 = vzeros(L); a31 = vzeros(L); a32 = vzeros(L); a33 = vzeros(L)  # noqa: E702
    for t in range(k0, k1, L):
        b0 = load_f32(w, w0, t, L); b1 = load_f32(w, w1, t, L)  # noqa: E702
        b2 = load_f32(w, w2, t, L); b3 = load_f32(w, w3, t, L)  # noqa: E702
        p = load_f32(x, x0, t, L)
        a00 = fma(a00, p, b0); a01 = fma(a01, p, b1); a02 = fma(a02, p, b2); a03 = fma(a03, p, b3)  # noqa: E702
        p = load_f32(x, x1, t, L)
        a10 = fma(a10, p, b0); a11 = fma(a11, p, b1); a12 = fma(a12, p, b2); a13 = fma(a13, p, b3)  # noqa: E702
        p = load_f32(x, x2, t, L)
        a20 = fma(a20, p, b0); a21 = fma(a21, p, b1); a22 = fma(a22, p, b2); a23 = fma(a23, p, b3)  # noqa: E702
        p = load_f32(x, x3, t, L)
        a30 = fma(a30, p, b0); a31 = fma(a31, p, b1); a32 = fma(a32, p, b2); a33 = fma(a33, p, b3)  # noqa: E702
    _store_tile4x4(out, i, nr, col + j, nc, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33)


@njit(cache=True, fastmath=True, inline="always")
def _tile_4x2(x, i, nr, w, j, nc, k0, k1, out, col):  # type: ignore[no-untyped-def]
    """As _tile_4x4 with 2 rows of w: 8 accumulators, for CPUs with 16 vector registers (AVX2)."""
    L = _FMA_LANES
    x0, x1, x2, x3 = i, i + min(1, nr - 1), i + min(2, nr - 1), i + min(3, nr - 1)
    w1 = j + min(1, nc - 1)
    a00 = vzeros(L); a01 = vzeros(L); a10 = vzeros(L); a11 = vzeros(L)  # noqa: E702
    a20 = vzeros(L); a21 = vzeros(L); a30 = vzeros(L); a31 = vzeros(L)  # noqa: E702
    for t in range(k0, k1, L):
        b0 = load_f32(w, j, t, L); b1 = load_f32(w, w1, t, L)  # noqa: E702
        p = load_f32(x, x0, t, L)
        a00 = fma(a00, p, b0); a01 = fma(a01, p, b1)  # noqa: E702
        p = load_f32(x, x1, t, L)
        a10 = fma(a10, p, b0); a11 = fma(a11, p, b1)  # noqa: E702
        p = load_f32(x, x2, t, L)
        a20 = fma(a20, p, b0); a21 = fma(a21, p, b1)  # noqa: E702
        p = load_f32(x, x3, t, L)
        a30 = fma(a30, p, b0); a31 = fma(a31, p, b1)  # noqa: E702
    _store_tile4x2(out, i, nr, col + j, nc, a00, a01, a10, a11, a20, a21, a30, a31)


# Not inlined: the dtype kernels that call it compile without fastmath (their dequantization must
# round exactly as gguf-py's), and a separately compiled function keeps its own fastmath flags.
@njit(cache=True, fastmath=True)
def tile_rows(x, w, out, col):  # type: ignore[no-untyped-def]
    """out[:, col : col + len(w)] += x @ w^T: x float32 [n, k], w a float32 tile [rows, k]; out is zeroed."""
    n, k = x.shape
    kv = k - k % _FMA_LANES  # the vector part; the rest of k (never, for whole quantized blocks) is scalar
    for j in range(0, w.shape[0], _FMA_COLS):
        nc = min(_FMA_COLS, w.shape[0] - j)
        for k0 in range(0, kv, _K_BLOCK):
            k1 = min(kv, k0 + _K_BLOCK)
            for i in range(0, n, 4):
                if _FMA_COLS == 4:  # a constant: Numba compiles only one of the two
                    _tile_4x4(x, i, min(4, n - i), w, j, nc, k0, k1, out, col)
                else:
                    _tile_4x2(x, i, min(4, n - i), w, j, nc, k0, k1, out, col)
        for jj in range(j, j + nc):
            for i in range(n):
                acc = np.float32(0.0)
                for t in range(kv, k):
                    acc += x[i, t] * w[jj, t]
                out[i, col + jj] += acc


__all__ = ["TASK_ROWS", "tile_rows"]
