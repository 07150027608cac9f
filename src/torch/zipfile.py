"""Our own reader of the zip archive that `torch.save` writes (a `.pth` file).

A `.pth` is a zip of: `<archive>/data.pkl` (the pickled structure), `<archive>/data/<key>` (one entry
per storage: the raw little-endian tensor bytes), and a few small bookkeeping entries. torch writes
every entry *stored* (not compressed) and pads each local header so the data starts at a multiple of
64 bytes, which is what lets a tensor be a numpy view straight over the mapped file.

Only what we need is read, from the end of the file backwards:

    [local header + data] ... [central directory] [zip64 EOCD record] [zip64 locator] [EOCD]

- EOCD (end of central directory): where the central directory is and how many entries it has.
- ZIP64 record + locator: the same numbers as 64-bit values. torch's writer always emits them;
  they are required when a field of the EOCD is saturated (0xFFFF / 0xFFFFFFFF).
- Central directory: one header per entry with name, method, sizes, and the local header offset.
  torch's local headers carry zero sizes (bit 3, "sizes in a data descriptor"), so the sizes are
  taken from here, never from the local header.
- Local header: read only for its name and extra-field lengths, to find where the data starts.

Every number is checked against the file size, so a truncated or corrupt archive fails with a
message saying which record is wrong, instead of an IndexError far away.

Every entry's CRC-32 is in the central directory. `read` (data.pkl, the small bookkeeping entries)
always checks it; `check_crc` checks any stored entry in place over the map, which reads the whole
entry: the loader does it for entries under SMALL_ENTRY_BYTES, `--verify` for all of them.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Callable

from ..common.errors import ModelFileError
from ..common.mmapfile import MmapFile
from ..common.saferepr import short_repr

METHOD_STORED = 0
METHOD_NAMES = {0: "stored", 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd"}

_EOCD = struct.Struct("<IHHHHIIH")  # sig, disk, cd disk, entries here, entries total, cd size, cd offset, comment len
_EOCD_SIG = 0x06054B50
_ZIP64_LOCATOR = struct.Struct("<IIQI")  # sig, disk with the zip64 EOCD, its offset, total disks
_ZIP64_LOCATOR_SIG = 0x07064B50
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")  # sig, record size, made, needed, disk, cd disk, n here, n, cd size, cd off
_ZIP64_EOCD_SIG = 0x06064B50
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_CENTRAL_SIG = 0x02014B50
_LOCAL = struct.Struct("<IHHHHHIIIHH")
_LOCAL_SIG = 0x04034B50
_ZIP64_EXTRA_ID = 0x0001
_MAX_COMMENT = 0xFFFF
_U16_SATURATED = 0xFFFF
_U32_SATURATED = 0xFFFFFFFF
_FLAG_ENCRYPTED = 0x0001
_FLAG_UTF8 = 0x0800
# Entries at most this big have their CRC checked at every load: the pickle, the bookkeeping
# entries and the small tensors (norm weights) cost microseconds to read; the big matrices are only
# paged in by Forward, and a load that read them all would take as long as reading the file.
SMALL_ENTRY_BYTES = 1 << 20
# --verify reads entries in pieces of this size, so progress can be shown and the map's pages are
# touched in order.
_CRC_CHUNK = 64 << 20

CrcProgress = Callable[[int], None]  # called with the number of bytes just checked


@dataclass(frozen=True)
class ZipEntry:
    name: str
    method: int  # 0 = stored; anything else is compressed
    compressed_size: int
    uncompressed_size: int
    header_offset: int  # where the local header starts
    data_offset: int  # absolute offset of the entry's first data byte in the file
    crc32: int = 0  # of the uncompressed data, from the central directory

    @property
    def is_stored(self) -> bool:
        return self.method == METHOD_STORED

    @property
    def method_name(self) -> str:
        return METHOD_NAMES.get(self.method, f"method {self.method}")

    @property
    def data_end(self) -> int:
        return self.data_offset + self.compressed_size


@dataclass(frozen=True)
class _Directory:
    """Where the central directory is, from the EOCD (or its zip64 twin)."""

    entry_count: int
    size: int
    offset: int
    end: int  # where the central directory's records must stop (start of the zip64 record or EOCD)


class ZipArchive:
    """The entries of a zip file that is already mapped; data is read through `file`."""

    def __init__(self, file: MmapFile) -> None:
        self.file = file
        self.path = file.path
        directory = _read_directory_location(file)
        self.entries: dict[str, ZipEntry] = {}
        for entry in _read_central_directory(file, directory):
            if entry.name in self.entries:
                raise ModelFileError(self.path, f"zip entry {_shown(entry.name)} appears twice in the central directory")
            self.entries[entry.name] = entry

    def names(self) -> list[str]:
        return list(self.entries)

    def entry(self, name: str) -> ZipEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise ModelFileError(self.path, f"zip entry {_shown(name)} is missing from the archive") from None

    def stored_entry(self, name: str) -> ZipEntry:
        """The entry, which must be stored: a compressed entry cannot be mapped as a tensor."""
        entry = self.entry(name)
        if not entry.is_stored:
            raise ModelFileError(
                self.path,
                f"zip entry {_shown(name)} is compressed ({entry.method_name}); torch.save stores entries "
                f"uncompressed and only stored entries can be memory-mapped",
            )
        return entry

    def read(self, name: str) -> bytes:
        """A copy of a stored entry's bytes, CRC checked (for data.pkl and the small bookkeeping entries)."""
        entry = self.stored_entry(name)
        data = self.file.read(entry.data_offset, entry.compressed_size)
        self._compare_crc(entry, zlib.crc32(data))
        return data

    def check_crc(self, entry: ZipEntry, progress: CrcProgress | None = None) -> None:
        """Compute a stored entry's CRC-32 over the map (no copy) and compare it with the directory's."""
        crc = 0
        with memoryview(self.file.buffer) as view:
            for start in range(entry.data_offset, entry.data_end, _CRC_CHUNK):
                end = min(start + _CRC_CHUNK, entry.data_end)
                with view[start:end] as chunk:
                    crc = zlib.crc32(chunk, crc)
                if progress is not None:
                    progress(end - start)
        self._compare_crc(entry, crc)

    def check_small_entries(self, limit: int = SMALL_ENTRY_BYTES) -> int:
        """check_crc for every stored entry of at most `limit` bytes; returns how many were checked."""
        small = [e for e in self.entries.values() if e.is_stored and e.compressed_size <= limit]
        for entry in small:
            self.check_crc(entry)
        return len(small)

    def _compare_crc(self, entry: ZipEntry, crc: int) -> None:
        if crc != entry.crc32:
            raise ModelFileError(
                self.path,
                f"zip entry {_shown(entry.name)} is corrupt: its {entry.compressed_size} bytes have CRC-32 "
                f"{crc:08x}, the zip directory says {entry.crc32:08x} (a damaged copy or an incomplete "
                f"download; compare the file's checksum with the source's)",
            )


