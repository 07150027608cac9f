"""Data types of the tensor layer and how each is stored in numpy.

bfloat16 has no numpy type: its 16 bits are stored as uint16 and widened to float32 by the kernels
(shift left by 16 and reinterpret the bits, see bfloat16.py).

Block-quantized types (llama.cpp's GGML types, as GGUF files store them) pack `block_size`
consecutive values of a row into `block_bytes` bytes: a scale (and sometimes a minimum) in float16
and the values in 8, 6 or 4 bits. Their storage is the raw bytes, uint8, one row of blocks per row
of the tensor: a [rows, cols] Q4_1 tensor is stored as uint8 [rows, cols // 32 * 20]. The kernels
read the blocks directly; nothing builds a float copy of a quantized matrix.
"""

from __future__ import annotations

from enum import Enum

import numpy as np


class DataType(Enum):
    """(display name, numpy storage dtype, bytes per block, values per block).

    A plain dtype is a block of one value: `itemsize` bytes each. A quantized dtype stores
    `block_size` values in `block_bytes` bytes (`itemsize` is then the storage's 1 byte).
    """

    F32 = ("F32", np.dtype(np.float32), 4, 1)
    BF16 = ("BF16", np.dtype(np.uint16), 2, 1)
    F16 = ("F16", np.dtype(np.float16), 2, 1)
    INT32 = ("INT32", np.dtype(np.int32), 4, 1)
    INT64 = ("INT64", np.dtype(np.int64), 8, 1)
    BOOL = ("BOOL", np.dtype(np.bool_), 1, 1)
    COMPLEX64 = ("COMPLEX64", np.dtype(np.complex64), 8, 1)
    # GGML block types: 32 values with one float16 scale d (value = d * q) ...
    Q8_0 = ("Q8_0", np.dtype(np.uint8), 34, 32)  # d, 32 x int8
    Q4_0 = ("Q4_0", np.dtype(np.uint8), 18, 32)  # d, 32 x 4 bits (q - 8)
    Q4_1 = ("Q4_1", np.dtype(np.uint8), 20, 32)  # d, m, 32 x 4 bits (value = d * q + m)
    # ... and the K-quants: super-blocks of 256 values in sub-blocks with their own 6-bit scales
    Q4_K = ("Q4_K", np.dtype(np.uint8), 144, 256)  # d, dmin, 12 bytes of scales/mins, 128 bytes of 4-bit values
    Q6_K = ("Q6_K", np.dtype(np.uint8), 210, 256)  # 128 bytes low 4 bits, 64 high 2 bits, 16 int8 scales, d

    def __init__(self, display: str, storage: np.dtype, block_bytes: int, block_size: int) -> None:
        self.display = display
        self.storage = storage
        self.block_bytes = block_bytes
        self.block_size = block_size
        self.itemsize = storage.itemsize

    def __repr__(self) -> str:
        return self.display

    __str__ = __repr__

    @property
    def is_float(self) -> bool:
        return self in (DataType.F32, DataType.BF16)

    @property
    def is_quantized(self) -> bool:
        """Stored in blocks of several values (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)."""
        return self.block_size > 1

    def storage_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The numpy shape that stores a tensor of `shape`: itself, or bytes per row of blocks."""
        if not self.is_quantized:
            return shape
        return shape[:-1] + (shape[-1] // self.block_size * self.block_bytes,)

    def nbytes(self, shape: tuple[int, ...]) -> int:
        """Bytes that a tensor of `shape` takes (the last dimension must be whole blocks)."""
        count = 1
        for d in shape:
            count *= d
        return count // self.block_size * self.block_bytes


DT_F32 = DataType.F32
DT_BF16 = DataType.BF16
DT_INT32 = DataType.INT32
DT_INT64 = DataType.INT64
DT_BOOL = DataType.BOOL
DT_COMPLEX64 = DataType.COMPLEX64
DT_F16 = DataType.F16
DT_Q8_0 = DataType.Q8_0
DT_Q4_0 = DataType.Q4_0
DT_Q4_1 = DataType.Q4_1
DT_Q4_K = DataType.Q4_K
DT_Q6_K = DataType.Q6_K
QUANTIZED_DTYPES = tuple(t for t in DataType if t.is_quantized)

_FROM_NUMPY: dict[np.dtype, DataType] = {
    np.dtype(np.float32): DT_F32,
    np.dtype(np.int32): DT_INT32,
    np.dtype(np.int64): DT_INT64,
    np.dtype(np.bool_): DT_BOOL,
    np.dtype(np.complex64): DT_COMPLEX64,
    np.dtype(np.float16): DT_F16,
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
