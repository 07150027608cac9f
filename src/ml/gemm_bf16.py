"""The prefill matrix product with bf16 weights: x [n, k] @ w [m, k]^T for many rows of x.

A prompt of n tokens multiplies every weight matrix by n rows at once. Each weight read from memory
then serves n multiply-adds, so for n above a few rows the arithmetic, not the reading, is the limit
(chapter 18). The kernels here read every weight exactly once per call, straight from the bf16
checkpoint (2 bytes each, usually a memory-mapped file), and keep the work in registers:

- a *tile* is 4 rows of x by 4 rows of w (4 by 2 for AVX2): its 16 (8) dot products advance together
  over a stretch of k, each in a vector of float32 partial sums held in a register, so every vector
  of weights loaded is used against 4 rows of x and every vector of x against 4 rows of w;
- a tile of weight rows stays in the level-1 cache while all the tiles of x go past it, so memory
  sees each weight once; k is cut into blocks of `_K_BLOCK` so the rows of x in use stay in the
  level-2 cache;
- the rows of w are split between the threads.

Two kernels share that plan and differ in the arithmetic:

- `dpbf16` (bf16 activations, a CPU with AVX512_BF16): x is bf16 already, so the CPU's bf16
  dot-product instruction multiplies 32 bf16 pairs and adds them into 16 float32 sums in one step.
  The products of two bf16 are exact in float32, so this is the math of the bf16 compute mode, up to
  the order of the float32 additions (and subnormal bf16 values, below 1e-38, count as zero);
- `fma` (float32 activations, or any CPU): the weights are widened to float32 in the register (a
  shift or a mask: exact) and multiplied with float32 fused multiply-adds, so float32 activations
  are never rounded. Rows of x are split into their even and odd elements first (a small copy of x),
  to line up with the two halves of each pair of bf16 weights.

A third choice, `blas`, is the former path: widen 32 MB of weight rows at a time to float32 in memory
and hand them to numpy's BLAS. It writes and re-reads every weight as float32 on every call; it
stays as a reference for the benchmarks. `LLAMANUTS_PREFILL_KERNEL=dpbf16|fma|blas` forces a choice
(tests use `select_kernel`); by default the best one the CPU and the activations allow is used.
"""

from __future__ import annotations

import os

import numpy as np
from numba import njit, prange

from ..common.errors import LlamaError
from .bfloat16 import bf16_bits_to_float32, bf16_to_f32
from .simd_bf16 import (
    add_quarter_to_row,
    dot_bf16_pairs,
    fma,
    load_bf16_pairs,
    load_f32,
    reduce_sum,
    sum_lanes_4x4,
    vzeros,
    widen_even,
    widen_odd,
)
from .threads import parallel_ok

KERNEL_ENV = "LLAMANUTS_PREFILL_KERNEL"
KERNELS = ("dpbf16", "fma", "blas")

_K_BLOCK = 2048  # elements of k per pass over the tiles of x: 64 rows x 4 KB of x stay in level 2
_TASK_ROWS = 64  # rows of w per parallel task
_PARALLEL_MIN_MACS = 1 << 22  # below ~4M multiply-adds (~20 us) a second thread costs more than it saves
_WIDEN_BLOCK_BYTES = 32 << 20  # the blas kernel: float32 bytes of weight rows widened at a time


# ---- which CPU: the features Numba compiles for -------------------------------------------------


def target_cpu_features() -> frozenset[str]:
    """The CPU features Numba's code generator targets (its own setting or the host's), e.g. 'avx512bf16'.

    A feature counts only if the host has it too, so an override can never select an instruction the
    processor would fault on.
    """
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features

    def enabled(flags: str) -> set[str]:
        return {f[1:] for f in flags.split(",") if f.startswith("+")}

    host = enabled(get_host_cpu_features())
    if config.CPU_FEATURES is None and config.CPU_NAME is None:
        return frozenset(host)
    if config.CPU_FEATURES is not None:
        return frozenset(enabled(config.CPU_FEATURES) & host)
    # a CPU name without features: LLVM's defaults for that CPU are unknown here, so assume the least
    return frozenset({"avx2", "fma"} & host if config.CPU_NAME.lower() not in ("generic", "") else set())


