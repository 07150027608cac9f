"""load_torch_checkpoint: a `.pth` state dict -> {name: Tensor}, each a zero-copy view over the file.

The steps, in the order the Go original's chapters 2-3 describe them:

1. map the file read-only (`MmapFile`) and read the zip's directory (`ZipArchive`);
2. run `<archive>/data.pkl` on our pickle VM; each persistent id `('storage', <type>, key, location,
   numel)` becomes a `StorageRef` to the zip entry `<archive>/data/<key>`;
3. for each `_rebuild_tensor_v2(storage, offset, size, stride, ...)` record, check the dtype, the
   strides, and that the tensor fits its storage and the storage fits its entry; then make the
   Tensor a numpy view (`np.frombuffer`) at the right byte offset of the map.

Hardly a weight byte is read while loading: only the zip directory, the local headers, the pickle
and the entries under 1 MiB (whose CRC-32 is checked: the pickle, the bookkeeping, the norm
vectors). The kernel pages the big matrices in when Forward first touches them, so load time does
not grow with size; `verify_checkpoint` (the CLI's --verify) reads and checks every entry.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection

import numpy as np

from ..common.errors import ModelFileError
from ..common.files import describe_path
from ..common.logger import GLogger
from ..common.mmapfile import MmapFile
from ..common.saferepr import short_repr
from ..ml import DT_BF16, DT_F32, Tensor, format_dims
from ..ml.dtype import DataType
from ..pickle.limits import DEFAULT_LIMITS, INT64_MAX
from ..pickle.torch_globals import SUPPORTED_DTYPES, StorageType, TensorRecord
from ..pickle.unpickler import unpickle
from .zipfile import SMALL_ENTRY_BYTES, ZipArchive, ZipEntry

Progress = Callable[[int, int, str], None]

# numpy dtype of the stored elements, and the tensor dtype they become. float16 has no kernels in
# the tensor layer, so it is widened to float32: the one place loading copies data.
_STORAGE_NUMPY: dict[str, tuple[np.dtype, DataType]] = {
    "bfloat16": (np.dtype(np.uint16), DT_BF16),  # bf16 bits as uint16, see ml/bfloat16.py
    "float32": (np.dtype(np.float32), DT_F32),
    "float16": (np.dtype(np.float16), DT_F32),
}

_CONSOLIDATED = re.compile(r"consolidated\.(\d+)\.pth")


@dataclass(frozen=True)
class StorageRef:
    """A storage named by a persistent id, resolved to the zip entry that holds its bytes."""

    key: str
    storage_type: StorageType
    numel: int
    entry: ZipEntry


def find_consolidated_checkpoint(directory: str | Path) -> Path:
    """`<dir>/consolidated.00.pth`; refuses Meta's multi-file (model-parallel) checkpoints."""
    directory = Path(directory)
    shards = sorted(p.name for p in directory.iterdir() if _CONSOLIDATED.fullmatch(p.name))
    if len(shards) > 1:
        raise ModelFileError(
            directory,
            f"multi-file checkpoints ({', '.join(shards)}) are not supported yet: Meta splits 13B and larger "
            f"models into one consolidated.NN.pth per model-parallel rank, and only single-file models "
            f"(7B/8B and smaller) can be loaded",
        )
    expected = directory / "consolidated.00.pth"
    problem = describe_path(expected)
    if problem == "not found":
        raise ModelFileError(directory, "no consolidated.00.pth in this directory (expected Meta's checkpoint file)")
    if problem is not None:
        raise ModelFileError(expected, f"checkpoint file {problem}")
    return expected


