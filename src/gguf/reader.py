"""read_gguf: llama.cpp's GGUF file -> metadata, tensor infos, and Tensors that are views over the file.

A GGUF file is one header, then the metadata, then a table of tensor infos, then the raw tensor
bytes. Everything is little-endian; every string is a uint64 byte count and that many UTF-8 bytes
(no terminator):

    magic "GGUF" | version uint32 | tensor_count uint64 | kv_count uint64
    kv_count x     key (string) | value type (uint32) | value
    tensor_count x name (string) | n_dims (uint32) | dims (n_dims x uint64, innermost first)
                   | ggml type (uint32) | offset (uint64, from the start of the data section)
    padding up to a multiple of `general.alignment` (default 32)
    data section: the tensors, in the order of their infos, each padded to the alignment

A value is one of 13 types: eight integer widths, float32/float64, bool (one byte, 0 or 1), a
string, or an array: element type (uint32), count (uint64), then `count` values of that type,
which may themselves be arrays.

Version 1 used 32-bit counts and lengths; version 2 made them 64-bit; version 3 only added
big-endian files (which announce themselves by a byte-swapped version). We read versions 2 and 3,
little-endian.

Nothing is trusted before it is checked: every count and length is compared with the bytes left in
the file before anything is allocated or looped over, so a corrupt 200-byte file that claims an
array of 2^60 strings fails at once, and the tensor layout is checked the way llama.cpp checks it
(each tensor aligned, right after the one before it, inside the file; only the padding after the
last tensor may be missing, as llama.cpp's loader allows). No weight byte is read: a
tensor is a numpy view of the mapped file, paged in when a kernel first touches it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..common.saferepr import short_repr
from ..common.errors import ModelFileError
from ..common.logger import GLogger
from ..common.mmapfile import MmapFile
from ..ml import Tensor, format_dims
from .ggmltypes import GGML_TYPES, SUPPORTED_TYPE_NAMES, GGMLType

Progress = Callable[[int, int, str], None]

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
ALIGNMENT_KEY = "general.alignment"
MAX_DIMS = 4  # ggml's GGML_MAX_DIMS
# Arrays of arrays are legal; a file nesting them thousands deep is not a model, and would
# otherwise exhaust Python's recursion limit instead of getting a message.
MAX_ARRAY_NESTING = 16

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_HEADER = struct.Struct("<4sIQQ")  # magic, version, tensor_count, kv_count


class GGUFValueType(IntEnum):
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12

    @property
    def label(self) -> str:
        return self.name.lower()


# The fixed-size types: how one value is stored (struct for a scalar, numpy dtype for an array).
_SCALAR_STRUCT = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<B"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_ARRAY_NUMPY = {
    GGUFValueType.UINT8: np.dtype("<u1"),
    GGUFValueType.INT8: np.dtype("<i1"),
    GGUFValueType.UINT16: np.dtype("<u2"),
    GGUFValueType.INT16: np.dtype("<i2"),
    GGUFValueType.UINT32: np.dtype("<u4"),
    GGUFValueType.INT32: np.dtype("<i4"),
    GGUFValueType.FLOAT32: np.dtype("<f4"),
    GGUFValueType.BOOL: np.dtype("<u1"),  # checked to be 0 or 1, then handed out as numpy bool
    GGUFValueType.UINT64: np.dtype("<u8"),
    GGUFValueType.INT64: np.dtype("<i8"),
    GGUFValueType.FLOAT64: np.dtype("<f8"),
}
# The fewest bytes one value of each type can take: what a claimed count is checked against.
_MIN_VALUE_BYTES = {t: s.size for t, s in _SCALAR_STRUCT.items()}
_MIN_VALUE_BYTES[GGUFValueType.STRING] = 8  # the length, of an empty string
_MIN_VALUE_BYTES[GGUFValueType.ARRAY] = 12  # element type and count, of an empty array
# ... and of one metadata entry (a one-byte key, a type, a one-byte value) and one tensor info
# (an empty name, n_dims, one dimension, the type, the offset).
_MIN_KV_BYTES = 8 + 1 + 4 + 1
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 8 + 4 + 8


@dataclass(frozen=True)
class GGUFTensorInfo:
    """One entry of the tensor table, as the file states it."""

    name: str
    dims: tuple[int, ...]  # GGUF's order, innermost (fastest-varying) first: ggml's ne[0], ne[1], ...
    type: GGMLType
    offset: int  # from the start of the data section

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy's order, outermost first: GGUF's dims turned around. A [rows, cols] matrix is
        written as dims (cols, rows), because ggml counts from the dimension that varies fastest."""
        return self.dims[::-1]

    @property
    def numel(self) -> int:
        return math.prod(self.dims)

    @property
    def nbytes(self) -> int:
        return self.type.nbytes(self.numel)