_FEATURES = target_cpu_features()
HAS_AVX512_BF16 = "avx512bf16" in _FEATURES
# Vector width of the fma kernel: 16 float32 in an AVX-512 register, 8 in an AVX2 (or NEON pair).
_FMA_LANES = 16 if "avx512f" in _FEATURES else 8
# Rows of w per fma tile: 4 x 4 accumulators fill 16 of AVX-512's 32 registers; with AVX2's 16, a
# 4 x 4 tile would spill to memory (measured 20% slower), so 4 x 2 there.
_FMA_COLS = 4 if _FMA_LANES == 16 else 2


def select_kernel(x_dtype: np.dtype, requested: str | None = None) -> str:
    """The kernel for activations of `x_dtype` (uint16 = bf16 bits, or float32).

    `requested` (or the environment variable) may force 'dpbf16', 'fma' or 'blas'; 'dpbf16' on float32
    activations or on a CPU without AVX512_BF16 is an error rather than a silent change of math.
    """
    choice = requested if requested is not None else os.environ.get(KERNEL_ENV, "auto")
    if choice not in ("auto", *KERNELS):
        raise LlamaError(f"{KERNEL_ENV}={choice!r}: expected one of auto, {', '.join(KERNELS)}")
    bf16_x = np.dtype(x_dtype) == np.uint16
    if choice == "auto":
        return "dpbf16" if bf16_x and HAS_AVX512_BF16 else "fma"
    if choice == "dpbf16" and not bf16_x:
        raise LlamaError(
            f"{KERNEL_ENV}=dpbf16 needs bf16 activations (the bf16 compute mode); with float32 activations "
            "it would round them to bf16"
        )
    if choice == "dpbf16" and not HAS_AVX512_BF16:
        raise LlamaError(f"{KERNEL_ENV}=dpbf16 needs a CPU with AVX512_BF16, which this one (as Numba targets it) lacks")
    return choice


# ---- the dpbf16 kernel --------------------------------------------------------------------------

_BF16_LANES = 16  # one 512-bit register: 16 float32 sums, fed by 32 bf16 per operand


@njit(cache=True, fastmath=True, inline="always")
def _store_row4(out, i, j, nc, a0, a1, a2, a3):  # type: ignore[no-untyped-def]
    out[i, j] += reduce_sum(a0)
    if nc > 1:
        out[i, j + 1] += reduce_sum(a1)
    if nc > 2:
        out[i, j + 2] += reduce_sum(a2)
    if nc > 3:
        out[i, j + 3] += reduce_sum(a3)


@njit(cache=True, fastmath=True, inline="always")
def _store_tile4x4(out, i, nr, j, nc, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33):  # type: ignore[no-untyped-def]
    """out[i + r, j + c] += the sum of the lanes of a_rc, for r < nr and c < nc (16-lane vectors)."""
    if nr == 4 and nc == 4:  # a whole tile: 16 sums in one vector, added to out 4 at a time
        sums = sum_lanes_4x4(a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33)
        add_quarter_to_row(out, i, j, sums, 0)
        add_quarter_to_row(out, i + 1, j, sums, 1)
        add_quarter_to_row(out, i + 2, j, sums, 2)
        add_quarter_to_row(out, i + 3, j, sums, 3)
        return
    _store_row4(out, i, j, nc, a00, a01, a02, a03)
    if nr > 1:
        _store_row4(out, i + 1, j, nc, a10, a11, a12, a13)
    if nr > 2:
        _store_row4(out, i + 2, j, nc, a20, a21, a22, a23)
    if nr > 3:
        _store_row4(out, i + 3, j, nc, a30, a31, a32, a33)


