"""Forging model files for tests and the fuzz suite, with no PyTorch: a zip laid out like
torch.save's, and builders for the hostile pickles of issue 13.

Each hostile pickle below is small and valid as far as pickle's grammar goes; what it asks for is
unbounded work (hashing a tuple graph that shares its children), a crash (a key nested 150,000
deep) or unbounded memory (spelling out a list that holds itself twice at every level).
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

ALIGNMENT = 64  # torch.save aligns each storage's data to 64 bytes; our reader refuses misaligned data


# ---- zip writing laid out like torch's ----------------------------------------------------------
def _padding_extra(offset: int, name: str) -> bytes:
    """An extra field that makes the entry's data start at a multiple of ALIGNMENT (as torch does)."""
    header_end = offset + 30 + len(name.encode()) + 4
    pad = (-header_end) % ALIGNMENT
    return b"FB" + struct.pack("<H", pad) + b"Z" * pad


def write_torch_zip(path: Path, entries: list[tuple[str, bytes]]) -> None:
    """Write `entries` (full names, e.g. 'archive/data.pkl') stored, aligned, with correct CRCs."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.extra = _padding_extra(archive.fp.tell(), name)  # type: ignore[union-attr]
            archive.writestr(info, data)


def write_checkpoint(path: Path, pickle_bytes: bytes, storages: dict[str, bytes] | None = None) -> Path:
    """A `.pth` holding `pickle_bytes` as data.pkl and each storage as `data/<key>`."""
    entries = [("archive/data.pkl", pickle_bytes), ("archive/byteorder", b"little")]
    entries += [(f"archive/data/{key}", data) for key, data in (storages or {}).items()]
    entries.append(("archive/version", b"3\n"))
    write_torch_zip(path, entries)
    return path


def read_zip_entries(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info.filename)) for info in archive.infolist()]


# ---- pickle opcodes, spelled out -----------------------------------------------------------------
PROTO2 = b"\x80\x02"
STOP = b"."


def text(value: str) -> bytes:
    """BINUNICODE: a 4-byte length and UTF-8."""
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def put(index: int) -> bytes:
    return b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index)


def get(index: int) -> bytes:
    return b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)


def global_(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tuple_of(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def int_(value: int) -> bytes:
    """BININT (4 bytes, signed) or LONG1 for anything bigger."""
    if -(1 << 31) <= value < 1 << 31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def float_storage_pid(key: bytes, numel: int) -> bytes:
    """The persistent id torch writes for a float32 storage: ('storage', FloatStorage, key, 'cpu', numel)."""
    return tuple_of(text("storage"), global_("torch", "FloatStorage"), key, text("cpu"), int_(numel)) + b"Q"


def rebuild_tensor(storage: bytes, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    """_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    return (
        global_("torch._utils", "_rebuild_tensor_v2")
        + tuple_of(
            storage,
            int_(offset),
            tuple_of(*(int_(d) for d in size)),
            tuple_of(*(int_(s) for s in stride)),
            b"\x89",
            global_("collections", "OrderedDict") + b")R",
        )
        + b"R"
    )


def state_dict(items: list[tuple[str, bytes]]) -> bytes:
    """A whole pickle: {name: value, ...} then STOP."""
    return PROTO2 + b"}(" + b"".join(text(name) + value for name, value in items) + b"u" + STOP


# ---- issue 13's hostile pickles ----------------------------------------------------------------
def shared_tuple_graph(depth: int) -> bytes:
    """Pushes t(depth) where t0 = 0 and t(i+1) = (t(i), t(i)): `depth` memo entries, but
    hash / repr / == of it visit 2^depth leaves (Python caches no tuple hash)."""
    return b"K\x00" + put(0) + b"".join(get(level - 1) + b"\x86" + put(level) for level in range(1, depth + 1))


def shared_tuple_graph_key(depth: int = 60) -> bytes:
    """{t(depth): 1}: inserting the key hashes it; issue 13's 2^60-step hang, in ~300 bytes."""
    return PROTO2 + b"}" + shared_tuple_graph(depth) + b"K\x01s" + STOP


def deep_tuple_key(depth: int = 150_000) -> bytes:
    """{((((0,),),)...): 1} nested `depth` deep: hashing it recurses in C until the stack overflows."""
    return PROTO2 + b"}" + b"K\x00" + b"\x85" * depth + b"K\x01s" + STOP


def doubling_list(levels: int = 40) -> bytes:
    """Pushes l(levels) where l0 = [] and l(i+1) = [l(i), l(i)]: repr of it is 2^levels long.
    (Each level stays on the stack below the next: the attack is done before STOP is reached.)"""
    return b"]" + put(0) + b"".join(
        b"](" + get(level - 1) + get(level - 1) + b"e" + put(level) for level in range(1, levels + 1)
    )


def deep_list(levels: int = 100_000) -> bytes:
    """Pushes [[[...[]...]]] nested `levels` deep, built inside out (repr recurses past the limit)."""
    return b"]" + put(0) + b"".join(b"]" + get(level - 1) + b"a" + put(level) for level in range(1, levels + 1))


__all__ = [
    "ALIGNMENT",
    "deep_list",
    "deep_tuple_key",
    "doubling_list",
    "float_storage_pid",
    "read_zip_entries",
    "rebuild_tensor",
    "shared_tuple_graph",
    "shared_tuple_graph_key",
    "state_dict",
    "write_checkpoint",
    "write_torch_zip",
]
