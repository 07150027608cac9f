"""Element-wise ops: Add, MultiplyElementwise (PyTorch broadcasting), AddScalar, DivToScalar, Pow,
RSqrt, Silu, ToFloat32, ToBFloat16.

References:
- F32: the same formula in float64 numpy on the float32 inputs. A single IEEE operation (+, *, /)
  on float32 operands is correctly rounded, and rounding its float64 result to float32 gives the same
  value (53 >= 2*24 + 2 bits: double rounding is harmless for +, -, *, /, sqrt), so those are exact;
  compound or transcendental formulas are checked to a few float32 ulps.
- BF16: PyTorch's rule is "widen to float32, compute in float32, round once to bf16". For + and * of
  two bf16 operands and for x*x the float32 step is exact or harmless (24 >= 2*8 + 2), so the result
  must be exactly rne(float64 result). For scalar ops the scalar is a float32, so the reference does
  the float32 operation in numpy and then applies the independent RNE rounding of ml_reference.py.
  For pow(x, 0.5), rsqrt and silu the float32 evaluation carries ~1-3 float32 ulps of error before the
  final rounding, so near a bf16 tie either neighbour is accepted (and nowhere else).
"""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_COMPLEX64, DT_F32, DT_INT32, DT_INT64, Tensor
from ml_reference import (
    all_bf16_bits,
    assert_bf16_correctly_rounded,
    assert_f32_within_ulps,
    bf16_bits_to_f32_ref,
    bf16_bits_to_f64_ref,
    random_bf16_bits,
    rne_bf16_array,
)

# The kernels are numpy ufuncs, so numpy reports the IEEE flags (overflow, invalid) they raise as
# RuntimeWarnings. Here infinities and NaNs are fed on purpose, to check the IEEE results.
pytestmark = pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")


def f32(a) -> Tensor:
    return Tensor.from_numpy(np.asarray(a, dtype=np.float32))


def bf16(bits) -> Tensor:
    return Tensor.from_numpy(np.asarray(bits, dtype=np.uint16), DT_BF16)


