"""Our zip reader: same entries as the real archive, data offsets right, and clear errors on damage."""

from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.common.mmapfile import MmapFile
from llamanuts.torch.zipfile import ZipArchive


def _archive(path: Path) -> ZipArchive:
    return ZipArchive(MmapFile(path))


def _build_zip(entries: list[tuple[str, bytes]], *, zip64_sizes: bool = False, cd_offset_delta: int = 0) -> bytes:
    """A minimal stored zip written by hand; `zip64_sizes` saturates the central sizes and adds a ZIP64 extra."""
    out = bytearray()
    central = bytearray()
    for name, data in entries:
        raw = name.encode()
        offset = len(out)
        crc = zlib.crc32(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, len(data), len(data), len(raw), 0)
        out += raw + data
        size32 = 0xFFFFFFFF if zip64_sizes else len(data)
        extra = struct.pack("<HHQQ", 1, 16, len(data), len(data)) if zip64_sizes else b""
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, size32, size32, len(raw), len(extra), 0, 0, 0, 0, offset
        )
        central += raw + extra
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), cd_offset + cd_offset_delta, 0)
    return bytes(out)


def test_entries_match_python_zipfile(fixtures):
    path = fixtures / "tiny_checkpoint.pth"
    ours = _archive(path)
    with zipfile.ZipFile(path) as reference:
        assert ours.names() == reference.namelist()
        for name in reference.namelist():
            assert ours.read(name) == reference.read(name)


def test_torch_storages_are_stored_and_64_byte_aligned(fixtures):
    archive = _archive(fixtures / "tiny_checkpoint.pth")
    storages = [e for e in archive.entries.values() if "/data/" in e.name]
    assert storages
    for entry in storages:
        assert entry.is_stored and entry.data_offset % 64 == 0


def test_zip64_end_record_written_by_torch_is_used(fixtures):
    # torch's writer always adds the ZIP64 record and locator; the counts must come out the same.
    data = (fixtures / "tiny_checkpoint.pth").read_bytes()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    assert len(_archive(fixtures / "tiny_checkpoint.pth").entries) == len(zipfile.ZipFile(fixtures / "tiny_checkpoint.pth").namelist())


def test_zip64_extra_field_sizes(tmp_path):
    path = tmp_path / "z64.zip"
    path.write_bytes(_build_zip([("a/data/0", b"0123456789")], zip64_sizes=True))
    entry = _archive(path).entry("a/data/0")
    assert (entry.compressed_size, entry.uncompressed_size) == (10, 10)
    assert _archive(path).read("a/data/0") == b"0123456789"


def test_hand_built_zip_reads(tmp_path):
    path = tmp_path / "plain.zip"
    path.write_bytes(_build_zip([("x", b"abc"), ("y", b"")]))
    archive = _archive(path)
    assert archive.read("x") == b"abc" and archive.read("y") == b""


def test_compressed_entry_is_named(fixtures):
    archive = _archive(fixtures / "compressed.pth")
    with pytest.raises(ModelFileError, match=r"'compressed/data/0' is compressed \(deflate\)"):
        archive.stored_entry("compressed/data/0")


def test_truncated_archive_is_a_clear_error(fixtures):
    with pytest.raises(ModelFileError, match="truncated.pth: not a zip archive, or a truncated one"):
        _archive(fixtures / "truncated.pth")


def test_not_a_zip_is_a_clear_error(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(b"hello" * 100)
    with pytest.raises(ModelFileError, match="no end-of-central-directory"):
        _archive(path)


def test_tiny_file_is_a_clear_error(tmp_path):
    path = tmp_path / "tiny.pth"
    path.write_bytes(b"PK")
    with pytest.raises(ModelFileError, match="too short"):
        _archive(path)


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"empty \(0 bytes\)"):
        _archive(path)


def test_central_directory_past_the_end_is_a_clear_error(tmp_path):
    path = tmp_path / "bad_cd.zip"
    path.write_bytes(_build_zip([("x", b"abc")], cd_offset_delta=1000))
    with pytest.raises(ModelFileError, match="central directory .* runs past"):
        _archive(path)


def test_entry_data_past_the_directory_is_a_clear_error(tmp_path):
    data = bytearray(_build_zip([("x", b"abc")]))
    # Make the central directory claim 1000 bytes for the entry.
    cd = data.index(b"PK\x01\x02")
    struct.pack_into("<II", data, cd + 20, 1000, 1000)
    path = tmp_path / "big_entry.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=r"entry 'x' needs bytes \[31, 1031\)"):
        _archive(path)


def test_local_header_outside_the_file_is_a_clear_error(tmp_path):
    data = bytearray(_build_zip([("x", b"abc")]))
    cd = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, cd + 42, 5000)
    path = tmp_path / "bad_local.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="local header at byte 5000 lies beyond the file end"):
        _archive(path)


def test_missing_entry_is_named(fixtures):
    with pytest.raises(ModelFileError, match="'nope' is missing"):
        _archive(fixtures / "tiny_checkpoint.pth").entry("nope")
