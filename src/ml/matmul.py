"""MatMul (batched, for attention) and LinearTransformation (x @ W^T, every weight of the model).

LinearTransformation is where the time goes, so its kernels are chosen by shape behind one interface:
- few rows of x (decode: one token) and bf16 or float32 weights: one matrix-vector kernel call that
  reads each weight once (bf16 as uint16: multiplied by the CPU's bf16 dot-product instruction, or
  widened in a register by a shift; or float32; gemv_dot.py), accumulates in float32 and writes the
  result in x's dtype; it is memory-bound, so reading 2 bytes per weight instead of 4 is the whole
  game, and the threads join only for a big matrix (a launch costs microseconds; src/ml/threads.py
  decides how many threads). LinearTransformations streams several matrices that read the same x
  in one call;
- many rows (prefill) and bf16 weights: a register-tiled matrix kernel (gemm_bf16.py) that also reads
  each weight once, and uses the CPU's bf16 dot-product instruction where it can; it is compute-bound;
- many rows and float32 weights (llama2.c files): numpy's BLAS directly;
- float16 and block-quantized weights (GGUF files): a matrix-vector kernel of their own for few rows,
  and for many rows cache-sized tiles of dequantized rows multiplied in registers (quantized.py and
  gemm_f32.py, with one file per block type).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numba import njit, prange

from ..common.errors import DTypeError, ShapeError
from .bfloat16 import as_storage, bf16_bits_to_float32, float32_to_bf16_bits
from .checks import broadcast_shape, require_dtype, require_same_dtype, require_tensor
from .dtype import DT_BF16, DT_F32
from .gemm_bf16 import linear_bf16_weights_many_rows
from .gemv_dot import dot_row, prepare_rows
from .quantized import BLOCK_DTYPES, linear as _linear_block_weights, linear_many as _linear_many_block_weights
from .rowstack import locate_row, stacked_rows
from .tensor import Tensor, format_dims
from .threads import parallel_ok

_WEIGHT_DTYPES = (DT_F32, DT_BF16, *BLOCK_DTYPES)
GEMV_MAX_ROWS = 4  # up to this many rows of x use the matrix-vector kernel; more go to the prefill kernels
# ...and with bf16 weights, 2 to 4 rows only while they fit in this many float32 bytes: the GEMV meets
# every weight row with every row of x, which must then stay in the L1 cache beside the weight rows.
# Measured (python -m bench.gemv --rows, quiet hour): 2 rows of k=2048 (16 KB) 0.6 ms GEMV against
# 1.0 ms for the tiled prefill kernel; 2 rows of k=4096 (32 KB) 3.3 against 1.8; 4 rows of k=768
# (12 KB) 0.24 against 0.35; 4 rows of k=2048 (32 KB) 1.1 against 0.5. One row is always the GEMV's.
_GEMV_X_BYTES = 16 << 10
# Weight bytes from which the matrix-vector kernel splits its rows over the threads: below, starting
# the second thread costs more than the reading it saves. With OpenMP's workers spinning between
# launches (src/common/threadpolicy.py) that is about 1.5 us; measured (python -m bench.gemv, and the
# 15M shape's decode: 398-520 tok/s from 512 KB, 452-535 from 128 KB), 128 KB.
_PARALLEL_MIN_BYTES = 1 << 17
# Reassociation lets LLVM keep several vector accumulators per dot product (the loop is then bound by
# memory, not by the latency of one add chain); no flag that assumes away NaNs or infinities.
_FAST = {"reassoc", "contract"}

# ---- kernels --------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_FAST)
def _gemv(x, w, out):  # type: ignore[no-untyped-def]
    # out [n, m] = x [n, k] . w [m, k]^T for a few rows of x: every weight row is read once, from
    # memory, and meets the n rows of x, which stay in the L1 cache (gemv_dot.py: the dot products)
    xp = prepare_rows(x, w)
    for j in range(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = as_storage(out, dot_row(xp, i, w, j))


@njit(cache=True, fastmath=_FAST, parallel=True)
def _gemv_parallel(x, w, out):  # type: ignore[no-untyped-def]
    # the same, with the weight rows split into one contiguous block per thread (prange's static
    # schedule), so each thread streams its own part of the matrix
    xp = prepare_rows(x, w)
    for j in prange(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = as_storage(out, dot_row(xp, i, w, j))


@njit(cache=True, fastmath=_FAST)
def _gemv_many(x, ws, outs):  # type: ignore[no-untyped-def]
    # several matrices that read the same x (wq, wk, wv; w1, w3): outs[k] = x . ws[k]^T
    xp = prepare_rows(x, ws[0])
    for k in range(len(ws)):
        w, out = ws[k], outs[k]
        for j in range(w.shape[0]):
            for i in range(x.shape[0]):
                out[i, j] = as_storage(out, dot_row(xp, i, w, j))


@njit(cache=True, fastmath=_FAST, parallel=True)
def _gemv_many_parallel(x, ws, outs):  # type: ignore[no-untyped-def]
    # the same in one parallel launch: the rows of all the matrices, stacked, split over the threads
    xp = prepare_rows(x, ws[0])
    for r in prange(stacked_rows(ws)):
        k, j = locate_row(ws, r)
        w, out = ws[k], outs[k]
        for i in range(x.shape[0]):
            out[i, j] = as_storage(out, dot_row(xp, i, w, j))


def gemv(x2: np.ndarray, w: np.ndarray, out_dtype: np.dtype) -> np.ndarray:
    """x2 [n, k] (float32, or bf16 bits) . w [m, k]^T (float32, or bf16 bits) -> [n, m] of out_dtype
    (float32, or bf16 bits rounded once), accumulated in float32; for n <= GEMV_MAX_ROWS."""
    x2, w = _unit_stride_rows(x2), _unit_stride_rows(w)
    out = np.empty((x2.shape[0], w.shape[0]), out_dtype)
    if w.nbytes >= _PARALLEL_MIN_BYTES and parallel_ok():
        _gemv_parallel(x2, w, out)
    else:
        _gemv(x2, w, out)
    return out


def _unit_stride_rows(a: np.ndarray) -> np.ndarray:
    """a, or a copy whose rows are contiguous: the vector loads read consecutive elements of a row
    (the weights and activations are so already; a strided view would be copied)."""
    return a if a.strides[-1] == a.itemsize or a.shape[-1] <= 1 else np.ascontiguousarray(a)


def _gemv_takes(rows: int, k: int, wd: object) -> bool:
    """Whether `rows` rows of x (of k values) against bf16 or float32 weights go to the GEMV."""
    return rows == 1 or rows <= GEMV_MAX_ROWS and (wd is not DT_BF16 or rows * k * 4 <= _GEMV_X_BYTES)


# ---- ops ------------------------------------------------------------------------------------------


def LinearTransformation(x: Tensor, w: Tensor) -> Tensor:
    """x [..., in] @ w^T where w is [out, in] (the layout of every weight in the checkpoint).

    Dtypes: F32 x F32 -> F32; BF16 x BF16 -> BF16 (accumulated in float32, rounded once);
    F32 x BF16 -> F32 (documented promotion for the f32 compute mode: the bf16 weights are widened
    inside the kernel, never copied). F16 and block-quantized weights (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)
    take either x: F32 -> F32, BF16 -> BF16 (accumulated in float32, rounded once); their kernels
    read the stored blocks and never round a weight.
    """
    if type(x) is not Tensor or type(w) is not Tensor:  # subclasses too, by the slower checks
        require_tensor("LinearTransformation", "x", x)
        require_tensor("LinearTransformation", "weights", w)
    xd, wd = x.dtype, w.dtype
    plain = wd is DT_F32 or wd is DT_BF16  # the weights this file's kernels read (others: quantized.py)
    if not (xd is DT_F32 or xd is DT_BF16) or not (plain or wd in BLOCK_DTYPES):
        require_dtype("LinearTransformation", x, (DT_F32, DT_BF16), "x")
        require_dtype("LinearTransformation", w, _WEIGHT_DTYPES, "weights")
    x_shape, w_shape = x.shape, w.shape
    if len(w_shape) != 2:
        raise ShapeError(f"LinearTransformation: weights must be 2-D [out, in], got shape {format_dims(w_shape)}")
    if not x_shape or x_shape[-1] != w_shape[1]:
        raise ShapeError(
            f"LinearTransformation: x shape {format_dims(x_shape)} and weights shape {format_dims(w_shape)} "
            f"do not match on the inner dimension"
        )
    if xd is DT_BF16 and wd is DT_F32:
        raise DTypeError(
            "LinearTransformation: x is BF16 but weights are F32; convert the weights with ToBFloat16 "
            "or compute in f32 mode"
        )
    if plain and len(x_shape) == 2 and _gemv_takes(x_shape[0], x_shape[1], wd):
        # decode: one kernel call widens x, reads each weight once and rounds the result
        return Tensor.wrap(gemv(x.data, w.data, x.data.dtype), xd)
    lead = x_shape[:-1]
    x2 = x.data.reshape(math.prod(lead), x_shape[-1])
    if plain and _gemv_takes(x2.shape[0], x_shape[-1], wd):
        out = gemv(x2, w.data, x.data.dtype)
        return Tensor.wrap(out.reshape(*lead, w_shape[0]), xd)
    if xd is DT_BF16 and wd is not DT_BF16:
        x2 = bf16_bits_to_float32(x2)  # (the bf16 prefill kernel reads bf16 x as it is)
    if wd is DT_BF16:
        out = linear_bf16_weights_many_rows(x2, w.data)
    elif w.dtype is DT_F32:
        out = x2 @ w.data.T
    else:
        out = _linear_block_weights(x2, w.dtype, w.data)
    out = out.reshape(*lead, w.shape[0])
    if x.dtype is DT_BF16:
        return Tensor.wrap(float32_to_bf16_bits(out), DT_BF16)
    return Tensor.wrap(np.ascontiguousarray(out), DT_F32)


def LinearTransformations(x: Tensor, weights: Sequence[Tensor]) -> list[Tensor]:
    """[LinearTransformation(x, w) for w in weights], computed together.

    Matrices that read the same input (wq, wk and wv; w1 and w3) are one pass over the weights:
    while decoding (a few rows of x) and when the matrices share a dtype (bf16, float32, or one
    block dtype, whose kernels live in quantized.py), one kernel call streams them all, so the
    threads are woken once instead of once per matrix. Any other case is the loop.
    """
    if not weights:
        raise ShapeError("LinearTransformations: needs at least one weight matrix")
    first = weights[0]
    xd, wd = getattr(x, "dtype", None), getattr(first, "dtype", None)
    fused = (
        type(x) is Tensor
        and len(x.shape) == 2
        and (x.shape[0] <= GEMV_MAX_ROWS if wd in BLOCK_DTYPES else _gemv_takes(x.shape[0], x.shape[1], wd))
        and (xd is DT_F32 or xd is DT_BF16)
        and (wd is DT_BF16 or wd is DT_F32 and xd is DT_F32 or wd in BLOCK_DTYPES)
        and all(type(w) is Tensor and w.dtype is wd and len(w.shape) == 2 and w.shape[1] == x.shape[1] for w in weights)
    )
    if not fused:
        return [LinearTransformation(x, w) for w in weights]  # which also validates, with its messages
    if wd in BLOCK_DTYPES:
        # quantized matrices: their own dtype's kernel streams them all (quantized.py), on float32 x
        x2 = x.data if xd is DT_F32 else bf16_bits_to_float32(x.data)
        outs_f32 = _linear_many_block_weights(x2, wd, [w.data for w in weights])
        if xd is DT_BF16:
            return [Tensor.wrap(float32_to_bf16_bits(out), DT_BF16) for out in outs_f32]
        return [Tensor.wrap(out, DT_F32) for out in outs_f32]
    ws = tuple(_unit_stride_rows(w.data) for w in weights)
    x2 = _unit_stride_rows(x.data)
    outs = tuple(np.empty((x.shape[0], w.shape[0]), x.data.dtype) for w in ws)
    if sum(w.nbytes for w in ws) >= _PARALLEL_MIN_BYTES and parallel_ok():
        _gemv_many_parallel(x2, ws, outs)
    else:
        _gemv_many(x2, ws, outs)
    return [Tensor.wrap(out, xd) for out in outs]


def MatMul(a: Tensor, b: Tensor) -> Tensor:
    """Batched matrix product a [..., n, k] @ b [..., k, m] -> [..., n, m], batch dims broadcast.

    F32 -> F32; BF16 -> BF16 (accumulated in float32, rounded once). Attention uses it for
    xq @ keys^T and scores @ values.
    """
    require_tensor("MatMul", "a", a)
    require_tensor("MatMul", "b", b)
    require_same_dtype("MatMul", a, b)
    require_dtype("MatMul", a, (DT_F32, DT_BF16))
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(f"MatMul: needs at least 2-D tensors, got {format_dims(a.shape)} and {format_dims(b.shape)}")
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(
            f"MatMul: a shape {format_dims(a.shape)} and b shape {format_dims(b.shape)} do not match "
            f"on the inner dimension ({a.shape[-1]} vs {b.shape[-2]})"
        )
    broadcast_shape("MatMul", a.shape[:-2], b.shape[:-2])
    if a.dtype is DT_BF16:
        out = np.matmul(bf16_bits_to_float32(a.data), bf16_bits_to_float32(b.data))
        return Tensor.wrap(float32_to_bf16_bits(out), DT_BF16)
    return Tensor.wrap(np.ascontiguousarray(np.matmul(a.data, b.data)), DT_F32)
