"""Argument validation shared by the ops: every failure names the op and the shapes or dtypes."""

from __future__ import annotations

from typing import Iterable, Sequence

from ..common.errors import DTypeError, ShapeError
from .dtype import DataType
from .tensor import Tensor, format_dims


def require_tensor(op: str, name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise DTypeError(f"{op}: {name} must be a Tensor, got {type(value).__name__}")
    return value


def require_dtype(op: str, t: Tensor, allowed: Iterable[DataType], name: str = "input") -> None:
    allowed = tuple(allowed)
    if t.dtype not in allowed:
        names = ", ".join(str(d) for d in allowed)
        raise DTypeError(f"{op}: {name} dtype {t.dtype} is not supported (expected {names})")


def require_same_dtype(op: str, a: Tensor, b: Tensor) -> None:
    if a.dtype is not b.dtype:
        raise DTypeError(
            f"{op}: dtypes {a.dtype} (shape {format_dims(a.shape)}) and {b.dtype} "
            f"(shape {format_dims(b.shape)}) differ; convert one with ToFloat32 or ToBFloat16 first"
        )


def normalize_dim(op: str, dim: int, ndim: int) -> int:
    """Python-style negative dims: -1 is the last. Out of range raises ShapeError."""
    if not -ndim <= dim < ndim or ndim == 0:
        raise ShapeError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions")
    return dim + ndim if dim < 0 else dim


def broadcast_shape(op: str, a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """PyTorch/numpy broadcasting: align from the right; each pair equal or one of them 1."""
    out: list[int] = []
    for i in range(1, max(len(a), len(b)) + 1):
        da = a[-i] if i <= len(a) else 1
        db = b[-i] if i <= len(b) else 1
        if da != db and da != 1 and db != 1:
            raise ShapeError(
                f"{op}: shapes {format_dims(a)} and {format_dims(b)} are not broadcastable "
                f"(dimension {-i}: {da} vs {db})"
            )
        out.append(max(da, db) if da != 0 and db != 0 else 0)
    return tuple(reversed(out))


def require_shape(op: str, t: Tensor, shape: Sequence[int], name: str = "input") -> None:
    if tuple(t.shape) != tuple(shape):
        raise ShapeError(f"{op}: {name} shape {format_dims(t.shape)} must be {format_dims(shape)}")
