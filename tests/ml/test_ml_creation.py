"""Creation ops: Zeros, Ones, Full, ARange, Outer, Polar, TriangularUpper."""

from __future__ import annotations

import os

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_COMPLEX64, DT_F32, DT_INT32, DT_INT64, Tensor
from ml_reference import bf16_bits_to_f32_ref, rne_bf16_bits


def f32(a) -> Tensor:
    return Tensor.from_numpy(np.asarray(a, dtype=np.float32))


# ---- Zeros, Ones, Full --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [DT_F32, DT_BF16, DT_INT32, DT_INT64])
def test_zeros_and_ones(dtype):
    z = ml.Zeros([2, 3], dtype)
    o = ml.Ones([2, 3], dtype)
    assert z.shape == o.shape == (2, 3) and z.dtype is o.dtype is dtype
    np.testing.assert_array_equal(z.numpy(), np.zeros((2, 3)))
    np.testing.assert_array_equal(o.numpy(), np.ones((2, 3)))


def test_bf16_one_is_0x3f80():
    assert ml.Ones([1], DT_BF16).data.tolist() == [0x3F80]


def _resident_bytes() -> int:
    for line in open("/proc/self/status").read().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line in /proc/self/status")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads resident memory from Linux's /proc")
def test_large_zeros_cost_no_resident_memory_until_written():
    # The KV cache is Zeros sized for the whole context (1 GB for Llama 2 7B in bf16); pages the
    # generation never writes must not count against the machine's memory.
    before = _resident_bytes()
    z = ml.Zeros([64, 1 << 20], DT_BF16)  # 128 MiB
    grown = _resident_bytes() - before
    assert z.data[-1, -1] == 0 and z.data[0, 0] == 0
    assert grown < 16 << 20, f"Zeros made {grown >> 20} MiB resident"


def test_zeros_with_an_empty_dimension():
    assert ml.Zeros([0, 4]).shape == (0, 4)


def test_full_f32_stores_the_float32_value():
    t = ml.Full([2, 2], 0.1)
    assert t.dtype is DT_F32
    np.testing.assert_array_equal(t.data, np.full((2, 2), np.float32(0.1)))


def test_full_bf16_rounds_the_fill_to_nearest_even():
    # 1 + 2^-8 is a tie between 0x3F80 and 0x3F81 -> 0x3F80; 0.1 -> reference rounding
    assert ml.Full([3], 1.0 + 2.0**-8, DT_BF16).data.tolist() == [0x3F80] * 3
    assert ml.Full([3], 1.0 + 2.0**-7 + 2.0**-8, DT_BF16).data.tolist() == [0x3F82] * 3
    assert ml.Full([1], 0.1, DT_BF16).data.tolist() == [rne_bf16_bits(float(np.float32(0.1)))]


def test_full_bf16_minus_infinity_is_0xff80():
    assert ml.Full([2, 2], -np.inf, DT_BF16).data.tolist() == [[0xFF80, 0xFF80]] * 2


def test_full_rejects_a_negative_dimension():
    with pytest.raises(ShapeError, match=r"Full: negative dimension in shape \[2 -1\]"):
        ml.Full([2, -1], 1.0)


# ---- ARange -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, end, step",
    [(0, 5, 1), (0, 10, 3), (2, 3, 0.25), (0, 128, 2), (5, 0, -1), (1, 2, 0.1), (0, 0, 1), (5, 0, 1), (0, 1, -1)],
)
def test_arange_f32_matches_numpy_arange(start, end, step):
    got = ml.ARange(start, end, step)
    expected = np.arange(start, end, step, dtype=np.float64).astype(np.float32)
    assert got.dtype is DT_F32
    np.testing.assert_array_equal(got.data, expected)


def test_arange_int64():
    got = ml.ARange(3, 11, 2, dtype=DT_INT64)
    assert got.dtype is DT_INT64
    np.testing.assert_array_equal(got.data, np.arange(3, 11, 2, dtype=np.int64))


def test_arange_bf16_rounds_each_value():
    got = ml.ARange(250, 260, 1, dtype=DT_BF16)
    # bf16 has 8 significant bits: above 256 only even integers exist; 257 is a tie -> 256, 259 -> 260
    np.testing.assert_array_equal(got.numpy(), [250, 251, 252, 253, 254, 255, 256, 256, 258, 260])


def test_arange_empty_range_is_empty():
    assert ml.ARange(0, 0).shape == (0,)
    assert ml.ARange(3, 1).shape == (0,)


def test_arange_zero_step_is_an_error():
    with pytest.raises(ShapeError, match="ARange: step must not be zero"):
        ml.ARange(0, 5, 0)


def test_arange_unsupported_dtype_is_an_error():
    with pytest.raises(DTypeError, match="ARange: dtype INT32 is not supported"):
        ml.ARange(0, 5, 1, dtype=DT_INT32)


# ---- Outer, Polar -------------------------------------------------------------------------------


