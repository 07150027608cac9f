"""Reductions along one dimension: Mean, Softmax, Argmax.

References are numpy in float64. The kernels accumulate in float32, so F32 results are compared with
a tolerance of a few float32 ulps per accumulated element; BF16 results must be the float64 value
rounded to nearest even, except within that float32 error of a bf16 tie (see ml_reference.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_F32, DT_INT32, DT_INT64, Tensor
from ml_reference import assert_bf16_correctly_rounded, bf16_bits_to_f64_ref, random_bf16_bits

F32_EPS = float(np.finfo(np.float32).eps)


def f32(a) -> Tensor:
    return Tensor.from_numpy(np.asarray(a, dtype=np.float32))


def bf16(bits) -> Tensor:
    return Tensor.from_numpy(np.asarray(bits, dtype=np.uint16), DT_BF16)


def random_f32(seed: int, shape, low=-3.0, high=3.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


def softmax64(x: np.ndarray, axis: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---- Mean ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("keepdim", [False, True])
def test_mean_f32_along_each_dim(dim, keepdim):
    x = random_f32(1, (3, 4, 5))
    got = ml.Mean(f32(x), dim, keepdim)
    ref = x.astype(np.float64).mean(axis=dim, keepdims=keepdim)
    assert got.dtype is DT_F32 and got.shape == ref.shape
    np.testing.assert_allclose(got.data, ref, rtol=0, atol=8 * 3.0 * F32_EPS)


def test_mean_default_is_the_last_dim_without_keepdim():
    x = random_f32(2, (2, 6))
    assert ml.Mean(f32(x)).shape == (2,)


def test_mean_keepdim_shapes():
    t = ml.Ones([2, 3, 4])
    assert ml.Mean(t, 0, keepdim=True).shape == (1, 3, 4)
    assert ml.Mean(t, 1, keepdim=True).shape == (2, 1, 4)
    assert ml.Mean(t, -1, keepdim=True).shape == (2, 3, 1)


def test_mean_over_a_size_1_dim_is_the_input():
    x = random_f32(3, (4, 1, 3))
    got = ml.Mean(f32(x), 1)
    assert got.shape == (4, 3)
    np.testing.assert_array_equal(got.data, x[:, 0, :])


def test_mean_of_a_1d_tensor_is_a_scalar_tensor():
    got = ml.Mean(f32([1.0, 2.0, 3.0, 4.0]), 0)
    assert got.shape == () and got.item() == 2.5


def test_mean_of_squares_over_a_model_sized_row():
    # RMSNorm's Mean(Pow(x, 2), -1, keepdim=True) over dim 4096
    x = random_f32(4, (3, 4096))
    sq = x.astype(np.float64) ** 2
    got = ml.Mean(ml.Pow(f32(x), 2), -1, keepdim=True)
    assert got.shape == (3, 1)
    np.testing.assert_allclose(got.data, sq.mean(axis=-1, keepdims=True), rtol=4096 * F32_EPS / 8)


@pytest.mark.parametrize("dim", [0, -1])
def test_mean_bf16_is_the_float64_mean_rounded_once(dim):
    bits = random_bf16_bits(np.random.default_rng(5), (16, 16), 0.5, 4.0)
    got = ml.Mean(bf16(bits), dim)
    assert got.dtype is DT_BF16 and got.shape == (16,)
    ref = bf16_bits_to_f64_ref(bits).mean(axis=dim)
    assert_bf16_correctly_rounded(got.data, ref, f32_ulps=16)


def test_mean_bf16_of_a_1d_tensor():
    got = ml.Mean(bf16([0x3F80, 0x4000]), -1)  # mean(1, 2) = 1.5 = 0x3FC0
    assert got.dtype is DT_BF16 and got.shape == () and got.data.tolist() == 0x3FC0


def test_mean_over_an_empty_dim_is_nan():
    # numpy and PyTorch: the mean of no elements is NaN
    got = ml.Mean(ml.Zeros([3, 0]), -1)
    assert got.shape == (3,) and np.isnan(got.data).all()


def test_mean_over_a_non_empty_dim_of_an_empty_tensor_is_empty():
    assert ml.Mean(ml.Zeros([0, 3]), -1).shape == (0,)
    assert ml.Mean(ml.Zeros([0, 3]), 0).shape == (3,)


def test_mean_does_not_modify_the_input():
    x = random_f32(6, (3, 4))
    t = f32(x.copy())
    ml.Mean(t, 0)
    np.testing.assert_array_equal(t.data, x)


# ---- Softmax ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_softmax_f32_along_each_dim(dim):
    x = random_f32(10, (3, 4, 5), -10, 10)
    got = ml.Softmax(f32(x), dim)
    assert got.dtype is DT_F32 and got.shape == (3, 4, 5)
    np.testing.assert_allclose(got.data, softmax64(x, dim), rtol=8 * F32_EPS, atol=1e-12)
    np.testing.assert_allclose(got.data.astype(np.float64).sum(axis=dim), 1.0, rtol=0, atol=8 * F32_EPS)


def test_softmax_default_dim_is_last():
    x = random_f32(11, (2, 3))
    np.testing.assert_allclose(ml.Softmax(f32(x)).data, softmax64(x, -1), rtol=8 * F32_EPS)


def test_softmax_of_a_masked_row_gives_exact_zeros_where_masked():
    # scores + causal mask: the -inf entries contribute exp(-inf) = 0
    scores = random_f32(12, (4, 6), -5, 5)
    mask = np.triu(np.full((4, 6), -np.inf, dtype=np.float32), k=3)
    masked = scores + mask
    got = ml.Softmax(f32(masked), -1)
    assert (got.data[np.isinf(masked)] == 0).all()
    np.testing.assert_allclose(got.data, softmax64(masked, -1), rtol=8 * F32_EPS, atol=1e-12)
    np.testing.assert_allclose(got.data.sum(axis=-1), 1.0, atol=8 * F32_EPS)


def test_softmax_of_a_single_unmasked_entry_is_one():
    got = ml.Softmax(f32([[3.0, -np.inf, -np.inf]]), -1)
    assert got.data.tolist() == [[1.0, 0.0, 0.0]]


def test_softmax_of_a_fully_masked_row_is_nan_like_pytorch():
    # exp(-inf - (-inf)) = exp(NaN): PyTorch's softmax also returns NaN for an all -inf row
    got = ml.Softmax(f32([[-np.inf, -np.inf], [0.0, 0.0]]), -1)
    assert np.isnan(got.data[0]).all() and got.data[1].tolist() == [0.5, 0.5]


def test_softmax_subtracts_the_max_so_large_scores_do_not_overflow():
    got = ml.Softmax(f32([[1000.0, 1000.0], [1e30, 0.0]]), -1)
    assert got.data.tolist() == [[0.5, 0.5], [1.0, 0.0]]


def test_softmax_large_rows_take_the_parallel_kernel():
    # 64 x 1024 = 65,536 elements >= the parallel threshold
    x = random_f32(13, (64, 1024), -20, 20)
    got = ml.Softmax(f32(x), -1)
    np.testing.assert_allclose(got.data, softmax64(x, -1), rtol=64 * F32_EPS, atol=1e-30)


@pytest.mark.parametrize("dim", [0, -1])
def test_softmax_bf16_in_bf16_out_computed_in_float32(dim):
    bits = random_bf16_bits(np.random.default_rng(14), (8, 12), -6.0, 6.0)
    bits[0, :5] = 0xFF80  # some -inf (masked) entries
    got = ml.Softmax(bf16(bits), dim)
    assert got.dtype is DT_BF16 and got.shape == (8, 12)
    ref = softmax64(bf16_bits_to_f64_ref(bits), dim)
    assert_bf16_correctly_rounded(got.data, ref, f32_ulps=16)


def test_softmax_over_an_empty_dim_is_empty():
    assert ml.Softmax(ml.Zeros([3, 0]), -1).shape == (3, 0)


# ---- Argmax -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_argmax_matches_numpy_along_each_dim(dim):
    x = np.random.default_rng(20).integers(0, 4, size=(3, 4, 5)).astype(np.float32)  # many ties
    got = ml.Argmax(f32(x), dim)
    assert got.dtype is DT_INT64 and got.data.dtype == np.int64
    expected = np.argmax(x, axis=dim)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.data, expected)


def test_argmax_returns_the_first_index_on_ties():
    got = ml.Argmax(f32([[1.0, 5.0, 5.0, 2.0], [7.0, 7.0, 7.0, 7.0]]), -1)
    assert got.data.tolist() == [1, 0]


def test_argmax_default_dim_is_last_and_1d_gives_a_scalar():
    got = ml.Argmax(f32([0.5, -1.0, 3.0, 3.0]))
    assert got.shape == () and got.item() == 2 and isinstance(got.item(), int)


def test_argmax_with_negative_infinities_and_negative_values():
    assert ml.Argmax(f32([-np.inf, -5.0, -np.inf, -2.0])).item() == 3
    assert ml.Argmax(f32([-np.inf, -np.inf])).item() == 0


def test_argmax_treats_nan_as_the_maximum_like_numpy():
    assert ml.Argmax(f32([1.0, np.nan, 5.0, np.nan])).item() == int(np.argmax(np.float32([1.0, np.nan, 5.0, np.nan])))
    assert ml.Argmax(f32([np.nan, 1.0])).item() == 0


def test_argmax_bf16_compares_values_not_bits():
    # bits order differs from value order for negatives: -1 = 0xBF80 > -2 = 0xC000 as values
    got = ml.Argmax(bf16([0xC000, 0xBF80, 0xC040]))  # -2, -1, -3
    assert got.dtype is DT_INT64 and got.item() == 1


def test_argmax_over_logits_of_a_vocabulary():
    x = random_f32(21, (2, 32000), -10, 10)
    x[0, 31999] = 11.0
    x[1, 17] = 11.0
    assert ml.Argmax(f32(x), -1).data.tolist() == [31999, 17]


def test_argmax_over_an_empty_dim_is_an_error():
    with pytest.raises(ShapeError, match="Argmax: dimension -1 is empty"):
        ml.Argmax(ml.Zeros([3, 0]), -1)


# ---- errors -------------------------------------------------------------------------------------

REDUCTIONS = ["Mean", "Softmax", "Argmax"]


@pytest.mark.parametrize("op_name", REDUCTIONS)
@pytest.mark.parametrize("dim", [3, -4])
def test_reductions_reject_an_out_of_range_dim(op_name, dim):
    with pytest.raises(ShapeError, match=rf"{op_name}: dim {dim} is out of range for a tensor with 3 dimensions"):
        getattr(ml, op_name)(ml.Ones([2, 3, 4]), dim)


@pytest.mark.parametrize("op_name", REDUCTIONS)
def test_reductions_reject_a_scalar_tensor(op_name):
    with pytest.raises(ShapeError, match=rf"{op_name}: dim -1 is out of range for a tensor with 0 dimensions"):
        getattr(ml, op_name)(f32(np.float32(1.0)))


@pytest.mark.parametrize("op_name", REDUCTIONS)
@pytest.mark.parametrize("dtype", [DT_INT32, DT_INT64])
def test_reductions_reject_integer_dtypes(op_name, dtype):
    with pytest.raises(DTypeError, match=rf"{op_name}: input dtype {dtype} is not supported \(expected F32, BF16\)"):
        getattr(ml, op_name)(ml.Ones([2, 3], dtype))


@pytest.mark.parametrize("op_name", REDUCTIONS)
def test_reductions_need_a_tensor(op_name):
    with pytest.raises(DTypeError, match=rf"{op_name}: input must be a Tensor, got ndarray"):
        getattr(ml, op_name)(np.ones((2, 3), np.float32))
