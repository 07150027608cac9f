"""RMSNormalization: x / sqrt(mean(x^2) + eps) along the last dimension, in float32 (bf16 rounded once).

Reference: the formula in float64 numpy. The float32 kernel rounds each square, the sum, the mean,
the square root and the product: a few float32 ulps in all. A bf16 result is the float64 value
rounded to nearest even, or the neighbour where that value lies within those few float32 ulps of
a rounding boundary.
"""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_F32, DT_INT64, Tensor
from ml_reference import assert_bf16_correctly_rounded, assert_f32_within_ulps, bf16_bits_to_f64_ref, random_bf16_bits

EPS = 1e-5


def reference(x64: np.ndarray, eps: float = EPS) -> np.ndarray:
    return x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + np.float64(np.float32(eps)))


@pytest.mark.parametrize("shape", [(1, 576), (4, 64), (3, 2, 48), (7,)])
def test_f32_is_the_float64_formula_within_a_few_ulps(shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got = ml.RMSNormalization(Tensor.from_numpy(x), EPS)
    assert got.dtype is DT_F32 and got.shape == shape
    # the sum of squares of n float32 values carries up to ~n/2 ulps in the worst case; 16 is far
    # above what a random row shows and far below a wrong formula
    assert_f32_within_ulps(got.data, reference(x.astype(np.float64)), ulps=16)


@pytest.mark.parametrize("shape", [(1, 576), (5, 64)])
def test_bf16_is_the_float64_formula_rounded_once(shape):
    bits = random_bf16_bits(np.random.default_rng(2), shape, -3.0, 3.0)
    got = ml.RMSNormalization(Tensor.from_numpy(bits, DT_BF16), EPS)
    assert got.dtype is DT_BF16 and got.shape == shape
    assert_bf16_correctly_rounded(got.data, reference(bf16_bits_to_f64_ref(bits)), f32_ulps=16)


def test_each_row_is_normalized_on_its_own():
    x = np.array([[3.0, 4.0], [30.0, 40.0]], dtype=np.float32)  # rms 3.5355 and 35.355
    got = ml.RMSNormalization(Tensor.from_numpy(x), 0.0).data
    np.testing.assert_allclose(got, [[0.8485281, 1.1313708], [0.8485281, 1.1313708]], rtol=1e-6)


def test_epsilon_keeps_a_row_of_zeros_at_zero():
    got = ml.RMSNormalization(Tensor.from_numpy(np.zeros((2, 8), np.float32)), EPS).data
    np.testing.assert_array_equal(got, np.zeros((2, 8), np.float32))


def test_the_input_is_not_modified():
    x = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
    before = x.copy()
    ml.RMSNormalization(Tensor.from_numpy(x), EPS)
    np.testing.assert_array_equal(x, before)


def test_integer_input_is_an_error():
    with pytest.raises(DTypeError, match="RMSNormalization: x dtype INT64 is not supported"):
        ml.RMSNormalization(Tensor.from_numpy(np.ones((2, 3), np.int64)), EPS)


def test_scalar_input_is_an_error():
    with pytest.raises(ShapeError, match=r"RMSNormalization: x must have at least 1 dimension"):
        ml.RMSNormalization(Tensor.from_numpy(np.float32(2.0).reshape(())), EPS)


def test_needs_a_tensor():
    with pytest.raises(DTypeError, match="RMSNormalization: x must be a Tensor"):
        ml.RMSNormalization(np.ones(3, np.float32), EPS)  # type: ignore[arg-type]
