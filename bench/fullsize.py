"""Full-size Llama 2 7B and Llama 3.1 8B shapes, random bf16 weights: memory, load, prefill, decode.

    python -m bench.fullsize --shape llama2-7b --cache-dir /data/llamanuts-bench
    python -m bench.fullsize --shape llama31-8b --cache-dir /data/llamanuts-bench --report
    python -m bench.fullsize --shape llama2-7b --layers 2           # a quick check of the pipeline

Writes (once) a Meta-format model directory of the shape into the cache directory (13.48 GB for
Llama 2 7B, 16.06 GB for Llama 3.1 8B; bench/metacheckpoint.py streams it, one chunk in memory at a
time), after checking that the disk has room for it and the machine enough available memory to run
it. Then one fresh process loads and runs the model, as `cmd.llama_infer` would, and measures:

- load time (mapping the checkpoint) and resident memory: after loading, and the peak of the whole
  run (the process's VmHWM, which counts the mapped weights it touched);
- the first 8-token prompt (pages the weights in, and compiles the kernels on a cold Numba cache);
- time to first token for an 8- and a 64-token prompt (one Forward of the prompt, computing the
  logits of its last row only, as generation does, then their argmax), so prefill tokens/s, and the
  effective GFLOP/s of the matrix products;
- decode tokens/s (greedy, one token per Forward, after the 8-token prompt);
- the bandwidth of a parallel streaming read in the same process (bench/decode.py's probe), the
  roofline it implies (bandwidth / bytes of weights per token) and the fraction of it reached.

Medians of `--repeats` runs. `--report` saves the row in bench/results/fullsize.json and rewrites the
full-size table of docs/PERFORMANCE.md. `--prefill-kernel` forces a prefill kernel for comparison
(src/ml/gemm_bf16.py: dpbf16, fma or blas).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = REPO / "bench" / ".cache" / "fullsize"
RESULTS = REPO / "bench" / "results" / "fullsize.json"
MEMORY_BUDGET_BYTES = 1_500_000_000  # what a run may use beyond the weights (the bound)
DISK_MARGIN_BYTES = 1 << 30
PROMPT_LENGTHS = (8, 64)


# ---- the machine -----------------------------------------------------------------------------------


def mem_available_bytes() -> int:
    """MemAvailable from /proc/meminfo (free memory plus what the kernel can reclaim), or -1."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1


def cpu_description() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "bf16_instructions": sorted(f for f in flags if f in ("avx512_bf16", "amx_bf16")),
        "avx512f": "avx512f" in flags,
    }


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def check_resources(directory: Path, checkpoint_bytes: int, force: bool) -> list[str]:
    """Problems that would stop the run (empty if none), each saying what is needed and what is there."""
    problems = []
    checkpoint = directory / "consolidated.00.pth"
    if not checkpoint.is_file():
        existing = directory
        while not existing.exists():
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        need = checkpoint_bytes + DISK_MARGIN_BYTES
        print(f"disk: the checkpoint needs {_gb(need)} (with a 1 GiB margin) in {existing}; {_gb(free)} free", file=sys.stderr)
        if free < need:
            problems.append(f"not enough disk: {_gb(need)} needed in {existing}, {_gb(free)} free (use --cache-dir elsewhere)")
    available = mem_available_bytes()
    need = checkpoint_bytes + MEMORY_BUDGET_BYTES
    if available >= 0:
        print(f"memory: the run needs about {_gb(need)} (weights + 1.5 GB); MemAvailable {_gb(available)}", file=sys.stderr)
        if available < need and not force:
            problems.append(
                f"not enough available memory: about {_gb(need)} needed, MemAvailable is {_gb(available)} "
                "(stop other programs, or --force to run anyway and let the weights be paged from disk)"
            )
    return problems


# ---- the measuring process ---------------------------------------------------------------------------


