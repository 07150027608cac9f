"""Block-quantized and float16 matrices (GGML's Q8_0, Q4_0, Q4_1, Q4_K, Q6_K, and F16): which kernel
reads which dtype, dequantization, and the matrix product used by LinearTransformation.

Each block type has a file of its own beside this one (q8_0.py, q4_0.py, q4_1.py, q4_k.py, q6_k.py,
f16.py) with these kernels, of the same shapes in every file:
    dequantize_serial / dequantize_parallel (src rows, dst float32 rows)
    gemv_serial / gemv_parallel (x float32 [n, k], w rows, out float32 [n, m])
    gemm_parallel (x float32 [n, k], w rows, out float32 [n, m], zeroed)
    gemv_many_serial / gemv_many_parallel (x, a tuple of matrices' rows, a tuple of outs): the
        matrices that read the same x (wq, wk, wv; w1, w3) in one launch (rowstack.py)
Only `_block_values` / `_dequantize_row` / `_dot_row` differ between the files; the loops around them
are written out in each on purpose: Numba caches a kernel only when the functions it calls are
module globals, and one generic kernel taking the dtype's row function as an argument compiled
afresh in every process (measured: cache misses on every run, about 2 s of compiling at start-up).
A quantized weight stays quantized in memory. LinearTransformation on one of them:
- few rows of x (decode): the GEMV kernel reads the blocks where they lie, unpacks each block into
  float32 vector registers and accumulates; nothing builds a float copy of the matrix;
- many rows (prefill): each thread dequantizes a tile of 16 weight rows at a time into a float32
  tile that stays in the cache and multiplies every row of x by it in registers (gemm_f32.py):
  each weight is read and widened once per call, and the work is compute-bound. The former path,
  a block of 8 MB of weight rows dequantized at a time and handed to numpy's BLAS, stays as the
  benchmarks' reference (LLAMANUTS_PREFILL_KERNEL=blas): it wrote and re-read every weight as
  float32, and BLAS's threads and the kernels' threads fought over the cores of a busy machine.
Both multiply exactly the weights `dequantize` gives (bit for bit gguf-py's values), so the result is
the dequantized model's product up to the order of the float32 sums.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..common.errors import DTypeError, ShapeError
from .gemm_bf16 import KERNEL_ENV
from .dtype import DT_F16, DT_Q4_0, DT_Q4_1, DT_Q4_K, DT_Q6_K, DT_Q8_0, DataType
from .threads import parallel_ok

GEMV_MAX_ROWS = 4  # up to this many rows of x use the GEMV kernel; more use the prefill tiles
# A GEMV of fewer weights than this stays on one thread. With OpenMP's workers spinning between
# launches (src/common/threadpolicy.py) a launch costs about 1.5 us, so even SmolLM2's smallest
# matrices gain from the second thread: measured (SmolLM2-135M Q4_1, f32, 2-core EPYC, alternating in
# one process) 64-73 tok/s from 1M weights (w1, w3, w2 only on one thread), 81-95 from 128K,
# 88-109 from 32K. The quantized kernels do more arithmetic per byte than the bf16 one (matmul.py),
# so the rule is in weights, not bytes.
PARALLEL_MIN_WEIGHTS = 1 << 16
_DEQUANTIZE_PARALLEL_MIN = 1 << 16  # float32 values below which dequantizing stays on one thread
SCRATCH_BYTES = 8 << 20  # the float32 weight rows dequantized at a time in the BLAS reference path
# Below this many multiply-adds a product of many rows stays on the serial GEMV: a parallel launch
# (tens of microseconds) would cost more than it saves (the bf16 prefill kernel's rule, gemm_bf16.py).
GEMM_MIN_MACS = 1 << 22


@dataclass(frozen=True)
class BlockKernels:
    """The kernels of one dtype; `rows` views a tensor's storage as the 2-D array they read."""

    dequantize_serial: Callable[..., None]
    dequantize_parallel: Callable[..., None]
    gemv_serial: Callable[..., None]
    gemv_parallel: Callable[..., None]
    gemm_parallel: Callable[..., None]
    rows: Callable[[np.ndarray], np.ndarray]
    gemv_many_serial: Callable[..., None]  # (x, tuple of matrices, tuple of outs): several in one call
    gemv_many_parallel: Callable[..., None]


