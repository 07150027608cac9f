"""SafetensorsFile: Hugging Face's weights file, read by hand, every tensor a view over the mapped file.

The whole format, as Hugging Face's safetensors specification describes it:

    bytes [0, 8)         N, the length of the header: an unsigned 64-bit little-endian integer
    bytes [8, 8 + N)     the header: a UTF-8 JSON object, starting with "{". Each key is a tensor name:
                           "model.norm.weight": {"dtype": "BF16", "shape": [576], "data_offsets": [0, 1152]}
                         and the optional key "__metadata__" maps strings to strings ({"format": "pt"}).
                         Writers pad the header with spaces so the data starts on an 8-byte boundary.
    bytes [8 + N, end)   the data section: each tensor's bytes, row-major and little-endian, at
                         [begin, end) counted from the start of the data section.

There is nothing to execute (unlike a pickle) and nothing to decode: a tensor is a dtype, a shape
and a byte range. So reading is checking: the header length against the file, the JSON, and for
every tensor that its dtype is one we compute with, that shape x element size is exactly its byte
range, that the range lies inside the data section and overlaps no other tensor, and that it starts
on a multiple of its element size (a numpy view needs that). Then `np.frombuffer` makes the view:
no weight byte is read while loading; the kernel pages them in when Forward touches them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..common.errors import ModelFileError
from ..common.logger import GLogger
from ..common.mmapfile import MmapFile
from ..common.saferepr import short_repr
from ..ml import DT_BF16, DT_F32, Tensor, format_dims
from ..ml.dtype import DT_F16, DataType
from .jsonfile import parse_json_object

Progress = Callable[[int, int, str], None]

HEADER_LENGTH = struct.Struct("<Q")  # N, the header's length in bytes
# The reference implementation refuses headers above 100 MB; a 70B model's header is about 100 KB.
MAX_HEADER_BYTES = 100_000_000
MAX_DIMS = 8  # weights have 1 to 4; numpy itself stops at 64
METADATA_KEY = "__metadata__"
ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})

# dtype in the header -> (numpy storage, tensor dtype). bf16 has no numpy type: its bits are uint16.
SUPPORTED_DTYPES: dict[str, tuple[np.dtype, DataType]] = {
    "F32": (np.dtype("<f4"), DT_F32),
    "F16": (np.dtype("<f2"), DT_F16),
    "BF16": (np.dtype("<u2"), DT_BF16),
}
# The other dtypes the format defines: valid files, but nothing in the engine computes with them.
OTHER_DTYPES = frozenset(
    {"BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F64", "C64",
     "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"}
)


@dataclass(frozen=True)
class TensorInfo:
    """One header entry, checked. `begin`/`end` are byte offsets into the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class SafetensorsFile:
    """A mapped `.safetensors` file: `tensors` (name -> TensorInfo, in the header's order), `metadata`,
    and `tensor(name)` for the zero-copy Tensor. Close it, or let the last view keep the map alive."""

    def __init__(self, path: str | Path, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.path = Path(path)
        self.file = MmapFile(self.path)
        try:
            self.header_length = self._read_header_length(max_header_bytes)
            self.data_start = HEADER_LENGTH.size + self.header_length
            self.data_size = self.file.size - self.data_start
            header = self._read_header()
            self.metadata = self._read_metadata(header.pop(METADATA_KEY, None))
            self.tensors = {name: self._check_entry(name, entry) for name, entry in header.items()}
            self._check_no_overlaps()
        except BaseException:
            self.file.close()
            raise
        GLogger.DebugPrintf(
            "safetensors %s: %d bytes, header of %d bytes, %d tensors, metadata %s",
            self.path, self.file.size, self.header_length, len(self.tensors), self.metadata,
        )

    # ---- the header ---------------------------------------------------------------------------
    def _read_header_length(self, max_header_bytes: int) -> int:
        size = self.file.size
        if size < HEADER_LENGTH.size:
            raise ModelFileError(self.path, f"only {size} bytes: a safetensors file starts with an 8-byte header length")
        (length,) = HEADER_LENGTH.unpack(self.file.read(0, HEADER_LENGTH.size))
        if length > size - HEADER_LENGTH.size:
            raise ModelFileError(
                self.path,
                f"the header length says {length:,} bytes but the file has only {size:,} bytes "
                f"(truncated, or not a safetensors file)",
            )
        if length > max_header_bytes:
            raise ModelFileError(
                self.path, f"the header is {length:,} bytes, more than the {max_header_bytes:,}-byte limit for a safetensors header"
            )
        if length < 2:
            raise ModelFileError(self.path, f"the header is {length} bytes long: too short to hold a JSON object")
        return int(length)

    def _read_header(self) -> dict[str, Any]:
        raw = self.file.read(HEADER_LENGTH.size, self.header_length)
        if raw[:1] != b"{":
            raise ModelFileError(self.path, f"the header must start with '{{', got {raw[:16]!r} (not a safetensors file?)")
        return parse_json_object(raw, self.path, "the safetensors header")

    def _read_metadata(self, metadata: Any) -> dict[str, str]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ModelFileError(self.path, f"{METADATA_KEY!r} must map strings to strings, got {short_repr(metadata)}")
        return dict(metadata)

    def _check_entry(self, name: str, entry: Any) -> TensorInfo:
        where = f"tensor {short_repr(name)}"
        if not isinstance(entry, dict):
            raise ModelFileError(self.path, f"{where}: expected an object with dtype, shape and data_offsets, got {short_repr(entry)}")
        if set(entry) != ENTRY_KEYS:
            missing, extra = sorted(ENTRY_KEYS - set(entry)), sorted(set(entry) - ENTRY_KEYS)
            raise ModelFileError(
                self.path, f"{where}: expected keys dtype, shape, data_offsets; missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str):
            raise ModelFileError(self.path, f"{where}: dtype must be a string such as 'BF16', got {short_repr(dtype, 80)}")
        if dtype not in SUPPORTED_DTYPES:
            kind = "is not supported" if dtype in OTHER_DTYPES else "is not a safetensors dtype"
            raise ModelFileError(
                self.path, f"{where} has dtype {short_repr(dtype)}, which {kind}; supported: {', '.join(SUPPORTED_DTYPES)}"
            )
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise ModelFileError(self.path, f"{where}: shape must be a list of non-negative integers, got {short_repr(shape)}")
        if len(shape) > MAX_DIMS:
            raise ModelFileError(self.path, f"{where}: shape has {len(shape):,} dimensions; at most {MAX_DIMS} are supported")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
            raise ModelFileError(self.path, f"{where}: data_offsets must be [begin, end], two non-negative integers, got {short_repr(offsets)}")
        begin, end = offsets
        if not begin <= end <= self.data_size:
            raise ModelFileError(
                self.path,
                f"{where}: data_offsets [{begin}, {end}] lie outside the data section of {self.data_size:,} bytes "
                f"(or end before they begin)",
            )
        itemsize = SUPPORTED_DTYPES[dtype][0].itemsize
        needed = _bytes_for(shape, itemsize, limit=self.data_size)
        if needed != end - begin:
            needed_text = f"{needed:,}" if needed <= self.data_size else f"more than the {self.data_size:,} of the data section"
            raise ModelFileError(
                self.path,
                f"{where}: shape {format_dims(shape)} of {dtype} needs {needed_text} bytes, but data_offsets "
                f"[{begin}, {end}] hold {end - begin:,}",
            )
        if (self.data_start + begin) % itemsize:
            raise ModelFileError(
                self.path,
                f"{where}: its data starts at byte {self.data_start + begin} of the file, not a multiple of its "
                f"{itemsize}-byte elements, so it cannot be viewed in place (writers pad the header to 8 bytes)",
            )
        return TensorInfo(name, dtype, tuple(shape), begin, end)

    def _check_no_overlaps(self) -> None:
        # An empty tensor occupies no byte, so it cannot overlap anything.
        previous: TensorInfo | None = None
        for info in sorted((t for t in self.tensors.values() if t.nbytes), key=lambda t: (t.begin, t.end)):
            if previous is not None and info.begin < previous.end:
                raise ModelFileError(
                    self.path,
                    f"tensors {short_repr(previous.name)} [{previous.begin}, {previous.end}) and {short_repr(info.name)} "
                    f"[{info.begin}, {info.end}) overlap in the data section",
                )
            previous = info

    # ---- tensors --------------------------------------------------------------------------------
    def names(self) -> list[str]:
        return list(self.tensors)

    def tensor(self, name: str) -> Tensor:
        """A read-only Tensor viewing the file's bytes (no copy)."""
        info = self.tensors.get(name)
        if info is None:
            raise ModelFileError(self.path, f"no tensor {short_repr(name)} in this file")
        storage, dtype = SUPPORTED_DTYPES[info.dtype]
        count = info.nbytes // storage.itemsize
        if count == 0:  # nothing to view; an empty array is all there is
            data = np.empty(info.shape, dtype=dtype.storage)
        else:
            data = self.file.array(storage, self.data_start + info.begin, count).reshape(info.shape)
        if data.dtype != dtype.storage:  # '<f4' is float32 itself on the little-endian machines we run on
            data = data.view(dtype.storage)
        return Tensor(info.shape, dtype, data, name)

    def load(self, progress: Progress | None = None) -> dict[str, Tensor]:
        """Every tensor, in the header's order, as views. `progress(done, total, name)` per tensor."""
        tensors: dict[str, Tensor] = {}
        for done, name in enumerate(self.tensors, start=1):
            tensors[name] = self.tensor(name)
            if progress is not None:
                progress(done, len(self.tensors), name)
        return tensors

    def close(self) -> None:
        """Unmap now if no view uses the map (otherwise the last view's release does)."""
        self.file.close()

    def __enter__(self) -> "SafetensorsFile":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SafetensorsFile({str(self.path)!r}, {len(self.tensors)} tensors)"


def load_safetensors(path: str | Path, progress: Progress | None = None) -> dict[str, Tensor]:
    """All tensors of one `.safetensors` file as zero-copy views, checked as SafetensorsFile describes."""
    file = SafetensorsFile(path)
    tensors = file.load(progress)
    if not tensors:
        file.close()
    return tensors


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bytes_for(shape: list[int], itemsize: int, limit: int) -> int:
    """prod(shape) * itemsize, stopping as soon as it exceeds `limit` (then any larger value will do):
    a hostile shape of a million dimensions must not cost a million big-integer multiplications."""
    if 0 in shape:
        return 0
    total = itemsize
    for d in shape:
        total *= d
        if total > limit:
            return limit + 1
    return total


__all__ = [
    "MAX_HEADER_BYTES",
    "SUPPORTED_DTYPES",
    "SafetensorsFile",
    "TensorInfo",
    "load_safetensors",
]
