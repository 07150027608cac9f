"""The dot products of the decode matrix-vector kernels (matmul.py): one weight row against one row
of x, in vector registers.

Decode reads every weight once per token, so a dot product must consume weights as fast as memory
delivers them: about 15 GB/s per core, 8 billion bf16 weights a second. A plain Python loop that
Numba compiles and LLVM vectorizes does not keep up on bf16 rows: every 16 weights cost a widening
load, a shift and a fused multiply-add, and one row at a time of k=768 is only 24 such steps before
a horizontal sum. Measured (python -m bench.gemv, 2-core AMD EPYC Zen 4, matrices cycled through
256 MB so each is read from memory): the LLVM-vectorized loop streamed bf16 rows at 12-19 GB/s on
one core, these kernels at 21-27 GB/s, and 27-33 on two (the machine reads about 32).

Which dot product a kernel uses is decided when it compiles, from the dtypes (the overloads below):

- bf16 weights, bf16 x, a CPU with AVX512_BF16: the bf16 dot-product instruction (`vdpbf16ps`)
  multiplies 32 pairs and adds them into 16 float32 sums, so nothing is widened at all. Products of
  two bf16 are exact in float32: this is the bf16 mode's math up to the order of the float32
  additions (and bf16 subnormals, below 1e-38, count as zero), as in the prefill kernel
  (gemm_bf16.py);
- bf16 weights and float32 x (or bf16 x on a CPU without that instruction): each 32-bit lane of a
  load holds a pair of weights, widened exactly by a shift (the even one) and a mask (the odd one);
  x is rearranged once per call so that its even and odd elements of each 32 line up with them
  (`prepare_rows`, a copy of x: 3 KB for a 768-wide row);
- float32 weights and x: vector loads and fused multiply-adds.

Each keeps two independent accumulators, so the loop waits on memory rather than on the latency of
one chain of additions, and reads the weight row front to back: reading several rows at once was
measured slower on rows of 768 (10-11 GB/s on one core), apparently because the prefetcher then
sees several interleaved streams in one page. The last k % 32 elements (k % 16 for float32) are
summed one at a time.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import overload

from .bfloat16 import as_f32, bf16_to_f32
from .gemm_bf16 import HAS_AVX512_BF16, target_cpu_features
from .simd_bf16 import dot_bf16_pairs, fma, load_bf16_pairs, load_f32, reduce_sum, vzeros, widen_even, widen_odd

# 16 float32 lanes in an AVX-512 register, 8 in an AVX2 one
LANES = 16 if "avx512f" in target_cpu_features() else 8
_PAIRS = 2 * LANES  # bf16 weights per vector load


def prepare_rows(x, w):  # type: ignore[no-untyped-def]
    """In kernels: the rows of x as `dot_row` reads them against weights like w (see the overloads)."""
    raise NotImplementedError("prepare_rows is only callable inside Numba kernels")


def dot_row(xp, i, w, j):  # type: ignore[no-untyped-def]
    """In kernels: the float32 dot product of row i of x (as prepare_rows left it) and row j of w."""
    raise NotImplementedError("dot_row is only callable inside Numba kernels")


def _is_bf16(array: types.Type) -> bool:
    return isinstance(array.dtype, types.Integer)


# (called once per product: compiled once, not inlined into every kernel)
@njit(cache=True)
def _split_pairs(x):  # type: ignore[no-untyped-def]
    # float32 copy of x (bf16 bits widened) where, in each run of _PAIRS elements, the even ones come
    # first and the odd ones after: lane l of the first half meets the low bf16 of pair l of a weight
    # load, lane l of the second half its high one. The tail past the last full run stays in place.
    n, k = x.shape
    kv = k - k % _PAIRS
    xp = np.empty((n, k), dtype=np.float32)
    for i in range(n):
        for t in range(0, kv, _PAIRS):
            for p in range(LANES):
                xp[i, t + p] = as_f32(x[i, t + 2 * p])
                xp[i, t + LANES + p] = as_f32(x[i, t + 2 * p + 1])
        for t in range(kv, k):
            xp[i, t] = as_f32(x[i, t])
    return xp


@overload(prepare_rows, inline="always")
def _prepare_rows_overload(x, w):  # type: ignore[no-untyped-def]
    if _is_bf16(w) and not (_is_bf16(x) and HAS_AVX512_BF16):
        return lambda x, w: _split_pairs(x)
    return lambda x, w: x  # bf16 x for the bf16 instruction, float32 x for float32 weights


@njit(cache=True)
def _dot_dpbf16(x, i, w, j):  # type: ignore[no-untyped-def]
    k = w.shape[1]
    k2 = k - k % (2 * _PAIRS)
    a0, a1 = vzeros(LANES), vzeros(LANES)
    for t in range(0, k2, 2 * _PAIRS):
        a0 = dot_bf16_pairs(a0, load_bf16_pairs(x, i, t, LANES), load_bf16_pairs(w, j, t, LANES))
        a1 = dot_bf16_pairs(a1, load_bf16_pairs(x, i, t + _PAIRS, LANES), load_bf16_pairs(w, j, t + _PAIRS, LANES))
    tail = k2
    if k - k2 >= _PAIRS:
        a0 = dot_bf16_pairs(a0, load_bf16_pairs(x, i, k2, LANES), load_bf16_pairs(w, j, k2, LANES))
        tail += _PAIRS
    acc = reduce_sum(a0) + reduce_sum(a1)
    for t in range(tail, k):
        acc += bf16_to_f32(x[i, t]) * bf16_to_f32(w[j, t])
    return acc


@njit(cache=True)
def _dot_widen(xp, i, w, j):  # type: ignore[no-untyped-def]
    k = w.shape[1]
    kv = k - k % _PAIRS
    a0, a1 = vzeros(LANES), vzeros(LANES)
    for t in range(0, kv, _PAIRS):
        pairs = load_bf16_pairs(w, j, t, LANES)
        a0 = fma(a0, load_f32(xp, i, t, LANES), widen_even(pairs))
        a1 = fma(a1, load_f32(xp, i, t + LANES, LANES), widen_odd(pairs))
    acc = reduce_sum(a0) + reduce_sum(a1)
    for t in range(kv, k):
        acc += xp[i, t] * bf16_to_f32(w[j, t])
    return acc


@njit(cache=True)
def _dot_f32(x, i, w, j):  # type: ignore[no-untyped-def]
    k = w.shape[1]
    k2 = k - k % (2 * LANES)
    a0, a1 = vzeros(LANES), vzeros(LANES)
    for t in range(0, k2, 2 * LANES):
        a0 = fma(a0, load_f32(x, i, t, LANES), load_f32(w, j, t, LANES))
        a1 = fma(a1, load_f32(x, i, t + LANES, LANES), load_f32(w, j, t + LANES, LANES))
    acc = reduce_sum(a0) + reduce_sum(a1)
    for t in range(k2, k):
        acc += x[i, t] * w[j, t]
    return acc


@overload(dot_row, inline="always")
def _dot_row_overload(xp, i, w, j):  # type: ignore[no-untyped-def]
    if not _is_bf16(w):
        return lambda xp, i, w, j: _dot_f32(xp, i, w, j)
    if _is_bf16(xp):  # prepare_rows left bf16 x as it is only for the bf16 instruction
        return lambda xp, i, w, j: _dot_dpbf16(xp, i, w, j)
    return lambda xp, i, w, j: _dot_widen(xp, i, w, j)


__all__ = ["LANES", "dot_row", "prepare_rows"]