def _prompt(vocab_size: int, bos: int, length: int) -> list[int]:
    # BOS, then ids spread over the vocabulary (fixed, so every run sees the same prompt)
    return [bos] + [(7919 * i + 13) % vocab_size for i in range(1, length)]


def measure(directory: Path, dtype: str, decode_tokens: int, repeats: int) -> dict[str, Any]:
    import numpy as np

    from bench.decode import decode_bytes_per_token, measure_bandwidth_gb_s
    from llamanuts.ml import GetThreads, gemm_bf16
    from llamanuts.model import LlamaTransformer, tokens_tensor
    from llamanuts.model.loader import load_model

    rss_start = _status_bytes("VmRSS")
    t0 = time.perf_counter()
    loaded = load_model(directory)
    model = LlamaTransformer(loaded.args, loaded.weights, dtype)
    load_s = time.perf_counter() - t0
    rss_loaded = _status_bytes("VmRSS")
    args = loaded.args
    bos = loaded.tokenizer.bos_id
    weight_bytes = sum(t.nbytes() for _, t in loaded.weights.named_tensors())
    bytes_per_token = decode_bytes_per_token(model)
    # floating-point operations of the weight matrices: 2 per weight per row (the embedding is a
    # lookup); a prompt's Forward runs the classifier on its last row only
    block_flops = 2 * sum(t.numel() for layer in loaded.weights.layers for _, t in layer.named(0) if t.ndim == 2)
    classifier_flops = 2 * loaded.weights.output.numel()

    def prefill(length: int) -> tuple[float, Any, int]:
        ctx = model.NewInferenceContext()
        start = time.perf_counter()
        logits = model.Forward(ctx, tokens_tensor(_prompt(args.vocab_size, bos, length)), 0, lastRowOnly=True)
        token = int(np.argmax(logits.data[-1]))
        return time.perf_counter() - start, ctx, token

    def decode(ctx: Any, token: int, position: int) -> float:
        start = time.perf_counter()
        for pos in range(position, position + decode_tokens):
            token = int(np.argmax(model.Forward(ctx, tokens_tensor([token]), pos).data[-1]))
        return decode_tokens / (time.perf_counter() - start)

    first_s, _ctx, _token = prefill(PROMPT_LENGTHS[0])
    del _ctx
    ttft: dict[int, list[float]] = {n: [] for n in PROMPT_LENGTHS}
    decode_rates: list[float] = []
    for _ in range(repeats):
        for n in PROMPT_LENGTHS:
            seconds, ctx, token = prefill(n)
            ttft[n].append(seconds)
            if n == PROMPT_LENGTHS[0]:
                decode_rates.append(decode(ctx, token, n))
            del ctx
    peak_rss = _status_bytes("VmHWM")
    final_rss = _status_bytes("VmRSS")
    decode_tok_s = statistics.median(decode_rates)
    del model, loaded
    gc.collect()
    bandwidth = measure_bandwidth_gb_s()  # after the model is gone: the probe's 1 GiB is not in the peak
    roofline = bandwidth * 1e9 / bytes_per_token
    result: dict[str, Any] = {
        "layers": args.n_layers,
        "dtype": dtype,
        "threads": GetThreads(),
        "prefill_kernel": gemm_bf16.select_kernel(np.uint16 if dtype == "bf16" else np.float32),
        "weight_bytes": weight_bytes,
        "load_s": round(load_s, 3),
        "rss_start_bytes": rss_start,
        "rss_after_load_bytes": rss_loaded,
        "rss_final_bytes": final_rss,
        "peak_rss_bytes": peak_rss,
        "peak_rss_beyond_weights_bytes": peak_rss - weight_bytes,
        "first_prompt_s": round(first_s, 3),
        "decode_tok_s": round(decode_tok_s, 3),
        "bandwidth_gb_s": round(bandwidth, 2),
        "weight_bytes_per_token": bytes_per_token,
        "roofline_tok_s": round(roofline, 3),
        "roofline_fraction": round(decode_tok_s / roofline, 3),
        "matrix_gflop_per_token": round((block_flops + classifier_flops) / 1e9, 2),
    }
    for n in PROMPT_LENGTHS:
        seconds = statistics.median(ttft[n])
        result[f"ttft_{n}_s"] = round(seconds, 3)
        result[f"prefill_{n}_tok_s"] = round(n / seconds, 3)
        result[f"prefill_{n}_gflop_s"] = round((n * block_flops + classifier_flops) / seconds / 1e9, 1)
        result[f"prefill_{n}_vs_decode"] = round(n / seconds / decode_tok_s, 2)
    return result


