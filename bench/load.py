"""Benchmark: how long loading takes, and how much memory it costs, for a 7B-shaped checkpoint.

    python -m bench.load [--cache DIR] [--repeat 3]

Writes (once) a synthetic Meta-format checkpoint shaped like two layers of Llama 2 7B (dim 4096,
FFN 11008, 32 heads, vocab 32000: about 1.3 GB of bfloat16) into bench/.cache/, then times
`load_torch_checkpoint` and `load_model` and prints JSON with the load seconds and the resident
memory (VmRSS from /proc/self/status) before and after, next to the file size.

The point it shows: mapping reads no weights, so load time and resident memory stay flat however
big the file is; the bytes come in later, page by page, when Forward touches them.

The checkpoint is written by our own code (bench/metacheckpoint.py: a zip laid out like
torch.save's, with a protocol-2 pickle emitted opcode by opcode), so the benchmark needs no PyTorch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.metacheckpoint import REFS, SHAPES, write_model_directory
from llamanuts.model.loader import load_model
from llamanuts.torch import load_torch_checkpoint

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = HERE / ".cache" / "llama2_7b_2layers"
SHAPE = SHAPES["llama2-7b"].with_layers(2)
DIM, HIDDEN, N_HEADS, VOCAB, N_LAYERS = SHAPE.dim, SHAPE.hidden_dim, SHAPE.n_heads, SHAPE.vocab_size, SHAPE.n_layers


def prepare(directory: Path) -> Path:
    """The 2-layer Llama 2 7B-shaped model directory, written on first use."""
    return write_model_directory(directory, SHAPE)


# ---- measuring -----------------------------------------------------------------------------------
def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return -1


def _timed(function, repeat: int) -> tuple[list[float], int, int]:  # type: ignore[no-untyped-def]
    """(seconds per run, RSS before the first run, RSS right after the first run while its result lives)."""
    seconds: list[float] = []
    before = rss_bytes()
    after = before
    for run in range(repeat):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
        if run == 0:
            after = rss_bytes()
        del result
    return seconds, before, after


def main() -> None:
    parser = argparse.ArgumentParser(description="Time loading a 7B-shaped (2-layer) bf16 checkpoint.")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the synthetic model is written")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()

    start = time.perf_counter()
    checkpoint = prepare(options.cache)
    prepare_seconds = time.perf_counter() - start
    file_size = checkpoint.stat().st_size

    ckpt_seconds, ckpt_rss_before, ckpt_rss_after = _timed(lambda: load_torch_checkpoint(checkpoint), options.repeat)
    report: dict[str, object] = {
        "checkpoint": str(checkpoint),
        "file_bytes": file_size,
        "file_gib": round(file_size / 2**30, 3),
        "shape": {"dim": DIM, "hidden_dim": HIDDEN, "n_heads": N_HEADS, "vocab_size": VOCAB, "n_layers": N_LAYERS},
        "prepare_seconds": round(prepare_seconds, 3),
        "load_torch_checkpoint": {
            "seconds": [round(s, 4) for s in ckpt_seconds],
            "best_seconds": round(min(ckpt_seconds), 4),
            "rss_before_bytes": ckpt_rss_before,
            "rss_after_bytes": ckpt_rss_after,
            "rss_increase_bytes": ckpt_rss_after - ckpt_rss_before,
            "rss_increase_fraction_of_file": round((ckpt_rss_after - ckpt_rss_before) / file_size, 5),
        },
    }
    if (options.cache / "tokenizer.model").is_file():
        model_seconds, model_rss_before, model_rss_after = _timed(lambda: load_model(options.cache), options.repeat)
        report["load_model"] = {
            "seconds": [round(s, 4) for s in model_seconds],
            "best_seconds": round(min(model_seconds), 4),
            "rss_before_bytes": model_rss_before,
            "rss_after_bytes": model_rss_after,
            "rss_increase_bytes": model_rss_after - model_rss_before,
            "note": "includes reading params.json and the 500 KB SentencePiece tokenizer",
        }
    else:
        report["load_model"] = f"skipped: no tokenizer.model in {options.cache} and none at {REFS / SHAPE.tokenizer}"
    report["rss_final_bytes"] = rss_bytes()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