@njit(cache=True, fastmath=True, inline="always")
def _tile_dpbf16(x, i, nr, w, j, nc, k0, k1, out):  # type: ignore[no-untyped-def]
    """out[i:i+nr, j:j+nc] += x[i:i+nr, k0:k1] @ w[j:j+nc, k0:k1]^T, nr and nc at most 4.

    Rows past nr (nc) repeat the last valid one: the loop stays one shape, the extra sums are dropped.
    """
    L = _BF16_LANES
    x0, x1, x2, x3 = i, i + min(1, nr - 1), i + min(2, nr - 1), i + min(3, nr - 1)
    w0, w1, w2, w3 = j, j + min(1, nc - 1), j + min(2, nc - 1), j + min(3, nc - 1)
    a00 = vzeros(L); a01 = vzeros(L); a02 = vzeros(L); a03 = vzeros(L)  # noqa: E702
    a10 = vzeros(L); a11 = vzeros(L); a12 = vzeros(L); a13 = vzeros(L)  # noqa: E702
    a20 = vzeros(L); a21 = vzeros(L); a22 = vzeros(L); a23 = vzeros(L)  # noqa: E702
    a30 = vzeros(L); a31 = vzeros(L); a32 = vzeros(L); a33 = vzeros(L)  # noqa: E702
    for t in range(k0, k1, 2 * L):
        b0 = load_bf16_pairs(w, w0, t, L)
        b1 = load_bf16_pairs(w, w1, t, L)
        b2 = load_bf16_pairs(w, w2, t, L)
        b3 = load_bf16_pairs(w, w3, t, L)
        p = load_bf16_pairs(x, x0, t, L)
        a00 = dot_bf16_pairs(a00, p, b0); a01 = dot_bf16_pairs(a01, p, b1)  # noqa: E702
        a02 = dot_bf16_pairs(a02, p, b2); a03 = dot_bf16_pairs(a03, p, b3)  # noqa: E702
        p = load_bf16_pairs(x, x1, t, L)
        a10 = dot_bf16_pairs(a10, p, b0); a11 = dot_bf16_pairs(a11, p, b1)  # noqa: E702
        a12 = dot_bf16_pairs(a12, p, b2); a13 = dot_bf16_pairs(a13, p, b3)  # noqa: E702
        p = load_bf16_pairs(x, x2, t, L)
        a20 = dot_bf16_pairs(a20, p, b0); a21 = dot_bf16_pairs(a21, p, b1)  # noqa: E702
        a22 = dot_bf16_pairs(a22, p, b2); a23 = dot_bf16_pairs(a23, p, b3)  # noqa: E702
        p = load_bf16_pairs(x, x3, t, L)
        a30 = dot_bf16_pairs(a30, p, b0); a31 = dot_bf16_pairs(a31, p, b1)  # noqa: E702
        a32 = dot_bf16_pairs(a32, p, b2); a33 = dot_bf16_pairs(a33, p, b3)  # noqa: E702
    _store_tile4x4(out, i, nr, j, nc, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33)


@njit(cache=True, fastmath=True, inline="always")
def _rows_dpbf16(x, w, out, j_start, j_end):  # type: ignore[no-untyped-def]
    """out[:, j_start:j_end] += x @ w[j_start:j_end]^T with bf16 x (uint16 bits)."""
    n, k = x.shape
    kv = k - k % (2 * _BF16_LANES)  # the vector part; the rest of k is summed one element at a time
    for j in range(j_start, j_end, 4):
        nc = min(4, j_end - j)
        for k0 in range(0, kv, _K_BLOCK):
            k1 = min(kv, k0 + _K_BLOCK)
            for i in range(0, n, 4):
                _tile_dpbf16(x, i, min(4, n - i), w, j, nc, k0, k1, out)
        for jj in range(j, j + nc):
            for i in range(n):
                acc = np.float32(0.0)
                for t in range(kv, k):
                    acc += bf16_to_f32(x[i, t]) * bf16_to_f32(w[jj, t])
                out[i, jj] += acc


@njit(cache=True, fastmath=True)
def _gemm_dpbf16(x, w, out):  # type: ignore[no-untyped-def]
    _rows_dpbf16(x, w, out, 0, w.shape[0])


