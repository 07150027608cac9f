"""load_safetensors_checkpoint: a Hugging Face directory's weights, in one file or in shards.

Small models come as one `model.safetensors`. Larger ones are split into shards
(`model-00001-of-00004.safetensors`, ...) with an index, `model.safetensors.index.json`:

    {"metadata": {"total_size": 16060522496},
     "weight_map": {"model.embed_tokens.weight": "model-00001-of-00004.safetensors", ...}}

The index is checked against the shards themselves: every shard it names exists (a plain file name
inside the directory, never a path that leads out of it), every tensor is in the shard the index
names, no tensor is in two shards, and no shard holds a tensor the index does not list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..common.saferepr import short_repr
from ..common.errors import ModelFileError
from ..common.logger import GLogger
from ..ml import Tensor
from .jsonfile import read_json_file
from .reader import SafetensorsFile

Progress = Callable[[int, int, str], None]

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
MAX_INDEX_BYTES = 64 << 20  # an index lists names and file names: about 100 bytes per tensor


@dataclass
class SafetensorsCheckpoint:
    tensors: dict[str, Tensor]  # every tensor of every shard, as views over the mapped files
    files: list[Path]  # the safetensors files, in the order they were read
    index: Path | None = None  # model.safetensors.index.json when the checkpoint is sharded
    metadata: dict[str, str] = field(default_factory=dict)  # __metadata__ of the first file


def find_safetensors_files(directory: str | Path) -> tuple[Path | None, list[Path]]:
    """(index or None, the safetensors files to read). One model.safetensors wins over an index, as in
    transformers; otherwise the index names the shards."""
    index, _weight_map, paths = _layout(Path(directory))
    return index, paths


def _layout(directory: Path) -> tuple[Path | None, dict[str, str] | None, list[Path]]:
    # lexists, not is_file: a FIFO, a device or a dangling link of that name is then opened, and
    # refused with a message that says what it is, instead of being taken for a missing file.
    single = directory / SINGLE_FILE
    if os.path.lexists(single):
        return None, None, [single]
    index = directory / INDEX_FILE
    if os.path.lexists(index):
        weight_map = read_safetensors_index(index)
        return index, weight_map, [directory / name for name in dict.fromkeys(weight_map.values())]
    raise ModelFileError(directory, f"no {SINGLE_FILE} and no {INDEX_FILE} in this directory")


def read_safetensors_index(path: str | Path) -> dict[str, str]:
    """The index's weight_map (tensor name -> shard file name), checked for shape and safe file names."""
    path = Path(path)
    index = read_json_file(path, MAX_INDEX_BYTES, "the safetensors index")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelFileError(path, "'weight_map' must be a non-empty object mapping tensor names to shard files")
    for name, shard in weight_map.items():
        if not isinstance(shard, str) or not _is_plain_file_name(shard):
            raise ModelFileError(
                path, f"tensor {short_repr(name)} is mapped to {short_repr(shard)}, which is not a .safetensors file name in this directory"
            )
    return weight_map


def load_safetensors_checkpoint(directory: str | Path, progress: Progress | None = None) -> SafetensorsCheckpoint:
    """Map every tensor of the directory's checkpoint; `progress(done, total, name)` per tensor."""
    directory = Path(directory)
    index, weight_map, paths = _layout(directory)
    for shard in paths:
        if not os.path.lexists(shard):
            users = sum(1 for s in (weight_map or {}).values() if s == shard.name)
            raise ModelFileError(shard, f"shard not found: {INDEX_FILE} maps {users} tensor(s) to it")
    files = [SafetensorsFile(p) for p in paths]
    if weight_map is not None:
        _check_index_against_shards(index, weight_map, files)  # type: ignore[arg-type]
    total = sum(len(f.tensors) for f in files)
    tensors: dict[str, Tensor] = {}
    for file in files:
        for name in file.tensors:
            tensors[name] = file.tensor(name)
            if progress is not None:
                progress(len(tensors), total, name)
    for file in files:
        if not file.tensors:
            file.close()
    GLogger.DebugPrintf(
        "Hugging Face checkpoint %s: %d tensors in %d file(s)%s, no weight byte read",
        directory, len(tensors), len(files), "" if index is None else f" listed by {INDEX_FILE}",
    )
    return SafetensorsCheckpoint(tensors, paths, index, files[0].metadata if files else {})


def _check_index_against_shards(index: Path, weight_map: dict[str, str], files: list[SafetensorsFile]) -> None:
    seen: dict[str, Path] = {}
    for file in files:
        for name in file.tensors:
            if name in seen:
                raise ModelFileError(index, f"tensor {short_repr(name)} is in two shards: {seen[name].name} and {file.path.name}")
            seen[name] = file.path
            listed = weight_map.get(name)
            if listed is None:
                raise ModelFileError(index, f"shard {file.path.name} holds tensor {short_repr(name)}, which the index does not list")
            if listed != file.path.name:
                raise ModelFileError(index, f"the index puts tensor {short_repr(name)} in {listed}, but it is in {file.path.name}")
    for name, shard in weight_map.items():
        if name not in seen:
            raise ModelFileError(index, f"the index puts tensor {short_repr(name)} in {shard}, which does not hold it")


def _is_plain_file_name(name: str) -> bool:
    return (
        name.endswith(".safetensors")
        and "/" not in name
        and "\\" not in name
        and name not in (".", "..")
        and not name.startswith(".")
        and "\0" not in name
    )


__all__ = [
    "INDEX_FILE",
    "SINGLE_FILE",
    "SafetensorsCheckpoint",
    "find_safetensors_files",
    "load_safetensors_checkpoint",
    "read_safetensors_index",
]
