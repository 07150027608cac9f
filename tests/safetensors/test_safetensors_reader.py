"""SafetensorsFile: the format as its specification describes it, read from hand-built bytes.

Every malformed file is refused with a ModelFileError whose message names the file and the fault,
before anything is allocated from the file's own numbers.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np
import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.ml import DT_BF16, DT_F32
from llamanuts.ml.dtype import DT_F16
from llamanuts.safetensors import SafetensorsFile, load_safetensors
from llamanuts.safetensors.reader import MAX_HEADER_BYTES

from .writer import bf16_bits, encode, tensors_bytes, write


def _file(tmp_path: Path, data: bytes, name: str = "model.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(path: Path, *phrases: str) -> str:
    with pytest.raises(ModelFileError) as info:
        SafetensorsFile(path)
    message = str(info.value)
    assert str(path) in message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    return message


def _one_tensor_file(tmp_path: Path, entry: dict, data: bytes, **options) -> Path:
    return _file(tmp_path, encode({"w": entry}, data, **options))


# ---- what a good file gives ---------------------------------------------------------------------
def test_f32_f16_and_bf16_tensors_come_back_with_their_values_shapes_and_dtypes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    f32 = rng.standard_normal((3, 5)).astype(np.float32)
    f16 = rng.standard_normal((4,)).astype(np.float16)
    bf16_values = np.array([1.0, -2.5, 0.15625, 2.0**100], dtype=np.float32)  # all exact in bf16
    path = write(tmp_path / "m.safetensors", {"a": f32, "b": f16, "c": ("BF16", bf16_bits(bf16_values))})
    tensors = load_safetensors(path)
    assert list(tensors) == ["a", "b", "c"]
    assert tensors["a"].dtype is DT_F32 and tensors["a"].shape == (3, 5)
    np.testing.assert_array_equal(tensors["a"].data, f32)
    assert tensors["b"].dtype is DT_F16 and tensors["b"].data.dtype == np.float16
    np.testing.assert_array_equal(tensors["b"].data, f16)
    assert tensors["c"].dtype is DT_BF16 and tensors["c"].shape == (4,)
    np.testing.assert_array_equal(tensors["c"].numpy(), bf16_values)


def test_metadata_is_kept_as_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "m.safetensors", {"a": np.zeros(2, np.float32)}, metadata={"format": "pt", "note": "x"})
    with SafetensorsFile(path) as file:
        assert file.metadata == {"format": "pt", "note": "x"}
        assert file.names() == ["a"]


def test_tensors_are_read_only_views_over_the_mapped_file(tmp_path: Path) -> None:
    path = write(tmp_path / "m.safetensors", {"a": np.arange(12, dtype=np.float32).reshape(3, 4)})
    tensor = load_safetensors(path)["a"]
    assert not tensor.data.flags.writeable
    base = tensor.data
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    assert isinstance(base, mmap.mmap)


def test_empty_and_scalar_tensors_are_valid(tmp_path: Path) -> None:
    path = write(tmp_path / "m.safetensors", {"empty": np.zeros((0, 4), np.float32), "scalar": np.float32(7.0).reshape(())})
    tensors = load_safetensors(path)
    assert tensors["empty"].shape == (0, 4)
    assert tensors["scalar"].shape == () and tensors["scalar"].item() == 7.0


def test_a_file_written_by_the_safetensors_package_reads_the_same(tmp_path: Path) -> None:
    numpy_io = pytest.importorskip("safetensors.numpy", reason="the safetensors package is not installed")
    rng = np.random.default_rng(1)
    arrays = {"x.weight": rng.standard_normal((6, 3)).astype(np.float32), "y": rng.standard_normal(5).astype(np.float16)}
    path = tmp_path / "reference.safetensors"
    numpy_io.save_file(arrays, str(path), metadata={"format": "np"})
    tensors = load_safetensors(path)
    for name, expected in arrays.items():
        np.testing.assert_array_equal(tensors[name].data, expected)
    assert SafetensorsFile(path).metadata == {"format": "np"}


def test_progress_is_called_once_per_tensor(tmp_path: Path) -> None:
    path = write(tmp_path / "m.safetensors", {"a": np.zeros(2, np.float32), "b": np.zeros(3, np.float32)})
    calls: list[tuple[int, int, str]] = []
    load_safetensors(path, lambda done, total, name: calls.append((done, total, name)))
    assert calls == [(1, 2, "a"), (2, 2, "b")]


# ---- the header length --------------------------------------------------------------------------
def test_a_file_shorter_than_the_header_length_field(tmp_path: Path) -> None:
    _refused(_file(tmp_path, b"\x10\x00\x00"), "only 3 bytes")


def test_header_length_larger_than_the_file(tmp_path: Path) -> None:
    _refused(_file(tmp_path, struct.pack("<Q", 1000) + b"{}"), "header length says 1,000 bytes", "only 10 bytes")


def test_header_length_of_2_to_the_63_is_refused_without_reading(tmp_path: Path) -> None:
    _refused(_file(tmp_path, struct.pack("<Q", 2**63) + b'{"a": 1}'), "9,223,372,036,854,775,808 bytes")


def test_a_header_above_the_100_mb_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # A sparse file: 120 MB long, header length 110 MB. Nothing of it is read, so it costs no memory.
    path = tmp_path / "huge_header.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 110_000_000) + b"{")
        f.truncate(120_000_000)
    _refused(path, "110,000,000 bytes", f"{MAX_HEADER_BYTES:,}-byte limit")


# ---- the JSON header ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, phrase",
    [
        (b'{"a": {"dtype": "F32", ', "not valid JSON"),
        (b'[{"dtype": "F32"}]', "must start with '{'"),
        (b"\xff\xfe{}", "must start with '{'"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
         "key 'w' appears twice"),
    ],
    ids=["truncated", "array", "binary", "not-utf8", "duplicate-name"],
)
def test_a_header_that_is_not_a_json_object(tmp_path: Path, header: bytes, phrase: str) -> None:
    _refused(_file(tmp_path, encode({}, b"\0" * 4, raw_header=header)), phrase)


def test_a_header_nested_too_deeply(tmp_path: Path) -> None:
    header = b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    _refused(_file(tmp_path, encode({}, b"", raw_header=header)), "nested too deeply")


def test_metadata_must_map_strings_to_strings(tmp_path: Path) -> None:
    _refused(_file(tmp_path, encode({"__metadata__": {"n": 3}}, b"")), "'__metadata__' must map strings to strings")


# ---- each entry ---------------------------------------------------------------------------------
def test_an_entry_that_is_not_an_object(tmp_path: Path) -> None:
    _refused(_file(tmp_path, encode({"w": [1, 2]}, b"")), "tensor 'w'", "expected an object")


def test_an_entry_with_missing_or_unknown_keys(tmp_path: Path) -> None:
    _refused(_one_tensor_file(tmp_path, {"dtype": "F32", "shape": [1], "offsets": [0, 4]}, b"\0" * 4),
             "missing ['data_offsets']", "unexpected ['offsets']")


@pytest.mark.parametrize("dtype", ["I8", "F64", "I64", "BOOL", "F8_E4M3"])
def test_a_dtype_we_do_not_compute_with_is_named_with_its_tensor(tmp_path: Path, dtype: str) -> None:
    _refused(_one_tensor_file(tmp_path, {"dtype": dtype, "shape": [8], "data_offsets": [0, 64]}, b"\0" * 64),
             f"tensor 'w' has dtype '{dtype}', which is not supported", "supported: F32, F16, BF16")


def test_a_dtype_the_format_does_not_define(tmp_path: Path) -> None:
    _refused(_one_tensor_file(tmp_path, {"dtype": "Q4_0", "shape": [8], "data_offsets": [0, 8]}, b"\0" * 8),
             "'Q4_0', which is not a safetensors dtype")


@pytest.mark.parametrize("dtype", [["F32"], {"F32": 1}, 5, None])
def test_a_dtype_that_is_not_a_string(tmp_path: Path, dtype: object) -> None:
    # found by the fuzz suite: a list or dict dtype was looked up in a dict (TypeError: unhashable)
    _refused(_one_tensor_file(tmp_path, {"dtype": dtype, "shape": [1], "data_offsets": [0, 4]}, b"\0" * 4),
             "tensor 'w': dtype must be a string such as 'BF16'")


@pytest.mark.parametrize("shape", [[-1, 4], [2.0, 2], [True, 4], "4", [[4]]])
def test_a_shape_that_is_not_a_list_of_non_negative_integers(tmp_path: Path, shape: object) -> None:
    _refused(_one_tensor_file(tmp_path, {"dtype": "F32", "shape": shape, "data_offsets": [0, 16]}, b"\0" * 16),
             "tensor 'w': shape must be a list of non-negative integers")


@pytest.mark.parametrize("offsets", [[0], [0, 16, 32], [-4, 12], [0, "16"], [0, 16.0]])
def test_data_offsets_that_are_not_two_non_negative_integers(tmp_path: Path, offsets: object) -> None:
    _refused(_one_tensor_file(tmp_path, {"dtype": "F32", "shape": [4], "data_offsets": offsets}, b"\0" * 16),
             "data_offsets must be [begin, end]")


def test_data_offsets_past_the_end_of_the_data_section(tmp_path: Path) -> None:
    _refused(_one_tensor_file(tmp_path, {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}, b"\0" * 16),
             "data_offsets [8, 24] lie outside the data section of 16 bytes")


def test_data_offsets_that_end_before_they_begin(tmp_path: Path) -> None:
    _refused(_one_tensor_file(tmp_path, {"dtype": "F32", "shape": [0], "data_offsets": [16, 8]}, b"\0" * 16),
             "data_offsets [16, 8]", "end before they begin")


def test_shape_times_element_size_must_equal_the_byte_range(tmp_path: Path) -> None:
    _refused(_one_tensor_file(tmp_path, {"dtype": "BF16", "shape": [3, 4], "data_offsets": [0, 16]}, b"\0" * 24),
             "shape [3 4] of BF16 needs 24 bytes, but data_offsets [0, 16] hold 16")


def test_an_enormous_shape_is_refused_in_bounded_time(tmp_path: Path) -> None:
    # 2^62 x 2^62 elements, and a million dimensions of 2: both stop at the data section's size.
    _refused(_one_tensor_file(tmp_path, {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 16]}, b"\0" * 16),
             "needs more than the 16 of the data section")
    _refused(_one_tensor_file(tmp_path, {"dtype": "F32", "shape": [2] * 1_000_000, "data_offsets": [0, 16]}, b"\0" * 16),
             "shape has 1,000,000 dimensions; at most 8")


def test_an_empty_tensor_with_too_many_dimensions_is_refused(tmp_path: Path) -> None:
    # zero elements in zero bytes is consistent, but numpy cannot even make such an array
    _refused(_one_tensor_file(tmp_path, {"dtype": "F32", "shape": [0] * 100, "data_offsets": [0, 0]}, b""),
             "shape has 100 dimensions")


def test_overlapping_tensors(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
    }
    _refused(_file(tmp_path, encode(header, b"\0" * 24)), "tensors 'a' [0, 16) and 'b' [8, 24) overlap")


def test_an_empty_tensor_next_to_another_is_not_an_overlap(tmp_path: Path) -> None:
    header = {
        "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
        "e": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]},
    }
    assert set(load_safetensors(_file(tmp_path, encode(header, b"\0" * 24)))) == {"a", "e", "b"}


def test_data_not_aligned_to_its_element_size_is_refused(tmp_path: Path) -> None:
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * ((-(8 + len(header))) % 8 + 1)  # one byte past an 8-byte boundary
    _refused(_file(tmp_path, struct.pack("<Q", len(header)) + header + b"\0" * 8),
             "not a multiple of its 4-byte elements")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    _refused(tmp_path / "absent.safetensors", "file not found")


def test_tensors_bytes_helper_pads_the_header_to_eight_bytes() -> None:
    raw = tensors_bytes({"a": np.zeros(3, np.float32)})
    (length,) = struct.unpack("<Q", raw[:8])
    assert (8 + length) % 8 == 0 and raw[8:9] == b"{"


def test_a_megabyte_tensor_name_and_dtype_are_quoted_short(tmp_path: Path) -> None:
    # the message quotes the header through short_repr: its length is bounded, whatever the header holds
    name, dtype = "n" * (1 << 20), "D" * (1 << 20)
    path = _file(tmp_path, encode({name: {"dtype": dtype, "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4))
    message = _refused(path, "tensor 'nnnn", "has dtype 'DDDD", "which is not a safetensors dtype")
    assert len(message) < 1000
