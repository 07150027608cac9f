"""Tensor: construction, validation, inspection (repr, numel, nbytes, item)."""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_BOOL, DT_COMPLEX64, DT_F32, DT_INT32, DT_INT64, Tensor, format_dims


def test_repr_uses_the_go_shape_notation():
    t = Tensor([32, 4096], DT_BF16, np.zeros((32, 4096), dtype=np.uint16))
    assert repr(t) == "Tensor(shape=[32 4096], dtype=BF16)"


def test_repr_names_the_tensor_when_it_has_a_name():
    t = Tensor([2], DT_F32, np.zeros(2, dtype=np.float32), name="wq")
    assert repr(t) == "Tensor(shape=[2], dtype=F32, name='wq')"


def test_repr_of_a_scalar_tensor_has_empty_brackets():
    assert repr(Tensor([], DT_F32, np.zeros((), dtype=np.float32))) == "Tensor(shape=[], dtype=F32)"


def test_format_dims():
    assert format_dims((5, 4096)) == "[5 4096]"
    assert format_dims(()) == "[]"


@pytest.mark.parametrize(
    "dtype, storage",
    [
        (DT_F32, np.float32),
        (DT_BF16, np.uint16),
        (DT_INT32, np.int32),
        (DT_INT64, np.int64),
        (DT_BOOL, np.bool_),
        (DT_COMPLEX64, np.complex64),
    ],
)
def test_each_dtype_has_its_numpy_storage_and_item_size(dtype, storage):
    assert dtype.storage == np.dtype(storage)
    assert dtype.itemsize == np.dtype(storage).itemsize
    t = Tensor([3, 5], dtype, np.zeros((3, 5), dtype=storage))
    assert t.numel() == 15
    assert t.nbytes() == 15 * np.dtype(storage).itemsize
    assert t.ndim == 2 and len(t) == 3


def test_constructor_reshapes_flat_data_of_the_right_size():
    t = Tensor([2, 3], DT_F32, np.arange(6, dtype=np.float32))
    assert t.shape == (2, 3) and t.data.shape == (2, 3)
    assert t.data[1, 0] == 3.0


def test_constructor_rejects_the_wrong_storage_dtype():
    with pytest.raises(DTypeError, match="BF16 is stored as numpy uint16, got numpy float32"):
        Tensor([2], DT_BF16, np.zeros(2, dtype=np.float32))


def test_constructor_rejects_a_non_datatype_dtype():
    with pytest.raises(DTypeError, match="Tensor: dtype must be a DataType"):
        Tensor([2], np.float32, np.zeros(2, dtype=np.float32))


def test_constructor_rejects_data_that_is_not_a_numpy_array():
    with pytest.raises(DTypeError, match="Tensor: data must be a numpy array, got list"):
        Tensor([2], DT_F32, [1.0, 2.0])


def test_constructor_rejects_data_of_the_wrong_size():
    with pytest.raises(ShapeError, match=r"shape \[2 3\] needs 6 elements, data has 5"):
        Tensor([2, 3], DT_F32, np.zeros(5, dtype=np.float32))


def test_constructor_rejects_non_contiguous_data():
    transposed = np.zeros((3, 2), dtype=np.float32).T  # shape (2, 3), Fortran order
    with pytest.raises(ShapeError, match="C-contiguous"):
        Tensor([2, 3], DT_F32, transposed)


def test_from_numpy_infers_the_dtype():
    assert Tensor.from_numpy(np.zeros(2, np.float32)).dtype is DT_F32
    assert Tensor.from_numpy(np.zeros(2, np.int32)).dtype is DT_INT32
    assert Tensor.from_numpy(np.zeros(2, np.int64)).dtype is DT_INT64
    assert Tensor.from_numpy(np.zeros(2, np.bool_)).dtype is DT_BOOL
    assert Tensor.from_numpy(np.zeros(2, np.complex64)).dtype is DT_COMPLEX64


def test_from_numpy_makes_non_contiguous_input_contiguous():
    a = np.arange(6, dtype=np.float32).reshape(2, 3).T
    t = Tensor.from_numpy(a)
    assert t.shape == (3, 2) and t.data.flags.c_contiguous
    np.testing.assert_array_equal(t.data, a)


def test_from_numpy_rejects_float64():
    with pytest.raises(DTypeError, match="float64 has no tensor dtype"):
        Tensor.from_numpy(np.zeros(2, np.float64))


def test_numpy_of_f32_is_the_storage_itself():
    t = Tensor.from_numpy(np.zeros(3, np.float32))
    assert t.numpy() is t.data


def test_numpy_of_bf16_is_a_float32_copy():
    t = Tensor.from_numpy(np.array([0x3FC0], dtype=np.uint16), DT_BF16)  # 1.5
    out = t.numpy()
    assert out.dtype == np.float32 and out[0] == 1.5
    assert not np.shares_memory(out, t.data)


@pytest.mark.parametrize(
    "array, dtype, expected",
    [
        (np.array([2.5], np.float32), None, 2.5),
        (np.array([[0x4049]], np.uint16), DT_BF16, 3.140625),  # 0x4049 = 2 * (1 + 73/128)
        (np.array(7, np.int64), None, 7),
        (np.array([True]), None, True),
        (np.array([1 + 2j], np.complex64), None, 1 + 2j),
    ],
)
def test_item_returns_the_python_scalar_of_a_one_element_tensor(array, dtype, expected):
    value = Tensor.from_numpy(array, dtype).item()
    assert value == expected and type(value) is type(expected)


def test_item_of_a_tensor_with_several_elements_is_an_error():
    with pytest.raises(ShapeError, match=r"Tensor.item: tensor of shape \[2 2\] has 4 elements"):
        Tensor.from_numpy(np.zeros((2, 2), np.float32)).item()


def test_only_f32_and_bf16_are_float_dtypes():
    assert DT_F32.is_float and DT_BF16.is_float
    assert not any(d.is_float for d in (DT_INT32, DT_INT64, DT_BOOL, DT_COMPLEX64))


def test_dtypes_print_their_display_name():
    assert [str(d) for d in (DT_F32, DT_BF16, DT_INT32, DT_INT64, DT_BOOL, DT_COMPLEX64)] == [
        "F32", "BF16", "INT32", "INT64", "BOOL", "COMPLEX64"
    ]