def _read_directory_location(file: MmapFile) -> _Directory:
    eocd_offset = _find_eocd(file)
    (_sig, disk, cd_disk, n_here, n_total, cd_size, cd_offset, _comment) = _EOCD.unpack_from(
        file.buffer, eocd_offset
    )
    directory_end = eocd_offset
    locator_offset = eocd_offset - _ZIP64_LOCATOR.size
    has_locator = locator_offset >= 0 and _u32(file, locator_offset) == _ZIP64_LOCATOR_SIG
    saturated = _U16_SATURATED in (n_here, n_total) or _U32_SATURATED in (cd_size, cd_offset)
    if has_locator:
        directory_end, record = _read_zip64_eocd(file, locator_offset)
        (_s, _rs, _made, _needed, disk, cd_disk, n_here, n_total, cd_size, cd_offset) = record
    elif saturated:
        raise ModelFileError(
            file.path,
            "zip end-of-central-directory has saturated fields but no ZIP64 locator precedes it "
            "(the archive is truncated or corrupt)",
        )
    if disk != 0 or cd_disk != 0 or n_here != n_total:
        raise ModelFileError(file.path, "multi-disk (split) zip archives are not supported")
    if cd_offset + cd_size > directory_end:
        raise ModelFileError(
            file.path,
            f"zip central directory [{cd_offset}, {cd_offset + cd_size}) runs past its end at byte "
            f"{directory_end} (file size {file.size}): the archive is truncated or corrupt",
        )
    return _Directory(entry_count=n_total, size=cd_size, offset=cd_offset, end=cd_offset + cd_size)


