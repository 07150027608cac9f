"""The prefill kernels for bf16 weights (src/ml/gemm_bf16.py): x [n, k] @ w [m, k]^T for n > 4 rows.

Reference: the product in float64 numpy, from the bf16 bits decoded by the independent helpers in
ml_reference.py. Every kernel accumulates in float32, so its error against the exact product is
within the standard dot-product bound k * eps32 * (|x| @ |w|), whatever the order of the additions.

Each kernel is forced in turn: `dpbf16` (the CPU's bf16 dot-product instruction; only where the CPU
has AVX512_BF16), `fma` (weights widened in registers, float32 multiply-adds: the exact path for
float32 activations and the fallback on other CPUs) and `blas` (widen blocks, then numpy's BLAS).
The shapes cross every boundary of the kernels' loops: rows of x not a multiple of the 4-row tile,
rows of w not a multiple of 4 (or 2) nor of a parallel task, k not a multiple of 32 (the scalar tail)
and longer than one k block, and products on both sides of the parallel threshold.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import LlamaError
from llamanuts.ml import DT_BF16, DT_F32, Tensor
from llamanuts.ml import gemm_bf16
from ml_reference import assert_bf16_within_one_ulp, bf16_bits_to_f64_ref, random_bf16_bits

F32_EPS = float(np.finfo(np.float32).eps)
BF16_X_KERNELS = [
    pytest.param("dpbf16", marks=pytest.mark.skipif(not gemm_bf16.HAS_AVX512_BF16, reason="the CPU (as Numba targets it) has no AVX512_BF16")),
    "fma",
    "blas",
]
F32_X_KERNELS = ["fma", "blas"]

# (n, m, k): n rows of x, m rows of w, inner dimension k
SHAPES = [
    (5, 3, 32),  # one partial tile each way, k one vector
    (6, 7, 31),  # k shorter than a vector: all tail
    (8, 9, 100),  # 100 = 3 vectors of 32 + a tail of 4
    (13, 130, 64),  # m past two parallel tasks of 64 rows, with a remainder
    (33, 70, 2085),  # k past one k block (2048) plus a tail of 5; parallel
    (64, 4, 256),
]


def assert_product_close(got: np.ndarray, x64: np.ndarray, w64: np.ndarray) -> None:
    assert got.dtype == np.float32 and got.shape == (x64.shape[0], w64.shape[0])
    ref = x64 @ w64.T
    bound = x64.shape[1] * F32_EPS * (np.abs(x64) @ np.abs(w64).T) + 1e-30
    worst = float(np.max(np.abs(got - ref) / bound))
    assert worst <= 1.0, f"error {worst:.3g} x the float32 dot-product bound"


@pytest.mark.parametrize("kernel", BF16_X_KERNELS)
@pytest.mark.parametrize("n,m,k", SHAPES)
def test_bf16_activations_give_the_float32_accumulated_product(kernel, n, m, k):
    rng = np.random.default_rng(n * 1000 + m + k)
    x = random_bf16_bits(rng, (n, k), -2.0, 2.0)
    w = random_bf16_bits(rng, (m, k), -0.5, 0.5)
    got = gemm_bf16.linear_bf16_weights_many_rows(x, w, kernel)
    assert_product_close(got, bf16_bits_to_f64_ref(x), bf16_bits_to_f64_ref(w))


@pytest.mark.parametrize("kernel", F32_X_KERNELS)
@pytest.mark.parametrize("n,m,k", SHAPES)
def test_float32_activations_are_not_rounded(kernel, n, m, k):
    rng = np.random.default_rng(7 + n * 1000 + m + k)
    x = rng.standard_normal((n, k)).astype(np.float32)
    w = random_bf16_bits(rng, (m, k), -0.5, 0.5)
    got = gemm_bf16.linear_bf16_weights_many_rows(x, w, kernel)
    # the bound holds for the float32 x itself; rounding x to bf16 (8 bits) would break it by far
    assert_product_close(got, x.astype(np.float64), bf16_bits_to_f64_ref(w))


@pytest.mark.parametrize("kernel", BF16_X_KERNELS)
def test_small_integers_multiply_exactly(kernel):
    # Integers up to 8 are exact in bf16, and every product and partial sum stays an integer below
    # 2^24, so float32 arithmetic is exact in any order: the result must equal the integer product.
    # A weight or activation read from the wrong place (pair halves swapped, a row off by one, a
    # tail element skipped or counted twice) would show.
    rng = np.random.default_rng(11)
    n, m, k = 9, 11, 2048 + 96 + 7
    xi = rng.integers(-8, 9, size=(n, k))
    wi = rng.integers(-8, 9, size=(m, k))
    to_bits = lambda a: (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)  # noqa: E731
    got = gemm_bf16.linear_bf16_weights_many_rows(to_bits(xi), to_bits(wi), kernel)
    np.testing.assert_array_equal(got, (xi @ wi.T).astype(np.float32))


@pytest.mark.parametrize("kernel", BF16_X_KERNELS)
def test_read_only_weights(kernel):
    # weights are views of a read-only memory-mapped checkpoint
    rng = np.random.default_rng(12)
    x = random_bf16_bits(rng, (7, 96), -1.0, 1.0)
    w = random_bf16_bits(rng, (10, 96), -1.0, 1.0)
    w.setflags(write=False)
    got = gemm_bf16.linear_bf16_weights_many_rows(x, w, kernel)
    assert_product_close(got, bf16_bits_to_f64_ref(x), bf16_bits_to_f64_ref(w))


@pytest.mark.parametrize("kernel", BF16_X_KERNELS)
def test_non_contiguous_inputs(kernel):
    rng = np.random.default_rng(13)
    x = random_bf16_bits(rng, (64, 12), -1.0, 1.0).T  # [12, 64], column-major
    w = random_bf16_bits(rng, (20, 128), -1.0, 1.0)[::2, ::2]  # [10, 64], strided
    got = gemm_bf16.linear_bf16_weights_many_rows(x, w, kernel)
    assert_product_close(got, bf16_bits_to_f64_ref(x), bf16_bits_to_f64_ref(w))


@pytest.mark.parametrize("kernel", BF16_X_KERNELS)
def test_infinity_and_nan_weights_propagate(kernel):
    x = np.full((5, 64), 0x3F80, dtype=np.uint16)  # ones
    w = np.full((3, 64), 0x3F80, dtype=np.uint16)
    w[1, 3] = 0x7FC0  # NaN
    w[2, 40] = 0x7F80  # +infinity
    got = gemm_bf16.linear_bf16_weights_many_rows(x, w, kernel)
    assert np.all(got[:, 0] == 64.0) and np.all(np.isnan(got[:, 1])) and np.all(got[:, 2] == np.inf)


def test_an_empty_product():
    got = gemm_bf16.linear_bf16_weights_many_rows(np.zeros((6, 0), np.uint16), np.zeros((3, 0), np.uint16), "fma")
    np.testing.assert_array_equal(got, np.zeros((6, 3), np.float32))


# ---- choosing the kernel ------------------------------------------------------------------------


def test_auto_picks_dpbf16_only_for_bf16_activations_on_a_bf16_cpu(monkeypatch):
    monkeypatch.delenv(gemm_bf16.KERNEL_ENV, raising=False)
    assert gemm_bf16.select_kernel(np.float32) == "fma"
    assert gemm_bf16.select_kernel(np.uint16) == ("dpbf16" if gemm_bf16.HAS_AVX512_BF16 else "fma")


def test_the_environment_variable_forces_a_kernel(monkeypatch):
    monkeypatch.setenv(gemm_bf16.KERNEL_ENV, "blas")
    assert gemm_bf16.select_kernel(np.uint16) == "blas"
    monkeypatch.setenv(gemm_bf16.KERNEL_ENV, "fma")
    assert gemm_bf16.select_kernel(np.uint16) == "fma"


def test_an_unknown_kernel_name_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv(gemm_bf16.KERNEL_ENV, "fast")
    with pytest.raises(LlamaError, match=r"LLAMANUTS_PREFILL_KERNEL='fast': expected one of auto, dpbf16, fma, blas"):
        gemm_bf16.select_kernel(np.uint16)


def test_dpbf16_refuses_float32_activations():
    # it would round them to bf16: a silent change of the f32 compute mode's math
    with pytest.raises(LlamaError, match="needs bf16 activations"):
        gemm_bf16.select_kernel(np.float32, "dpbf16")


def test_the_bf16_instruction_is_used_only_if_the_cpu_reports_it():
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if gemm_bf16.HAS_AVX512_BF16:
        assert "avx512_bf16" in flags.split()


def test_without_avx512_the_fallback_compiles_for_avx2_and_is_right():
    # Numba compiling for a Haswell (AVX2 and FMA, no AVX-512): the choice falls back to the fma
    # kernel on 8-lane vectors, which must still give the right product.
    code = (
        "import numpy as np\n"
        "from llamanuts.ml import gemm_bf16 as g\n"
        "assert not g.HAS_AVX512_BF16 and g._FMA_LANES == 8, (g.HAS_AVX512_BF16, g._FMA_LANES)\n"
        "assert g.select_kernel(np.uint16) == 'fma'\n"
        "rng = np.random.default_rng(0)\n"
        "x = rng.integers(-8, 9, (7, 333)); w = rng.integers(-8, 9, (5, 333))\n"
        "bits = lambda a: (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)\n"
        "got = g.linear_bf16_weights_many_rows(bits(x), bits(w))\n"
        "assert np.array_equal(got, (x @ w.T).astype(np.float32)), got\n"
        "print('ok')\n"
    )
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="+avx2,+fma,+f16c")
    env.pop(gemm_bf16.KERNEL_ENV, None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


# ---- through LinearTransformation ---------------------------------------------------------------


@pytest.mark.parametrize("kernel", BF16_X_KERNELS)
@pytest.mark.parametrize("rows", [5, 8, 33])
def test_linear_bf16_is_the_float64_product_rounded_once_with_each_kernel(kernel, rows, monkeypatch):
    monkeypatch.setenv(gemm_bf16.KERNEL_ENV, kernel)
    rng = np.random.default_rng(900 + rows)
    x = random_bf16_bits(rng, (rows, 160), -2.0, 2.0)
    w = random_bf16_bits(rng, (72, 160), -0.5, 0.5)
    got = ml.LinearTransformation(Tensor.from_numpy(x, DT_BF16), Tensor.from_numpy(w, DT_BF16))
    assert got.dtype is DT_BF16 and got.shape == (rows, 72)
    assert_bf16_within_one_ulp(got.data, bf16_bits_to_f64_ref(x) @ bf16_bits_to_f64_ref(w).T)


@pytest.mark.parametrize("kernel", F32_X_KERNELS)
def test_linear_f32_x_bf16_weights_with_each_kernel(kernel, monkeypatch):
    monkeypatch.setenv(gemm_bf16.KERNEL_ENV, kernel)
    rng = np.random.default_rng(950)
    x = rng.standard_normal((2, 6, 96)).astype(np.float32)
    w = random_bf16_bits(rng, (40, 96), -1.0, 1.0)
    got = ml.LinearTransformation(Tensor.from_numpy(x), Tensor.from_numpy(w, DT_BF16))
    assert got.dtype is DT_F32 and got.shape == (2, 6, 40)
    assert_product_close(got.data.reshape(12, 40), x.reshape(12, 96).astype(np.float64), bf16_bits_to_f64_ref(w))
