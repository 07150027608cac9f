"""Reductions along one dimension: Mean, Softmax, Argmax.

The op moves the reduced dimension last (a copy only when it is not already last), views the tensor
as rows, and the kernel reduces each row in float32. bf16 inputs are widened inside the kernel and the
result is rounded once at the end, as PyTorch does.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .bfloat16 import as_f32, f32_to_bf16
from .checks import normalize_dim, require_dtype, require_tensor
from .dtype import DT_BF16, DT_F32, DT_INT64
from .tensor import Tensor
from .threads import parallel_ok

_PARALLEL_MIN = 1 << 15


def _as_rows(t: Tensor, dim: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """(rows array [R, n] contiguous, shape of the leading dims with the reduced dim last)."""
    data = t.data if dim == t.ndim - 1 else np.ascontiguousarray(np.moveaxis(t.data, dim, -1))
    # the row count is spelled out: reshape(-1, 0) is ambiguous for numpy when the reduced dim is empty
    return data.reshape(math.prod(data.shape[:-1]), data.shape[-1]), data.shape


# ---- kernels --------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _load(x, i, j):  # type: ignore[no-untyped-def]
    # uint16 rows are bf16 bits: as_f32 picks the widening at compile time, per dtype
    return as_f32(x[i, j])


@njit(cache=True)
def _mean_rows(x, out):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    for i in range(rows):
        acc = np.float32(0.0)
        for j in range(n):
            acc += _load(x, i, j)
        out[i] = acc / np.float32(n)


@njit(cache=True)
def _softmax_row(x, i, out):  # type: ignore[no-untyped-def]
    n = x.shape[1]
    m = np.float32(-np.inf)
    for j in range(n):
        v = _load(x, i, j)
        if v > m:
            m = v
    total = np.float32(0.0)
    for j in range(n):
        e = np.exp(_load(x, i, j) - m)
        out[i, j] = e
        total += e
    for j in range(n):
        out[i, j] = out[i, j] / total


@njit(cache=True)
def _softmax_rows(x, out):  # type: ignore[no-untyped-def]
    for i in range(x.shape[0]):
        _softmax_row(x, i, out)


@njit(cache=True, parallel=True)
def _softmax_rows_parallel(x, out):  # type: ignore[no-untyped-def]
    for i in prange(x.shape[0]):
        _softmax_row(x, i, out)


@njit(cache=True)
def _round_rows_to_bf16(src, dst):  # type: ignore[no-untyped-def]
    flat_src = src.reshape(-1)
    flat_dst = dst.reshape(-1)
    for i in range(flat_src.size):
        flat_dst[i] = f32_to_bf16(flat_src[i])


@njit(cache=True)
def _argmax_rows(x, out):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    for i in range(rows):
        best = 0
        best_v = _load(x, i, 0)
        for j in range(1, n):
            v = _load(x, i, j)
            if v > best_v or (np.isnan(v) and not np.isnan(best_v)):
                best_v = v
                best = j
        out[i] = best


# ---- ops ------------------------------------------------------------------------------------------


def _finish(values: np.ndarray, dtype):  # type: ignore[no-untyped-def]
    if dtype is DT_BF16:
        bits = np.empty(values.shape, dtype=np.uint16)
        _round_rows_to_bf16(values, bits)
        return Tensor.wrap(bits, DT_BF16)
    return Tensor.wrap(values, DT_F32)


def Mean(t: Tensor, dim: int = -1, keepdim: bool = False) -> Tensor:
    """Mean along `dim`, accumulated in float32 (RMSNorm's mean of squares uses dim -1, keepdim)."""
    require_tensor("Mean", "input", t)
    require_dtype("Mean", t, (DT_F32, DT_BF16))
    d = normalize_dim("Mean", dim, t.ndim)
    rows, moved = _as_rows(t, d)
    out = np.empty(rows.shape[0], dtype=np.float32)
    if rows.shape[1] == 0:
        out[:] = np.nan  # the mean of nothing, as numpy and PyTorch say
    else:
        _mean_rows(rows, out)
    shape = list(moved[:-1])
    if keepdim:
        shape.insert(d, 1)
    return _finish(out.reshape(shape), t.dtype)


def Softmax(t: Tensor, dim: int = -1) -> Tensor:
    """exp(x - max) / sum along `dim`, always computed in float32; the result has the input's dtype."""
    require_tensor("Softmax", "input", t)
    require_dtype("Softmax", t, (DT_F32, DT_BF16))
    d = normalize_dim("Softmax", dim, t.ndim)
    rows, moved = _as_rows(t, d)
    out = np.empty(rows.shape, dtype=np.float32)
    if rows.size:
        (_softmax_rows_parallel if rows.size >= _PARALLEL_MIN and parallel_ok() else _softmax_rows)(rows, out)
    out = out.reshape(moved)
    if d != t.ndim - 1:
        out = np.ascontiguousarray(np.moveaxis(out, -1, d))
    return _finish(out, t.dtype)


def Argmax(t: Tensor, dim: int = -1) -> Tensor:
    """Index of the largest value along `dim` (the first one on ties), as INT64; greedy sampling."""
    require_tensor("Argmax", "input", t)
    require_dtype("Argmax", t, (DT_F32, DT_BF16))
    d = normalize_dim("Argmax", dim, t.ndim)
    rows, moved = _as_rows(t, d)
    if rows.shape[1] == 0:
        from ..common.errors import ShapeError

        raise ShapeError(f"Argmax: dimension {dim} is empty")
    out = np.empty(rows.shape[0], dtype=np.int64)
    _argmax_rows(rows, out)
    return Tensor.wrap(out.reshape(moved[:-1]), DT_INT64)
