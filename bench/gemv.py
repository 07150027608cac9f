"""The matrix-vector kernels alone: GB/s of weights streamed, one thread against all, per shape.

    python -m bench.gemv [--json]
    python -m bench.gemv --rows [--json]     # 1-8 rows of x: the GEMV against the prefill kernel

Decode reads every matrix once per token, from memory (a model does not fit in the caches), so
each matrix is timed cold: the benchmark cycles through enough copies of it to fill 256 MB. For
each shape it times the serial kernel (`src/ml/matmul.py: _gemv`), the parallel one
(`_gemv_parallel`, rows split over the threads) and, for float32 weights, numpy's matrix-vector
product (OpenBLAS sgemv). The crossing point of serial and parallel is what
`src/ml/matmul.py: _PARALLEL_MIN_BYTES` should be on this machine: waking the second thread costs
microseconds, and below some size one core reads the matrix faster than two can start.

With --rows it answers the other switch, `src/ml/matmul.py: GEMV_MAX_ROWS`: for 1 to 8 rows of x
and bf16 weights, the matrix-vector kernel (`matmul.gemv`, which reads each weight once per call and
meets every row of x with it) against the register-tiled prefill kernel
(`src/ml/gemm_bf16.py: linear_bf16_weights_many_rows`, 4x4 tiles), both as LinearTransformation
would call them, for x in bf16 (the bf16 mode) and in float32 (the f32 mode).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np

from llamanuts.ml import matmul

# (rows, columns): SmolLM2-135M's wk/wv, wq/wo, w1/w3, w2; 110M's; Llama 2 7B's
SHAPES = [(192, 576), (576, 576), (1536, 576), (576, 1536), (768, 768), (2048, 768), (768, 2048), (4096, 4096), (11008, 4096)]
RING_BYTES = 256 << 20


def _time_cold(kernel: Callable[..., Any], x: np.ndarray, weights: list[np.ndarray], out: np.ndarray, rounds: int) -> float:
    """Median seconds of one call, each on a matrix not touched since the others were read."""
    kernel(x, weights[0], out)
    times = []
    for _ in range(rounds):
        for w in weights:
            t0 = time.perf_counter()
            kernel(x, w, out)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(shapes: list[tuple[int, int]], rounds: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    for m, k in shapes:
        row: dict[str, Any] = {"shape": [m, k], "bf16_bytes": m * k * 2}
        for dtype, make in (("bf16", lambda: rng.integers(0x3C00, 0x3D00, size=(m, k), dtype=np.uint16)),
                            ("f32", lambda: rng.standard_normal((m, k), dtype=np.float32))):
            nbytes = m * k * (2 if dtype == "bf16" else 4)
            weights = [make() for _ in range(max(2, RING_BYTES // nbytes))]
            x = rng.standard_normal((1, k), dtype=np.float32)
            out = np.empty((1, m), dtype=np.float32)
            kernels: dict[str, Callable[..., Any]] = {"serial": matmul._gemv, "parallel": matmul._gemv_parallel}
            if dtype == "f32":
                kernels["numpy"] = lambda x, w, out: np.matmul(x, w.T, out=out)
            for name, kernel in kernels.items():
                seconds = _time_cold(kernel, x, weights, out, rounds)
                row[f"{dtype}_{name}_us"] = round(seconds * 1e6, 1)
                row[f"{dtype}_{name}_gb_s"] = round(nbytes / seconds / 1e9, 1)
            del weights
        rows.append(row)
    return rows


def measure_rows(shapes: list[tuple[int, int]], rows: list[int], rounds: int = 3) -> list[dict[str, Any]]:
    """Cold median microseconds of the GEMV and of the prefill kernel, per shape, x dtype and rows."""
    from llamanuts.ml import gemm_bf16

    rng = np.random.default_rng(1)
    out_rows = []
    for m, k in shapes:
        weights = [rng.integers(0x3C00, 0x3D00, size=(m, k), dtype=np.uint16) for _ in range(max(2, RING_BYTES // (2 * m * k)))]
        for x_dtype in ("bf16", "f32"):
            for n in rows:
                x = rng.standard_normal((n, k), dtype=np.float32)
                if x_dtype == "bf16":
                    x = (x.view(np.uint32) >> 16).astype(np.uint16)
                gemv_us = _time_cold(lambda x, w, out: matmul.gemv(x, w, np.dtype(np.float32)), x, weights, None, rounds)  # type: ignore[arg-type]
                tiled_us = _time_cold(lambda x, w, out: gemm_bf16.linear_bf16_weights_many_rows(x, w), x, weights, None, rounds)  # type: ignore[arg-type]
                out_rows.append({"shape": [m, k], "x": x_dtype, "rows": n, "gemv_us": round(gemv_us * 1e6, 1),
                                 "tiled_us": round(tiled_us * 1e6, 1), "kernel": gemm_bf16.select_kernel(x.dtype)})
        del weights
    return out_rows


def suggested_threshold(rows: list[dict[str, Any]]) -> int | None:
    """The smallest bf16 size from which the parallel kernel beat the serial one at every larger size."""
    wins = sorted((r["bf16_bytes"], r["bf16_parallel_us"] < r["bf16_serial_us"]) for r in rows)
    for i, (nbytes, _) in enumerate(wins):
        if all(win for _, win in wins[i:]):
            return nbytes
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gemv", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--rows", action="store_true", help="1-8 rows of x: the GEMV against the prefill kernel")
    args = parser.parse_args(argv)
    if args.rows:
        compared = measure_rows([(576, 576), (1536, 576), (2048, 768), (4096, 4096)], [1, 2, 3, 4, 5, 8], args.rounds)
        if args.json:
            print(json.dumps({"rows": compared, "gemv_max_rows": matmul.GEMV_MAX_ROWS}))
            return 0
        for r in compared:
            m, k = r["shape"]
            faster = "gemv" if r["gemv_us"] < r["tiled_us"] else r["kernel"]
            print(f"{m:>6}x{k:<5} x {r['x']:<4} rows {r['rows']}: gemv {r['gemv_us']:8.1f} us, {r['kernel']} {r['tiled_us']:8.1f} us -> {faster}")
        print(f"GEMV_MAX_ROWS in force: {matmul.GEMV_MAX_ROWS}")
        return 0
    rows = measure(SHAPES, args.rounds)
    threshold = suggested_threshold(rows)
    if args.json:
        print(json.dumps({"rows": rows, "suggested_parallel_min_bytes": threshold,
                          "parallel_min_bytes": matmul._PARALLEL_MIN_BYTES}))
        return 0
    for r in rows:
        m, k = r["shape"]
        print(f"{m:>6}x{k:<5} bf16 serial {r['bf16_serial_gb_s']:5.1f} parallel {r['bf16_parallel_gb_s']:5.1f} GB/s | "
              f"f32 serial {r['f32_serial_gb_s']:5.1f} parallel {r['f32_parallel_gb_s']:5.1f} numpy {r['f32_numpy_gb_s']:5.1f} GB/s")
    print(f"parallel from {threshold} bytes on this run (in force: {matmul._PARALLEL_MIN_BYTES})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