def load_torch_checkpoint(
    path: str | Path, progress: Progress | None = None, skip: Collection[str] = ()
) -> dict[str, Tensor]:
    """Map a torch.save state dict. `path` is a `.pth` file or a directory with consolidated.00.pth.

    Returns the tensors in the file's order. bfloat16 -> BF16 and float32 -> F32 are views over the
    map; float16 is converted to F32 (a copy). `progress(done, total, name)` is called per tensor.
    Names in `skip` are left out unchecked (e.g. Llama 2's `rope.freqs`, which Forward recomputes).
    """
    path = Path(path)
    if path.is_dir():
        path = find_consolidated_checkpoint(path)
    file = MmapFile(path)
    archive = ZipArchive(file)
    pickle_name = _find_pickle(archive)
    GLogger.DebugPrintf("Checkpoint %s: %d bytes mapped, %d zip entries", path, file.size, len(archive.entries))
    prefix = pickle_name[: -len("data.pkl")]
    _check_pickle_size(archive, pickle_name)
    # data.pkl and the bookkeeping are CRC-checked as they are read; the small tensors here.
    checked = archive.check_small_entries(SMALL_ENTRY_BYTES)
    _check_byteorder(archive, prefix)

    storages: dict[str, StorageRef] = {}

    def persistent_load(pid: Any) -> StorageRef:
        return _resolve_storage(archive, prefix, pid, storages)

    state = unpickle(archive.read(pickle_name), path, persistent_load=persistent_load)
    records = {name: r for name, r in _state_dict_records(path, state).items() if name not in skip}
    tensors: dict[str, Tensor] = {}
    for done, (name, record) in enumerate(records.items(), start=1):
        tensors[name] = _map_tensor(file, name, record)
        if progress is not None:
            progress(done, len(records), name)
    GLogger.DebugPrintf(
        "Checkpoint %s: %d tensors over %d storages; CRC-32 checked for the %d entries of at most %d bytes, "
        "no larger entry read", path, len(tensors), len(storages), checked, SMALL_ENTRY_BYTES,
    )
    # The views keep the map alive; close() unmaps at once only when nothing was mapped.
    if not tensors:
        file.close()
    return tensors


@dataclass(frozen=True)
class VerifyResult:
    """What `verify_checkpoint` checked."""

    path: Path
    entries: int  # stored entries whose CRC-32 matched
    bytes: int  # bytes read to check them
    compressed: tuple[str, ...]  # entries not checked: compressed (the loader refuses those anyway)


VerifyProgress = Callable[[int, int], None]  # (bytes checked so far, total bytes)


def verify_checkpoint(path: str | Path, progress: VerifyProgress | None = None) -> VerifyResult:
    """Read every stored entry of a `.pth` (or of `<dir>/consolidated.00.pth`) and check its CRC-32.

    The normal load checks only data.pkl and the entries under 1 MiB, so that loading never reads
    the weights; this reads the whole file (about as long as copying it) and raises ModelFileError
    naming the first corrupt entry. `progress(done, total)` is called as bytes are checked.
    """
    path = Path(path)
    if path.is_dir():
        path = find_consolidated_checkpoint(path)
    with MmapFile(path) as file:
        archive = ZipArchive(file)
        stored = [e for e in archive.entries.values() if e.is_stored]
        compressed = tuple(e.name for e in archive.entries.values() if not e.is_stored)
        total = sum(e.compressed_size for e in stored)
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(done, total)

        for entry in stored:
            archive.check_crc(entry, advance)
    GLogger.DebugPrintf("Verified %s: CRC-32 of %d entries (%d bytes) match", path, len(stored), total)
    return VerifyResult(path, len(stored), total, compressed)


