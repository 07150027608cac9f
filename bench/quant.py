"""Quantized and F16 matrix products against the machine's streaming-read bandwidth, in one run.

    python -m bench.quant                   # every type, SmolLM2-135M's shapes and 4096 x 11008
    python -m bench.quant --types Q4_1 Q8_0 --json

Decode multiplies one activation row by every weight matrix, reading each weight once: a GEMV is
memory-bound, so its figure of merit is bytes of blocks read per second, compared with a parallel
streaming read of a 1 GiB float32 array measured in the same process (bench.decode's probe). Each
matrix is timed *cold*, as in a real decode step where the whole model does not fit in the caches:
the calls rotate over enough copies of the matrix (at least 256 MB) that every call reads its blocks
from memory. The time per call is the whole op, `LinearTransformation(x, w)`, with its Python
dispatch; `kernel_us` is the GEMV kernel alone on a warm (cache-resident) small matrix, and the
difference is the fixed cost per call that a 135M model pays 211 times a token. The kernels are also
timed alone on one thread and on all, cold, to show where going parallel pays on this machine (the op
goes parallel from quantized.PARALLEL_MIN_WEIGHTS weights).

The last table is one whole SmolLM2-135M-Instruct Q4_1 decode step's matrix products in order (30
layers of 7 Q4_1 matrices and the 49152 x 576 Q8_0 classifier, random blocks), the model's 97 MB
streaming through as in real decoding: on one thread, on all, and as configured. llama.cpp's
llama-bench decodes this model at about 100 tokens/s on 2 threads of an Intel Xeon, everything
included: 10 ms a token.

Prefill multiplies many rows: `prefill_gflop_s` is LinearTransformation of 64 rows (dequantize a
block of weight rows into a float32 scratch, then numpy's BLAS), next to BLAS on the float32 matrix.

The machine is shared: the figures are ratios from one run, printed with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

from bench.decode import measure_bandwidth_gb_s
from llamanuts import ml
from llamanuts.ml import DataType, Tensor, quantized

# (out, in) of y = x @ W^T: SmolLM2-135M's matrices (wq/wo, wk/wv, w1/w3, w2, the tied classifier)
# and Llama 2 7B's FFN down projection.
SMOLLM2_SHAPES = [(576, 576), (192, 576), (1536, 576), (576, 1536), (49152, 576)]
BIG_SHAPES = [(4096, 11008)]
TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K", "F16"]
# one decode step of SmolLM2-135M-Instruct Q4_1: per layer wq, wk, wv, wo, w1, w3, w2 in Q4_1, then the
# tied Q8_0 classifier; 97 MB of blocks, which llama.cpp's llama-bench reads about 100 times a second
SMOLLM2_LAYER = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)]
SMOLLM2_LAYERS = 30
COLD_BYTES = 256 << 20
PREFILL_ROWS = 64


def random_weights(name: str, rows: int, cols: int, rng: np.random.Generator) -> Tensor:
    """Random blocks (random bytes with small float16 scales) or float16 values: speed does not
    depend on the values, only on the bytes."""
    dtype = DataType[name]
    if dtype is DataType.F16:
        return Tensor.from_numpy((0.05 * rng.standard_normal((rows, cols))).astype(np.float16))
    data = rng.integers(0, 256, size=(rows, cols // dtype.block_size, dtype.block_bytes), dtype=np.uint8)
    offsets = {"Q8_0": (0,), "Q4_0": (0,), "Q4_1": (0, 2), "Q4_K": (0, 2), "Q6_K": (208,)}[name]
    for offset in offsets:
        scale = (0.001 * rng.standard_normal(data.shape[:2])).astype("<f2")
        data[:, :, offset : offset + 2] = scale.view(np.uint8).reshape(*data.shape[:2], 2)
    return Tensor([rows, cols], dtype, data.reshape(rows, -1))


def _median_seconds(call: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_gemv_cold(name: str, rows: int, cols: int, rng: np.random.Generator) -> dict[str, Any]:
    """The op (which picks one or all threads by size) and each kernel alone, on cold weights."""
    first = random_weights(name, rows, cols, rng)
    count = max(2, COLD_BYTES // first.nbytes())
    copies = [first] + [Tensor(first.shape, first.dtype, first.data.copy()) for _ in range(count - 1)]
    kernels = quantized.kernels_for(first.dtype)
    x = Tensor.from_numpy(rng.standard_normal((1, cols)).astype(np.float32))
    out = np.empty((1, rows), np.float32)
    repeats = max(20, min(400, 3 * count))
    calls: dict[str, Callable[[Tensor], Any]] = {
        "op": lambda w: ml.LinearTransformation(x, w),
        "serial": lambda w: kernels.gemv_serial(x.data, kernels.rows(w.data), out),
        "parallel": lambda w: kernels.gemv_parallel(x.data, kernels.rows(w.data), out),
    }
    for call in calls.values():
        call(copies[0])  # compile / warm up
    # interleaved, each call on the next copy: the three see the same load, and cold weights
    times: dict[str, list[float]] = {label: [] for label in calls}
    index = 1
    for _ in range(repeats):
        for label, call in calls.items():
            w = copies[index % count]
            index += 1
            t0 = time.perf_counter()
            call(w)
            times[label].append(time.perf_counter() - t0)
    op, serial, parallel = (statistics.median(times[label]) for label in calls)
    nbytes = first.nbytes()
    return {
        "type": name,
        "shape": [rows, cols],
        "bytes": nbytes,
        "us_per_call": op * 1e6,
        "gb_s": nbytes / op / 1e9,
        "serial_gb_s": nbytes / serial / 1e9,
        "parallel_gb_s": nbytes / parallel / 1e9,
        "parallel": rows * cols >= quantized.PARALLEL_MIN_WEIGHTS,
    }


def time_kernel_warm(name: str, rows: int, cols: int, rng: np.random.Generator) -> float:
    """Microseconds per call of the GEMV kernel alone (no op dispatch) on a cache-resident matrix."""
    w = random_weights(name, rows, cols, rng)
    kernels = quantized.kernels_for(w.dtype)
    w_rows = kernels.rows(w.data)
    x = rng.standard_normal((1, cols)).astype(np.float32)
    out = np.empty((1, rows), np.float32)
    gemv = kernels.gemv_parallel if rows * cols >= quantized.PARALLEL_MIN_WEIGHTS else kernels.gemv_serial
    gemv(x, w_rows, out)
    return _median_seconds(lambda: gemv(x, w_rows, out), 400) * 1e6


def time_op_warm(name: str, rows: int, cols: int, rng: np.random.Generator) -> float:
    w = random_weights(name, rows, cols, rng)
    x = Tensor.from_numpy(rng.standard_normal((1, cols)).astype(np.float32))
    ml.LinearTransformation(x, w)
    return _median_seconds(lambda: ml.LinearTransformation(x, w), 400) * 1e6


def time_prefill(name: str, rows: int, cols: int, rng: np.random.Generator, repeats: int = 7) -> dict[str, Any]:
    w = random_weights(name, rows, cols, rng)
    x = Tensor.from_numpy(rng.standard_normal((PREFILL_ROWS, cols)).astype(np.float32))
    w32 = ml.ToFloat32(w)
    ml.LinearTransformation(x, w)
    ml.LinearTransformation(x, w32)
    flops = 2.0 * PREFILL_ROWS * rows * cols
    quant, blas = [], []
    for _ in range(repeats):  # interleaved, so both see the same load
        quant.append(_median_seconds(lambda: ml.LinearTransformation(x, w), 1))
        blas.append(_median_seconds(lambda: ml.LinearTransformation(x, w32), 1))
    return {
        "type": name,
        "shape": [rows, cols],
        "prefill_gflop_s": flops / statistics.median(quant) / 1e9,
        "f32_blas_gflop_s": flops / statistics.median(blas) / 1e9,
    }


def time_smollm2_pass(rng: np.random.Generator, repeats: int = 15) -> dict[str, Any]:
    """Every matrix product of one SmolLM2-135M decode step, in order, on random blocks of the real
    types and shapes: the GEMV share of a token, with the whole model's bytes streaming through.

    Two figures per setting: the wall time of a whole pass (median), and the sum over the 211 calls of
    each call's median time. On a machine shared with busy processes a pass of 10-30 ms is often
    preempted, which the first figure includes and the second mostly filters out."""
    matrices = [random_weights("Q4_1", rows, cols, rng) for _ in range(SMOLLM2_LAYERS) for rows, cols in SMOLLM2_LAYER]
    matrices.append(random_weights("Q8_0", 49152, 576, rng))
    inputs = {cols: Tensor.from_numpy(rng.standard_normal((1, cols)).astype(np.float32)) for cols in (576, 1536)}
    nbytes = sum(w.nbytes() for w in matrices)

    def one_pass(call_times: list[list[float]]) -> float:
        start = time.perf_counter()
        for i, w in enumerate(matrices):
            t0 = time.perf_counter()
            ml.LinearTransformation(inputs[w.shape[1]], w)
            call_times[i].append(time.perf_counter() - t0)
        return time.perf_counter() - start

    configured = quantized.PARALLEL_MIN_WEIGHTS
    settings = {"as configured": configured, "all on 1 thread": 1 << 62, "all on all threads": 0}
    passes: dict[str, list[float]] = {label: [] for label in settings}
    calls: dict[str, list[list[float]]] = {label: [[] for _ in matrices] for label in settings}
    try:
        for threshold in settings.values():
            quantized.PARALLEL_MIN_WEIGHTS = threshold
            one_pass([[] for _ in matrices])  # compile / warm up
        for _ in range(repeats):  # interleaved, so the three see the same load
            for label, threshold in settings.items():
                quantized.PARALLEL_MIN_WEIGHTS = threshold
                passes[label].append(one_pass(calls[label]))
    finally:
        quantized.PARALLEL_MIN_WEIGHTS = configured
    results: dict[str, Any] = {"bytes": nbytes}
    for label in settings:
        wall = statistics.median(passes[label])
        per_call = sum(statistics.median(t) for t in calls[label])
        results[label] = {
            "pass_ms": wall * 1e3,
            "sum_of_call_medians_ms": per_call * 1e3,
            "gb_s": nbytes / per_call / 1e9,
            "tok_s_bound": 1 / per_call,
        }
    return results


def run(types: list[str], with_big: bool) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()
    bandwidth = measure_bandwidth_gb_s()
    gemv = []
    for name in types:
        step = DataType[name].block_size
        for rows, cols in SMOLLM2_SHAPES + (BIG_SHAPES if with_big else []):
            if cols % step:
                continue  # K-quants need rows of whole 256-value super-blocks (576 is not)
            result = time_gemv_cold(name, rows, cols, rng)
            result["bandwidth_ratio"] = result["gb_s"] / bandwidth
            gemv.append(result)
            print(
                f"{name:5} {rows:6}x{cols:<6} {result['us_per_call']:9.1f} us  {result['gb_s']:6.2f} GB/s  "
                f"{result['bandwidth_ratio']:.2f} of stream (1 thread {result['serial_gb_s']:.2f}, all {result['parallel_gb_s']:.2f})",
                file=sys.stderr,
                flush=True,
            )
    fixed = []
    for name in types:
        cols = 256 if DataType[name].block_size == 256 else 576
        kernel_us = time_kernel_warm(name, 192, cols, rng)
        op_us = time_op_warm(name, 192, cols, rng)
        fixed.append({"type": name, "shape": [192, cols], "kernel_us": kernel_us, "op_us": op_us, "dispatch_us": op_us - kernel_us})
    prefill = [time_prefill(name, *(BIG_SHAPES[0] if with_big else (1536, 576)), rng) for name in types]
    smollm2 = time_smollm2_pass(rng)
    for figures in smollm2.values():
        if isinstance(figures, dict):
            figures["bandwidth_ratio"] = figures["gb_s"] / bandwidth
    bandwidth_after = measure_bandwidth_gb_s()
    return {
        "threads": ml.GetThreads(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "bandwidth_gb_s": round(bandwidth, 2),
        "bandwidth_gb_s_after": round(bandwidth_after, 2),
        "gemv": gemv,
        "fixed_cost": fixed,
        "prefill": prefill,
        "smollm2_decode_gemvs": smollm2,
    }


def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"streaming read {result['bandwidth_gb_s']} GB/s (after: {result['bandwidth_gb_s_after']}), "
        f"{result['threads']} threads, load average {result['load_average_before']} -> {result['load_average_after']}"
    )
    table = Table(title="decode GEMV, one row of x, cold weights (LinearTransformation; kernels alone on 1 / all threads)")
    for column in ("type", "shape", "MB", "us/call", "GB/s", "x stream", "threads", "1T GB/s", "all GB/s"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for r in result["gemv"]:
        table.add_row(
            r["type"],
            f"{r['shape'][0]}x{r['shape'][1]}",
            f"{r['bytes'] / 1e6:.2f}",
            f"{r['us_per_call']:.1f}",
            f"{r['gb_s']:.2f}",
            f"{r['bandwidth_ratio']:.2f}",
            "all" if r["parallel"] else "1",
            f"{r['serial_gb_s']:.2f}",
            f"{r['parallel_gb_s']:.2f}",
        )
    console.print(table)
    table = Table(title="fixed cost per small call (192 rows, warm)")
    for column in ("type", "shape", "kernel us", "op us", "dispatch us"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for r in result["fixed_cost"]:
        table.add_row(r["type"], f"{r['shape'][0]}x{r['shape'][1]}", f"{r['kernel_us']:.1f}", f"{r['op_us']:.1f}", f"{r['dispatch_us']:.1f}")
    console.print(table)
    table = Table(title=f"prefill, {PREFILL_ROWS} rows: dequantize blocks + BLAS")
    for column in ("type", "shape", "GFLOP/s", "f32 BLAS", "ratio"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for r in result["prefill"]:
        table.add_row(r["type"], f"{r['shape'][0]}x{r['shape'][1]}", f"{r['prefill_gflop_s']:.1f}", f"{r['f32_blas_gflop_s']:.1f}", f"{r['prefill_gflop_s'] / r['f32_blas_gflop_s']:.2f}")
    console.print(table)
    smollm2 = result["smollm2_decode_gemvs"]
    table = Table(title=f"SmolLM2-135M Q4_1 decode step: its 211 matrix products ({smollm2['bytes'] / 1e6:.1f} MB)")
    for column in ("threads", "pass ms", "sum of call medians ms", "GB/s", "x stream", "tok/s if nothing else ran"):
        table.add_column(column, justify="left" if column == "threads" else "right")
    for label, r in smollm2.items():
        if isinstance(r, dict):
            table.add_row(
                label,
                f"{r['pass_ms']:.2f}",
                f"{r['sum_of_call_medians_ms']:.2f}",
                f"{r['gb_s']:.2f}",
                f"{r['bandwidth_ratio']:.2f}",
                f"{r['tok_s_bound']:.0f}",
            )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quant", description=__doc__.split("\n\n")[0])
    parser.add_argument("--types", nargs="+", choices=TYPES, default=TYPES)
    parser.add_argument("--no-big", action="store_true", help="skip the 4096 x 11008 matrix (SmolLM2's shapes only)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.threads:
        ml.SetThreads(args.threads)
    result = run(args.types, not args.no_big)
    if args.json:
        print(json.dumps(result))
    else:
        print_tables(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