def random_f32(seed: int, shape, low=-4.0, high=4.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


def random_bf16_pairs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n pairs of arbitrary bf16 bit patterns (all exponents, subnormals, infinities, NaNs), plus
    pairs of ordinary values of similar size where rounding actually happens."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    b = rng.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    a2 = random_bf16_bits(rng, n, -8.0, 8.0)
    b2 = random_bf16_bits(rng, n, -8.0, 8.0)
    return np.concatenate([a, a2]), np.concatenate([b, b2])


# ---- broadcasting -------------------------------------------------------------------------------

BROADCAST_CASES = [
    ((3, 1), (1, 4), (3, 4)),
    ((4,), (2, 3, 4), (2, 3, 4)),
    ((2, 3, 4), (4,), (2, 3, 4)),
    ((2, 1, 4), (3, 1), (2, 3, 4)),
    ((1,), (2, 3), (2, 3)),  # scalar-like [1]
    ((2, 3), (1,), (2, 3)),
    ((5, 1, 1), (1, 1, 1), (5, 1, 1)),
    ((2, 3), (2, 3), (2, 3)),
    ((0, 4), (1, 4), (0, 4)),  # empty dimension against size 1
    ((0,), (1,), (0,)),
    ((2, 0), (2, 1), (2, 0)),
    ((3, 0), (0,), (3, 0)),
]


@pytest.mark.parametrize("shape_a, shape_b, expected", BROADCAST_CASES)
@pytest.mark.parametrize("op, np_op", [(ml.Add, np.add), (ml.MultiplyElementwise, np.multiply)])
def test_f32_binary_ops_broadcast_like_pytorch(op, np_op, shape_a, shape_b, expected):
    a = random_f32(1, shape_a)
    b = random_f32(2, shape_b)
    got = op(f32(a), f32(b))
    assert got.dtype is DT_F32 and got.shape == expected
    assert got.data.flags.c_contiguous
    ref = np_op(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got.data, ref)


@pytest.mark.parametrize("shape_a, shape_b, expected", BROADCAST_CASES[:5])
@pytest.mark.parametrize("op, np_op", [(ml.Add, np.add), (ml.MultiplyElementwise, np.multiply)])
def test_bf16_binary_ops_broadcast_like_pytorch(op, np_op, shape_a, shape_b, expected):
    rng = np.random.default_rng(3)
    a = random_bf16_bits(rng, shape_a)
    b = random_bf16_bits(rng, shape_b)
    got = op(bf16(a), bf16(b))
    assert got.dtype is DT_BF16 and got.shape == expected
    ref = np_op(bf16_bits_to_f64_ref(a), bf16_bits_to_f64_ref(b))
    np.testing.assert_array_equal(got.data, rne_bf16_array(ref))


@pytest.mark.parametrize("op_name", ["Add", "MultiplyElementwise"])
@pytest.mark.parametrize(
    "shape_a, shape_b, dim, da, db",
    [((3, 2), (2, 3, 4), -1, 2, 4), ((3,), (4,), -1, 3, 4), ((2, 3), (4, 3), -2, 2, 4), ((0,), (2,), -1, 0, 2)],
)
def test_not_broadcastable_shapes_are_an_error_naming_both_shapes(op_name, shape_a, shape_b, dim, da, db):
    op = getattr(ml, op_name)
    fa = " ".join(map(str, shape_a))
    fb = " ".join(map(str, shape_b))
    message = rf"{op_name}: shapes \[{fa}\] and \[{fb}\] are not broadcastable \(dimension {dim}: {da} vs {db}\)"
    with pytest.raises(ShapeError, match=message):
        op(ml.Zeros(shape_a), ml.Zeros(shape_b))


@pytest.mark.parametrize("op_name", ["Add", "MultiplyElementwise"])
def test_mixed_dtypes_are_an_error(op_name):
    message = rf"{op_name}: dtypes F32 \(shape \[2\]\) and BF16 \(shape \[2\]\) differ"
    with pytest.raises(DTypeError, match=message):
        getattr(ml, op_name)(ml.Zeros([2]), ml.Zeros([2], DT_BF16))


@pytest.mark.parametrize("op_name, dtype", [("Add", DT_INT32), ("Add", DT_COMPLEX64), ("MultiplyElementwise", DT_INT64)])
def test_unsupported_dtypes_are_an_error(op_name, dtype):
    with pytest.raises(DTypeError, match=rf"{op_name}: input dtype {dtype} is not supported"):
        getattr(ml, op_name)(ml.Zeros([2], dtype), ml.Zeros([2], dtype))


@pytest.mark.parametrize("op_name", ["Add", "MultiplyElementwise"])
def test_binary_ops_need_tensors(op_name):
    with pytest.raises(DTypeError, match=rf"{op_name}: b must be a Tensor, got ndarray"):
        getattr(ml, op_name)(ml.Zeros([2]), np.zeros(2, np.float32))


def test_binary_ops_do_not_modify_their_inputs():
    a, b = random_f32(4, (3, 4)), random_f32(5, (4,))
    ta, tb = f32(a.copy()), f32(b.copy())
    ml.Add(ta, tb)
    ml.MultiplyElementwise(ta, tb)
    np.testing.assert_array_equal(ta.data, a)
    np.testing.assert_array_equal(tb.data, b)


# ---- bf16 Add / Multiply: correctly rounded -----------------------------------------------------


@pytest.mark.parametrize("op, np_op", [(ml.Add, np.add), (ml.MultiplyElementwise, np.multiply)])
def test_bf16_binary_ops_are_the_float64_result_rounded_to_nearest_even(op, np_op):
    a, b = random_bf16_pairs(11, 20_000)
    got = op(bf16(a), bf16(b))
    with np.errstate(all="ignore"):
        ref = np_op(bf16_bits_to_f64_ref(a), bf16_bits_to_f64_ref(b))
    assert_bf16_correctly_rounded(got.data, ref)


def test_bf16_add_rounds_a_tie_to_even():
    # 1 + 2^-8 is exactly halfway between bf16 1.0 (0x3F80) and 1 + 2^-7 (0x3F81): -> 0x3F80;
    # (1 + 2^-7) + 2^-8 is halfway between 0x3F81 and 0x3F82: -> 0x3F82.
    got = ml.Add(bf16([0x3F80, 0x3F81]), bf16([0x3B80, 0x3B80]))  # 0x3B80 = 2^-8
    assert got.data.tolist() == [0x3F80, 0x3F82]


def test_bf16_infinities_and_nans():
    inf, ninf, nan, one = 0x7F80, 0xFF80, 0x7FC0, 0x3F80
    assert ml.Add(bf16([inf, inf, one]), bf16([ninf, one, nan])).data.tolist() == [0x7FC0, inf, 0x7FC0]
    assert ml.MultiplyElementwise(bf16([inf, 0x0000]), bf16([0x0000, ninf])).data.tolist() == [0x7FC0, 0x7FC0]
    # overflow: 2^127 * 2 = 2^128 does not fit -> +inf
    assert ml.MultiplyElementwise(bf16([0x7F00]), bf16([0x4000])).data.tolist() == [inf]


# ---- complex multiply ---------------------------------------------------------------------------


def test_complex64_multiply_matches_numpy_complex128():
    rng = np.random.default_rng(8)
    a = (rng.standard_normal((4, 6)) + 1j * rng.standard_normal((4, 6))).astype(np.complex64)
    angle = rng.uniform(-np.pi, np.pi, size=(6,))
    b = np.exp(1j * angle).astype(np.complex64)  # rotations, broadcast over rows like the rotary table
    got = ml.MultiplyElementwise(Tensor.from_numpy(a), Tensor.from_numpy(b))
    assert got.dtype is DT_COMPLEX64 and got.shape == (4, 6)
    ref = a.astype(np.complex128) * b.astype(np.complex128)
    bound = 4 * np.finfo(np.float32).eps * np.abs(a) * np.abs(b)  # a few roundings per component
    assert (np.abs(got.data.real - ref.real) <= bound).all()
    assert (np.abs(got.data.imag - ref.imag) <= bound).all()


def test_complex64_multiply_by_i_rotates_by_90_degrees():
    got = ml.MultiplyElementwise(Tensor.from_numpy(np.array([1 + 2j, 3 - 4j], np.complex64)), Tensor.from_numpy(np.array([1j], np.complex64)))
    np.testing.assert_array_equal(got.data, np.array([-2 + 1j, 4 + 3j], np.complex64))


def test_complex64_add_is_not_supported():
    c = Tensor.from_numpy(np.ones(2, np.complex64))
    with pytest.raises(DTypeError, match="Add: input dtype COMPLEX64 is not supported"):
        ml.Add(c, c)


# ---- scalar ops ---------------------------------------------------------------------------------

SCALARS = [1e-5, 1e-6, 0.1, 3.0, -2.5, float(np.sqrt(128.0))]


@pytest.mark.parametrize("scalar", SCALARS)
def test_add_scalar_f32(scalar):
    x = random_f32(20, (3, 17))
    got = ml.AddScalar(f32(x), scalar)
    assert got.dtype is DT_F32 and got.shape == (3, 17)
    np.testing.assert_array_equal(got.data, (x.astype(np.float64) + np.float32(scalar)).astype(np.float32))


@pytest.mark.parametrize("scalar", SCALARS)
def test_div_to_scalar_f32(scalar):
    x = random_f32(21, (3, 17), -100, 100)
    got = ml.DivToScalar(f32(x), scalar)
    assert got.dtype is DT_F32
    np.testing.assert_array_equal(got.data, (x.astype(np.float64) / np.float32(scalar)).astype(np.float32))


@pytest.mark.parametrize("scalar", SCALARS)
def test_add_scalar_bf16_computes_in_float32_then_rounds(scalar):
    bits = all_bf16_bits()
    got = ml.AddScalar(bf16(bits), scalar)
    assert got.dtype is DT_BF16 and got.shape == (65536,)
    with np.errstate(all="ignore"):
        ref32 = bf16_bits_to_f32_ref(bits) + np.float32(scalar)  # numpy float32: IEEE, one rounding
    np.testing.assert_array_equal(got.data, rne_bf16_array(ref32))


@pytest.mark.parametrize("scalar", SCALARS)
def test_div_to_scalar_bf16_computes_in_float32_then_rounds(scalar):
    bits = all_bf16_bits()
    got = ml.DivToScalar(bf16(bits), scalar)
    assert got.dtype is DT_BF16
    with np.errstate(all="ignore"):
        ref32 = bf16_bits_to_f32_ref(bits) / np.float32(scalar)
    np.testing.assert_array_equal(got.data, rne_bf16_array(ref32))


@pytest.mark.parametrize("scalar", [0, 0.0, -0.0])
@pytest.mark.parametrize("dtype", [DT_F32, DT_BF16])
def test_div_to_scalar_by_zero_is_an_error(scalar, dtype):
    with pytest.raises(ShapeError, match="DivToScalar: division by zero"):
        ml.DivToScalar(ml.Ones([2], dtype), scalar)


# ---- Pow ----------------------------------------------------------------------------------------


def test_pow_2_f32_is_exact():
    x = random_f32(30, (5, 64), -1e19, 1e19)
    got = ml.Pow(f32(x), 2)
    # x*x is exact in float64 (48 significant bits), so its float32 rounding is the IEEE product
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(got.data, (x.astype(np.float64) ** 2).astype(np.float32))


@pytest.mark.parametrize("exponent, ulps", [(0.5, 1), (3.0, 2), (-1.0, 2), (1.5, 2)])
def test_pow_f32_matches_float64(exponent, ulps):
    x = random_f32(31, (4, 50), 1e-3, 50.0)
    got = ml.Pow(f32(x), exponent)
    assert got.dtype is DT_F32
    assert_f32_within_ulps(got.data, x.astype(np.float64) ** exponent, ulps)


def test_pow_half_of_special_values():
    # IEEE 754 pow: pow(+-0, 0.5) = +0, pow(+inf, 0.5) = +inf, pow(-inf, 0.5) = +inf, pow(-1, 0.5) = NaN
    with np.errstate(invalid="ignore"):
        got = ml.Pow(f32([0.0, -0.0, 4.0, np.inf, -np.inf, -1.0]), 0.5).data
    assert got[:5].tolist() == [0.0, 0.0, 2.0, np.inf, np.inf] and np.isnan(got[5])
    assert not np.signbit(got[1])


def test_pow_2_bf16_is_correctly_rounded_for_every_bf16():
    bits = all_bf16_bits()
    got = ml.Pow(bf16(bits), 2.0)
    assert got.dtype is DT_BF16
    with np.errstate(all="ignore"):
        ref = bf16_bits_to_f64_ref(bits) ** 2
    assert_bf16_correctly_rounded(got.data, ref)


def test_pow_half_bf16_is_correctly_rounded_for_every_bf16():
    bits = all_bf16_bits()
    got = ml.Pow(bf16(bits), 0.5)
    x = bf16_bits_to_f64_ref(bits)
    with np.errstate(all="ignore"):
        ref = np.power(x, 0.5)  # NaN for negatives, +0 for -0
    # IEEE 754 / C99 Annex F: pow(-inf, y) = +inf for y > 0 not an odd integer (numpy's float64
    # power says NaN here; C's powf, which the kernel uses, and PyTorch's pow say +inf)
    ref[x == -np.inf] = np.inf
    assert_bf16_correctly_rounded(got.data, ref, f32_ulps=2)


# ---- RSqrt --------------------------------------------------------------------------------------


def test_rsqrt_f32_matches_float64():
    x = np.concatenate([random_f32(40, (300,), 1e-6, 1e4), np.float32([1.0, 4.0, 0.25, 1e-38, 3e38])])
    got = ml.RSqrt(f32(x))
    assert got.dtype is DT_F32
    assert_f32_within_ulps(got.data, 1.0 / np.sqrt(x.astype(np.float64)), 2)


def test_rsqrt_of_zero_infinity_and_negative():
    with np.errstate(all="ignore"):
        got = ml.RSqrt(f32([0.0, -0.0, np.inf, -1.0])).data
    assert got[0] == np.inf and got[1] == -np.inf and got[2] == 0 and np.isnan(got[3])


def test_rsqrt_bf16_is_correctly_rounded_for_every_bf16():
    bits = all_bf16_bits()
    got = ml.RSqrt(bf16(bits))
    assert got.dtype is DT_BF16
    with np.errstate(all="ignore"):
        ref = 1.0 / np.sqrt(bf16_bits_to_f64_ref(bits))
    assert_bf16_correctly_rounded(got.data, ref, f32_ulps=2)


# ---- Silu ---------------------------------------------------------------------------------------


def _silu64(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        return x / (1.0 + np.exp(-x))


def test_silu_f32_matches_float64():
    x = np.concatenate([random_f32(50, (400,), -80.0, 80.0), np.float32([0.0, -0.0, 1.0, -1.0, 1e-30, -1e-30])])
    got = ml.Silu(f32(x))
    assert got.dtype is DT_F32
    assert_f32_within_ulps(got.data, _silu64(x), 4)


def test_silu_of_infinities_and_very_negative_values():
    got = ml.Silu(f32([np.inf, -200.0, -np.inf])).data
    assert got[0] == np.inf
    assert got[1] == 0.0  # true value -200 e^-200 ~ -3e-85 underflows float32
    assert np.isnan(got[2])  # -inf * sigmoid(-inf) = -inf * 0, as in PyTorch


def test_silu_bf16_is_correctly_rounded_for_every_bf16_above_minus_88():
    # Below x = -88.7 the float32 exp(-x) overflows, so the float32 formula gives -0 where the true
    # value is still a tiny bf16 number: PyTorch's float32 evaluation does the same; not checked here.
    bits = all_bf16_bits()
    x = bf16_bits_to_f64_ref(bits)
    keep = np.isfinite(x) & (x > -88.0)
    got = ml.Silu(bf16(bits[keep]))
    assert got.dtype is DT_BF16
    assert_bf16_correctly_rounded(got.data, _silu64(x[keep]), f32_ulps=4)


# ---- errors of the unary and scalar ops ---------------------------------------------------------

UNARY_AND_SCALAR = [
    ("AddScalar", lambda t: ml.AddScalar(t, 1.0)),
    ("DivToScalar", lambda t: ml.DivToScalar(t, 2.0)),
    ("Pow", lambda t: ml.Pow(t, 2.0)),
    ("RSqrt", ml.RSqrt),
    ("Silu", ml.Silu),
    ("ToFloat32", ml.ToFloat32),
    ("ToBFloat16", ml.ToBFloat16),
]


@pytest.mark.parametrize("op_name, call", UNARY_AND_SCALAR, ids=[c[0] for c in UNARY_AND_SCALAR])
@pytest.mark.parametrize("dtype", [DT_INT64, DT_COMPLEX64])
def test_unary_and_scalar_ops_reject_non_float_dtypes(op_name, call, dtype):
    with pytest.raises(DTypeError, match=rf"{op_name}: input dtype {dtype} is not supported \(expected F32, BF16(, [A-Z0-9_]+)*\)"):
        call(ml.Zeros([2], dtype))


@pytest.mark.parametrize("op_name, call", UNARY_AND_SCALAR, ids=[c[0] for c in UNARY_AND_SCALAR])
def test_unary_and_scalar_ops_need_a_tensor(op_name, call):
    with pytest.raises(DTypeError, match=rf"{op_name}: input must be a Tensor, got ndarray"):
        call(np.ones(2, np.float32))


@pytest.mark.parametrize("op_name, call", UNARY_AND_SCALAR[:5], ids=[c[0] for c in UNARY_AND_SCALAR[:5]])
@pytest.mark.parametrize("dtype", [DT_F32, DT_BF16])
def test_unary_and_scalar_ops_keep_shape_and_dtype(op_name, call, dtype):
    got = call(ml.Ones([2, 0, 3], dtype))
    assert got.shape == (2, 0, 3) and got.dtype is dtype
    got = call(ml.Ones([2, 3], dtype))
    assert got.shape == (2, 3) and got.dtype is dtype and got.data.flags.c_contiguous


# ---- ToFloat32 / ToBFloat16 ---------------------------------------------------------------------


def test_to_float32_widens_bf16_exactly():
    bits = all_bf16_bits()
    got = ml.ToFloat32(bf16(bits))
    expected = bf16_bits_to_f32_ref(bits)
    assert got.dtype is DT_F32
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got.data), nan)
    np.testing.assert_array_equal(got.data[~nan].view(np.uint32), expected[~nan].view(np.uint32))


def test_to_bfloat16_rounds_to_nearest_even():
    values = np.array([1.0 + 2.0**-8, 1.0 + 2.0**-7 + 2.0**-8, np.finfo(np.float32).max, -0.0, np.nan, 0.1], dtype=np.float32)
    got = ml.ToBFloat16(f32(values))
    assert got.dtype is DT_BF16 and got.shape == (6,)
    np.testing.assert_array_equal(got.data, rne_bf16_array(values))
    assert got.data[:5].tolist() == [0x3F80, 0x3F82, 0x7F80, 0x8000, 0x7FC0]


def test_conversions_to_the_same_dtype_return_the_input():
    a = ml.Ones([2])
    b = ml.Ones([2], DT_BF16)
    assert ml.ToFloat32(a) is a
    assert ml.ToBFloat16(b) is b
