"""LinearTransformation (x @ W^T, every weight of the model) and MatMul (batched, for attention).

Reference: the product in float64 numpy. A float32 dot product of length k differs from the exact one
by at most about k * eps * sum_t |x_t w_t| (the standard bound, whatever the summation order), which
is the F32 tolerance. BF16 results must be within one bf16 ulp of the float64 result rounded to
nearest even (the float32 accumulation order may move a value near a tie to the neighbour).

LinearTransformation picks its kernel by shape: up to 4 rows of x with bf16 or f32 weights take the
fused matrix-vector kernel (parallel for big weights; both versions are tested; with bf16 weights,
2-4 rows only while they fit in 16 KB of float32, else the prefill kernel), 5 or more rows the
prefill kernels of gemm_bf16.py for bf16 weights (tested kernel by kernel in test_ml_gemm_bf16.py)
and BLAS for f32 weights. The row counts 1, 2, 4, 5, 33 cover both sides of that switch.
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


@pytest.fixture(params=["serial", "parallel"])
def gemv_kernel(request, monkeypatch):
    """Runs a test with the matrix-vector kernel forced to its serial or its parallel version (the
    weight size that picks one is a tuning constant; both must give the same, correct result)."""
    monkeypatch.setattr(matmul_module, "_PARALLEL_MIN_BYTES", 1 << 62 if request.param == "serial" else 0)
    return request.param


@pytest.mark.parametrize("rows", [1, 3, 4])
def test_linear_matrix_vector_kernels_with_bf16_weights(rows, gemv_kernel):
    rng = np.random.default_rng(400 + rows)
    w = random_bf16_bits(rng, (301, 256), -0.25, 0.25)
    x = random_f32(rng, (rows, 256))
    got = ml.LinearTransformation(f32(x), bf16(w))
    assert got.dtype is DT_F32 and got.shape == (rows, w.shape[0])
    assert_f32_product_close(got.data, x.astype(np.float64), bf16_bits_to_f64_ref(w).T)
    xb = random_bf16_bits(rng, (rows, 256), -2.0, 2.0)
    got_b = ml.LinearTransformation(bf16(xb), bf16(w))
    assert got_b.dtype is DT_BF16
    assert_bf16_within_one_ulp(got_b.data, bf16_bits_to_f64_ref(xb) @ bf16_bits_to_f64_ref(w).T)


# The decode dot products (gemv_dot.py) work on runs of 32 bf16 (16 float32) in vector registers, two
# runs per step, and sum the last k % 32 elements one at a time: these k cover no run, one run, an
# odd number of runs, and every kind of tail.
DOT_LENGTHS = [1, 7, 16, 31, 32, 33, 48, 63, 64, 65, 96, 100, 288, 576]


@pytest.mark.parametrize("k", DOT_LENGTHS)
def test_linear_matrix_vector_dot_products_cover_every_length(k, gemv_kernel):
    rng = np.random.default_rng(900 + k)
    w_bf16 = random_bf16_bits(rng, (19, k), -0.5, 0.5)
    x_f32 = random_f32(rng, (1, k))
    x_bf16 = random_bf16_bits(rng, (1, k), -2.0, 2.0)
    w_f32 = random_f32(rng, (19, k))
    got = ml.LinearTransformation(bf16(x_bf16), bf16(w_bf16))
    assert_bf16_within_one_ulp(got.data, bf16_bits_to_f64_ref(x_bf16) @ bf16_bits_to_f64_ref(w_bf16).T)
    got = ml.LinearTransformation(f32(x_f32), bf16(w_bf16))
    assert_f32_product_close(got.data, x_f32.astype(np.float64), bf16_bits_to_f64_ref(w_bf16).T)
    got = ml.LinearTransformation(f32(x_f32), f32(w_f32))
    assert_f32_product_close(got.data, x_f32.astype(np.float64), w_f32.astype(np.float64).T)


def test_linear_matrix_vector_kernel_reads_a_strided_x_correctly():
    # the vector loads need consecutive elements in a row; a column of a wider array is copied first
    rng = np.random.default_rng(990)
    wide = random_f32(rng, (96, 3))
    x = Tensor.wrap(wide[:, 1:2].T, DT_F32)  # [1, 96] whose elements are 3 floats apart (a view)
    assert x.data.strides[-1] == 12
    w = random_f32(rng, (10, 96))  # (float32 weights: their dot product loads x as it is)
    got = ml.LinearTransformation(x, f32(w))
    assert_f32_product_close(got.data, wide[:, 1:2].T.astype(np.float64), w.astype(np.float64).T)


@pytest.mark.parametrize("rows, k, kernel", [(1, 4608, "gemv"), (2, 1536, "gemv"), (4, 1024, "gemv"), (2, 2304, "tiled"), (4, 1152, "tiled")])
def test_linear_bf16_weights_few_rows_of_a_wide_x_take_the_prefill_kernel(rows, k, kernel, monkeypatch):
    # 2 to 4 rows stay with the GEMV only while they fit in 16 KB of float32 (the L1 cache); wider,
    # the tiled prefill kernel computes them. Either way: the float64 product, rounded once.
    calls = []
    tiled = matmul_module.linear_bf16_weights_many_rows
    monkeypatch.setattr(matmul_module, "linear_bf16_weights_many_rows", lambda *a: calls.append(1) or tiled(*a))
    rng = np.random.default_rng(470 + rows)
    xb, w = random_bf16_bits(rng, (rows, k), -2.0, 2.0), random_bf16_bits(rng, (9, k), -0.25, 0.25)
    got = ml.LinearTransformation(bf16(xb), bf16(w))
    assert ("tiled" if calls else "gemv") == kernel
    assert_bf16_within_one_ulp(got.data, bf16_bits_to_f64_ref(xb) @ bf16_bits_to_f64_ref(w).T)
    many = ml.LinearTransformations(bf16(xb), [bf16(w), bf16(w[:4])])
    assert_bf16_within_one_ulp(many[1].data, bf16_bits_to_f64_ref(xb) @ bf16_bits_to_f64_ref(w[:4]).T)


@pytest.mark.parametrize("rows", [1, 2, 4])
def test_linear_matrix_vector_kernels_with_f32_weights(rows, gemv_kernel):
    rng = np.random.default_rng(450 + rows)
    x, w = random_f32(rng, (rows, 200)), random_f32(rng, (77, 200))
    got = ml.LinearTransformation(f32(x), f32(w))
    assert got.dtype is DT_F32 and got.shape == (rows, 77)
    assert_f32_product_close(got.data, x.astype(np.float64), w.astype(np.float64).T)


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


# ---- LinearTransformations (several matrices, one input) -----------------------------------------


@pytest.mark.parametrize("rows", [1, 4, 5])
def test_linear_transformations_are_each_matrix_product(rows, gemv_kernel):
    # three bf16 matrices of different heights (wq, wk, wv of grouped-query attention), bf16 x
    rng = np.random.default_rng(700 + rows)
    x = random_bf16_bits(rng, (rows, 64), -2.0, 2.0)
    ws = [random_bf16_bits(rng, (m, 64), -0.5, 0.5) for m in (48, 16, 16)]
    got = ml.LinearTransformations(bf16(x), [bf16(w) for w in ws])
    assert [t.shape for t in got] == [(rows, 48), (rows, 16), (rows, 16)]
    for t, w in zip(got, ws):
        assert t.dtype is DT_BF16
        assert_bf16_within_one_ulp(t.data, bf16_bits_to_f64_ref(x) @ bf16_bits_to_f64_ref(w).T)


@pytest.mark.parametrize("weights_dtype", ["f32", "bf16"])
def test_linear_transformations_with_f32_x(weights_dtype, gemv_kernel):
    rng = np.random.default_rng(710)
    x = random_f32(rng, (2, 40))
    if weights_dtype == "f32":
        ws = [random_f32(rng, (m, 40)) for m in (24, 8)]
        tensors, refs = [f32(w) for w in ws], [w.astype(np.float64) for w in ws]
    else:
        ws = [random_bf16_bits(rng, (m, 40), -1.0, 1.0) for m in (24, 8)]
        tensors, refs = [bf16(w) for w in ws], [bf16_bits_to_f64_ref(w) for w in ws]
    for t, ref in zip(ml.LinearTransformations(f32(x), tensors), refs):
        assert t.dtype is DT_F32
        assert_f32_product_close(t.data, x.astype(np.float64), ref.T)


def test_linear_transformations_of_mixed_dtypes_are_each_computed_alone():
    rng = np.random.default_rng(720)
    x = random_f32(rng, (1, 32))
    w_f32, w_bf16 = random_f32(rng, (8, 32)), random_bf16_bits(rng, (4, 32), -1.0, 1.0)
    a, b = ml.LinearTransformations(f32(x), [f32(w_f32), bf16(w_bf16)])
    assert_f32_product_close(a.data, x.astype(np.float64), w_f32.astype(np.float64).T)
    assert_f32_product_close(b.data, x.astype(np.float64), bf16_bits_to_f64_ref(w_bf16).T)


def test_linear_transformations_report_a_mismatch_like_linear_transformation():
    x = f32(np.zeros((1, 8)))
    with pytest.raises(ShapeError, match=r"LinearTransformation: x shape \[1 8\] and weights shape \[4 6\]"):
        ml.LinearTransformations(x, [f32(np.zeros((4, 8))), f32(np.zeros((4, 6)))])


def test_linear_transformations_need_a_matrix():
    with pytest.raises(ShapeError, match="LinearTransformations: needs at least one weight matrix"):
        ml.LinearTransformations(f32(np.zeros((1, 8))), [])
