"""Block-quantized tensors (GGML's Q8_0, Q4_0, Q4_1, Q4_K, Q6_K): dequantization.

The per-type kernels live beside this dispatcher, one file per block type.
"""

from __future__ import annotations

import numpy as np

from ..common.errors import DTypeError
from .dtype import DataType


def dequantize(dtype: DataType, data: np.ndarray) -> np.ndarray:
    """uint8 blocks [..., n_blocks * block_bytes] -> float32 [..., n_blocks * block_size]."""
    raise DTypeError(f"dequantize: {dtype} blocks cannot be dequantized yet")
