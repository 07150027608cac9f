"""Views and copies: Reshape/View, Transpose, Slice, SetSlice, Cat, Contiguous, RepeatInterleave,
ViewAsComplex64 / ViewAsFloat32 (the rotary embedding's pairs <-> complex numbers).

Reshape and Slice along the first dimension return views over the same storage (no copy); Transpose,
Cat and RepeatInterleave make a new contiguous tensor, because every Tensor is C-contiguous.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..common.errors import DTypeError, ShapeError
from .checks import normalize_dim, require_dtype, require_tensor
from .dtype import DT_COMPLEX64, DT_F32
from .tensor import Tensor, format_dims


def Reshape(t: Tensor, shape: Sequence[int]) -> Tensor:
    """Same elements, new shape; one dimension may be -1 (inferred). Shares storage."""
    require_tensor("Reshape", "input", t)
    if type(shape) is list and -1 not in shape and min(shape, default=0) >= 0 and math.prod(shape) == t.data.size:
        # the common case (every dimension given, the element count right): nothing more to check
        return Tensor.wrap(t.data.reshape(shape), t.dtype, t.name)
    dims = [int(d) for d in shape]
    if dims.count(-1) > 1:
        raise ShapeError(f"Reshape: more than one -1 in {format_dims(dims)}")
    if any(d < -1 for d in dims):
        raise ShapeError(f"Reshape: negative dimension in {format_dims(dims)} (only -1 may be inferred)")
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if known == 0 or t.data.size % known:
            raise ShapeError(f"Reshape: cannot reshape {format_dims(t.shape)} into {format_dims(dims)}")
        dims[dims.index(-1)] = t.data.size // known
    elif known != t.data.size:
        raise ShapeError(
            f"Reshape: cannot reshape {format_dims(t.shape)} ({t.data.size} elements) into "
            f"{format_dims(dims)} ({known} elements)"
        )
    return Tensor.wrap(t.data.reshape(dims), t.dtype, t.name)


View = Reshape


def Transpose(t: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions (negative dims allowed); the result is a new contiguous tensor."""
    require_tensor("Transpose", "input", t)
    d0 = normalize_dim("Transpose", dim0, t.ndim)
    d1 = normalize_dim("Transpose", dim1, t.ndim)
    return Tensor.wrap(np.ascontiguousarray(np.swapaxes(t.data, d0, d1)), t.dtype)


def Contiguous(t: Tensor) -> Tensor:
    """A copy with its own storage (our tensors are always contiguous; this detaches a view)."""
    require_tensor("Contiguous", "input", t)
    return Tensor.wrap(t.data.copy(), t.dtype)


def _check_range(op: str, t: Tensor, dim: int, start: int, end: int) -> int:
    d = normalize_dim(op, dim, t.ndim)
    size = t.shape[d]
    if not 0 <= start <= end <= size:
        raise ShapeError(f"{op}: range [{start}, {end}) is outside dimension {dim} of size {size} (shape {format_dims(t.shape)})")
    return d


def Slice(t: Tensor, dim: int, start: int, end: int) -> Tensor:
    """Elements start..end-1 along `dim`. Along dim 0 this is a view; along another dim it is a view
    when the selected elements are contiguous anyway (e.g. [1, T, ...] along dim 1), otherwise a copy."""
    require_tensor("Slice", "input", t)
    if dim == 0 and t.shape and 0 <= start <= end <= t.shape[0]:
        return Tensor.wrap(t.data[start:end], t.dtype)  # rows of a C-contiguous array: a view
    d = _check_range("Slice", t, dim, start, end)
    index = [slice(None)] * t.ndim
    index[d] = slice(start, end)
    part = t.data[tuple(index)]
    return Tensor.wrap(part if part.flags.c_contiguous else np.ascontiguousarray(part), t.dtype)


