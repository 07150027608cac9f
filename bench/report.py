"""Run every benchmark, side by side with the peers, and write docs/PERFORMANCE.md.

    python -m bench.report                  # builds a missing peer first (llama.cpp: ~15 min once)
    python -m bench.report --rebuild-peers  # build the peers again
    python -m bench.report --no-llama-cpp   # skip llama.cpp (its row then says so)

Each configuration runs in a fresh process (`python -m bench.decode ... --json`), so one run's
threads and caches do not colour the next; inside it, our runs and the peer's alternate. The
report prints, for every row, our figure, the peer's and the ratio, then the targets of the
performance issue judged against them, the thread-policy measurements (bench/threads.py) and the
per-stage profiles. The machine (CPU model, vector extensions, load average before and after) is
part of the report: the figures hold for that machine at that hour only. The prefill
kernels' table comes from `python -m bench.gemm`, and the full-size rows (Llama 2 7B, Llama 3.1 8B)
from the last `python -m bench.fullsize --report` of each shape (bench/results/fullsize.json), which
is too long a run to repeat here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "PERFORMANCE.md"
RAW = REPO / "bench" / ".cache" / "report.json"  # the figures behind the last report
DECODE_TOKENS = 128  # llama-bench's tg128; llama2.c runs the same number of steps


Q4_PREFILL_TOKENS = 64  # the prompt of the SmolLM2 Q4_1 prefill rows (llama-bench pp64)


@dataclass(frozen=True)
class Run:
    shape: str
    dtype: str
    tokens: int = DECODE_TOKENS
    flags: tuple[str, ...] = ()
    peer: str | None = None
    torch: bool = False

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "bench.decode", "--shape", self.shape, "--dtype", self.dtype,
                   "--tokens", str(self.tokens), "--json", *self.flags]
        if self.peer:
            command += ["--peer", self.peer]
        if not self.torch:
            command.append("--no-torch")
        return command


RUNS = [
    Run("fixed-cost", "bf16", peer="llama2c"),
    Run("fixed-cost", "f32", peer="llama2c"),
    Run("260K", "bf16", 255),
    Run("15M", "bf16", peer="llama2c", torch=True),
    Run("15M", "f32", peer="llama2c"),
    Run("110M", "bf16", peer="llama2c", torch=True, flags=("--profile",)),
    Run("110M", "f32", peer="llama2c", torch=True),
    Run("smollm2-135M", "bf16", peer="llama2c"),
    Run("smollm2-135M", "f32", peer="llama2c"),
    # the real model, as llama-bench's tg128 and pp64 measure it, and PyTorch on the same weights
    Run("smollm2-Q4_1", "f32", 128, peer="llama.cpp", torch=True, flags=("--prefill-tokens", str(Q4_PREFILL_TOKENS))),
    Run("smollm2-Q4_1", "bf16", 128, peer="llama.cpp", flags=("--prefill-tokens", str(Q4_PREFILL_TOKENS))),
    Run("7B-layers", "bf16", 16, torch=True, flags=("--profile",)),
    Run("7B-layers", "f32", 16),
]


# ---- the machine ----------------------------------------------------------------------------------

FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def cpu_description() -> tuple[str, list[str]]:
    model, flags, family = "", [], {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip()
            if key == "model name" and not model:
                model = line.split(":", 1)[1].strip()
            if key in ("cpu family", "model") and key not in family:
                family[key] = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                present = set(line.split(":", 1)[1].split())
                flags = [f for f in FLAGS_OF_INTEREST if f in present]
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    if family:  # a virtual machine may show only the vendor's name: the family and model say which CPU
        model += f" (family {family.get('cpu family', '?')} model {family.get('model', '?')})"
    return model, flags


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ---- running --------------------------------------------------------------------------------------


def run_one(run: Run) -> dict[str, Any]:
    print("running:", " ".join(run.command()[1:]), file=sys.stderr, flush=True)
    done = subprocess.run(run.command(), cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        return {"shape": run.shape, "dtype": run.dtype, "error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare_peers(rebuild: bool, llama_cpp: bool) -> dict[str, str]:
    """Build what is missing (or everything, with rebuild); name -> path or the reason it is absent."""
    from bench import peers

    status = {}
    for name, find, wanted in (("llama2.c", peers.llama2c_binary, True), ("llama.cpp", peers.llama_bench_binary, llama_cpp)):
        if not wanted:
            status[name] = "skipped (--no-llama-cpp)"
            continue
        try:
            status[name] = str(find(build=True, rebuild=rebuild))
        except peers.PeerUnavailable as e:
            status[name] = f"unavailable: {e}"
    return status


def run_trace() -> dict[str, Any] | None:
    command = [sys.executable, "-m", "bench.trace", "--json"]
    print("running:", " ".join(command[1:]), file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None


def run_threads() -> list[dict[str, Any]]:
    # the new default, its failure mode without the watch, and the policy before (all: bench.threads)
    command = [sys.executable, "-m", "bench.threads", "--policies", "default,spin-no-watch,passive", "--json"]
    print("running:", " ".join(command[1:]), file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        return []
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---- rendering ------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _range(values: list[float] | None) -> str:
    return f"{min(values):.1f}-{max(values):.1f}" if values else "-"


def _find(results: list[dict[str, Any]], shape: str, dtype: str) -> dict[str, Any] | None:
    return next((r for r in results if r.get("shape") == shape and r.get("dtype") == dtype), None)


PEER_NAMES = {"llama2c": "llama2.c runomp (f32)", "llama.cpp": "llama.cpp llama-bench tg"}


def prefill_side_by_side_rows(results: list[dict[str, Any]]) -> list[str]:
    """The prefill rows that have a peer's prefill (llama.cpp's pp) or PyTorch's beside ours."""
    rows = [
        "| shape | ours | prompt tokens | ours prefill tok/s (median, range) | llama-bench pp tok/s (median, range) | ours/llama.cpp | PyTorch f32 eager tok/s | ours/PyTorch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "prefill_tok_s" not in r or not (r.get("peer_prefill_tok_s") or r.get("shape") == "smollm2-Q4_1"):
            continue
        ours, torch_rate = r["prefill_tok_s"], r.get("torch_prefill_tok_s")
        rows.append(
            f"| {r['shape']} | {r['dtype']} | {r.get('prefill_tokens', 32)} | {_fmt(ours)} ({_range(r.get('prefill_runs'))}) | "
            f"{_fmt(r.get('peer_prefill_tok_s'))} ({_range(r.get('peer_prefill_runs'))}) | {_fmt(r.get('peer_prefill_ratio'), 2)} | "
            f"{_fmt(torch_rate)} | {_fmt(ours / torch_rate if ours and torch_rate else None, 2)} |"
        )
    return rows


def side_by_side_rows(results: list[dict[str, Any]]) -> list[str]:
    rows = [
        "| shape | ours | ours decode tok/s (median, range) | peer | peer tok/s (median, range) | ratio ours/peer |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        if not r.get("peer"):
            continue
        peer = PEER_NAMES.get(r["peer"], r["peer"])
        if r.get("ours_unavailable"):
            ours = f"not run: {r['ours_unavailable']}"
        elif r.get("error"):
            ours = f"failed: {r['error']}"
        else:
            ours = f"{_fmt(r.get('decode_tok_s'))} ({_range(r.get('decode_runs'))})"
        if r.get("peer_unavailable"):
            theirs = f"not run: {r['peer_unavailable']}"
        else:
            theirs = f"{_fmt(r.get('peer_decode_tok_s'))} ({_range(r.get('peer_runs'))})"
        rows.append(f"| {r['shape']} | {r['dtype']} | {ours} | {peer} | {theirs} | {_fmt(r.get('peer_ratio'), 2)} |")
    return rows


def roofline_rows(results: list[dict[str, Any]]) -> list[str]:
    rows = [
        "| shape | dtype | decode tok/s | roofline tok/s | roofline fraction | bandwidth GB/s | MB/token | ms/token | us/layer | CPU us/layer | prefill tok/s | PyTorch f32 decode | PyTorch f32 prefill |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if "decode_tok_s" not in r:
            continue
        rows.append(
            f"| {r['shape']} | {r['dtype']} | {_fmt(r['decode_tok_s'])} | {_fmt(r['roofline_tok_s'])} | "
            f"{_fmt(r['roofline_fraction'], 3)} | {_fmt(r['bandwidth_gb_s'])} | {r['weight_bytes_per_token'] / 1e6:.1f} | "
            f"{_fmt(r['ms_per_token'], 2)} | {_fmt(r['us_per_layer'])} | {_fmt(r.get('cpu_us_per_layer'))} | {_fmt(r['prefill_tok_s'])} | "
            f"{_fmt(r.get('torch_decode_tok_s'))} | {_fmt(r.get('torch_prefill_tok_s'))} |"
        )
    return rows


@dataclass
class Target:
    what: str
    measured: str
    threshold: str
    met: bool | None  # None: could not be measured here


def targets(results: list[dict[str, Any]]) -> list[Target]:
    out: list[Target] = []

    def roof(shape: str, dtype: str) -> None:
        r = _find(results, shape, dtype)
        value = r.get("roofline_fraction") if r else None
        out.append(Target(f"{dtype} decode, {shape}: fraction of the roofline", _fmt(value, 3), ">= 0.8",
                          None if value is None else value >= 0.8))

    for shape in ("110M", "7B-layers"):
        roof(shape, "bf16")
    for shape in ("110M", "7B-layers"):
        roof(shape, "f32")
    for shape in ("15M", "110M"):
        r = _find(results, shape, "bf16")
        ratio = r.get("peer_ratio") if r else None
        out.append(Target(f"bf16 decode, {shape}: ours / llama2.c runomp (f32), same threads", _fmt(ratio, 2), ">= 1.5",
                          None if ratio is None else ratio >= 1.5))
    best = None
    for dtype in ("f32", "bf16"):
        r = _find(results, "smollm2-Q4_1", dtype)
        if r and r.get("peer_ratio") is not None and (best is None or r["peer_ratio"] > best[1]):
            best = (dtype, r["peer_ratio"])
    q = _find(results, "smollm2-Q4_1", "f32") or {}
    measured = f"{best[1]:.2f} ({best[0]})" if best else (q.get("ours_unavailable") or q.get("peer_unavailable") or "-")
    out.append(Target("SmolLM2-135M Q4_1 decode: ours / llama.cpp llama-bench tg128", measured, ">= 1.0",
                      None if best is None else best[1] >= 1.0))
    r = _find(results, "smollm2-Q4_1", "f32") or {}
    ours, ref = r.get("prefill_tok_s"), r.get("torch_prefill_tok_s")
    ratio = ours / ref if ours and ref else None
    out.append(Target(f"f32 prefill ({Q4_PREFILL_TOKENS} tokens), SmolLM2-135M Q4_1: ours / PyTorch f32 eager on the dequantized weights",
                      _fmt(ratio, 2), ">= 1.0", None if ratio is None else ratio >= 1.0))
    for shape in ("15M", "110M", "7B-layers"):
        r = _find(results, shape, "bf16")
        ours, ref = (r.get("prefill_tok_s"), r.get("torch_prefill_tok_s")) if r else (None, None)
        ratio = ours / ref if ours and ref else None
        out.append(Target(f"bf16 prefill (32 tokens), {shape}: ours / PyTorch f32 eager", _fmt(ratio, 2), ">= 1.0",
                          None if ratio is None else ratio >= 1.0))
    return out


def thread_rows(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(bench.threads did not run)"]
    out = [
        "| policy | environment | other process | shape | decode tok/s (range) | us/layer | prefill tok/s (32, range) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        env = " ".join(f"{k}={v}" for k, v in r["env"].items())
        out.append(
            f"| {r['policy']} | `{env}` | {'one core busy' if r['busy_core'] else 'none'} | {r['shape']} {r.get('dtype', '')} | "
            f"{_fmt(r['decode_tok_s'])} ({_range(r['decode_runs'])}) | {_fmt(r['us_per_layer'])} | "
            f"{_fmt(r['prefill_tok_s'])} ({_range(r['prefill_runs'])}) |"
        )
    return out


def profile_rows(profile: list[dict[str, Any]]) -> list[str]:
    rows = ["| stage | what | ms/token | share | MB read/token | GB/s |", "|---|---|---|---|---|---|"]
    for p in profile:
        rows.append(
            f"| {p['stage']:02d} | {p['title']} | {p['ms_per_token']:.3f} | {100 * p['share']:.1f}% | "
            f"{p['bytes_per_token'] / 1e6:.2f} | {_fmt(p['gb_s'])} |"
        )
    return rows


def trace_text(trace: dict[str, Any] | None) -> str:
    if not trace:
        return "(bench.trace did not run)"
    return (
        f"The debug trace, off, against the same model code with its {trace['trace_statements_removed']} trace"
        f" statements removed (`python -m bench.trace`, {trace['shape']}, {trace['tokens']} tokens):"
        f" {trace['debug_off_tok_s']} against {trace['stubbed_tok_s']} tok/s, an overhead of"
        f" {100 * trace['debug_off_overhead']:+.1f}% (medians of alternating runs; with the trace on:"
        f" {100 * trace['debug_on_overhead']:+.0f}%)."
    )


def render(
    results: list[dict[str, Any]], threads: list[dict[str, Any]], machine: dict[str, str], trace: dict[str, Any] | None = None
) -> str:
    target_rows = ["| target | measured | needed | met |", "|---|---|---|---|"]
    for t in targets(results):
        met = "not measured" if t.met is None else ("yes" if t.met else "**no**")
        target_rows.append(f"| {t.what} | {t.measured} | {t.threshold} | {met} |")
    fixed = [r for r in results if r.get("shape") == "fixed-cost" and "us_per_layer" in r]
    fixed_text = ", ".join(
        f"{r['dtype']} {r['us_per_layer']:.1f} us (main thread's CPU time: {_fmt(r.get('cpu_us_per_layer'))} us)" for r in fixed
    ) or "-"
    profiles = []
    for r in results:
        if r.get("profile"):
            profiles += [f"### {r['shape']}, {r['dtype']}", "", *profile_rows(r["profile"]), ""]
    threads_used = next((r["threads"] for r in results if "threads" in r), "?")
    return "\n".join(
        [
            "# Performance",
            "",
            "Made by `python -m bench.report`: every row is one `python -m bench.decode ... --json` in a fresh"
            " process; ours and the peer's runs alternate inside it, three of each; figures are medians, with"
            " the range of the runs.",
            "",
            f"- **Machine**: {machine['cpu']}; {machine['cpus']} CPUs, {threads_used} threads for every engine;"
            f" vector extensions: {machine['flags'] or 'none listed'}.",
            f"- **When**: {machine['when']}; load average (1, 5, 15 min) {machine['load_before']} before,"
            f" {machine['load_after']} after. Other work on the machine slows both sides of a row alike, and the"
            " peers' spinning OpenMP threads more than ours; compare ratios within a row, not across reports.",
            f"- **Peers**: llama2.c `{machine['llama2.c']}`; llama.cpp `{machine['llama.cpp']}`.",
            "",
            "## Targets",
            "",
            *target_rows,
            "",
            f"Per-layer fixed cost (a decode step of the fixed-cost shape, whose matrices are tiny, divided by"
            f" its 30 layers): {fixed_text}.",
            "",
            trace_text(trace),
            "",
            "## Side by side",
            "",
            "Same file, same threads. llama2.c reads llama2.c `.bin` files in float32 (its `run.c`, built with"
            " `gcc -Ofast -fopenmp -march=native`), each run the faster of libgomp's default wait policy and"
            " `OMP_WAIT_POLICY=PASSIVE`; llama.cpp's `llama-bench -p 0 -n 128 --repack 0` runs the GGUF file"
            " (and `--repack 1` too on a CPU without AMX: the faster counts).",
            "",
            *side_by_side_rows(results),
            "",
            f"Prefill of the same GGUF file: ours is one Forward call over a {Q4_PREFILL_TOKENS}-token prompt (computing the"
            f" logits of every row, as PyTorch does; llama-bench computes the last row's), llama.cpp's is"
            f" `llama-bench -p {Q4_PREFILL_TOKENS} -n 0`, alternating with ours; PyTorch runs `tools/reference_llama.py` in"
            " float32 on the weights gguf-py dequantizes.",
            "",
            *prefill_side_by_side_rows(results),
            "",
            "## Roofline and prefill",
            "",
            "- **roofline**: the bandwidth measured in the same run (a parallel streaming read of 1 GiB) divided by"
            " the bytes of weights one decode step reads (the real bytes: 2 per bf16 weight, 4 per float32, the"
            " blocks of a quantized file).",
            "- **us/layer**: ms/token divided by the layers: on the fixed-cost shape, the fixed cost of a layer."
            " **CPU us/layer**: the same from the main thread's CPU time, which leaves out the time it waited"
            " (for a core, or for the other threads): the Python side of a step, steady on a busy machine.",
            "- **prefill**: a 32-token prompt in one Forward call (64 tokens on the SmolLM2 Q4_1 rows, as llama-bench's pp64). **PyTorch**: the independent reference in"
            " `tools/reference_llama.py`, eager mode, same weights, same threads, float32.",
            "",
            *roofline_rows(results),
            "",
            "## Thread policy",
            "",
            "From `python -m bench.threads` (its docstring explains the two failure modes); `default` is the"
            " policy `src/common/threadpolicy.py` sets, with the core watch of `src/ml/threads.py`;"
            " `passive` is the policy before.",
            "",
            *thread_rows(threads),
            "",
            "## Per-stage decode profiles",
            "",
            "From `python -m bench.decode --profile`: the time between the debug log's stage markers, per token,"
            " with the bytes each stage must read.",
            "",
            *profiles,
        ]
    ) + "\n"


def run_gemm() -> list[dict[str, Any]]:
    command = [sys.executable, "-m", "bench.gemm", "--json", "--repeats", "5"]
    print("running:", " ".join(command[1:]), file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def render_gemm(rows: list[dict[str, Any]]) -> str:
    lines = [
        "## Prefill kernels: one matrix product with bf16 weights",
        "",
        "From `python -m bench.gemm`: x [n, k] @ w [m, k]^T with random bf16 weights, every kernel of"
        " `src/ml/gemm_bf16.py` and the references, in one process; best of 5 runs. *cores* is the process's CPU"
        " time over the wall time of that run (2.00: both cores were ours), GFLOP/CPU-s the work per CPU-second"
        " (the steadier figure on a busy machine).",
        "",
        "| m x k | n | kernel | ms | GFLOP/s | GB/s of bf16 weights | cores | GFLOP/CPU-s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['rows']} | {r['kernel']} | {r['ms']:.1f} | {r['gflop_s']:.1f} | {r['weight_gb_s']:.1f} | "
            f"{r['cores']:.2f} | {_fmt(r.get('gflop_per_cpu_s'))} |"
        )
    return "\n".join(lines) + "\n"


def full_report(saved: dict[str, Any]) -> str:
    """The whole page from the raw figures: the decode rows, the prefill kernels' table and the kept
    full-size rows (`python -m bench.fullsize --report`)."""
    from bench.fullsize import load_results, render_section

    text = render(saved["results"], saved["threads"], saved["machine"], saved["trace"])
    if saved.get("gemm"):
        text += "\n" + render_gemm(saved["gemm"])
    fullsize = load_results()  # rows of `python -m bench.fullsize --report`, kept with the report
    if fullsize:
        text += "\n" + render_section(fullsize) + "\n"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild-peers", action="store_true", help="build llama2.c and llama.cpp again")
    parser.add_argument("--no-llama-cpp", action="store_true", help="do not build or run llama.cpp")
    parser.add_argument("--no-threads", action="store_true", help="skip the thread-policy measurements")
    parser.add_argument("--no-gemm", action="store_true", help="skip the prefill kernels' table (bench.gemm)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--raw", type=Path, default=RAW, help="where the raw figures (JSON) are saved")
    parser.add_argument("--render-only", action="store_true", help="write the report from the saved raw figures")
    args = parser.parse_args(argv)
    if args.render_only:
        saved = json.loads(args.raw.read_text())
        args.out.write_text(full_report(saved), encoding="utf-8")
        print(f"wrote {args.out} from {args.raw}", file=sys.stderr)
        return 0
    cpu, flags = cpu_description()
    machine = {
        "cpu": cpu,
        "flags": " ".join(flags),
        "cpus": str(os.cpu_count()),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_before": load_average(),
    }
    machine.update(prepare_peers(args.rebuild_peers, not args.no_llama_cpp))
    runs = [r for r in RUNS if not (args.no_llama_cpp and r.peer == "llama.cpp")]
    results = [run_one(run) for run in runs]
    trace = run_trace()
    threads = [] if args.no_threads else run_threads()
    gemm = [] if args.no_gemm else run_gemm()
    machine["load_after"] = load_average()
    saved = {"machine": machine, "results": results, "threads": threads, "trace": trace, "gemm": gemm}
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    args.raw.write_text(json.dumps(saved))
    args.out.write_text(full_report(saved), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    for t in targets(results):
        print(f"{'met' if t.met else ('n/a' if t.met is None else 'NOT met'):>7}  {t.what}: {t.measured} (needed {t.threshold})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
