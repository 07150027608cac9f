"""model_metadata: what a loaded model is made of, as rows a CLI can print as tables or JSON.

The Go original prints the hyperparameters and a table of tensors when a model loads; this is the
same information as data, so the rich table, `--json` and the tests read one structure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..ml import format_dims
from .loader import LoadedModel


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    numel: int
    nbytes: int  # bytes in memory: a quantized tensor's real block bytes (a .pth float16 tensor is float32 here)

    @property
    def shape_text(self) -> str:
        return format_dims(self.shape)


@dataclass(frozen=True)
class FileInfo:
    role: str  # "checkpoint", "params", "tokenizer", "model"
    path: str
    size_bytes: int


@dataclass
class ModelMetadata:
    format: str
    path: str
    hyperparameters: list[tuple[str, str]]
    tensors: list[TensorInfo]
    files: list[FileInfo]
    shared_classifier: bool
    tokenizer: str = ""
    parameter_count: int = field(init=False)
    total_bytes: int = field(init=False)
    weight_types: dict[str, int] = field(init=False)  # dtype -> number of tensors, most common first

    def __post_init__(self) -> None:
        # A shared classifier is one tensor, listed once, so it is counted once.
        self.parameter_count = sum(t.numel for t in self.tensors)
        self.total_bytes = sum(t.nbytes for t in self.tensors)
        self.weight_types = dict(Counter(t.dtype for t in self.tensors).most_common())

    @property
    def weight_types_text(self) -> str:
        """'Q4_1 x210, F32 x61, Q8_0 x1': the quantization of the weights at a glance."""
        return ", ".join(f"{dtype} x{count}" for dtype, count in self.weight_types.items())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples become lists)."""
        return asdict(self)


def model_metadata(loaded: LoadedModel) -> ModelMetadata:
    tensors = [
        TensorInfo(name, tuple(t.shape), str(t.dtype), t.numel(), t.nbytes())
        for name, t in loaded.weights.named_tensors()
    ]
    files = [FileInfo(role, str(path), _file_size(Path(path))) for role, path in loaded.files.items()]
    rows = loaded.args.as_rows() + [("shared classifier", str(loaded.weights.shared_classifier))]
    tokenizer = loaded.tokenizer
    description = "" if tokenizer is None else f"{type(tokenizer).__name__}, {tokenizer.vocab_size} tokens"
    return ModelMetadata(
        format=loaded.format,
        path=str(loaded.path),
        hyperparameters=rows,
        tensors=tensors,
        files=files,
        shared_classifier=loaded.weights.shared_classifier,
        tokenizer=description,
    )


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


__all__ = ["FileInfo", "ModelMetadata", "TensorInfo", "model_metadata"]