def SetSlice(dst: Tensor, dim: int, start: int, src: Tensor) -> None:
    """Write `src` into `dst` at positions start..start+len along `dim`, in place (the KV cache update)."""
    require_tensor("SetSlice", "dst", dst)
    require_tensor("SetSlice", "src", src)
    ds, ss = dst.shape, src.shape
    if dim == 0 and ss and dst.dtype is src.dtype and len(ds) == len(ss) and ds[1:] == ss[1:] and 0 <= start <= start + ss[0] <= ds[0]:
        dst.data[start : start + ss[0]] = src.data  # the KV cache update: rows written in place
        return
    if dst.dtype is not src.dtype:
        raise DTypeError(f"SetSlice: dst dtype {dst.dtype} and src dtype {src.dtype} differ")
    if src.ndim != dst.ndim:
        raise ShapeError(f"SetSlice: src shape {format_dims(src.shape)} and dst shape {format_dims(dst.shape)} differ in rank")
    d = _check_range("SetSlice", dst, dim, start, start + src.shape[normalize_dim("SetSlice", dim, src.ndim)])
    for i in range(dst.ndim):
        if i != d and dst.shape[i] != src.shape[i]:
            raise ShapeError(
                f"SetSlice: src shape {format_dims(src.shape)} does not fit dst shape {format_dims(dst.shape)} outside dimension {dim}"
            )
    index = [slice(None)] * dst.ndim
    index[d] = slice(start, start + src.shape[d])
    dst.data[tuple(index)] = src.data


def Cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along `dim`; all other dimensions and the dtype must agree."""
    if not tensors:
        raise ShapeError("Cat: needs at least one tensor")
    for i, t in enumerate(tensors):
        require_tensor("Cat", f"tensors[{i}]", t)
    first = tensors[0]
    d = normalize_dim("Cat", dim, first.ndim)
    for t in tensors[1:]:
        if t.dtype is not first.dtype:
            raise DTypeError(f"Cat: dtypes {first.dtype} and {t.dtype} differ")
        if t.ndim != first.ndim or any(t.shape[i] != first.shape[i] for i in range(first.ndim) if i != d):
            raise ShapeError(f"Cat: shapes {format_dims(first.shape)} and {format_dims(t.shape)} differ outside dimension {dim}")
    return Tensor.wrap(np.concatenate([t.data for t in tensors], axis=d), first.dtype)


def RepeatInterleave(t: Tensor, repeats: int, dim: int) -> Tensor:
    """Repeat each slice along `dim` `repeats` times in place (torch.repeat_interleave): [a b] -> [a a b b].

    Grouped-query attention uses it to give each query head the key/value head of its group.
    """
    require_tensor("RepeatInterleave", "input", t)
    d = normalize_dim("RepeatInterleave", dim, t.ndim)
    if repeats < 1:
        raise ShapeError(f"RepeatInterleave: repeats must be >= 1, got {repeats}")
    if repeats == 1:
        return t
    return Tensor.wrap(np.ascontiguousarray(np.repeat(t.data, repeats, axis=d)), t.dtype)


def ViewAsComplex64(t: Tensor) -> Tensor:
    """F32 [..., 2k] -> COMPLEX64 [..., k]: adjacent pairs (x[2i], x[2i+1]) become x[2i] + i*x[2i+1]."""
    require_tensor("ViewAsComplex64", "input", t)
    require_dtype("ViewAsComplex64", t, (DT_F32,))
    if t.ndim == 0 or t.shape[-1] % 2:
        raise ShapeError(f"ViewAsComplex64: last dimension must be even, got shape {format_dims(t.shape)}")
    return Tensor.wrap(t.data.view(np.complex64), DT_COMPLEX64)


def ViewAsFloat32(t: Tensor) -> Tensor:
    """COMPLEX64 [..., k] -> F32 [..., 2k], the inverse of ViewAsComplex64 (shares storage)."""
    require_tensor("ViewAsFloat32", "input", t)
    require_dtype("ViewAsFloat32", t, (DT_COMPLEX64,))
    if t.ndim == 0:
        raise ShapeError("ViewAsFloat32: needs at least 1 dimension, got shape []")
    return Tensor.wrap(t.data.view(np.float32), DT_F32)
