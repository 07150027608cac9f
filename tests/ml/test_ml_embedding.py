"""Embedding: one row of the table per token id (reference: numpy fancy indexing)."""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_F32, DT_INT32, DT_INT64, Tensor


def table_f32(vocab: int = 10, dim: int = 4) -> Tensor:
    return Tensor.from_numpy(np.arange(vocab * dim, dtype=np.float32).reshape(vocab, dim))


def ids(values, dtype=np.int64) -> Tensor:
    return Tensor.from_numpy(np.asarray(values, dtype=dtype))


@pytest.mark.parametrize("id_dtype", [np.int32, np.int64])
def test_embedding_looks_up_one_row_per_id(id_dtype):
    table = table_f32()
    tokens = [3, 0, 9, 3]
    got = ml.Embedding(table, ids(tokens, id_dtype))
    assert got.dtype is DT_F32 and got.shape == (4, 4)
    np.testing.assert_array_equal(got.data, table.data[tokens])


def test_embedding_bf16_table_copies_the_bits():
    bits = np.array([[0x3F80, 0x4000], [0xFF80, 0x7FC0], [0x0001, 0x8000]], dtype=np.uint16)
    got = ml.Embedding(Tensor.from_numpy(bits, DT_BF16), ids([2, 1, 1]))
    assert got.dtype is DT_BF16
    assert got.data.tolist() == [[0x0001, 0x8000], [0xFF80, 0x7FC0], [0xFF80, 0x7FC0]]


def test_embedding_rows_are_copies_not_views():
    table = table_f32()
    got = ml.Embedding(table, ids([1]))
    got.data[...] = -1.0
    assert table.data[1].tolist() == [4.0, 5.0, 6.0, 7.0]


def test_embedding_of_no_ids_is_empty():
    got = ml.Embedding(table_f32(), ids([]))
    assert got.shape == (0, 4)


@pytest.mark.parametrize("bad, listed", [([0, 10], "[10]"), ([-1, 2], "[-1]"), ([12, 3, 99], "[12, 99]")])
def test_embedding_out_of_vocabulary_ids_are_an_error(bad, listed):
    message = rf"Embedding: token ids {listed.replace('[', chr(92) + '[').replace(']', chr(92) + ']')} are outside the vocabulary of 10 rows"
    with pytest.raises(ShapeError, match=message):
        ml.Embedding(table_f32(), ids(bad))


def test_embedding_ids_must_be_integers():
    with pytest.raises(DTypeError, match=r"Embedding: ids dtype F32 is not supported \(expected INT32, INT64\)"):
        ml.Embedding(table_f32(), Tensor.from_numpy(np.array([1.0], np.float32)))


@pytest.mark.parametrize("dtype", [DT_INT32, DT_INT64])
def test_embedding_table_must_be_float(dtype):
    with pytest.raises(DTypeError, match=rf"Embedding: table dtype {dtype} is not supported \(expected F32, BF16(, [A-Z0-9_]+)*\)"):
        ml.Embedding(ml.Zeros([4, 2], dtype), ids([0]))


def test_embedding_table_must_be_2d():
    with pytest.raises(ShapeError, match=r"Embedding: table must be 2-D \[vocab, dim\], got shape \[10\]"):
        ml.Embedding(ml.Zeros([10]), ids([0]))


def test_embedding_ids_must_be_1d():
    with pytest.raises(ShapeError, match=r"Embedding: ids must be 1-D, got shape \[1 2\]"):
        ml.Embedding(table_f32(), ids([[0, 1]]))


def test_embedding_needs_tensors():
    with pytest.raises(DTypeError, match="Embedding: ids must be a Tensor, got list"):
        ml.Embedding(table_f32(), [0, 1])
