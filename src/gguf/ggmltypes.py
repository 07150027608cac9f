"""ggml's tensor types: the numbers a GGUF file writes for them, and which of them we can hold.

A GGUF tensor info names its type by ggml's id (`enum ggml_type` in llama.cpp's ggml.h). Each type
packs `block_size` consecutive values of a row into `block_bytes` bytes; plain types are blocks of
one value. The ids are part of the file format and never change; removed types (4, 5, 31-33,
36-38) keep their holes.

We hold the float types and the block types that the tensor layer has kernels for; any other
known type gets an error that names it and lists what is supported, so a user knows to pick a
different quantization of the same model rather than suspect a broken file.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ml.dtype import DT_BF16, DT_F16, DT_F32, DT_Q4_0, DT_Q4_1, DT_Q4_K, DT_Q6_K, DT_Q8_0, DataType


@dataclass(frozen=True)
class GGMLType:
    id: int
    name: str
    block_size: int  # values per block (1 for plain types)
    block_bytes: int  # bytes per block
    dtype: DataType | None  # our DataType, or None when we cannot hold this type

    def nbytes(self, count: int) -> int:
        """Bytes for `count` values (`count` must be whole blocks)."""
        return count // self.block_size * self.block_bytes


# id -> (name, values per block, bytes per block), as ggml defines them.
_KNOWN: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

# The types the tensor layer can hold (see src/ml/dtype.py). BF16 is stored as uint16 bits.
_SUPPORTED: dict[int, DataType] = {
    0: DT_F32,
    1: DT_F16,
    2: DT_Q4_0,
    3: DT_Q4_1,
    8: DT_Q8_0,
    12: DT_Q4_K,
    14: DT_Q6_K,
    30: DT_BF16,
}

GGML_TYPES: dict[int, GGMLType] = {
    type_id: GGMLType(type_id, name, block_size, block_bytes, _SUPPORTED.get(type_id))
    for type_id, (name, block_size, block_bytes) in _KNOWN.items()
}
SUPPORTED_TYPE_NAMES = tuple(GGML_TYPES[i].name for i in sorted(_SUPPORTED))

# Our DataTypes must agree with ggml's block geometry, or every view would be cut wrong.
for _type in GGML_TYPES.values():
    if _type.dtype is not None:
        assert (_type.dtype.block_size, _type.dtype.block_bytes) == (_type.block_size, _type.block_bytes), _type


def ggml_type(type_id: int) -> GGMLType:
    """The known type with this id (supported or not); KeyError for an id ggml never defined."""
    return GGML_TYPES[type_id]


__all__ = ["GGMLType", "GGML_TYPES", "SUPPORTED_TYPE_NAMES", "ggml_type"]
