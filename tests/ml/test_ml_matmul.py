"""LinearTransformation (x @ W^T, every weight of the model) and MatMul (batched, for attention).

Reference: the product in float64 numpy. A float32 dot product of length k differs from the exact one
by at most about k * eps * sum_t |x_t w_t| (the standard bound, whatever the summation order), which
is the F32 tolerance. BF16 results must be within one bf16 ulp of the float64 result rounded to
nearest even (the float32 accumulation order may move a value near a tie to the neighbour).

LinearTransformation picks its kernel by shape: up to 4 rows of x with bf16 weights take the fused
matrix-vector kernel (parallel for big weights), 5 or more rows the prefill kernels of gemm_bf16.py
(tested kernel by kernel in test_ml_gemm_bf16.py); F32 weights always use BLAS. The row counts
1, 2, 4, 5, 33 cover both sides of that switch.
"""

from __future__ import annotations

import numpy as np
import pytest

import llamanuts.ml.gemm_bf16 as gemm_bf16
import llamanuts.ml.matmul as matmul_module
from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_F32, DT_INT64, Tensor
from ml_reference import assert_bf16_within_one_ulp, bf16_bits_to_f64_ref, random_bf16_bits

F32_EPS = float(np.finfo(np.float32).eps)
ROWS = [1, 2, 4, 5, 33]


def f32(a) -> Tensor:
    return Tensor.from_numpy(np.asarray(a, dtype=np.float32))


def bf16(bits) -> Tensor:
    return Tensor.from_numpy(np.asarray(bits, dtype=np.uint16), DT_BF16)


