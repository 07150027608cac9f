"""MatMul (batched, for attention) and LinearTransformation (x @ W^T, every weight of the model).

LinearTransformation is where the time goes, so its kernels are chosen by shape behind one interface:
- few rows of x (decode: one token) and bf16 weights: a fused matrix-vector kernel that reads each
  weight once as uint16, widens it in a register (shift + bitcast) and accumulates in float32; it is
  memory-bound, so reading 2 bytes per weight instead of 4 is the whole game;
- many rows (prefill) and bf16 weights: a register-tiled matrix kernel (gemm_bf16.py) that also reads
  each weight once, and uses the CPU's bf16 dot-product instruction where it can; it is compute-bound;
- float32 weights (llama2.c files): numpy's BLAS directly;
- float16 and block-quantized weights (GGUF files): a matrix-vector kernel of their own for few rows,
  and for many rows cache-sized tiles of dequantized rows multiplied in registers (quantized.py and
  gemm_f32.py, with one file per block type).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..common.errors import DTypeError, ShapeError
from .bfloat16 import bf16_bits_to_float32, bf16_to_f32, float32_to_bf16_bits
from .checks import broadcast_shape, require_dtype, require_same_dtype, require_tensor
from .dtype import DT_BF16, DT_F32
from .gemm_bf16 import linear_bf16_weights_many_rows
from .quantized import BLOCK_DTYPES, linear as _linear_block_weights
from .tensor import Tensor, format_dims

_WEIGHT_DTYPES = (DT_F32, DT_BF16, *BLOCK_DTYPES)
GEMV_MAX_ROWS = 4  # up to this many rows of x use the fused kernel; more go to the prefill kernel
_PARALLEL_MIN_WEIGHTS = 1 << 20  # below ~2 MB of bf16 weights, waking the second thread costs more than it saves (110M: +11% decode)

# ---- kernels --------------------------------------------------------------------------------------


@njit(cache=True, fastmath=True, inline="always")
def _dot_row_bf16(x, i, w, j):  # type: ignore[no-untyped-def]
    acc = np.float32(0.0)
    for t in range(x.shape[1]):
        acc += x[i, t] * bf16_to_f32(w[j, t])
    return acc


@njit(cache=True, fastmath=True)
def _gemv_bf16(x, w, out):  # type: ignore[no-untyped-def]
    for j in range(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row_bf16(x, i, w, j)


@njit(cache=True, fastmath=True, parallel=True)
def _gemv_bf16_parallel(x, w, out):  # type: ignore[no-untyped-def]
    for j in prange(w.shape[0]):
        for i in range(x.shape[0]):
            out[i, j] = _dot_row_bf16(x, i, w, j)


def _linear_bf16_weights(x2: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x2 [n, k] float32 (or bf16 bits, uint16, above GEMV_MAX_ROWS rows) @ w [m, k] (bf16 bits)^T -> [n, m] float32."""
    n = x2.shape[0]
    m, k = w.shape
    if n <= GEMV_MAX_ROWS:
        out = np.empty((n, m), dtype=np.float32)
        kernel = _gemv_bf16_parallel if m * k >= _PARALLEL_MIN_WEIGHTS else _gemv_bf16
        kernel(x2, w, out)
        return out
    # Many rows (prefill): a register-tiled matrix kernel that reads each weight once (gemm_bf16.py)
    return linear_bf16_weights_many_rows(x2, w)


# ---- ops ------------------------------------------------------------------------------------------


def LinearTransformation(x: Tensor, w: Tensor) -> Tensor:
    """x [..., in] @ w^T where w is [out, in] (the layout of every weight in the checkpoint).

    Dtypes: F32 x F32 -> F32; BF16 x BF16 -> BF16 (accumulated in float32, rounded once);
    F32 x BF16 -> F32 (documented promotion for the f32 compute mode: the bf16 weights are widened
    inside the kernel, never copied). F16 and block-quantized weights (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)
    take either x: F32 -> F32, BF16 -> BF16 (accumulated in float32, rounded once); their kernels
    read the stored blocks and never round a weight.
    """
    require_tensor("LinearTransformation", "x", x)
    require_tensor("LinearTransformation", "weights", w)
    require_dtype("LinearTransformation", x, (DT_F32, DT_BF16), "x")
    require_dtype("LinearTransformation", w, _WEIGHT_DTYPES, "weights")
    if w.ndim != 2:
        raise ShapeError(f"LinearTransformation: weights must be 2-D [out, in], got shape {format_dims(w.shape)}")
    if x.ndim == 0 or x.shape[-1] != w.shape[1]:
        raise ShapeError(
            f"LinearTransformation: x shape {format_dims(x.shape)} and weights shape {format_dims(w.shape)} "
            f"do not match on the inner dimension"
        )
    if x.dtype is DT_BF16 and w.dtype is DT_F32:
        raise DTypeError(
            "LinearTransformation: x is BF16 but weights are F32; convert the weights with ToBFloat16 "
            "or compute in f32 mode"
        )
    lead = x.shape[:-1]
    x2 = x.data.reshape(math.prod(lead), x.shape[-1])
    if x.dtype is DT_BF16 and not (w.dtype is DT_BF16 and x2.shape[0] > GEMV_MAX_ROWS):
        x2 = bf16_bits_to_float32(x2)  # (the bf16 prefill kernel reads bf16 x as it is)
    if w.dtype is DT_BF16:
        out = _linear_bf16_weights(x2, w.data)
    elif w.dtype is DT_F32:
        out = x2 @ w.data.T
    else:
        out = _linear_block_weights(x2, w.dtype, w.data)
    out = out.reshape(*lead, w.shape[0])
    if x.dtype is DT_BF16:
        return Tensor.wrap(float32_to_bf16_bits(out), DT_BF16)
    return Tensor.wrap(np.ascontiguousarray(out), DT_F32)


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
