"""Embedding: look up one row of the embedding table per token id."""

from __future__ import annotations

import numpy as np

from ..common.errors import ShapeError
from .checks import require_dtype, require_tensor
from .dtype import DT_BF16, DT_F32, DT_INT32, DT_INT64
from .quantized import BLOCK_DTYPES, dequantize
from .tensor import Tensor, format_dims


def Embedding(table: Tensor, ids: Tensor) -> Tensor:
    """table [vocab, dim], ids [n] (INT32/INT64) -> [n, dim] with the table's dtype (rows are copied).

    An F16 or block-quantized table gives F32 rows: only the rows of the ids are dequantized."""
    require_tensor("Embedding", "table", table)
    require_tensor("Embedding", "ids", ids)
    require_dtype("Embedding", table, (DT_F32, DT_BF16, *BLOCK_DTYPES), "table")
    require_dtype("Embedding", ids, (DT_INT32, DT_INT64), "ids")
    if table.ndim != 2:
        raise ShapeError(f"Embedding: table must be 2-D [vocab, dim], got shape {format_dims(table.shape)}")
    if ids.ndim != 1:
        raise ShapeError(f"Embedding: ids must be 1-D, got shape {format_dims(ids.shape)}")
    vocab = table.shape[0]
    if ids.data.size and (int(ids.data.min()) < 0 or int(ids.data.max()) >= vocab):
        bad = [int(i) for i in ids.data if not 0 <= int(i) < vocab][:5]
        raise ShapeError(f"Embedding: token ids {bad} are outside the vocabulary of {vocab} rows")
    if table.dtype in BLOCK_DTYPES:
        return Tensor.wrap(dequantize(table.dtype, table.data[ids.data]), DT_F32)
    return Tensor.wrap(np.ascontiguousarray(table.data[ids.data]), table.dtype)