@njit(cache=True, fastmath=True, parallel=True)
def _gemm_dpbf16_parallel(x, w, out):  # type: ignore[no-untyped-def]
    m = w.shape[0]
    for task in prange((m + _TASK_ROWS - 1) // _TASK_ROWS):
        _rows_dpbf16(x, w, out, task * _TASK_ROWS, min(m, (task + 1) * _TASK_ROWS))


# ---- the fma kernel -----------------------------------------------------------------------------


@njit(cache=True, fastmath=True, inline="always")
def _store_row2(out, i, j, nc, a0, a1):  # type: ignore[no-untyped-def]
    out[i, j] += reduce_sum(a0)
    if nc > 1:
        out[i, j + 1] += reduce_sum(a1)


@njit(cache=True, fastmath=True, inline="always")
def _store_tile4x2(out, i, nr, j, nc, a00, a01, a10, a11, a20, a21, a30, a31):  # type: ignore[no-untyped-def]
    """out[i + r, j + c] += the sum of the lanes of a_rc, for r < nr and c < nc (a 4 x 2 tile)."""
    _store_row2(out, i, j, nc, a00, a01)
    if nr > 1:
        _store_row2(out, i + 1, j, nc, a10, a11)
    if nr > 2:
        _store_row2(out, i + 2, j, nc, a20, a21)
    if nr > 3:
        _store_row2(out, i + 3, j, nc, a30, a31)


@njit(cache=True, fastmath=True, inline="always")
def _tile_fma_4x4(xe, xo, i, nr, w, j, nc, k0, k1, out):  # type: ignore[no-untyped-def]
    """out[i:i+nr, j:j+nc] += x[i:i+nr, k0:k1] @ w[j:j+nc, k0:k1]^T, nr and nc at most 4 (16 lanes).

    xe, xo: the even and odd elements of the rows of x (float32), so pair p of a weight row lines up
    with xe[:, p] (its low bf16) and xo[:, p] (its high bf16).
    """
    L = _FMA_LANES
    x0, x1, x2, x3 = i, i + min(1, nr - 1), i + min(2, nr - 1), i + min(3, nr - 1)
    w0, w1, w2, w3 = j, j + min(1, nc - 1), j + min(2, nc - 1), j + min(3, nc - 1)
    a00 = vzeros(L); a01 = vzeros(L); a02 = vzeros(L); a03 = vzeros(L)  # noqa: E702
    a10 = vzeros(L); a11 = vzeros(L); a12 = vzeros(L); a13 = vzeros(L)  # noqa: E702
    a20 = vzeros(L); a21 = vzeros(L); a22 = vzeros(L); a23 = vzeros(L)  # noqa: E702
    a30 = vzeros(L); a31 = vzeros(L); a32 = vzeros(L); a33 = vzeros(L)  # noqa: E702
    for t in range(k0, k1, 2 * L):
        p = load_bf16_pairs(w, w0, t, L)
        e0 = widen_even(p); o0 = widen_odd(p)  # noqa: E702
        p = load_bf16_pairs(w, w1, t, L)
        e1 = widen_even(p); o1 = widen_odd(p)  # noqa: E702
        p = load_bf16_pairs(w, w2, t, L)
        e2 = widen_even(p); o2 = widen_odd(p)  # noqa: E702
        p = load_bf16_pairs(w, w3, t, L)
        e3 = widen_even(p); o3 = widen_odd(p)  # noqa: E702
        h = t // 2
        xe_, xo_ = load_f32(xe, x0, h, L), load_f32(xo, x0, h, L)
        a00 = fma(fma(a00, xe_, e0), xo_, o0); a01 = fma(fma(a01, xe_, e1), xo_, o1)  # noqa: E702
        a02 = fma(fma(a02, xe_, e2), xo_, o2); a03 = fma(fma(a03, xe_, e3), xo_, o3)  # noqa: E702
        xe_, xo_ = load_f32(xe, x1, h, L), load_f32(xo, x1, h, L)
        a10 = fma(fma(a10, xe_, e0), xo_, o0); a11 = fma(fma(a11, xe_, e1), xo_, o1)  # noqa: E702
        a12 = fma(fma(a12, xe_, e2), xo_, o2); a13 = fma(fma(a13, xe_, e3), xo_, o3)  # noqa: E702
        xe_, xo_ = load_f32(xe, x2, h, L), load_f32(xo, x2, h, L)
        a20 = fma(fma(a20, xe_, e0), xo_, o0); a21 = fma(fma(a21, xe_, e1), xo_, o1)  # noqa: E702
        a22 = fma(fma(a22, xe_, e2), xo_, o2); a23 = fma(fma(a23, xe_, e3), xo_, o3)  # noqa: E702
        xe_, xo_ = load_f32(xe, x3, h, L), load_f32(xo, x3, h, L)
        a30 = fma(fma(a30, xe_, e0), xo_, o0); a31 = fma(fma(a31, xe_, e1), xo_, o1)  # noqa: E702
        a32 = fma(fma(a32, xe_, e2), xo_, o2); a33 = fma(fma(a33, xe_, e3), xo_, o3)  # noqa: E702
    _store_tile4x4(out, i, nr, j, nc, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33)


@njit(cache=True, fastmath=True, inline="always")
def _tile_fma_4x2(xe, xo, i, nr, w, j, nc, k0, k1, out):  # type: ignore[no-untyped-def]
    """As _tile_fma_4x4 with 2 rows of w: 8 accumulators, for CPUs with 16 vector registers (AVX2)."""
    L = _FMA_LANES
    x0, x1, x2, x3 = i, i + min(1, nr - 1), i + min(2, nr - 1), i + min(3, nr - 1)
    w1 = j + min(1, nc - 1)
    a00 = vzeros(L); a01 = vzeros(L); a10 = vzeros(L); a11 = vzeros(L)  # noqa: E702
    a20 = vzeros(L); a21 = vzeros(L); a30 = vzeros(L); a31 = vzeros(L)  # noqa: E702
    for t in range(k0, k1, 2 * L):
        pair0 = load_bf16_pairs(w, j, t, L)
        pair1 = load_bf16_pairs(w, w1, t, L)
        e0 = widen_even(pair0); o0 = widen_odd(pair0)  # noqa: E702
        e1 = widen_even(pair1); o1 = widen_odd(pair1)  # noqa: E702
        h = t // 2
        xe_, xo_ = load_f32(xe, x0, h, L), load_f32(xo, x0, h, L)
        a00 = fma(fma(a00, xe_, e0), xo_, o0); a01 = fma(fma(a01, xe_, e1), xo_, o1)  # noqa: E702
        xe_, xo_ = load_f32(xe, x1, h, L), load_f32(xo, x1, h, L)
        a10 = fma(fma(a10, xe_, e0), xo_, o0); a11 = fma(fma(a11, xe_, e1), xo_, o1)  # noqa: E702
        xe_, xo_ = load_f32(xe, x2, h, L), load_f32(xo, x2, h, L)
        a20 = fma(fma(a20, xe_, e0), xo_, o0); a21 = fma(fma(a21, xe_, e1), xo_, o1)  # noqa: E702
        xe_, xo_ = load_f32(xe, x3, h, L), load_f32(xo, x3, h, L)
        a30 = fma(fma(a30, xe_, e0), xo_, o0); a31 = fma(fma(a31, xe_, e1), xo_, o1)  # noqa: E702
    _store_tile4x2(out, i, nr, j, nc, a00, a01, a10, a11, a20, a21, a30, a31)


@njit(cache=True, fastmath=True, inline="always")
def _rows_fma(x, xe, xo, w, out, j_start, j_end):  # type: ignore[no-untyped-def]
    """out[:, j_start:j_end] += x @ w[j_start:j_end]^T with float32 x (xe, xo: its split vector part)."""
    n, k = x.shape
    kv = 2 * xe.shape[1]
    for j in range(j_start, j_end, _FMA_COLS):
        nc = min(_FMA_COLS, j_end - j)
        for k0 in range(0, kv, _K_BLOCK):
            k1 = min(kv, k0 + _K_BLOCK)
            for i in range(0, n, 4):
                if _FMA_COLS == 4:  # a constant: Numba compiles only one of the two
                    _tile_fma_4x4(xe, xo, i, min(4, n - i), w, j, nc, k0, k1, out)
                else:
                    _tile_fma_4x2(xe, xo, i, min(4, n - i), w, j, nc, k0, k1, out)
        for jj in range(j, j + nc):
            for i in range(n):
                acc = np.float32(0.0)
                for t in range(kv, k):
                    acc += x[i, t] * bf16_to_f32(w[jj, t])
                out[i, jj] += acc


@njit(cache=True, fastmath=True)
def _gemm_fma(x, xe, xo, w, out):  # type: ignore[no-untyped-def]
    _rows_fma(x, xe, xo, w, out, 0, w.shape[0])


@njit(cache=True, fastmath=True, parallel=True)
def _gemm_fma_parallel(x, xe, xo, w, out):  # type: ignore[no-untyped-def]
    m = w.shape[0]
    for task in prange((m + _TASK_ROWS - 1) // _TASK_ROWS):
        _rows_fma(x, xe, xo, w, out, task * _TASK_ROWS, min(m, (task + 1) * _TASK_ROWS))


# ---- the blas reference -------------------------------------------------------------------------


def _linear_widen_blas(x2: np.ndarray, w: np.ndarray) -> np.ndarray:
    # Blocks of weight rows produce blocks of output *columns*; computing the transposed product
    # (w_block @ x^T) writes each block as contiguous rows, which BLAS needs.
    n = x2.shape[0]
    m, k = w.shape
    block = max(1, _WIDEN_BLOCK_BYTES // (4 * max(k, 1)))
    out_t = np.empty((m, n), dtype=np.float32)
    x2_t = x2.T
    for r0 in range(0, m, block):
        r1 = min(m, r0 + block)
        np.matmul(bf16_bits_to_float32(w[r0:r1]), x2_t, out=out_t[r0:r1])
    return np.ascontiguousarray(out_t.T)


# ---- entry point --------------------------------------------------------------------------------


def linear_bf16_weights_many_rows(x2: np.ndarray, w: np.ndarray, kernel: str | None = None) -> np.ndarray:
    """x2 [n, k] (float32, or bf16 bits as uint16) @ w [m, k] (bf16 bits)^T -> [n, m] float32.

    Both C-contiguous; the caller (LinearTransformation) has checked the shapes. `kernel` forces one
    of KERNELS (see select_kernel); the default picks the best for this CPU and x2's dtype.
    """
    choice = select_kernel(x2.dtype, kernel)
    # the vector loads read consecutive elements of a row (no copy when already so, as Tensors are)
    x2, w = np.ascontiguousarray(x2), np.ascontiguousarray(w)
    n, k = x2.shape
    m = w.shape[0]
    parallel = n * m * k >= _PARALLEL_MIN_MACS and parallel_ok()
    if choice == "blas":
        return _linear_widen_blas(x2 if x2.dtype == np.float32 else bf16_bits_to_float32(x2), w)
    out = np.zeros((n, m), dtype=np.float32)
    if n == 0 or m == 0:
        return out
    if choice == "dpbf16":
        (_gemm_dpbf16_parallel if parallel else _gemm_dpbf16)(x2, w, out)
        return out
    x = x2 if x2.dtype == np.float32 else bf16_bits_to_float32(x2)
    kv = k - k % (2 * _FMA_LANES)
    xe = np.ascontiguousarray(x[:, 0:kv:2])
    xo = np.ascontiguousarray(x[:, 1:kv:2])
    (_gemm_fma_parallel if parallel else _gemm_fma)(x, xe, xo, w, out)
    return out


__all__ = [
    "HAS_AVX512_BF16",
    "KERNELS",
    "KERNEL_ENV",
    "linear_bf16_weights_many_rows",
    "select_kernel",
    "target_cpu_features",
]