# ---- the report ------------------------------------------------------------------------------------

SECTION_START = "<!-- fullsize:start -->"
SECTION_END = "<!-- fullsize:end -->"


def render_section(rows: list[dict[str, Any]]) -> str:
    lines = [
        SECTION_START,
        "## Full-size models: Llama 2 7B and Llama 3.1 8B shapes",
        "",
        "Made by `python -m bench.fullsize --shape S --cache-dir DIR --report`: random bf16 weights in Meta's"
        " layout at the real sizes, one fresh process per row, medians of its repeats. TTFT is one Forward of the"
        " prompt and the argmax of its last row; *x decode* is prefill tokens/s over decode tokens/s; peak RSS is"
        " the process's VmHWM (it counts the mapped weights it touched: the embedding table only at the prompt's"
        " tokens, so the peak can be below the weights' size); the roofline uses the bandwidth measured in the same"
        " run; *load* is the machine's load average during the run (2 cores: above 2, other programs shared them).",
        "",
        "| shape | dtype | machine | weights GB | load s | peak RSS GB (beyond weights) | TTFT 8 s | TTFT 64 s |"
        " prefill 8 tok/s (x decode) | prefill 64 tok/s (x decode) | prefill 64 GFLOP/s | decode tok/s |"
        " roofline tok/s | roofline fraction | bandwidth GB/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shape = r["shape"] + ("" if r.get("layers") in (None, 32) else f" ({r['layers']} layers)")
        load = r.get("load_average")
        machine = f"{r['machine']['cpu']}, {r['threads']} threads, {r['date']}" + (f", load {load:.1f}" if load is not None else "")
        lines.append(
            f"| {shape} | {r['dtype']} | {machine} | {r['weight_bytes'] / 1e9:.2f} | {r['load_s']:.2f} | "
            f"{r['peak_rss_bytes'] / 1e9:.2f} ({r['peak_rss_beyond_weights_bytes'] / 1e9:+.2f}) | "
            f"{r['ttft_8_s']:.2f} | {r['ttft_64_s']:.2f} | {r['prefill_8_tok_s']:.2f} ({r['prefill_8_vs_decode']:.1f}x) | "
            f"{r['prefill_64_tok_s']:.2f} ({r['prefill_64_vs_decode']:.1f}x) | {r['prefill_64_gflop_s']:.0f} | "
            f"{r['decode_tok_s']:.2f} | {r['roofline_tok_s']:.2f} | {r['roofline_fraction']:.2f} | {r['bandwidth_gb_s']:.1f} |"
        )
    lines += ["", SECTION_END]
    return "\n".join(lines)


def load_results() -> list[dict[str, Any]]:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else []


def save_result(result: dict[str, Any]) -> list[dict[str, Any]]:
    key = (result["shape"], result["layers"], result["dtype"])
    rows = [r for r in load_results() if (r["shape"], r.get("layers"), r["dtype"]) != key] + [result]
    rows.sort(key=lambda r: (r["shape"], r["dtype"], r.get("layers", 32)))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def update_performance_md(rows: list[dict[str, Any]], path: Path) -> None:
    """Replace (or append) the full-size section of docs/PERFORMANCE.md."""
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Performance\n"
    section = render_section(rows)
    if SECTION_START in text and SECTION_END in text:
        before, rest = text.split(SECTION_START, 1)
        after = rest.split(SECTION_END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


# ---- main ------------------------------------------------------------------------------------------


def _write_with_progress(directory: Path, shape: Any) -> float:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    from bench.metacheckpoint import weight_bytes, write_model_directory

    start = time.perf_counter()
    with Progress("writing", BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task("checkpoint", total=weight_bytes(shape))
        write_model_directory(directory, shape, lambda done, total: bar.update(task, completed=done))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    from bench.metacheckpoint import SHAPES, ZIP_OVERHEAD_BYTES, weight_bytes

    parser = argparse.ArgumentParser(prog="python -m bench.fullsize", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="llama2-7b")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"where the model directories are written (default {DEFAULT_CACHE})")
    parser.add_argument("--layers", type=int, default=None, help="fewer layers than the model's 32, for a quick check")
    parser.add_argument("--dtype", choices=["bf16", "f32"], default="bf16", help="compute mode (default bf16)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: all CPUs)")
    parser.add_argument("--decode-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prefill-kernel", choices=["auto", "dpbf16", "fma", "blas"], default="auto")
    parser.add_argument("--force", action="store_true", help="run even if MemAvailable is below what the run needs")
    parser.add_argument("--report", action="store_true", help="save the row and rewrite the table in docs/PERFORMANCE.md")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on stdout")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)  # the measuring process
    args = parser.parse_args(argv)

    if args.worker is not None:
        if args.threads:
            from llamanuts.ml import SetThreads

            SetThreads(args.threads)
        print(json.dumps(measure(args.worker, args.dtype, args.decode_tokens, args.repeats)))
        return 0

    shape = SHAPES[args.shape]
    if args.layers is not None:
        if not 1 <= args.layers <= shape.n_layers:
            parser.error(f"--layers must be between 1 and {shape.n_layers}")
        shape = shape.with_layers(args.layers)
    directory = args.cache_dir / f"{shape.name}-{shape.n_layers}layers"
    checkpoint_bytes = weight_bytes(shape) + ZIP_OVERHEAD_BYTES
    print(f"{shape.name}, {shape.n_layers} layers: {_gb(weight_bytes(shape))} of bf16 weights in {directory}", file=sys.stderr)
    problems = check_resources(directory, checkpoint_bytes, args.force)
    if problems:
        for p in problems:
            print("bench.fullsize:", p, file=sys.stderr)
        return 2
    write_s = None
    if not (directory / "consolidated.00.pth").is_file():
        write_s = _write_with_progress(directory, shape)
    else:
        from bench.metacheckpoint import write_model_directory

        write_model_directory(directory, shape)  # params.json and tokenizer.model, if missing

    command = [sys.executable, "-m", "bench.fullsize", "--worker", str(directory), "--dtype", args.dtype,
               "--decode-tokens", str(args.decode_tokens), "--repeats", str(args.repeats)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = dict(os.environ)
    if args.prefill_kernel != "auto":
        env["LLAMANUTS_PREFILL_KERNEL"] = args.prefill_kernel
    print("running:", " ".join(command[1:]), file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        print(f"bench.fullsize: the measuring process failed (exit {done.returncode})", file=sys.stderr)
        return 1
    result: dict[str, Any] = {"shape": shape.name, **json.loads(done.stdout.strip().splitlines()[-1])}
    result["child_maxrss_bytes"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    result["write_s"] = None if write_s is None else round(write_s, 1)
    result["machine"] = cpu_description()
    result["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["load_average"] = round(os.getloadavg()[1], 1)  # over the last 5 minutes: the run's own time
    result["within_memory_budget"] = result["peak_rss_beyond_weights_bytes"] <= MEMORY_BUDGET_BYTES
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>30}: {value}")
    if args.report:
        rows = save_result(result)
        update_performance_md(rows, REPO / "docs" / "PERFORMANCE.md")
        print(f"wrote {RESULTS} and docs/PERFORMANCE.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
