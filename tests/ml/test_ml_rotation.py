"""MultiplyComplexPairs: each head's adjacent pairs read as complex numbers, times a complex factor per
position and pair (the rotary embedding's rotation).

Reference: numpy complex128 arithmetic on the same pairs. Each float32 component of the kernel's
product is two products and a sum, so it is within a few float32 ulps of |x| |factor|; a bf16
result is within one bf16 ulp of the exact product rounded to nearest.
"""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_COMPLEX64, DT_F32, Tensor
from ml_reference import bf16_bits_to_f64_ref, bf16_ulp, random_bf16_bits


def rotations(rng: np.random.Generator, n: int, pairs: int) -> np.ndarray:
    return np.exp(1j * rng.uniform(-np.pi, np.pi, size=(n, pairs))).astype(np.complex64)


def reference(x64: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """x [n, heads, 2k] float64, factors [n, k] -> the product as float64 pairs."""
    z = x64[..., 0::2] + 1j * x64[..., 1::2]
    product = z * factors.astype(np.complex128)[:, None, :]
    out = np.empty_like(x64)
    out[..., 0::2], out[..., 1::2] = product.real, product.imag
    return out


def test_f32_equals_the_complex_product_of_each_pair():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    factors = rotations(rng, 3, 4)
    got = ml.MultiplyComplexPairs(Tensor.from_numpy(x), Tensor.from_numpy(factors))
    assert got.dtype is DT_F32 and got.shape == (3, 5, 8)
    ref = reference(x.astype(np.float64), factors)
    magnitude = np.repeat(np.hypot(x[..., 0::2], x[..., 1::2]), 2, axis=-1)  # |pair| * |factor| (=1)
    assert (np.abs(got.data - ref) <= 4 * np.finfo(np.float32).eps * magnitude + 1e-30).all()


def test_bf16_is_within_one_bf16_ulp_of_the_exact_product():
    rng = np.random.default_rng(5)
    bits = random_bf16_bits(rng, (2, 4, 16), -2.0, 2.0)
    factors = rotations(rng, 2, 8)
    got = ml.MultiplyComplexPairs(Tensor.from_numpy(bits, DT_BF16), Tensor.from_numpy(factors))
    assert got.dtype is DT_BF16
    ref = reference(bf16_bits_to_f64_ref(bits), factors)
    assert (np.abs(bf16_bits_to_f64_ref(got.data) - ref) <= bf16_ulp(ref)).all()


def test_halves_pairs_feature_i_with_feature_i_plus_half_and_writes_the_pair_side_by_side():
    # Hugging Face's layout: pair i is (x[i], x[i + k]); the rotated pair lands at (2i, 2i+1), the
    # interleaved order. Reference: the halves moved side by side by numpy, then the same product.
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 2, 8)).astype(np.float32)
    factors = rotations(rng, 3, 4)
    got = ml.MultiplyComplexPairs(Tensor.from_numpy(x), Tensor.from_numpy(factors), halves=True)
    side_by_side = x.reshape(3, 2, 2, 4).transpose(0, 1, 3, 2).reshape(3, 2, 8).astype(np.float64)
    ref = reference(side_by_side, factors)
    magnitude = np.repeat(np.hypot(side_by_side[..., 0::2], side_by_side[..., 1::2]), 2, axis=-1)
    assert (np.abs(got.data - ref) <= 4 * np.finfo(np.float32).eps * magnitude + 1e-30).all()


def test_halves_in_bf16_is_within_one_bf16_ulp_of_the_exact_product():
    rng = np.random.default_rng(7)
    bits = random_bf16_bits(rng, (2, 3, 16), -2.0, 2.0)
    factors = rotations(rng, 2, 8)
    got = ml.MultiplyComplexPairs(Tensor.from_numpy(bits, DT_BF16), Tensor.from_numpy(factors), halves=True)
    side_by_side = bf16_bits_to_f64_ref(bits).reshape(2, 3, 2, 8).transpose(0, 1, 3, 2).reshape(2, 3, 16)
    ref = reference(side_by_side, factors)
    assert (np.abs(bf16_bits_to_f64_ref(got.data) - ref) <= bf16_ulp(ref)).all()


def test_the_factor_of_a_position_turns_every_head_alike():
    x = np.array([[[1.0, 0.0], [0.0, 2.0]]], dtype=np.float32)  # one position, two heads, one pair
    quarter_turn = np.array([[1j]], dtype=np.complex64)
    got = ml.MultiplyComplexPairs(Tensor.from_numpy(x), Tensor.from_numpy(quarter_turn)).data
    np.testing.assert_array_equal(got, [[[0.0, 1.0], [-2.0, 0.0]]])  # 1 -> i, 2i -> -2


def test_a_rotation_keeps_the_length_of_each_pair():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 3, 32)).astype(np.float32)
    got = ml.MultiplyComplexPairs(Tensor.from_numpy(x), Tensor.from_numpy(rotations(rng, 4, 16))).data
    np.testing.assert_allclose(np.hypot(got[..., 0::2], got[..., 1::2]), np.hypot(x[..., 0::2], x[..., 1::2]), rtol=1e-6)


@pytest.mark.parametrize(
    "x_shape, f_shape",
    [((2, 3, 8), (2, 3)), ((2, 3, 8), (1, 4)), ((2, 3, 7), (2, 3)), ((2, 8), (2, 4))],
)
def test_shapes_that_do_not_fit_are_an_error_naming_both(x_shape, f_shape):
    x = Tensor.from_numpy(np.zeros(x_shape, np.float32))
    f = Tensor.from_numpy(np.ones(f_shape, np.complex64))
    with pytest.raises(ShapeError, match=r"MultiplyComplexPairs: x shape \[.*\] must be \[n heads 2k\] and factors shape"):
        ml.MultiplyComplexPairs(x, f)


def test_factors_must_be_complex():
    x = Tensor.from_numpy(np.zeros((1, 1, 2), np.float32))
    with pytest.raises(DTypeError, match="MultiplyComplexPairs: factors dtype F32 is not supported"):
        ml.MultiplyComplexPairs(x, Tensor.from_numpy(np.ones((1, 1), np.float32)))