def random_f32(rng: np.random.Generator, shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def assert_f32_product_close(got: np.ndarray, x64: np.ndarray, w64_t: np.ndarray) -> None:
    """got ~ x64 @ w64_t within the float32 dot-product error bound k * eps * (|x| @ |w|)."""
    assert got.dtype == np.float32
    ref = np.matmul(x64, w64_t)
    k = x64.shape[-1]
    bound = k * F32_EPS * np.matmul(np.abs(x64), np.abs(w64_t)) + 1e-30
    assert got.shape == ref.shape
    worst = np.max(np.abs(got - ref) / bound) if got.size else 0.0
    assert worst <= 1.0, f"error {worst:.3g} x the float32 bound"


# ---- LinearTransformation -----------------------------------------------------------------------


@pytest.mark.parametrize("rows", ROWS)
def test_linear_f32_x_f32(rows):
    rng = np.random.default_rng(rows)
    x, w = random_f32(rng, (rows, 64)), random_f32(rng, (48, 64))
    got = ml.LinearTransformation(f32(x), f32(w))
    assert got.dtype is DT_F32 and got.shape == (rows, 48)
    assert_f32_product_close(got.data, x.astype(np.float64), w.astype(np.float64).T)


@pytest.mark.parametrize("rows", ROWS)
def test_linear_f32_x_bf16_promotes_to_f32(rows):
    rng = np.random.default_rng(100 + rows)
    x = random_f32(rng, (rows, 96))
    w = random_bf16_bits(rng, (40, 96), -1.0, 1.0)
    got = ml.LinearTransformation(f32(x), bf16(w))
    assert got.dtype is DT_F32 and got.shape == (rows, 40)
    assert_f32_product_close(got.data, x.astype(np.float64), bf16_bits_to_f64_ref(w).T)


@pytest.mark.parametrize("rows", ROWS)
def test_linear_f32_x_bf16_widens_the_weights_exactly(rows):
    # Small integers: every product and partial sum is an integer below 2^24, so float32 arithmetic
    # is exact in any order and the result must equal the exact product bit for bit. A weight that
    # was not widened exactly (e.g. rounded, or read as the wrong half) would show.
    rng = np.random.default_rng(200 + rows)
    x = rng.integers(-8, 9, size=(rows, 256)).astype(np.float32)
    w_values = rng.integers(-8, 9, size=(24, 256)).astype(np.float32)
    w_bits = (w_values.view(np.uint32) >> 16).astype(np.uint16)  # integers |v| <= 8 are exact bf16
    got = ml.LinearTransformation(f32(x), bf16(w_bits))
    np.testing.assert_array_equal(got.data, (x.astype(np.int64) @ w_values.astype(np.int64).T).astype(np.float32))


@pytest.mark.parametrize("rows", ROWS)
def test_linear_bf16_x_bf16_is_the_float64_product_rounded_once(rows):
    rng = np.random.default_rng(300 + rows)
    x = random_bf16_bits(rng, (rows, 128), -2.0, 2.0)
    w = random_bf16_bits(rng, (56, 128), -0.5, 0.5)
    got = ml.LinearTransformation(bf16(x), bf16(w))
    assert got.dtype is DT_BF16 and got.shape == (rows, 56)
    assert_bf16_within_one_ulp(got.data, bf16_bits_to_f64_ref(x) @ bf16_bits_to_f64_ref(w).T)


def _parallel_sized_weights(rng: np.random.Generator) -> np.ndarray:
    # at least the kernel's parallel threshold of weights (m * k), with k = 256
    threshold = getattr(matmul_module, "_PARALLEL_MIN_WEIGHTS", 1 << 17)
    m = max(300, threshold // 256 + 3)
    return random_bf16_bits(rng, (m, 256), -0.25, 0.25)


@pytest.mark.parametrize("rows", [1, 3])
def test_linear_with_big_bf16_weights_takes_the_parallel_kernel(rows):
    rng = np.random.default_rng(400 + rows)
    w = _parallel_sized_weights(rng)
    x = random_f32(rng, (rows, 256))
    got = ml.LinearTransformation(f32(x), bf16(w))
    assert got.shape == (rows, w.shape[0])
    assert_f32_product_close(got.data, x.astype(np.float64), bf16_bits_to_f64_ref(w).T)
    xb = random_bf16_bits(rng, (rows, 256), -2.0, 2.0)
    got_b = ml.LinearTransformation(bf16(xb), bf16(w))
    assert_bf16_within_one_ulp(got_b.data, bf16_bits_to_f64_ref(xb) @ bf16_bits_to_f64_ref(w).T)


def test_linear_blas_path_widens_the_weights_block_by_block(monkeypatch):
    # Force the BLAS prefill kernel to widen a few weight rows at a time (3 full blocks and a partial one).
    k = 32
    monkeypatch.setenv(gemm_bf16.KERNEL_ENV, "blas")
    monkeypatch.setattr(gemm_bf16, "_WIDEN_BLOCK_BYTES", 4 * k * 7)  # 7 rows per block
    rng = np.random.default_rng(500)
    x = random_f32(rng, (6, k))
    w = random_bf16_bits(rng, (23, k), -1.0, 1.0)
    got = ml.LinearTransformation(f32(x), bf16(w))
    assert_f32_product_close(got.data, x.astype(np.float64), bf16_bits_to_f64_ref(w).T)


@pytest.mark.parametrize("dtypes", ["f32-f32", "f32-bf16", "bf16-bf16"])
@pytest.mark.parametrize("rows", [1, 5])
def test_linear_with_3d_x(dtypes, rows):
    rng = np.random.default_rng(600 + rows)
    x_bits = random_bf16_bits(rng, (2, rows, 32), -1.0, 1.0)
    w_bits = random_bf16_bits(rng, (12, 32), -1.0, 1.0)
    x64, w64 = bf16_bits_to_f64_ref(x_bits), bf16_bits_to_f64_ref(w_bits)
    x = bf16(x_bits) if dtypes == "bf16-bf16" else f32(x64)
    w = f32(w64) if dtypes == "f32-f32" else bf16(w_bits)
    got = ml.LinearTransformation(x, w)
    assert got.shape == (2, rows, 12)
    if dtypes == "bf16-bf16":
        assert got.dtype is DT_BF16
        assert_bf16_within_one_ulp(got.data, x64 @ w64.T)
    else:
        assert got.dtype is DT_F32
        assert_f32_product_close(got.data, x64, w64.T)


@pytest.mark.parametrize("rows", [1, 5])
def test_linear_propagates_infinities_and_nans_as_ieee_arithmetic_does(rows):
    # A fast-math kernel may assume there are no NaNs or infinities; the results must still be the
    # IEEE ones: NaN in x poisons its row, inf in a weight gives inf, inf - inf gives NaN.
    w = np.full((3, 8), 0x3F80, np.uint16)  # all ones
    w[1, 2] = 0x7F80  # +inf
    x = np.ones((rows, 8), np.float32)
    x[0, 3] = np.nan
    x[-1, 0] = -np.inf if rows > 1 else x[-1, 0]
    with np.errstate(invalid="ignore"):
        got = ml.LinearTransformation(f32(x), bf16(w)).data
    assert np.isnan(got[0]).all()
    if rows > 1:
        assert got[1].tolist() == [8.0, np.inf, 8.0]
        assert got[-1][0] == -np.inf and np.isnan(got[-1][1]) and got[-1][2] == -np.inf


def test_linear_with_1d_x_gives_1d_output():
    x = f32([1.0, 2.0, 3.0])
    w = f32([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    got = ml.LinearTransformation(x, w)
    assert got.shape == (2,) and got.data.tolist() == [1.0, 5.0]


def test_linear_with_zero_rows_gives_zero_rows():
    assert ml.LinearTransformation(ml.Zeros([0, 8]), ml.Zeros([3, 8], DT_BF16)).shape == (0, 3)
    assert ml.LinearTransformation(ml.Zeros([0, 8]), ml.Zeros([3, 8])).shape == (0, 3)


def test_linear_with_an_empty_inner_dimension_is_all_zeros():
    # the empty sum is 0, as in numpy and PyTorch
    got = ml.LinearTransformation(ml.Zeros([3, 0]), ml.Zeros([5, 0]))
    assert got.shape == (3, 5) and (got.data == 0).all()


def test_linear_inner_dimension_mismatch_names_both_shapes():
    # the pattern of "x shape [5 4096] and weights shape [4096 11008]", at a small size
    message = r"^LinearTransformation: x shape \[5 64\] and weights shape \[64 176\] do not match on the inner dimension$"
    with pytest.raises(ShapeError, match=message):
        ml.LinearTransformation(ml.Zeros([5, 64]), ml.Zeros([64, 176]))


def test_linear_inner_dimension_mismatch_with_bf16_weights():
    with pytest.raises(ShapeError, match=r"x shape \[2 3 8\] and weights shape \[8 4\] do not match"):
        ml.LinearTransformation(ml.Zeros([2, 3, 8], DT_BF16), ml.Zeros([8, 4], DT_BF16))


def test_linear_scalar_x_is_an_error():
    with pytest.raises(ShapeError, match=r"LinearTransformation: x shape \[\] and weights shape \[2 1\] do not match"):
        ml.LinearTransformation(f32(np.float32(1.0)), ml.Zeros([2, 1]))


@pytest.mark.parametrize("w_shape", [[4], [2, 3, 4]])
def test_linear_weights_must_be_2d(w_shape):
    dims = " ".join(map(str, w_shape))
    with pytest.raises(ShapeError, match=rf"LinearTransformation: weights must be 2-D \[out, in\], got shape \[{dims}\]"):
        ml.LinearTransformation(ml.Zeros([2, 4]), ml.Zeros(w_shape))


def test_linear_bf16_x_with_f32_weights_is_an_error():
    with pytest.raises(DTypeError, match="LinearTransformation: x is BF16 but weights are F32"):
        ml.LinearTransformation(ml.Zeros([2, 4], DT_BF16), ml.Zeros([3, 4]))


@pytest.mark.parametrize("which", ["x", "weights"])
def test_linear_integer_dtypes_are_an_error(which):
    x = ml.Zeros([2, 4], DT_INT64 if which == "x" else DT_F32)
    w = ml.Zeros([3, 4], DT_INT64 if which == "weights" else DT_F32)
    with pytest.raises(DTypeError, match=rf"LinearTransformation: {which} dtype INT64 is not supported"):
        ml.LinearTransformation(x, w)


def test_linear_needs_tensors():
    with pytest.raises(DTypeError, match="LinearTransformation: weights must be a Tensor, got ndarray"):
        ml.LinearTransformation(ml.Zeros([2, 4]), np.zeros((3, 4), np.float32))


# ---- MatMul -------------------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((4, 5), (5, 6), (4, 6)),
    ((2, 3, 4, 5), (2, 3, 5, 6), (2, 3, 4, 6)),
    ((2, 1, 4, 5), (3, 5, 6), (2, 3, 4, 6)),  # batch dims broadcast
    ((1, 4, 5), (3, 5, 2), (3, 4, 2)),
    ((3, 4, 5), (5, 6), (3, 4, 6)),
    ((2, 8, 1, 16), (2, 8, 16, 7), (2, 8, 1, 7)),  # attention decode: one query row
]


@pytest.mark.parametrize("shape_a, shape_b, expected", MATMUL_SHAPES)
def test_matmul_f32_batched_with_broadcasting(shape_a, shape_b, expected):
    rng = np.random.default_rng(len(shape_a) * 10 + len(shape_b))
    a, b = random_f32(rng, shape_a), random_f32(rng, shape_b)
    got = ml.MatMul(f32(a), f32(b))
    assert got.dtype is DT_F32 and got.shape == expected and got.data.flags.c_contiguous
    assert_f32_product_close(got.data, a.astype(np.float64), b.astype(np.float64))


@pytest.mark.parametrize("shape_a, shape_b, expected", MATMUL_SHAPES)
def test_matmul_bf16_is_the_float64_product_rounded_once(shape_a, shape_b, expected):
    rng = np.random.default_rng(7 + len(shape_a))
    a = random_bf16_bits(rng, shape_a, -2.0, 2.0)
    b = random_bf16_bits(rng, shape_b, -2.0, 2.0)
    got = ml.MatMul(bf16(a), bf16(b))
    assert got.dtype is DT_BF16 and got.shape == expected
    assert_bf16_within_one_ulp(got.data, np.matmul(bf16_bits_to_f64_ref(a), bf16_bits_to_f64_ref(b)))


def test_matmul_inner_dimension_mismatch_is_an_error():
    message = r"MatMul: a shape \[2 3 4\] and b shape \[2 5 6\] do not match on the inner dimension \(4 vs 5\)"
    with pytest.raises(ShapeError, match=message):
        ml.MatMul(ml.Zeros([2, 3, 4]), ml.Zeros([2, 5, 6]))


def test_matmul_batch_dims_must_broadcast():
    with pytest.raises(ShapeError, match=r"MatMul: shapes \[2\] and \[3\] are not broadcastable"):
        ml.MatMul(ml.Zeros([2, 3, 4]), ml.Zeros([3, 4, 5]))


def test_matmul_needs_at_least_2d():
    with pytest.raises(ShapeError, match=r"MatMul: needs at least 2-D tensors, got \[4\] and \[4 5\]"):
        ml.MatMul(ml.Zeros([4]), ml.Zeros([4, 5]))


def test_matmul_mixed_dtypes_are_an_error():
    with pytest.raises(DTypeError, match=r"MatMul: dtypes F32 \(shape \[2 2\]\) and BF16 \(shape \[2 2\]\) differ"):
        ml.MatMul(ml.Zeros([2, 2]), ml.Zeros([2, 2], DT_BF16))


def test_matmul_integer_dtype_is_an_error():
    with pytest.raises(DTypeError, match="MatMul: input dtype INT64 is not supported"):
        ml.MatMul(ml.Zeros([2, 2], DT_INT64), ml.Zeros([2, 2], DT_INT64))


def test_matmul_needs_tensors():
    with pytest.raises(DTypeError, match="MatMul: a must be a Tensor, got ndarray"):
        ml.MatMul(np.zeros((2, 2), np.float32), ml.Zeros([2, 2]))
