"""bfloat16 conversions: float32 -> bf16 round to nearest even, bf16 -> float32 exact.

Expected bit patterns are derived by hand from the IEEE 754 layouts (see ml_reference.py):
float32 = 1 sign, 8 exponent, 23 fraction bits; bf16 keeps the top 16 bits, so a float32 lies between
the two bf16 numbers `hi16` and `hi16 + 1` and its low 16 bits say where: below 0x8000 rounds down,
above rounds up, exactly 0x8000 is a tie that goes to the even `hi16` (last kept bit 0).
"""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import DTypeError
from llamanuts.ml import DT_BF16, DT_F32, Tensor
from ml_reference import (
    BF16_CANONICAL_NAN,
    all_bf16_bits,
    bf16_bits_to_f32_ref,
    f32_from_bits,
    rne_bf16_array,
)

# (float32 bits, expected bf16 bits, why)
EDGE_CASES = [
    # 1.0 = 0x3F800000; bf16 spacing at 1 is 2^-7, so 1 + 2^-8 (low half 0x8000) is the midpoint
    # between 0x3F80 (fraction ...0, even) and 0x3F81 (odd): the tie goes down to the even one.
    (0x3F808000, 0x3F80, "tie between 0x3F80 and 0x3F81 -> even 0x3F80 (rounds down)"),
    # 1 + 2^-7 + 2^-8 is the midpoint between 0x3F81 (odd) and 0x3F82 (even): the tie goes up.
    (0x3F818000, 0x3F82, "tie between 0x3F81 and 0x3F82 -> even 0x3F82 (rounds up)"),
    (0x3F808001, 0x3F81, "one float32 ulp above a tie rounds up"),
    (0x3F807FFF, 0x3F80, "one float32 ulp below a tie rounds down"),
    (0x3F818001, 0x3F82, "just above the 0x3F81/0x3F82 tie"),
    (0x3F817FFF, 0x3F81, "just below the 0x3F81/0x3F82 tie rounds down to the odd one"),
    (0x3F800000, 0x3F80, "1.0 is exact"),
    (0x3F80FFFF, 0x3F81, "largest low half rounds up"),
    # negative values round the same way on the magnitude (sign bit untouched)
    (0xBF808000, 0xBF80, "-(1 + 2^-8): tie to even, magnitude down"),
    (0xBF818000, 0xBF82, "-(1 + 2^-7 + 2^-8): tie to even, magnitude up"),
    # largest finite bf16 = 0x7F7F = (2 - 2^-7) * 2^127 is exact
    (0x7F7F0000, 0x7F7F, "largest finite bf16 is exact"),
    (0x7F7F7FFF, 0x7F7F, "just below the midpoint between 0x7F7F and 2^128 stays finite"),
    # the midpoint (2 - 2^-8) * 2^127 ties between 0x7F7F (odd) and 0x7F80 (even, = 2^128): the even
    # choice is 2^128, which does not fit, so IEEE rounding gives infinity. This is the smallest
    # float32 that rounds to infinity.
    (0x7F7F8000, 0x7F80, "tie above the largest bf16 rounds to +inf"),
    (0x7F7FFFFF, 0x7F80, "largest finite float32 (2 - 2^-23) * 2^127 rounds to +inf"),
    (0xFF7FFFFF, 0xFF80, "most negative finite float32 rounds to -inf"),
    # subnormals: float32 subnormal 0x0000xxxx = xxxx * 2^-149; the bf16 subnormal 0x0001 = 2^-133.
    # 0x00008000 = 2^15 * 2^-149 = 2^-134, exactly half of 2^-133: tie between 0 and 0x0001 -> 0.
    (0x00008000, 0x0000, "subnormal tie between 0 and the smallest bf16 subnormal -> +0"),
    (0x00008001, 0x0001, "just above that tie rounds up to the smallest bf16 subnormal"),
    # 0x00018000 = 1.5 * 2^-133: tie between 0x0001 (odd) and 0x0002 (even) -> 0x0002.
    (0x00018000, 0x0002, "subnormal tie between 0x0001 and 0x0002 -> even 0x0002"),
    (0x80008000, 0x8000, "negative subnormal tie -> -0"),
    # largest float32 subnormal (2^23 - 1) * 2^-149 is above the midpoint between 0x007F
    # (127 * 2^-133) and 0x0080 (2^-126, the smallest normal bf16): rounds up into the normals.
    (0x007FFFFF, 0x0080, "largest float32 subnormal rounds up to the smallest normal bf16"),
    (0x007F8000, 0x0080, "tie between 0x007F (odd) and 0x0080 (even) -> smallest normal"),
    (0x007F7FFF, 0x007F, "just below that tie stays the largest bf16 subnormal"),
    (0x00000001, 0x0000, "smallest float32 subnormal 2^-149 rounds to +0"),
    # signed zeros and infinities are exact
    (0x00000000, 0x0000, "+0"),
    (0x80000000, 0x8000, "-0 keeps its sign"),
    (0x7F800000, 0x7F80, "+inf"),
    (0xFF800000, 0xFF80, "-inf"),
]