def _find_eocd(file: MmapFile) -> int:
    """Scan back from the end for the EOCD signature whose comment length reaches the file end."""
    last = file.size - _EOCD.size
    if last < 0:
        raise ModelFileError(file.path, f"not a zip archive: {file.size} bytes is too short for one")
    first = max(0, last - _MAX_COMMENT)
    signature = struct.pack("<I", _EOCD_SIG)
    position = file.buffer.rfind(signature, first, last + 4)
    while position >= 0:
        (comment_length,) = struct.unpack_from("<H", file.buffer, position + _EOCD.size - 2)
        if position + _EOCD.size + comment_length == file.size:
            return position
        position = file.buffer.rfind(signature, first, position + 3)
    raise ModelFileError(
        file.path,
        "not a zip archive, or a truncated one: no end-of-central-directory record at the end of the file "
        "(a .pth written by torch.save is a zip; was the download cut short?)",
    )


def _zip64_record_offset(file: MmapFile, locator_offset: int) -> int:
    (_sig, disk, record_offset, _disks) = _ZIP64_LOCATOR.unpack_from(file.buffer, locator_offset)
    if disk != 0:
        raise ModelFileError(file.path, "multi-disk (split) zip archives are not supported")
    if record_offset + _ZIP64_EOCD.size > locator_offset:
        raise ModelFileError(
            file.path,
            f"ZIP64 end-of-central-directory offset {record_offset} is beyond its locator at "
            f"{locator_offset}: the archive is corrupt",
        )
    return record_offset


def _read_zip64_eocd(file: MmapFile, locator_offset: int) -> tuple[int, tuple[int, ...]]:
    """(offset of the ZIP64 EOCD record, its fields)."""
    record_offset = _zip64_record_offset(file, locator_offset)
    record = _ZIP64_EOCD.unpack_from(file.buffer, record_offset)
    if record[0] != _ZIP64_EOCD_SIG:
        raise ModelFileError(file.path, f"no ZIP64 end-of-central-directory record at byte {record_offset}")
    return record_offset, record


def _read_central_directory(file: MmapFile, directory: _Directory) -> list[ZipEntry]:
    entries: list[ZipEntry] = []
    position = directory.offset
    for index in range(directory.entry_count):
        if position + _CENTRAL.size > directory.end:
            raise ModelFileError(
                file.path,
                f"zip central directory ends after {index} of {directory.entry_count} entries (corrupt archive)",
            )
        fields = _CENTRAL.unpack_from(file.buffer, position)
        (sig, _made, _needed, flags, method, _time, _date, crc, csize, usize, name_len, extra_len,
         comment_len, _disk, _iattr, _eattr, header_offset) = fields
        if sig != _CENTRAL_SIG:
            raise ModelFileError(file.path, f"zip central directory entry {index} at byte {position} has a bad signature")
        variable_end = position + _CENTRAL.size + name_len + extra_len + comment_len
        if variable_end > directory.end:
            raise ModelFileError(file.path, f"zip central directory entry {index} runs past the directory's end")
        name = _decode_name(file, file.buffer[position + _CENTRAL.size : position + _CENTRAL.size + name_len], flags)
        if flags & _FLAG_ENCRYPTED:
            raise ModelFileError(file.path, f"zip entry {_shown(name)} is encrypted")
        extra = file.buffer[position + _CENTRAL.size + name_len : position + _CENTRAL.size + name_len + extra_len]
        usize, csize, header_offset = _apply_zip64_extra(file, name, extra, usize, csize, header_offset)
        if method == METHOD_STORED and csize != usize:
            raise ModelFileError(
                file.path, f"zip entry {_shown(name)} is stored but its sizes differ ({csize} vs {usize} bytes)"
            )
        data_offset = _local_data_offset(file, name, header_offset)
        if data_offset + csize > directory.offset:
            raise ModelFileError(
                file.path,
                f"zip entry {_shown(name)} needs bytes [{data_offset}, {data_offset + csize}) but the entries must end "
                f"before the central directory at byte {directory.offset} (file size {file.size}): "
                f"the archive is truncated or corrupt",
            )
        entries.append(ZipEntry(name, method, csize, usize, header_offset, data_offset, crc))
        position = variable_end
    return entries


