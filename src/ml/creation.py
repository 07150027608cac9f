"""Creation ops: Zeros, Ones, Full, ARange, Outer, Polar, TriangularUpper."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..common.errors import DTypeError, ShapeError
from .bfloat16 import float32_to_bf16_bits
from .checks import require_dtype, require_tensor
from .dtype import DT_BF16, DT_COMPLEX64, DT_F32, DT_INT64, DataType
from .tensor import Tensor, format_dims


def _check_shape(op: str, shape: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise ShapeError(f"{op}: negative dimension in shape {format_dims(dims)}")
    return dims


def Full(shape: Sequence[int], value: float, dtype: DataType = DT_F32) -> Tensor:
    """A tensor of `shape` filled with `value` (rounded to bf16 for DT_BF16)."""
    dims = _check_shape("Full", shape)
    if dtype is DT_BF16:
        fill = float32_to_bf16_bits(np.array([value], dtype=np.float32))[0]
        return Tensor.wrap(np.full(dims, fill, dtype=np.uint16), dtype)
    return Tensor.wrap(np.full(dims, value, dtype=dtype.storage), dtype)


def Zeros(shape: Sequence[int], dtype: DataType = DT_F32) -> Tensor:
    """A tensor of zeros. Large ones cost no memory until written: np.zeros asks the operating system
    for fresh pages, which are zero already and become resident only when touched, so a KV cache
    sized for the whole context (1 GB for Llama 2 7B) costs only the positions a generation uses."""
    dims = _check_shape("Zeros", shape)
    return Tensor.wrap(np.zeros(dims, dtype=dtype.storage), dtype)


def Ones(shape: Sequence[int], dtype: DataType = DT_F32) -> Tensor:
    return Full(shape, 1, dtype)


def ARange(start: float, end: float, step: float = 1, dtype: DataType = DT_F32) -> Tensor:
    """[start, start+step, ...) up to but excluding end, like torch.arange."""
    if step == 0:
        raise ShapeError("ARange: step must not be zero")
    if dtype not in (DT_F32, DT_INT64, DT_BF16):
        raise DTypeError(f"ARange: dtype {dtype} is not supported (expected F32, BF16, INT64)")
    count = max(0, int(np.ceil((end - start) / step)))
    if dtype is DT_INT64:
        if any(float(v) != int(v) for v in (start, end, step)):
            raise DTypeError(f"ARange: INT64 needs whole numbers, got start {start}, end {end}, step {step}")
        values = (np.int64(start) + np.arange(count, dtype=np.int64) * np.int64(step))
        return Tensor.wrap(values, dtype)
    values = (np.float64(start) + np.arange(count, dtype=np.float64) * np.float64(step)).astype(np.float32)
    if dtype is DT_BF16:
        return Tensor.wrap(float32_to_bf16_bits(values), dtype)
    return Tensor.wrap(values, dtype)


def Outer(a: Tensor, b: Tensor) -> Tensor:
    """out[i, j] = a[i] * b[j] for 1-D F32 tensors (the rotary angle table is Outer(positions, freqs))."""
    for name, t in (("a", a), ("b", b)):
        require_tensor("Outer", name, t)
        require_dtype("Outer", t, (DT_F32,), name)
        if t.ndim != 1:
            raise ShapeError(f"Outer: {name} must be 1-D, got shape {format_dims(t.shape)}")
    return Tensor.wrap(np.multiply.outer(a.data, b.data).astype(np.float32), DT_F32)


def Polar(abs_: Tensor, angle: Tensor) -> Tensor:
    """abs * (cos(angle) + i sin(angle)) as COMPLEX64, like torch.polar."""
    require_tensor("Polar", "abs", abs_)
    require_tensor("Polar", "angle", angle)
    require_dtype("Polar", abs_, (DT_F32,), "abs")
    require_dtype("Polar", angle, (DT_F32,), "angle")
    if abs_.shape != angle.shape:
        raise ShapeError(f"Polar: abs shape {format_dims(abs_.shape)} and angle shape {format_dims(angle.shape)} differ")
    out = np.empty(angle.shape, dtype=np.complex64)
    out.real = abs_.data * np.cos(angle.data)
    out.imag = abs_.data * np.sin(angle.data)
    return Tensor.wrap(out, DT_COMPLEX64)


def TriangularUpper(t: Tensor, diagonal: int = 0) -> Tensor:
    """Keep elements on and above the `diagonal`-th diagonal of the last two dims, zero the rest (torch.triu)."""
    require_tensor("TriangularUpper", "input", t)
    if t.ndim < 2:
        raise ShapeError(f"TriangularUpper: needs at least 2 dimensions, got shape {format_dims(t.shape)}")
    rows, cols = t.shape[-2], t.shape[-1]
    keep = np.triu(np.ones((rows, cols), dtype=bool), k=diagonal)
    out = np.where(keep, t.data, np.zeros((), dtype=t.data.dtype)).astype(t.data.dtype)
    return Tensor.wrap(np.ascontiguousarray(out), t.dtype)