def _byte_rows(data: np.ndarray) -> np.ndarray:
    if data.ndim == 2:
        return data  # a matrix already is its rows (the common case: every call of a decode step)
    return data.reshape(-1, data.shape[-1]) if data.ndim else data.reshape(1, -1)


def _f16_rows(data: np.ndarray) -> np.ndarray:
    return _byte_rows(data.view(np.uint16))


# The kernels of a dtype are imported on its first use: a run on bf16 or float32 weights never loads
# them (numba's set-up of some fifty functions costs tens of milliseconds at start-up).
_MODULES: dict[DataType, str] = {
    DT_F16: "f16",
    DT_Q8_0: "q8_0",
    DT_Q4_0: "q4_0",
    DT_Q4_1: "q4_1",
    DT_Q4_K: "q4_k",
    DT_Q6_K: "q6_k",
}
BLOCK_DTYPES = tuple(_MODULES)  # the dtypes LinearTransformation and Embedding read through this file
_KERNELS: dict[DataType, BlockKernels] = {}


def kernels_for(dtype: DataType) -> BlockKernels:
    """The kernels of a block dtype (F16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K), imported on first use."""
    kernels = _KERNELS.get(dtype)
    if kernels is None:
        if dtype not in _MODULES:
            names = ", ".join(str(d) for d in _MODULES)
            raise DTypeError(f"dequantize: {dtype} is not a block dtype (expected {names})")
        module = importlib.import_module(f".{_MODULES[dtype]}", __package__)
        kernels = _KERNELS[dtype] = BlockKernels(
            module.dequantize_serial,
            module.dequantize_parallel,
            module.gemv_serial,
            module.gemv_parallel,
            module.gemm_parallel,
            _f16_rows if dtype is DT_F16 else _byte_rows,
            module.gemv_many_serial,
            module.gemv_many_parallel,
        )
    return kernels


def _values_per_row(dtype: DataType, rows: np.ndarray) -> int:
    stored = rows.shape[-1]
    if dtype is DT_F16:
        return stored
    if stored % dtype.block_bytes:
        raise ShapeError(
            f"dequantize: {dtype} rows of {stored} bytes are not whole blocks of {dtype.block_bytes} bytes"
        )
    return stored // dtype.block_bytes * dtype.block_size


def dequantize_rows_into(kernels: BlockKernels, rows: np.ndarray, out: np.ndarray) -> None:
    """Dequantize the 2-D storage `rows` into the float32 array `out` [rows, values] (no checks)."""
    if out.size >= _DEQUANTIZE_PARALLEL_MIN and parallel_ok():
        kernels.dequantize_parallel(rows, out)
    elif out.size:
        kernels.dequantize_serial(rows, out)


def dequantize(dtype: DataType, data: np.ndarray) -> np.ndarray:
    """Storage -> float32 values: uint8 blocks [..., n_blocks * block_bytes] -> [..., n_blocks *
    block_size], or float16 [..., cols] -> [..., cols]. Bit for bit gguf-py's dequantize."""
    kernels = kernels_for(dtype)
    if data.dtype != dtype.storage:
        raise DTypeError(f"dequantize: {dtype} is stored as numpy {dtype.storage}, got numpy {data.dtype}")
    rows = np.ascontiguousarray(kernels.rows(data))
    cols = _values_per_row(dtype, rows)
    out = np.empty((rows.shape[0], cols), dtype=np.float32)
    dequantize_rows_into(kernels, rows, out)
    lead = data.shape[:-1] if data.ndim else ()
    return out.reshape(*lead, cols)


