"""The prefill matrix product with bf16 weights, kernel by kernel, against BLAS and PyTorch.

    python -m bench.gemm                       # Llama 2 7B / Llama 3.1 8B shapes, 8 and 64 rows
    python -m bench.gemm --rows 64 --shape 11008x4096 --repeats 5 --json

For each product x [n, k] @ w [m, k]^T with random bf16 weights it times, in the same process:
- our kernels (`src/ml/gemm_bf16.py`): `dpbf16` (bf16 activations, AVX512_BF16), `fma` (float32
  activations, weights widened in registers), `blas` (the former path: widen blocks to float32 in
  memory, then numpy's BLAS);
- numpy's sgemm on weights widened to float32 beforehand (the best float32 math can do, at twice
  the memory), and PyTorch's bf16 and float32 matmul on the same values (references only).

GFLOP/s counts 2 n m k. The machine is shared: each figure is the best of `--repeats` runs, and the
CPU time of the process during that run is given as `cores` (2.0 = both cores were ours throughout),
so a low figure from a loaded machine shows as such; GFLOP per CPU-second is then the steadier
figure of the kernel itself (for one thread, or two that both ran).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

import numpy as np

from llamanuts.ml import GetThreads, SetThreads
from llamanuts.ml import gemm_bf16

# (m, k): Llama 2 7B's wq/wo, w1/w3, w2; Llama 3.1 8B's wk/wv, w1/w3, w2, output; Llama 2's output
SHAPES = ["4096x4096", "11008x4096", "4096x11008", "1024x4096", "14336x4096", "4096x14336", "32000x4096"]


def _time(function: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(best wall seconds, process CPU seconds during that run)."""
    function()
    best, cpu = float("inf"), 0.0
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        function()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    return best, cpu


def run(rows: list[int], shapes: list[str], repeats: int, with_torch: bool) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    results = []
    for shape in shapes:
        m, k = (int(v) for v in shape.split("x"))
        w = (rng.standard_normal((m, k), dtype=np.float32) * 0.02).view(np.uint32)
        w_bits = ((w + 0x7FFF + ((w >> 16) & 1)) >> 16).astype(np.uint16)
        w_f32 = (w_bits.astype(np.uint32) << 16).view(np.float32)
        for n in rows:
            x_f32 = rng.standard_normal((n, k), dtype=np.float32)
            x_bits = ((x_f32.view(np.uint32) + 0x7FFF) >> 16).astype(np.uint16)
            x_wide = (x_bits.astype(np.uint32) << 16).view(np.float32)
            cases: dict[str, Callable[[], Any]] = {}
            if gemm_bf16.HAS_AVX512_BF16:
                cases["dpbf16 (bf16 x)"] = lambda: gemm_bf16.linear_bf16_weights_many_rows(x_bits, w_bits, "dpbf16")
            cases["fma (f32 x)"] = lambda: gemm_bf16.linear_bf16_weights_many_rows(x_f32, w_bits, "fma")
            cases["blas (widen blocks)"] = lambda: gemm_bf16.linear_bf16_weights_many_rows(x_f32, w_bits, "blas")
            cases["numpy sgemm, f32 weights"] = lambda: x_wide @ w_f32.T
            if with_torch:
                try:
                    import torch
                except ImportError:
                    torch = None  # type: ignore[assignment]
                if torch is not None:
                    torch.set_num_threads(GetThreads())
                    tw, tx = torch.from_numpy(w_f32), torch.from_numpy(x_wide)
                    tw16, tx16 = tw.bfloat16(), tx.bfloat16()
                    cases["torch bf16 matmul"] = lambda: torch.matmul(tx16, tw16.T)
                    cases["torch f32 matmul"] = lambda: torch.matmul(tx, tw.T)
            for name, function in cases.items():
                wall, cpu = _time(function, repeats)
                flops = 2 * n * m * k
                results.append(
                    {
                        "shape": shape,
                        "rows": n,
                        "kernel": name,
                        "ms": round(wall * 1e3, 2),
                        "gflop_s": round(flops / wall / 1e9, 1),
                        "weight_gb_s": round(2 * m * k / wall / 1e9, 1),
                        "cores": round(cpu / wall, 2),
                        "gflop_per_cpu_s": round(flops / cpu / 1e9, 1) if cpu > 0 else None,
                    }
                )
                print(
                    f"{shape:>11} n={n:<3} {name:26s} {wall * 1e3:8.2f} ms {flops / wall / 1e9:7.1f} GFLOP/s "
                    f"{2 * m * k / wall / 1e9:6.1f} GB/s of bf16 weights  cores {cpu / wall:.2f}  "
                    f"{flops / max(cpu, 1e-9) / 1e9:6.1f} GFLOP per CPU-second",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gemm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--shape", nargs="+", default=["11008x4096", "4096x11008", "14336x4096", "4096x14336"], help="m x k")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        SetThreads(args.threads)
    results = run(args.rows, args.shape, args.repeats, not args.no_torch)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