@dataclass
class GGUFFile:
    """A parsed GGUF file. `metadata` holds plain Python values: str, int, float, bool; numeric
    arrays as 1-D numpy arrays (copies, so they own aligned memory), string arrays as list[str],
    arrays of arrays as lists. `tensors` are read-only views over `file`, in file order."""

    path: Path
    version: int
    metadata: dict[str, Any]
    value_types: dict[str, str]  # key -> "uint32", "string", "array[string; 49152]", ...
    tensor_infos: list[GGUFTensorInfo]
    alignment: int
    data_offset: int  # absolute byte offset of the data section
    file: MmapFile
    tensors: dict[str, Tensor] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None


def has_gguf_magic(path: str | Path) -> bool:
    """True if the file starts with "GGUF" (reads 4 bytes; False for anything unreadable)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_gguf(path: str | Path, progress: Progress | None = None) -> GGUFFile:
    """Map a GGUF file, parse and check its header, metadata and tensor table, and make each
    tensor a zero-copy view. Any problem is a ModelFileError naming the file and the field."""
    file = MmapFile(path)
    try:
        gguf = _parse(file)
        _check_layout(gguf)
        _log_contents(gguf)
        _map_tensors(gguf, progress)
    except BaseException:
        file.close()
        raise
    if not gguf.tensors:
        file.close()  # nothing points into the map
    return gguf


# ---- the byte cursor ------------------------------------------------------------------------------
class _Cursor:
    """Reads forward through the mapped file; every read is bounds-checked against the file size."""

    __slots__ = ("path", "buffer", "size", "pos")

    def __init__(self, file: MmapFile) -> None:
        self.path = file.path
        self.buffer = file.buffer
        self.size = file.size
        self.pos = 0

    @property
    def left(self) -> int:
        return self.size - self.pos

    def error(self, message: str) -> ModelFileError:
        return ModelFileError(self.path, message)

    def need(self, count: int, what: str) -> None:
        if count > self.size - self.pos:
            raise self.error(
                f"truncated: {what} needs {count} bytes at byte {self.pos}, but the file ends at byte {self.size}"
            )

    def unpack(self, st: struct.Struct, what: str) -> tuple:
        self.need(st.size, what)
        values = st.unpack_from(self.buffer, self.pos)
        self.pos += st.size
        return values

    def u32(self, what: str) -> int:
        return self.unpack(_U32, what)[0]

    def u64(self, what: str) -> int:
        return self.unpack(_U64, what)[0]

    def string(self, what: str) -> str:
        length = self.u64(f"{what} (string length)")
        if length > self.left:
            raise self.error(
                f"{what}: string length {length} at byte {self.pos - 8} is larger than the {self.left} bytes "
                f"left in the file (truncated, or a corrupt length)"
            )
        raw = self.buffer[self.pos : self.pos + length]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(
                f"{what}: the string at byte {self.pos} is not valid UTF-8 ({exc.reason} at its byte {exc.start})"
            ) from None
        self.pos += length
        return text


# ---- header, metadata, tensor infos -------------------------------------------------------------
def _parse(file: MmapFile) -> GGUFFile:
    cursor = _Cursor(file)
    version, tensor_count, kv_count = _read_header(cursor)
    metadata: dict[str, Any] = {}
    value_types: dict[str, str] = {}
    for index in range(kv_count):
        key = cursor.string(f"the key of metadata entry {index}")
        if not key:
            raise cursor.error(f"metadata entry {index} has an empty key")
        if key in metadata:
            raise cursor.error(f"metadata key {short_repr(key)} appears twice (entries before and at {index})")
        what = f"metadata key {short_repr(key)}"
        value_type = _value_type(cursor, cursor.u32(f"the value type of {what}"), what)
        metadata[key], value_types[key] = _read_value(cursor, value_type, what, 0)
    alignment = _alignment(cursor, metadata, value_types)
    infos = _read_tensor_infos(cursor, tensor_count)
    # The data section starts at the first multiple of the alignment after the tensor table.
    data_offset = _align(cursor.pos, alignment)
    return GGUFFile(file.path, version, metadata, value_types, infos, alignment, data_offset, file)


def _read_header(cursor: _Cursor) -> tuple[int, int, int]:
    if cursor.size < 4 or cursor.buffer[:4] != GGUF_MAGIC:
        found = bytes(cursor.buffer[:4])
        raise cursor.error(f"not a GGUF file: it starts with {found!r}, a GGUF file starts with the magic b'GGUF'")
    cursor.pos = 4
    version = cursor.u32("the header field version")
    if version not in SUPPORTED_VERSIONS:
        raise cursor.error(_version_message(version))
    tensor_count = cursor.u64("the header field tensor_count")
    kv_count = cursor.u64("the header field kv_count")
    # Each entry takes at least a few bytes, so a count the rest of the file cannot hold is refused
    # before a single entry is read (or a list the size of the count is made).
    if kv_count * _MIN_KV_BYTES > cursor.left:
        raise cursor.error(
            f"header field kv_count = {kv_count}: that many metadata entries need at least "
            f"{kv_count * _MIN_KV_BYTES} bytes, but only {cursor.left} bytes follow the header (the file is truncated or the count is corrupt)"
        )
    if tensor_count * _MIN_TENSOR_INFO_BYTES > cursor.left - kv_count * _MIN_KV_BYTES:
        raise cursor.error(
            f"header field tensor_count = {tensor_count}: that many tensor infos need at least "
            f"{tensor_count * _MIN_TENSOR_INFO_BYTES} bytes, but only {cursor.left} bytes follow the header (the file is truncated or the count is corrupt)"
        )
    return version, tensor_count, kv_count


def _version_message(version: int) -> str:
    if version == 1:
        return (
            "GGUF version 1 is not supported (it stored counts and lengths in 32 bits); supported versions "
            "are 2 and 3: convert the model again with a current llama.cpp"
        )
    swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
    if swapped in SUPPORTED_VERSIONS:
        return (
            f"header field version reads {version}, which is version {swapped} byte-swapped: this is a "
            f"big-endian GGUF file, and only little-endian files are supported"
        )
    return f"unsupported GGUF version {version} (supported versions: 2, 3)"


def _value_type(cursor: _Cursor, type_id: int, what: str) -> GGUFValueType:
    try:
        return GGUFValueType(type_id)
    except ValueError:
        raise cursor.error(f"{what}: unknown value type {type_id} (GGUF value types are 0 to 12)") from None


def _read_value(cursor: _Cursor, value_type: GGUFValueType, what: str, depth: int) -> tuple[Any, str]:
    """One value as plain Python, and a description of its type for the debug log."""
    if value_type is GGUFValueType.STRING:
        return cursor.string(what), "string"
    if value_type is GGUFValueType.ARRAY:
        return _read_array(cursor, what, depth)
    (value,) = cursor.unpack(_SCALAR_STRUCT[value_type], what)
    if value_type is GGUFValueType.BOOL:
        if value > 1:
            raise cursor.error(f"{what}: a bool must be the byte 0 or 1, got {value} at byte {cursor.pos - 1}")
        value = bool(value)
    return value, value_type.label


def _read_array(cursor: _Cursor, what: str, depth: int) -> tuple[Any, str]:
    if depth >= MAX_ARRAY_NESTING:
        raise cursor.error(f"{what}: arrays nested more than {MAX_ARRAY_NESTING} deep")
    element_type = _value_type(cursor, cursor.u32(f"{what} (array element type)"), f"{what} (array element)")
    count = cursor.u64(f"{what} (array length)")
    least = count * _MIN_VALUE_BYTES[element_type]
    if least > cursor.left:
        raise cursor.error(
            f"{what}: an array of {count} {element_type.label} values needs at least {least} bytes, but only "
            f"{cursor.left} bytes are left in the file (truncated, or a corrupt length)"
        )
    label = f"array[{element_type.label}; {count}]"
    if element_type is GGUFValueType.STRING:
        return _read_string_array(cursor, count, what), label
    if element_type is GGUFValueType.ARRAY:
        items = [_read_array(cursor, f"{what}[{i}]", depth + 1)[0] for i in range(count)]
        return items, label
    dtype = _ARRAY_NUMPY[element_type]
    # A copy, not a view: metadata is small, and a copy owns aligned memory that outlives the file.
    values = np.frombuffer(cursor.buffer, dtype=dtype, count=count, offset=cursor.pos).copy()
    if element_type is GGUFValueType.BOOL:
        if values.size and values.max() > 1:
            bad = int(np.argmax(values > 1))
            raise cursor.error(f"{what}: element {bad} of a bool array is {values[bad]}, a bool must be 0 or 1")
        values = values.astype(np.bool_)
    cursor.pos += least
    return values, label


def _read_string_array(cursor: _Cursor, count: int, what: str) -> list[str]:
    # The hot loop of a real file (49152 token strings, 48900 merges): inlined, no f-string per item.
    buffer, pos, size = cursor.buffer, cursor.pos, cursor.size
    unpack = _U64.unpack_from
    strings: list[str] = []
    append = strings.append
    for index in range(count):
        if pos + 8 > size:
            cursor.pos = pos
            cursor.need(8, f"{what}[{index}] (string length)")
        (length,) = unpack(buffer, pos)
        pos += 8
        if length > size - pos:
            raise cursor.error(
                f"{what}: string {index} has length {length} (at byte {pos - 8}), larger than the {size - pos} "
                f"bytes left in the file (truncated, or a corrupt length)"
            )
        try:
            append(buffer[pos : pos + length].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise cursor.error(
                f"{what}: string {index} (at byte {pos}) is not valid UTF-8 ({exc.reason} at its byte {exc.start})"
            ) from None
        pos += length
    cursor.pos = pos
    return strings


def _alignment(cursor: _Cursor, metadata: dict[str, Any], value_types: dict[str, str]) -> int:
    if ALIGNMENT_KEY not in metadata:
        return DEFAULT_ALIGNMENT
    value = metadata[ALIGNMENT_KEY]
    # llama.cpp reads it as a uint32, and so do we: another type means the writer got it wrong.
    if value_types[ALIGNMENT_KEY] != "uint32":
        raise cursor.error(f"metadata key {ALIGNMENT_KEY!r} must be a uint32, got a {value_types[ALIGNMENT_KEY]}")
    if value <= 0 or value & (value - 1):
        raise cursor.error(f"metadata key {ALIGNMENT_KEY!r} = {value} must be a power of two")
    return value


def _read_tensor_infos(cursor: _Cursor, tensor_count: int) -> list[GGUFTensorInfo]:
    infos: list[GGUFTensorInfo] = []
    seen: set[str] = set()
    for index in range(tensor_count):
        name = cursor.string(f"the name of tensor info {index}")
        what = f"tensor {short_repr(name)}"
        if name in seen:
            raise cursor.error(f"{what} appears twice in the tensor table")
        seen.add(name)
        n_dims = cursor.u32(f"{what} (n_dims)")
        if not 1 <= n_dims <= MAX_DIMS:
            raise cursor.error(f"{what}: n_dims = {n_dims}, expected 1 to {MAX_DIMS}")
        dims = cursor.unpack(struct.Struct(f"<{n_dims}Q"), f"{what} (dims)")
        for axis, size in enumerate(dims):
            if size == 0 or size >= 2**63:  # int64 in ggml; an empty tensor holds no weight
                raise cursor.error(f"{what}: dims[{axis}] = {size} is not a positive int64 (dims {list(dims)})")
        type_id = cursor.u32(f"{what} (ggml type)")
        offset = cursor.u64(f"{what} (offset)")
        infos.append(GGUFTensorInfo(name, tuple(dims), _ggml_type(cursor, type_id, what), offset))
    return infos


def _ggml_type(cursor: _Cursor, type_id: int, what: str) -> GGMLType:
    known = GGML_TYPES.get(type_id)
    if known is None:
        raise cursor.error(f"{what}: unknown ggml type id {type_id}")
    if known.dtype is None:
        raise cursor.error(
            f"{what}: ggml type {known.name} (id {type_id}) is not supported (supported: "
            f"{', '.join(SUPPORTED_TYPE_NAMES)}); use a file quantized to one of those"
        )
    return known


def _align(offset: int, alignment: int) -> int:
    return (offset + alignment - 1) // alignment * alignment


# ---- the data section ---------------------------------------------------------------------------
def _check_layout(gguf: GGUFFile) -> None:
    """llama.cpp's rule: tensor i starts at the padded end of tensor i-1 (the first at 0), so the
    data section is one run of tensors in table order. Checking it catches a shape that does not
    match its bytes (the next tensor would start elsewhere), overlaps and gaps alike."""
    path, size, alignment = gguf.path, gguf.file.size, gguf.alignment
    if gguf.tensor_infos and gguf.data_offset > size:
        raise ModelFileError(
            path,
            f"truncated: the data section starts at byte {gguf.data_offset} (the tensor table padded to "
            f"general.alignment {alignment}), but the file ends at byte {size}",
        )
    expected = 0
    previous: GGUFTensorInfo | None = None
    for info in gguf.tensor_infos:
        what = f"tensor {short_repr(info.name)} ({info.type.name}, dims {format_dims(info.dims)} innermost first)"
        if info.dims[0] % info.type.block_size:
            raise ModelFileError(
                path,
                f"{what}: {info.type.name} stores blocks of {info.type.block_size} values along the innermost "
                f"dimension, and dims[0] = {info.dims[0]} is not a multiple of {info.type.block_size}",
            )
        if info.offset % alignment:
            raise ModelFileError(
                path, f"{what}: offset {info.offset} is not a multiple of general.alignment {alignment}"
            )
        if info.offset != expected:
            raise ModelFileError(path, _offset_message(what, info, previous, expected, alignment))
        start = gguf.data_offset + info.offset
        end = start + info.nbytes
        if end > size:
            raise ModelFileError(
                path,
                f"{what}: its {info.nbytes} bytes at [{start}, {end}) run past the end of the file ({size} bytes)",
            )
        expected = info.offset + _align(info.nbytes, alignment)
        previous = info


def _offset_message(
    what: str, info: GGUFTensorInfo, previous: GGUFTensorInfo | None, expected: int, alignment: int
) -> str:
    if previous is None:
        return f"{what}: offset {info.offset}, but the first tensor's data must start the data section (offset 0)"
    before = (
        f"the tensor before it, {short_repr(previous.name)} ({previous.type.name}, dims {format_dims(previous.dims)}), "
        f"occupies [{previous.offset}, {previous.offset + previous.nbytes}) of the data section"
    )
    if info.offset < expected:
        return f"{what}: offset {info.offset} overlaps the data of {before}"
    return (
        f"{what}: offset {info.offset}, but {before}, so this tensor should start at {expected} (padded to "
        f"{alignment}): the shape and type of {short_repr(previous.name)} do not match the size of its data"
    )


def _map_tensors(gguf: GGUFFile, progress: Progress | None) -> None:
    total = len(gguf.tensor_infos)
    for done, info in enumerate(gguf.tensor_infos, start=1):
        dtype = info.type.dtype
        assert dtype is not None  # refused in _ggml_type
        start = gguf.data_offset + info.offset
        if start % dtype.itemsize == 0:
            view = gguf.file.array(dtype.storage, start, info.nbytes // dtype.itemsize)
        else:
            # Only a general.alignment below the element size (legal, never written by llama.cpp's
            # tools) puts a float at an odd address; the kernels want aligned data, so this one
            # tensor is copied into aligned memory. With the default alignment nothing is copied.
            view = gguf.file.array(np.uint8, start, info.nbytes).copy().view(dtype.storage)
            view.flags.writeable = False
            GLogger.DebugPrintf("GGUF tensor %s: data at byte %d is not %d-aligned: copied", info.name, start, dtype.itemsize)
        # GGUF lists dims innermost first; numpy (and our Tensor) list them outermost first, so
        # the shape is turned around here. The bytes need no change: both orders describe the
        # same row-major layout, read from opposite ends.
        gguf.tensors[info.name] = Tensor(info.shape, dtype, view, info.name)
        if progress is not None:
            progress(done, total, info.name)


# ---- debug.log --------------------------------------------------------------------------------------
def _log_contents(gguf: GGUFFile) -> None:
    if not GLogger.debug_enabled:
        return
    data_bytes = gguf.file.size - gguf.data_offset if gguf.tensor_infos else 0
    GLogger.DebugPrintf(
        "GGUF %s: version %d, %d metadata keys, %d tensors, alignment %d, data section at byte %d (%d bytes)",
        gguf.path, gguf.version, len(gguf.metadata), len(gguf.tensor_infos), gguf.alignment,
        gguf.data_offset, data_bytes,
    )
    for key, value in gguf.metadata.items():
        GLogger.DebugPrintf("GGUF metadata %s (%s) = %s", key, gguf.value_types[key], abbreviate(value))
    for info in gguf.tensor_infos:
        GLogger.DebugPrintf(
            "GGUF tensor %s: dims %s (innermost first) -> shape %s, %s, %d bytes at data offset %d",
            info.name, format_dims(info.dims), format_dims(info.shape), info.type.name, info.nbytes, info.offset,
        )


def abbreviate(value: Any, items: int = 6, chars: int = 80) -> str:
    """A metadata value short enough for one log line: long strings and arrays are cut."""
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= chars else f"{text[:chars]}... ({len(value)} characters)"
    if isinstance(value, (list, np.ndarray)):
        shown = ", ".join(abbreviate(v, items, 24) for v in list(value[:items]))
        more = f", ... ({len(value)} items)" if len(value) > items else ""
        return f"[{shown}{more}]"
    if isinstance(value, (np.generic,)):
        return repr(value.item())
    return repr(value)


__all__ = [
    "ALIGNMENT_KEY",
    "DEFAULT_ALIGNMENT",
    "GGUFFile",
    "GGUFTensorInfo",
    "GGUFValueType",
    "GGUF_MAGIC",
    "MAX_ARRAY_NESTING",
    "SUPPORTED_VERSIONS",
    "abbreviate",
    "has_gguf_magic",
    "read_gguf",
]
