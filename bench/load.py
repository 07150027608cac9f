"""Benchmark: how long loading takes, and how much memory it costs, for a 7B-shaped checkpoint.

    python -m bench.load [--cache DIR] [--repeat 3]

Writes (once) a synthetic Meta-format checkpoint shaped like two layers of Llama 2 7B (dim 4096,
FFN 11008, 32 heads, vocab 32000: about 1.3 GB of bfloat16) into bench/.cache/, then times
`load_torch_checkpoint` and `load_model` and prints JSON with the load seconds and the resident
memory (VmRSS from /proc/self/status) before and after, next to the file size.

The point it shows: mapping reads no weights, so load time and resident memory stay flat however
big the file is; the bytes come in later, page by page, when Forward touches them.

The checkpoint is written by our own code (a zip laid out like torch.save's, with a protocol-2
pickle emitted opcode by opcode), so the benchmark needs no PyTorch. Storages are aligned to 64
bytes as torch does. The weights are a repeated random block: values do not matter for loading.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import time
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np

from llamanuts.model.loader import load_model
from llamanuts.torch import load_torch_checkpoint

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = HERE / ".cache" / "llama2_7b_2layers"
SHARED_TOKENIZER = HERE.parent.parent / "shared" / "refs" / "llama2-tokenizer.model"

DIM, HIDDEN, N_HEADS, VOCAB, N_LAYERS = 4096, 11008, 32, 32000, 2
ALIGNMENT = 64
CHUNK_BYTES = 64 << 20
ARCHIVE = "consolidated"


def tensor_shapes() -> list[tuple[str, tuple[int, ...]]]:
    """Meta's names and shapes, in the order Meta's checkpoints list them."""
    shapes: list[tuple[str, tuple[int, ...]]] = [("tok_embeddings.weight", (VOCAB, DIM))]
    for i in range(N_LAYERS):
        p = f"layers.{i}."
        shapes += [
            (p + "attention.wq.weight", (DIM, DIM)),
            (p + "attention.wk.weight", (DIM, DIM)),
            (p + "attention.wv.weight", (DIM, DIM)),
            (p + "attention.wo.weight", (DIM, DIM)),
            (p + "feed_forward.w1.weight", (HIDDEN, DIM)),
            (p + "feed_forward.w2.weight", (DIM, HIDDEN)),
            (p + "feed_forward.w3.weight", (HIDDEN, DIM)),
            (p + "attention_norm.weight", (DIM,)),
            (p + "ffn_norm.weight", (DIM,)),
        ]
    shapes += [("norm.weight", (DIM,)), ("output.weight", (VOCAB, DIM))]
    return shapes


# ---- a protocol-2 pickle of {name: bf16 tensor}, emitted opcode by opcode ------------------------
def _text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def state_dict_pickle(shapes: list[tuple[str, tuple[int, ...]]]) -> bytes:
    ordered_dict = b"ccollections\nOrderedDict\n)R"
    out = [b"\x80\x02", ordered_dict, b"("]
    for key, (name, shape) in enumerate(shapes):
        numel = int(np.prod(shape))
        strides = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
        persistent_id = b"(" + _text("storage") + b"ctorch\nBFloat16Storage\n" + _text(str(key)) + _text("cpu") + _int(numel) + b"tQ"
        args = b"(" + persistent_id + _int(0) + _tuple(shape) + _tuple(strides) + b"\x89" + ordered_dict + b"t"
        out += [_text(name), b"ctorch._utils\n_rebuild_tensor_v2\n", args, b"R"]
    out += [b"u."]
    return b"".join(out)


# ---- the zip -------------------------------------------------------------------------------------
def _aligned_info(name: str, offset: int, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size  # known up front, so no ZIP64 extra lands in the local header
    header_end = offset + 30 + len(name.encode()) + 4
    pad = (-header_end) % ALIGNMENT
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    return info


def _chunks(nbytes: int, block: bytes) -> Iterator[bytes]:
    while nbytes > 0:
        piece = block[: min(nbytes, len(block))]
        nbytes -= len(piece)
        yield piece


def write_checkpoint(path: Path) -> None:
    shapes = tensor_shapes()
    block = np.random.default_rng(0).integers(0x3C00, 0x3D00, CHUNK_BYTES // 2, dtype=np.uint16).tobytes()
    tmp = path.with_suffix(".partial")
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
        entries = [(f"{ARCHIVE}/data.pkl", state_dict_pickle(shapes)), (f"{ARCHIVE}/byteorder", b"little")]
        for name, data in entries:
            archive.writestr(_aligned_info(name, archive.fp.tell(), len(data)), data)  # type: ignore[union-attr]
        for key, (_name, shape) in enumerate(shapes):
            nbytes = int(np.prod(shape)) * 2
            info = _aligned_info(f"{ARCHIVE}/data/{key}", archive.fp.tell(), nbytes)  # type: ignore[union-attr]
            with archive.open(info, "w") as entry:
                for piece in _chunks(nbytes, block):
                    entry.write(piece)
        archive.writestr(_aligned_info(f"{ARCHIVE}/version", archive.fp.tell(), 2), b"3\n")  # type: ignore[union-attr]
    tmp.rename(path)


def prepare(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    checkpoint = directory / "consolidated.00.pth"
    if not checkpoint.is_file():
        write_checkpoint(checkpoint)
    params = {"dim": DIM, "multiple_of": 256, "n_heads": N_HEADS, "n_layers": N_LAYERS, "norm_eps": 1e-05, "vocab_size": -1}
    (directory / "params.json").write_text(json.dumps(params))
    if not (directory / "tokenizer.model").is_file() and SHARED_TOKENIZER.is_file():
        shutil.copyfile(SHARED_TOKENIZER, directory / "tokenizer.model")
    return checkpoint


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
        report["load_model"] = f"skipped: no tokenizer.model in {options.cache} and none at {SHARED_TOKENIZER}"
    report["rss_final_bytes"] = rss_bytes()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