# Every NaN becomes the canonical quiet NaN 0x7FC0 (PyTorch's c10::BFloat16). Naive rounding of
# 0x7F808000 would carry into the exponent and give 0x7F80 = +inf, and 0x7F800001 would truncate to
# 0x7F80 = +inf as well, which is why NaNs must be recognised before rounding.
NAN_PATTERNS = [
    0x7FC00000,  # the default quiet NaN
    0x7F800001,  # signalling NaN, smallest payload (truncation would give +inf)
    0x7F808000,  # signalling NaN whose rounding would carry into +inf
    0x7FBFFFFF,  # signalling NaN, largest payload
    0x7FFFFFFF,  # quiet NaN, all payload bits set
    0xFFC00000,  # negative quiet NaN
    0xFF800001,  # negative signalling NaN
    0xFFFFFFFF,  # negative NaN, all bits set
]


def _round(patterns: list[int]) -> np.ndarray:
    return ml.float32_to_bf16_bits(f32_from_bits(*patterns))


@pytest.mark.parametrize("f32_bits, bf16_bits, why", EDGE_CASES, ids=[f"{c[0]:08X}" for c in EDGE_CASES])
def test_float32_to_bf16_rounds_to_nearest_even_on_edge_values(f32_bits, bf16_bits, why):
    assert int(_round([f32_bits])[0]) == bf16_bits, why


def test_edge_values_agree_with_the_value_based_reference():
    # the hand-derived table and the independent float64 reference say the same thing
    patterns = [c[0] for c in EDGE_CASES]
    expected = [c[1] for c in EDGE_CASES]
    assert rne_bf16_array(f32_from_bits(*patterns)).tolist() == expected


@pytest.mark.parametrize("pattern", NAN_PATTERNS, ids=[f"{p:08X}" for p in NAN_PATTERNS])
def test_every_nan_becomes_the_canonical_quiet_nan(pattern):
    assert np.isnan(f32_from_bits(pattern)[0])
    assert int(_round([pattern])[0]) == BF16_CANONICAL_NAN


def test_rounding_keeps_shape_and_returns_uint16():
    values = np.zeros((2, 3, 4), dtype=np.float32)
    bits = ml.float32_to_bf16_bits(values)
    assert bits.shape == (2, 3, 4) and bits.dtype == np.uint16


def test_rounding_of_an_empty_array_is_empty():
    assert ml.float32_to_bf16_bits(np.zeros((0, 5), dtype=np.float32)).shape == (0, 5)


def test_rounding_matches_the_float64_reference_on_random_bit_patterns():
    # Property test: uniformly random float32 bit patterns (all exponents, both signs, subnormals,
    # NaNs, infinities). 70,000 elements also takes the parallel kernel (>= 65,536 elements).
    rng = np.random.default_rng(20240501)
    patterns = rng.integers(0, 1 << 32, size=70_000, dtype=np.uint64).astype(np.uint32)
    got = ml.float32_to_bf16_bits(patterns.view(np.float32))
    np.testing.assert_array_equal(got, rne_bf16_array(patterns.view(np.float32)))


