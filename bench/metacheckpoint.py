"""Write a Meta-format model directory with random bf16 weights, one tensor at a time.

    consolidated.00.pth   a zip laid out as torch.save writes it: <archive>/data.pkl (a protocol-2
                          pickle of {name: tensor}, emitted opcode by opcode), <archive>/data/<key>
                          (each tensor's raw bytes, stored, starting at a multiple of 64 bytes),
                          <archive>/byteorder and <archive>/version
    params.json           Meta's hyperparameters for the shape
    tokenizer.model       copied from ../shared/refs (SentencePiece for Llama 2, tiktoken for Llama 3)

The writer never holds more than one chunk of a tensor (64 MB) in memory, so a 16 GB checkpoint is
written on a machine with far less free memory than that; it needs no PyTorch.

The values are random but tame: matrices are drawn from a normal distribution of standard deviation
0.02 (as at a model's initialisation), norms are ones, so 32 layers of Forward stay finite. One 64 MB
block of random values is drawn once and each tensor is cut from it at its own offset: drawing 8
billion values would cost minutes and the speed of a forward pass does not depend on the values.
"""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

REFS = Path(__file__).resolve().parents[2] / "shared" / "refs"
ALIGNMENT = 64
CHUNK_BYTES = 64 << 20
ARCHIVE = "consolidated"
ZIP_OVERHEAD_BYTES = 1 << 20  # headers, the pickle and the directory: far less than this

Progress = Callable[[int, int], None]  # (bytes written, total bytes)


@dataclass(frozen=True)
class MetaShape:
    name: str
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    hidden_dim: int
    vocab_size: int
    params: dict  # params.json as Meta ships it for this model
    tokenizer: str  # file name in ../shared/refs

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def with_layers(self, n_layers: int) -> "MetaShape":
        return replace(self, n_layers=n_layers, params={**self.params, "n_layers": n_layers})


SHAPES: dict[str, MetaShape] = {
    "llama2-7b": MetaShape(
        "llama2-7b", 4096, 32, 32, 32, 11008, 32000,
        {"dim": 4096, "multiple_of": 256, "n_heads": 32, "n_layers": 32, "norm_eps": 1e-05, "vocab_size": -1},
        "llama2-tokenizer.model",
    ),
    "llama31-8b": MetaShape(
        "llama31-8b", 4096, 32, 32, 8, 14336, 128256,
        {
            "dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256,
            "multiple_of": 1024, "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0,
            "use_scaled_rope": True,
        },
        "llama3-tokenizer.model",
    ),
}


def tensor_shapes(shape: MetaShape) -> list[tuple[str, tuple[int, ...]]]:
    """Meta's names and shapes, in the order Meta's checkpoints list them."""
    d, kv = shape.dim, shape.n_kv_heads * shape.head_dim
    out: list[tuple[str, tuple[int, ...]]] = [("tok_embeddings.weight", (shape.vocab_size, d))]
    for i in range(shape.n_layers):
        p = f"layers.{i}."
        out += [
            (p + "attention.wq.weight", (d, d)),
            (p + "attention.wk.weight", (kv, d)),
            (p + "attention.wv.weight", (kv, d)),
            (p + "attention.wo.weight", (d, d)),
            (p + "feed_forward.w1.weight", (shape.hidden_dim, d)),
            (p + "feed_forward.w2.weight", (d, shape.hidden_dim)),
            (p + "feed_forward.w3.weight", (shape.hidden_dim, d)),
            (p + "attention_norm.weight", (d,)),
            (p + "ffn_norm.weight", (d,)),
        ]
    out += [("norm.weight", (d,)), ("output.weight", (shape.vocab_size, d))]
    return out


def weight_bytes(shape: MetaShape) -> int:
    """Bytes of bf16 weights: the checkpoint's size, within ZIP_OVERHEAD_BYTES."""
    return sum(2 * int(np.prod(s)) for _, s in tensor_shapes(shape))


# ---- a protocol-2 pickle of {name: bf16 tensor}, emitted opcode by opcode ------------------------
def _text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def state_dict_pickle(shapes: list[tuple[str, tuple[int, ...]]]) -> bytes:
    """What torch.save pickles for an OrderedDict of bf16 tensors, storage i holding tensor i."""
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
    info.file_size = size  # known up front (< 4 GB), so no ZIP64 extra lands in the local header
    header_end = offset + 30 + len(name.encode()) + 4
    pad = (-header_end) % ALIGNMENT
    info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
    return info


def _random_block(seed: int = 0) -> np.ndarray:
    """CHUNK_BYTES of bf16 bits of N(0, 0.02) values, rounded to nearest even."""
    values = np.random.default_rng(seed).standard_normal(CHUNK_BYTES // 2, dtype=np.float32) * np.float32(0.02)
    bits = values.view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def _tensor_chunks(name: str, numel: int, key: int, block: np.ndarray) -> Iterator[bytes]:
    if name.endswith("norm.weight"):
        yield np.full(numel, 0x3F80, dtype=np.uint16).tobytes()  # ones (norms are [dim])
        return
    start = (key * 7919 * 64) % block.size  # each tensor its own cut of the block
    while numel > 0:
        n = min(numel, block.size - start)
        yield block[start : start + n].tobytes()
        numel -= n
        start = 0


def write_checkpoint(path: Path, shape: MetaShape, progress: Progress | None = None) -> None:
    """Write consolidated.00.pth for `shape` at `path` (via a .partial file, renamed when complete)."""
    shapes = tensor_shapes(shape)
    total = weight_bytes(shape)
    block = _random_block()
    tmp = path.with_suffix(".partial")
    written = 0
    with zipfile.ZipFile(tmp, "w", allowZip64=True) as archive:
        for name, data in [(f"{ARCHIVE}/data.pkl", state_dict_pickle(shapes)), (f"{ARCHIVE}/byteorder", b"little")]:
            archive.writestr(_aligned_info(name, archive.fp.tell(), len(data)), data)  # type: ignore[union-attr]
        for key, (name, dims) in enumerate(shapes):
            numel = int(np.prod(dims))
            info = _aligned_info(f"{ARCHIVE}/data/{key}", archive.fp.tell(), 2 * numel)  # type: ignore[union-attr]
            with archive.open(info, "w") as entry:
                for piece in _tensor_chunks(name, numel, key, block):
                    entry.write(piece)
                    written += len(piece)
                    if progress is not None:
                        progress(written, total)
        archive.writestr(_aligned_info(f"{ARCHIVE}/version", archive.fp.tell(), 2), b"3\n")  # type: ignore[union-attr]
    tmp.rename(path)


def write_model_directory(directory: Path, shape: MetaShape, progress: Progress | None = None) -> Path:
    """consolidated.00.pth (unless already complete), params.json and tokenizer.model in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    checkpoint = directory / "consolidated.00.pth"
    if not checkpoint.is_file():
        write_checkpoint(checkpoint, shape, progress)
    (directory / "params.json").write_text(json.dumps(shape.params))
    tokenizer = REFS / shape.tokenizer
    if not (directory / "tokenizer.model").is_file():
        if not tokenizer.is_file():
            raise SystemExit(f"{shape.name} needs the tokenizer {tokenizer} (the shared reference files beside the repository)")
        shutil.copyfile(tokenizer, directory / "tokenizer.model")
    return checkpoint


__all__ = ["SHAPES", "MetaShape", "tensor_shapes", "weight_bytes", "write_checkpoint", "write_model_directory"]