def test_outer_matches_numpy_outer():
    a = np.arange(1, 5, dtype=np.float32)
    b = np.array([0.5, 1e-3, 3.0], dtype=np.float32)
    got = ml.Outer(f32(a), f32(b))
    assert got.dtype is DT_F32 and got.shape == (4, 3)
    # each product of two float32 rounded once to float32
    np.testing.assert_array_equal(got.data, np.outer(a.astype(np.float64), b.astype(np.float64)).astype(np.float32))


def test_outer_needs_1d_inputs():
    with pytest.raises(ShapeError, match=r"Outer: a must be 1-D, got shape \[2 2\]"):
        ml.Outer(f32(np.zeros((2, 2))), f32(np.zeros(2)))


def test_outer_needs_f32_inputs():
    with pytest.raises(DTypeError, match="Outer: b dtype INT64"):
        ml.Outer(f32(np.zeros(2)), Tensor.from_numpy(np.zeros(2, np.int64)))


def test_outer_needs_tensors():
    with pytest.raises(DTypeError, match="Outer: a must be a Tensor"):
        ml.Outer(np.zeros(2, np.float32), f32(np.zeros(2)))


def test_polar_matches_numpy_complex_exponential():
    rng = np.random.default_rng(0)
    magnitude = rng.uniform(0.1, 3.0, size=(4, 8)).astype(np.float32)
    angle = rng.uniform(-100.0, 100.0, size=(4, 8)).astype(np.float32)
    got = ml.Polar(f32(magnitude), f32(angle))
    assert got.dtype is DT_COMPLEX64 and got.shape == (4, 8)
    expected = magnitude.astype(np.float64) * np.exp(1j * angle.astype(np.float64))
    np.testing.assert_allclose(got.data, expected, rtol=0, atol=4e-7 * 3.0)


def test_polar_of_unit_magnitude_and_zero_angle_is_one():
    got = ml.Polar(f32(np.ones(3)), f32(np.zeros(3)))
    np.testing.assert_array_equal(got.data, np.ones(3, np.complex64))


def test_polar_shape_mismatch_is_an_error():
    with pytest.raises(ShapeError, match=r"Polar: abs shape \[3\] and angle shape \[4\] differ"):
        ml.Polar(f32(np.ones(3)), f32(np.ones(4)))


def test_polar_needs_tensors():
    with pytest.raises(DTypeError, match="Polar: abs must be a Tensor, got ndarray"):
        ml.Polar(np.ones(3, np.float32), f32(np.ones(3)))


def test_polar_needs_f32():
    with pytest.raises(DTypeError, match="Polar: angle dtype BF16"):
        ml.Polar(f32(np.ones(3)), ml.Ones([3], DT_BF16))


# ---- TriangularUpper ----------------------------------------------------------------------------


@pytest.mark.parametrize("diagonal", [0, 1, -1, 2, 5, -5])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (5, 3), (2, 3, 4)])
def test_triangular_upper_matches_numpy_triu(shape, diagonal):
    a = np.arange(1, np.prod(shape) + 1, dtype=np.float32).reshape(shape)
    got = ml.TriangularUpper(f32(a), diagonal)
    assert got.dtype is DT_F32 and got.shape == shape
    np.testing.assert_array_equal(got.data, np.triu(a, k=diagonal))


def test_triangular_upper_default_diagonal_is_zero():
    a = np.ones((3, 3), np.float32)
    np.testing.assert_array_equal(ml.TriangularUpper(f32(a)).data, np.triu(a))


@pytest.mark.parametrize("n, start_pos", [(1, 0), (4, 0), (3, 5), (1, 7)])
def test_causal_mask_with_start_pos(n, start_pos):
    # Llama's mask for n new tokens after start_pos cached ones: row i (position start_pos + i) may
    # see columns 0..start_pos+i, the rest is -inf.
    total = start_pos + n
    mask = ml.TriangularUpper(ml.Full([n, total], -np.inf), diagonal=start_pos + 1)
    expected = np.triu(np.full((n, total), -np.inf, dtype=np.float32), k=start_pos + 1)
    np.testing.assert_array_equal(mask.data, expected)
    for i in range(n):
        visible = np.isfinite(mask.data[i])
        assert visible.sum() == start_pos + i + 1 and visible[: start_pos + i + 1].all()
        assert (mask.data[i][visible] == 0).all()


def test_triangular_upper_bf16_mask_zeroes_with_plus_zero_bits():
    mask = ml.TriangularUpper(ml.Full([2, 3], -np.inf, DT_BF16), diagonal=1)
    assert mask.dtype is DT_BF16
    assert mask.data.tolist() == [[0x0000, 0xFF80, 0xFF80], [0x0000, 0x0000, 0xFF80]]
    np.testing.assert_array_equal(mask.numpy(), bf16_bits_to_f32_ref(mask.data))


def test_triangular_upper_needs_two_dimensions():
    with pytest.raises(ShapeError, match=r"TriangularUpper: needs at least 2 dimensions, got shape \[3\]"):
        ml.TriangularUpper(f32(np.zeros(3)))


def test_triangular_upper_needs_a_tensor():
    with pytest.raises(DTypeError, match="TriangularUpper: input must be a Tensor"):
        ml.TriangularUpper(np.zeros((2, 2), np.float32))