def test_rounding_matches_the_float64_reference_near_ties():
    # Random upper halves with the lower half at, just below and just above a tie: where the
    # rounding rule matters most. Serial kernel (fewer than 65,536 elements).
    rng = np.random.default_rng(7)
    high = rng.integers(0, 1 << 16, size=6_000, dtype=np.uint64).astype(np.uint32) << 16
    patterns = np.concatenate([high | 0x7FFF, high | 0x8000, high | 0x8001, high, high | 0xFFFF])
    got = ml.float32_to_bf16_bits(patterns.view(np.float32))
    np.testing.assert_array_equal(got, rne_bf16_array(patterns.view(np.float32)))


def test_round_to_bf16_returns_float32_holding_the_nearest_bf16():
    values = f32_from_bits(0x3F808000, 0x3F818000, 0x3F808001)
    got = ml.round_to_bf16(values)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), np.array([0x3F800000, 0x3F820000, 0x3F810000], np.uint32))


def test_bf16_to_float32_is_exact_for_all_65536_bit_patterns():
    # By definition the bf16 bits are the high half of the float32 and the low half is zero. Every
    # non-NaN pattern must come back bit for bit (this also checks -0 and subnormals); NaNs stay NaN.
    # 65,536 elements takes the parallel kernel.
    bits = all_bf16_bits()
    got = ml.bf16_bits_to_float32(bits)
    expected = bf16_bits_to_f32_ref(bits)
    assert got.dtype == np.float32 and got.shape == (65536,)
    nan = np.isnan(expected)
    assert nan.sum() == 2 * 127  # exponent all ones, fraction != 0, both signs
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), expected[~nan].view(np.uint32))


def test_bf16_to_float32_on_a_small_array_keeps_shape():
    bits = np.array([[0x3F80, 0xC000], [0x0001, 0x8000]], dtype=np.uint16)  # 1, -2, 2^-133, -0
    got = ml.bf16_bits_to_float32(bits)
    assert got.shape == (2, 2)
    np.testing.assert_array_equal(got.view(np.uint32), np.array([[0x3F800000, 0xC0000000], [0x00010000, 0x80000000]], np.uint32))


def test_every_non_nan_bf16_survives_widening_then_rounding():
    bits = all_bf16_bits()
    keep = ~np.isnan(bf16_bits_to_f32_ref(bits))
    back = ml.float32_to_bf16_bits(ml.bf16_bits_to_float32(bits))
    np.testing.assert_array_equal(back[keep], bits[keep])


# ---- through the Tensor API ---------------------------------------------------------------------


def test_tensor_from_numpy_bf16_numpy_returns_the_exact_float32_values():
    bits = np.array([[0x3F80, 0x4049], [0xFF80, 0x0001]], dtype=np.uint16)  # 1, 3.140625, -inf, 2^-133
    t = Tensor.from_numpy(bits, DT_BF16)
    assert t.dtype is DT_BF16 and t.shape == (2, 2)
    np.testing.assert_array_equal(t.data, bits)
    np.testing.assert_array_equal(t.numpy(), np.array([[1.0, 3.140625], [-np.inf, 2.0**-133]], np.float32))


def test_tobfloat16_then_tofloat32_round_trips_through_the_reference_rounding():
    rng = np.random.default_rng(3)
    values = (rng.standard_normal((4, 33)) * 10).astype(np.float32)
    b = ml.ToBFloat16(Tensor.from_numpy(values))
    assert b.dtype is DT_BF16 and b.shape == (4, 33)
    np.testing.assert_array_equal(b.data, rne_bf16_array(values))
    f = ml.ToFloat32(b)
    assert f.dtype is DT_F32
    np.testing.assert_array_equal(f.numpy(), bf16_bits_to_f32_ref(rne_bf16_array(values)))


def test_from_numpy_bf16_needs_uint16_bits():
    with pytest.raises(DTypeError, match="from_numpy"):
        Tensor.from_numpy(np.ones(3, dtype=np.float32), DT_BF16)


def test_from_numpy_uint16_without_dtype_is_ambiguous():
    with pytest.raises(DTypeError, match="uint16"):
        Tensor.from_numpy(np.ones(3, dtype=np.uint16))
