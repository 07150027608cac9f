"""Data types of the tensor layer and how each is stored in numpy.

bfloat16 has no numpy type: its 16 bits are stored as uint16 and widened to float32 by the kernels
(shift left by 16 and reinterpret the bits, see bfloat16.py).
"""

from __future__ import annotations

from enum import Enum

import numpy as np


class DataType(Enum):
    """(display name, numpy storage dtype, bytes per item)."""

    F32 = ("F32", np.dtype(np.float32), 4)
    BF16 = ("BF16", np.dtype(np.uint16), 2)
    INT32 = ("INT32", np.dtype(np.int32), 4)
    INT64 = ("INT64", np.dtype(np.int64), 8)
    BOOL = ("BOOL", np.dtype(np.bool_), 1)
    COMPLEX64 = ("COMPLEX64", np.dtype(np.complex64), 8)

    def __init__(self, display: str, storage: np.dtype, itemsize: int) -> None:
        self.display = display
        self.storage = storage
        self.itemsize = itemsize

    def __repr__(self) -> str:
        return self.display

    __str__ = __repr__

    @property
    def is_float(self) -> bool:
        return self in (DataType.F32, DataType.BF16)


DT_F32 = DataType.F32
DT_BF16 = DataType.BF16
DT_INT32 = DataType.INT32
DT_INT64 = DataType.INT64
DT_BOOL = DataType.BOOL
DT_COMPLEX64 = DataType.COMPLEX64

_FROM_NUMPY: dict[np.dtype, DataType] = {
    np.dtype(np.float32): DT_F32,
    np.dtype(np.int32): DT_INT32,
    np.dtype(np.int64): DT_INT64,
    np.dtype(np.bool_): DT_BOOL,
    np.dtype(np.complex64): DT_COMPLEX64,
}


def dtype_of_numpy(dtype: np.dtype) -> DataType:
    """The DataType that stores numpy `dtype` as is (uint16 is ambiguous, so it is not accepted here)."""
    try:
        return _FROM_NUMPY[np.dtype(dtype)]
    except KeyError:
        from ..common.errors import DTypeError

        raise DTypeError(
            f"numpy dtype {np.dtype(dtype)} has no tensor dtype (use float32, int32, int64, bool, "
            f"complex64, or uint16 bits with dtype=DT_BF16)"
        ) from None