def linear(x2: np.ndarray, dtype: DataType, w_data: np.ndarray) -> np.ndarray:
    """x2 float32 [n, k] (C-contiguous) @ W^T for W [m, k] of a block dtype stored as `w_data` ->
    float32 [n, m]. The caller (LinearTransformation) has checked the dtypes and that W's rows hold k
    values; this runs on every matrix of every decode step, so it checks nothing more."""
    kernels = _KERNELS.get(dtype) or kernels_for(dtype)
    rows = kernels.rows(w_data)
    n, k = x2.shape
    m = rows.shape[0]
    if n <= GEMV_MAX_ROWS:
        out = np.empty((n, m), dtype=np.float32)
        if n:
            gemv = kernels.gemv_parallel if m * k >= PARALLEL_MIN_WEIGHTS and parallel_ok() else kernels.gemv_serial
            gemv(x2, rows, out)
        return out
    if n * m * k < GEMM_MIN_MACS:
        out = np.empty((n, m), dtype=np.float32)
        kernels.gemv_serial(x2, rows, out)
        return out
    if os.environ.get(KERNEL_ENV) == "blas":
        return _linear_dequantize_blas(kernels, x2, rows)
    out = np.zeros((n, m), dtype=np.float32)
    parallel_ok()  # (sets the threads in force; with one, the tiles run one after the other)
    kernels.gemm_parallel(x2, rows, out)
    return out


def _linear_dequantize_blas(kernels: BlockKernels, x2: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The reference path: blocks of weight rows dequantized into an 8 MB scratch, each block's product
    by numpy's BLAS. Blocks of weight rows produce blocks of output *columns*; the transposed product
    (w_block @ x^T) writes each block as contiguous rows, which BLAS needs."""
    n, k = x2.shape
    m = rows.shape[0]
    block = max(1, min(m, SCRATCH_BYTES // (4 * max(k, 1))))
    scratch = np.empty((block, k), dtype=np.float32)
    out_t = np.empty((m, n), dtype=np.float32)
    x2_t = x2.T
    for r0 in range(0, m, block):
        r1 = min(m, r0 + block)
        w_block = scratch[: r1 - r0]
        dequantize_rows_into(kernels, rows[r0:r1], w_block)
        np.matmul(w_block, x2_t, out=out_t[r0:r1])
    return np.ascontiguousarray(out_t.T)


def linear_many(x2: np.ndarray, dtype: DataType, w_datas: list[np.ndarray]) -> list[np.ndarray]:
    """[linear(x2, dtype, w) for w in w_datas] for a few rows of x (n <= GEMV_MAX_ROWS), in one kernel
    launch: the rows of all the matrices are split over the threads together, so they wake once.
    The caller (LinearTransformations) has checked that every matrix is of `dtype` with k values a row."""
    kernels = _KERNELS.get(dtype) or kernels_for(dtype)
    # one tuple type for numba: every matrix a C-contiguous 2-D array (no copy when already so)
    rows = tuple(np.ascontiguousarray(kernels.rows(data)) for data in w_datas)
    n, k = x2.shape
    x2 = np.ascontiguousarray(x2, dtype=np.float32)
    outs = tuple(np.empty((n, r.shape[0]), dtype=np.float32) for r in rows)
    if n:
        # parallel when one of the matrices alone would be: the launch then replaces several
        # parallel ones. Not on their sum: with sleeping workers and the threshold at 1M weights,
        # SmolLM2's w1 and w3 (885K each) in one parallel launch decoded at 64 tok/s (busy machine)
        # against both serial at 71
        biggest = k * max(r.shape[0] for r in rows)
        gemv_many = kernels.gemv_many_parallel if biggest >= PARALLEL_MIN_WEIGHTS and parallel_ok() else kernels.gemv_many_serial
        gemv_many(x2, rows, outs)
    return list(outs)


__all__ = ["BLOCK_DTYPES", "BlockKernels", "dequantize", "linear", "linear_many", "kernels_for"]