def _find_pickle(archive: ZipArchive) -> str:
    candidates = [n for n in archive.names() if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
    if len(candidates) != 1:
        found = ", ".join(short_repr(n, 100) for n in archive.names()[:8]) or "none"
        raise ModelFileError(
            archive.path,
            f"expected exactly one '<archive>/data.pkl' entry (a torch.save zip checkpoint), "
            f"found {len(candidates)}; entries: {found}",
        )
    return candidates[0]


def _check_pickle_size(archive: ZipArchive, name: str) -> None:
    """data.pkl is copied into memory whole: refuse an absurd one before reading it."""
    size = archive.entry(name).compressed_size
    if size > DEFAULT_LIMITS.max_pickle_bytes:
        raise ModelFileError(
            archive.path,
            f"{name} is {size} bytes, more than the limit of {DEFAULT_LIMITS.max_pickle_bytes} for the pickle "
            f"of a state dict (about 100 bytes per tensor)",
        )


def _check_byteorder(archive: ZipArchive, prefix: str) -> None:
    name = prefix + "byteorder"
    if name in archive.entries:
        order = archive.read(name)[:40].decode("ascii", errors="replace").strip()
        if order != "little":
            raise ModelFileError(
                archive.path, f"tensors are stored {short_repr(order)} endian; only little-endian is supported"
            )


def _resolve_storage(archive: ZipArchive, prefix: str, pid: Any, cache: dict[str, StorageRef]) -> StorageRef:
    """('storage', storage_type, key, location, numel) -> the entry `<prefix>data/<key>`, checked."""
    # Every value quoted below came from the file: short_repr bounds the work of spelling it out.
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
        raise ModelFileError(
            archive.path, f"persistent id {short_repr(pid)} is not ('storage', type, key, location, numel)"
        )
    _tag, storage_type, key, _location, numel = pid
    if not isinstance(storage_type, StorageType):
        raise ModelFileError(
            archive.path,
            f"persistent id for storage {short_repr(key)} names {short_repr(storage_type)}, not a storage type",
        )
    if type(key) is not str or len(key) > 1024 or type(numel) is not int or not 0 <= numel < 1 << 63:
        raise ModelFileError(archive.path, f"persistent id {short_repr(pid)} has a bad key or element count")
    if key in cache:
        return cache[key]
    entry = archive.stored_entry(prefix + "data/" + key)
    needed = numel * storage_type.itemsize
    if needed > entry.compressed_size:
        raise ModelFileError(
            archive.path,
            f"storage {key!r} ({storage_type.qualname}) holds {numel} elements = {needed} bytes, but its zip entry "
            f"{entry.name!r} has only {entry.compressed_size} bytes",
        )
    ref = StorageRef(key, storage_type, numel, entry)
    cache[key] = ref
    return ref


def _state_dict_records(path: Path, state: Any) -> dict[str, TensorRecord]:
    if not isinstance(state, dict):
        raise ModelFileError(path, f"the checkpoint holds a {type(state).__name__}, expected a state dict (name -> tensor)")
    for name, value in state.items():
        if not isinstance(name, str):
            raise ModelFileError(path, f"state dict key {short_repr(name)} is not a string")
        if isinstance(value, dict):
            raise ModelFileError(
                path,
                f"value for {short_repr(name)} is a nested dict; expected a flat state dict name -> tensor "
                f"(for a training checkpoint, save model.state_dict() instead)",
            )
        if not isinstance(value, TensorRecord):
            raise ModelFileError(path, f"value for {short_repr(name)} is a {type(value).__name__}, not a tensor")
    return state


def _quoted(name: str) -> str:
    """A tensor name for a message: in full when it is of a sane length (real ones are under 100)."""
    return short_repr(name, 200)


def _is_c_contiguous(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    """Row-major with no gaps. Like torch, a dimension of size 1 may have any stride."""
    expected = 1
    for dim, step in zip(reversed(size), reversed(stride)):
        if dim != 1 and step != expected:
            return False
        expected *= dim
    return True


def _map_tensor(file: MmapFile, name: str, record: TensorRecord) -> Tensor:
    storage = record.storage
    if not isinstance(storage, StorageRef):
        raise ModelFileError(file.path, f"tensor {_quoted(name)}: its storage is not a reference into the archive")
    stype = storage.storage_type
    if not stype.supported:
        raise ModelFileError(
            file.path,
            f"tensor {_quoted(name)} has dtype {stype.dtype} ({stype.qualname}), which is not supported; "
            f"supported dtypes: {', '.join(SUPPORTED_DTYPES)}",
        )
    size, stride, offset = record.size, record.stride, record.storage_offset
    if any(d < 0 for d in size) or offset < 0:
        raise ModelFileError(file.path, f"tensor {_quoted(name)}: negative size {format_dims(size)} or storage offset {offset}")
    numel = math.prod(size)
    if math.prod(max(d, 1) for d in size) * stype.itemsize > INT64_MAX:
        # numpy refuses such a shape even with a zero dimension (its size check ignores the zero)
        raise ModelFileError(
            file.path, f"tensor {_quoted(name)} of shape {format_dims(size)} is too large to describe in memory"
        )
    if numel and not _is_c_contiguous(size, stride):
        raise ModelFileError(
            file.path,
            f"tensor {_quoted(name)} of shape {format_dims(size)} has strides {format_dims(stride)}, not C-contiguous "
            f"(a transposed or sliced view was saved); save tensor.contiguous() instead",
        )
    if offset + numel > storage.numel:
        raise ModelFileError(
            file.path,
            f"tensor {_quoted(name)} of shape {format_dims(size)} needs elements [{offset}, {offset + numel}) of storage "
            f"{storage.key!r}, which has only {storage.numel} elements",
        )
    numpy_dtype, dtype = _STORAGE_NUMPY[stype.dtype]
    start = storage.entry.data_offset + offset * numpy_dtype.itemsize
    if start % numpy_dtype.itemsize:
        # torch.save aligns every storage to 64 bytes; a misaligned array would push every kernel
        # onto Numba's slow unaligned path, so such a file is refused rather than quietly slow.
        raise ModelFileError(
            file.path,
            f"tensor {_quoted(name)}: data at byte {start} is not aligned to its {numpy_dtype.itemsize}-byte elements",
        )
    data = file.array(numpy_dtype, start, numel).reshape(size)
    if stype.dtype == "float16":
        data = data.astype(np.float32)  # the only copy made while loading: no float16 kernels exist
    return Tensor(size, dtype, data, name)


__all__ = ["StorageRef", "VerifyResult", "find_consolidated_checkpoint", "load_torch_checkpoint", "verify_checkpoint"]
