"""Tensor: a shape, a dtype and C-contiguous storage in a numpy array.

The storage array always has the tensor's shape and the dtype's storage type (uint16 for bf16), so a
kernel can index it directly. Views (Reshape, Slice along the first dimension) share that storage;
ops return new tensors. Strides are not stored separately: a C-contiguous array of shape
[d0, d1, ..., dn] has strides [d1*...*dn, ..., dn, 1] elements, which numpy computes for us.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..common.errors import DTypeError, ShapeError
from .bfloat16 import bf16_bits_to_float32
from .dtype import DT_BF16, DataType, dtype_of_numpy


def format_dims(shape: Sequence[int]) -> str:
    """(32, 4096) -> '[32 4096]', the Go original's way of writing a shape."""
    return "[" + " ".join(str(int(d)) for d in shape) + "]"


class Tensor:
    """A typed n-dimensional array. `repr` shows `Tensor(shape=[32 4096], dtype=BF16)`."""

    __slots__ = ("shape", "dtype", "data", "name")

    def __init__(self, shape: Sequence[int], dtype: DataType, data: np.ndarray, name: str = "") -> None:
        shape = tuple(int(d) for d in shape)
        if not isinstance(dtype, DataType):
            raise DTypeError(f"Tensor: dtype must be a DataType, got {dtype!r}")
        if not isinstance(data, np.ndarray):
            raise DTypeError(f"Tensor: data must be a numpy array, got {type(data).__name__}")
        if data.dtype != dtype.storage:
            raise DTypeError(
                f"Tensor {name!r}: dtype {dtype} is stored as numpy {dtype.storage}, got numpy {data.dtype}"
            )
        if dtype.is_quantized:
            if not shape or shape[-1] % dtype.block_size:
                raise ShapeError(
                    f"Tensor {name!r}: {dtype} stores blocks of {dtype.block_size} values, so the last dimension "
                    f"of shape {format_dims(shape)} must be a multiple of {dtype.block_size}"
                )
            stored = dtype.storage_shape(shape)
            if data.shape != stored:
                if data.size != math.prod(stored):
                    raise ShapeError(
                        f"Tensor {name!r}: {dtype} shape {format_dims(shape)} needs {dtype.nbytes(shape)} bytes, "
                        f"data has {data.size}"
                    )
                data = data.reshape(stored)
        elif data.shape != shape:
            if data.size != math.prod(shape):
                raise ShapeError(
                    f"Tensor {name!r}: shape {format_dims(shape)} needs "
                    f"{math.prod(shape)} elements, data has {data.size}"
                )
            data = data.reshape(shape)
        if not data.flags.c_contiguous:
            raise ShapeError(f"Tensor {name!r}: data must be C-contiguous (use Contiguous or np.ascontiguousarray)")
        self.shape = shape
        self.dtype = dtype
        self.data = data
        self.name = name

    @classmethod
    def wrap(cls, data: np.ndarray, dtype: DataType, name: str = "") -> "Tensor":
        """Fast constructor for ops: `data` is already contiguous with the right storage dtype
        (not for quantized dtypes, whose storage shape is not their shape: use the constructor)."""
        t = cls.__new__(cls)
        t.shape = data.shape
        t.dtype = dtype
        t.data = data
        t.name = name
        return t

    @classmethod
    def from_numpy(cls, array: np.ndarray, dtype: DataType | None = None, name: str = "") -> "Tensor":
        """From numpy. float32 -> F32, int32/int64/bool/complex64 as is; uint16 needs dtype=DT_BF16."""
        array = np.asarray(array)
        if dtype is None:
            dtype = dtype_of_numpy(array.dtype)
        if dtype is DT_BF16 and array.dtype != np.uint16:
            raise DTypeError("Tensor.from_numpy: BF16 data must be given as uint16 bits (see ToBFloat16)")
        return cls(array.shape, dtype, np.ascontiguousarray(array, dtype=dtype.storage), name)

    # ---- inspection ---------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return math.prod(self.shape)

    def nbytes(self) -> int:
        return int(self.data.size) * self.dtype.itemsize

    def numpy(self) -> np.ndarray:
        """The values as numpy: bf16 and quantized blocks widened to float32 (a copy); F16 as
        float16; other dtypes the storage itself."""
        if self.dtype is DT_BF16:
            return bf16_bits_to_float32(self.data)
        if self.dtype.is_quantized:
            from .quantized import dequantize

            return dequantize(self.dtype, self.data).reshape(self.shape)
        return self.data

    def item(self) -> float | int | complex | bool:
        if self.data.size != 1:
            raise ShapeError(f"Tensor.item: tensor of shape {format_dims(self.shape)} has {self.data.size} elements")
        return self.numpy().reshape(-1)[0].item()

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"Tensor(shape={format_dims(self.shape)}, dtype={self.dtype}{name})"

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0


__all__ = ["Tensor", "format_dims"]