def _apply_zip64_extra(
    file: MmapFile, name: str, extra: bytes, usize: int, csize: int, offset: int
) -> tuple[int, int, int]:
    """Replace each saturated 32-bit field with its 64-bit value from the ZIP64 extra field.

    The extra field holds only the saturated ones, always in the order: uncompressed size,
    compressed size, local header offset.
    """
    needed = [usize == _U32_SATURATED, csize == _U32_SATURATED, offset == _U32_SATURATED]
    if not any(needed):
        return usize, csize, offset
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        body = extra[position + 4 : position + 4 + length]
        if tag == _ZIP64_EXTRA_ID:
            values = [usize, csize, offset]
            cursor = 0
            for i, is_saturated in enumerate(needed):
                if is_saturated:
                    if cursor + 8 > len(body):
                        raise ModelFileError(file.path, f"zip entry {_shown(name)}: ZIP64 extra field is too short")
                    (values[i],) = struct.unpack_from("<Q", body, cursor)
                    cursor += 8
            return values[0], values[1], values[2]
        position += 4 + length
    raise ModelFileError(file.path, f"zip entry {_shown(name)} has 32-bit fields saturated but no ZIP64 extra field")


def _local_data_offset(file: MmapFile, name: str, header_offset: int) -> int:
    if header_offset + _LOCAL.size > file.size:
        raise ModelFileError(
            file.path,
            f"zip entry {_shown(name)}: local header at byte {header_offset} lies beyond the file end ({file.size} bytes)",
        )
    (sig, _ver, _flags, _method, _time, _date, _crc, _cs, _us, name_len, extra_len) = _LOCAL.unpack_from(
        file.buffer, header_offset
    )
    if sig != _LOCAL_SIG:
        raise ModelFileError(file.path, f"zip entry {_shown(name)}: no local file header at byte {header_offset}")
    name_start = header_offset + _LOCAL.size
    local_name = file.buffer[name_start : name_start + name_len]
    if local_name not in (name.encode("utf-8"), name.encode("cp437", errors="replace")):
        raise ModelFileError(
            file.path, f"zip entry {_shown(name)}: its local header names {bytes(local_name[:100])!r} (corrupt archive)"
        )
    return name_start + name_len + extra_len


def _decode_name(file: MmapFile, raw: bytes, flags: int) -> str:
    if flags & _FLAG_UTF8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFileError(file.path, f"zip entry name {bytes(raw[:100])!r} is flagged UTF-8 but is not") from None
    # Names without the UTF-8 flag are officially cp437 (torch only writes ASCII names).
    return raw.decode("cp437")


def _shown(name: str) -> str:
    """An entry name for a message (a zip name may be 65535 bytes long)."""
    return short_repr(name, 200)


def _u32(file: MmapFile, offset: int) -> int:
    return struct.unpack_from("<I", file.buffer, offset)[0]


__all__ = ["METHOD_STORED", "SMALL_ENTRY_BYTES", "ZipArchive", "ZipEntry"]
