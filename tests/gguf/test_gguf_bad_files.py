"""Bad GGUF files: each is a ModelFileError that names the file and the field, raised before any
large allocation (the counts are checked against the file size first)."""

from __future__ import annotations

import struct
import tracemalloc

import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.gguf import read_gguf
from llamanuts.gguf.reader import MAX_ARRAY_NESTING

from .ggufbytes import (
    ARRAY, BF16, F32, F64, I32, INT32, Q4_1, Q5_0, Q8_0, STRING, UINT8, UINT32, UINT64, KV, Array, Layout, Tensor,
    gguf_file, kv, random_tensor, string, u32, u64,
)

SMALL_METADATA = [
    KV("general.architecture", STRING, "llama"),
    KV("general.alignment", UINT32, 32),
    KV("n", UINT64, 7),
    KV("words", ARRAY, Array(STRING, ["a", "bc"])),
    KV("ids", ARRAY, Array(INT32, [1, 2])),
    KV("nested", ARRAY, Array(ARRAY, [Array(UINT8, [1])])),
]
SMALL_TENSORS = [random_tensor("a", (3,), F32, 1), random_tensor("b", (32, 2), Q8_0, 2), random_tensor("c", (2,), BF16, 3)]


def small_file() -> bytes:
    return gguf_file(SMALL_METADATA, SMALL_TENSORS)


def fails(path, *phrases: str) -> str:
    """read_gguf(path) must raise a ModelFileError whose message names the file and every phrase."""
    with pytest.raises(ModelFileError) as info:
        read_gguf(path)
    message = str(info.value)
    assert str(path) in message and path.name in message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    return message


# ---- header ---------------------------------------------------------------------------------------
def test_bad_magic(write):
    fails(write(b"GGML" + small_file()[4:]), "not a GGUF file", "b'GGML'", "magic")


def test_a_file_shorter_than_the_magic(write):
    fails(write(b"GG"), "not a GGUF file")


def test_version_1_is_refused_with_the_reason(write):
    fails(write(gguf_file(SMALL_METADATA, version=1)), "version 1 is not supported", "supported versions are 2 and 3")


def test_version_4_is_unsupported(write):
    fails(write(gguf_file(SMALL_METADATA, version=4)), "unsupported GGUF version 4", "2, 3")


def test_big_endian_file_is_named_as_such(write):
    data = bytearray(small_file())
    data[4:8] = struct.pack(">I", 3)
    fails(write(bytes(data)), "version", "big-endian")


def test_kv_count_larger_than_the_file_can_hold(write):
    fails(write(gguf_file(SMALL_METADATA, kv_count=2**60)), "kv_count", str(2**60))


def test_tensor_count_larger_than_the_file_can_hold(write):
    fails(write(gguf_file(SMALL_METADATA, SMALL_TENSORS, tensor_count=2**40)), "tensor_count", str(2**40))


def test_every_cut_of_a_valid_file_is_an_error(write, tmp_path):
    data = small_file()
    assert read_gguf(write(data, "whole.gguf")).tensors["c"].shape == (2,)  # the whole file is valid
    path = tmp_path / "cut.gguf"
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError) as info:
            read_gguf(path)
        assert str(path) in str(info.value), cut
        if cut >= 24:  # past the header, the message says what was being read
            assert "truncated" in str(info.value) or "run past the end" in str(info.value), (cut, str(info.value))


# ---- metadata ---------------------------------------------------------------------------------------
def _raw_file(body: bytes, n_kv: int = 1) -> bytes:
    """A header for `n_kv` entries and no tensors, followed by hand-made entry bytes."""
    return b"GGUF" + u32(3) + u64(0) + u64(n_kv) + body


def test_key_length_larger_than_the_file(write):
    fails(write(_raw_file(u64(2**62) + b"x" * 40)), "key of metadata entry 0", "string length", str(2**62))


def test_string_value_length_larger_than_the_file(write):
    body = string("general.name") + u32(STRING) + u64(10**12) + b"abc" * 10
    fails(write(_raw_file(body)), "'general.name'", str(10**12), "larger than")


def test_array_length_larger_than_the_file_fails_at_once_without_allocating(write):
    # 2^60 strings claimed in a file of about 200 bytes: refused before any list or loop
    body = string("tokenizer.ggml.tokens") + u32(ARRAY) + u32(STRING) + u64(2**60) + string("a") * 10
    path = write(_raw_file(body))
    assert path.stat().st_size < 256
    tracemalloc.start()
    try:
        fails(path, "'tokenizer.ggml.tokens'", str(2**60), "array")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # measured: tens of kilobytes


@pytest.mark.parametrize("element_type", [UINT8, INT32, UINT64, ARRAY])
def test_numeric_and_nested_array_lengths_are_checked_too(write, element_type):
    body = string("big") + u32(ARRAY) + u32(element_type) + u64(2**50) + b"\0" * 64
    fails(write(_raw_file(body)), "'big'", str(2**50))


def test_one_string_of_an_array_longer_than_the_file(write):
    body = string("words") + u32(ARRAY) + u32(STRING) + u64(3) + string("ok") + u64(999) + b"x" * 20
    fails(write(_raw_file(body)), "'words'", "string 1", "999")


def test_unknown_value_type(write):
    fails(write(_raw_file(string("odd") + u32(13) + b"\0" * 16)), "'odd'", "unknown value type 13")


def test_unknown_array_element_type(write):
    fails(write(_raw_file(string("odd") + u32(ARRAY) + u32(77) + u64(1) + b"\0" * 16)), "'odd'", "unknown value type 77")


def test_invalid_utf8_in_a_string_value(write):
    body = string("general.name") + u32(STRING) + string(b"caf\xe9")
    fails(write(_raw_file(body)), "'general.name'", "not valid UTF-8")


def test_invalid_utf8_in_a_string_array_names_the_element(write):
    body = string("tokens") + u32(ARRAY) + u32(STRING) + u64(2) + string("fine") + string(b"\xff\xfe")
    fails(write(_raw_file(body)), "'tokens'", "string 1", "not valid UTF-8")


def test_invalid_utf8_in_a_key(write):
    fails(write(_raw_file(string(b"bad\x80key") + u32(UINT8) + b"\x01")), "key of metadata entry 0", "not valid UTF-8")


def test_bool_must_be_0_or_1(write):
    fails(write(_raw_file(string("flag") + u32(7) + b"\x02")), "'flag'", "bool", "0 or 1")


def test_bool_array_elements_must_be_0_or_1(write):
    body = string("flags") + u32(ARRAY) + u32(7) + u64(3) + b"\x01\x00\x05"
    fails(write(_raw_file(body)), "'flags'", "element 2", "0 or 1")


def test_duplicate_key(write):
    body = kv("general.name", STRING, "a") + kv("general.name", STRING, "b")
    fails(write(_raw_file(body, n_kv=2)), "'general.name'", "twice")


def test_empty_key(write):
    fails(write(_raw_file(string("") + u32(UINT8) + b"\x01" * 8)), "metadata entry 0", "empty key")


def test_arrays_nested_too_deep(write):
    value: object = Array(UINT8, [1])
    for _ in range(MAX_ARRAY_NESTING + 1):
        value = Array(ARRAY, [value])
    fails(write(gguf_file([KV("deep", ARRAY, value)])), "'deep'", f"nested more than {MAX_ARRAY_NESTING}")


@pytest.mark.parametrize("alignment", [0, 3, 48])
def test_alignment_must_be_a_power_of_two(write, alignment):
    fails(write(gguf_file([KV("general.alignment", UINT32, alignment)])), "general.alignment", "power of two")


def test_alignment_must_be_a_uint32(write):
    fails(write(gguf_file([KV("general.alignment", UINT64, 32)])), "general.alignment", "uint32", "uint64")


# ---- tensor infos ---------------------------------------------------------------------------------------
def test_unknown_ggml_type(write):
    fails(write(gguf_file([], [Tensor("w", (4,), 99, b"\0" * 16)])), "'w'", "unknown ggml type id 99")


@pytest.mark.parametrize("type_id, name", [(Q5_0, "Q5_0"), (F64, "F64"), (I32, "I32")])
def test_known_but_unsupported_type_names_it_and_the_supported_ones(write, type_id, name):
    data = gguf_file([], [Tensor("w", (32,), type_id, b"\0" * 256)])
    fails(write(data), "'w'", f"ggml type {name}", "not supported", "supported: F32, F16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, BF16")


@pytest.mark.parametrize("n_dims", [0, 5])
def test_n_dims_outside_1_to_4(write, n_dims):
    info = string("w") + u32(n_dims) + u64(2) * n_dims + u32(F32) + u64(0)
    data = b"GGUF" + u32(3) + u64(1) + u64(0) + info + b"\0" * 64
    fails(write(data), "'w'", f"n_dims = {n_dims}")


def test_a_zero_dimension(write):
    fails(write(gguf_file([], [Tensor("w", (4, 0), F32, b"")])), "'w'", "dims[1] = 0")


def test_tensor_name_longer_than_the_file(write):
    data = b"GGUF" + u32(3) + u64(1) + u64(0) + u64(10**9) + b"w" * 40
    fails(write(data), "name of tensor info 0", str(10**9))


def test_duplicate_tensor_name(write):
    fails(write(gguf_file([], [random_tensor("w", (4,), F32), random_tensor("w", (4,), F32)])), "'w'", "twice")


def test_quantized_innermost_dim_not_a_multiple_of_the_block(write):
    # 48 values per row of Q4_1: one and a half blocks
    data = gguf_file([], [Tensor("q", (48, 2), Q4_1, b"\0" * 60)])
    fails(write(data), "'q'", "Q4_1", "blocks of 32", "dims[0] = 48")


# ---- the data section -------------------------------------------------------------------------------------
def test_misaligned_offset(write):
    tensors = [random_tensor("a", (3,), F32), random_tensor("b", (3,), F32)]
    tensors[1].offset = 16  # not a multiple of 32
    fails(write(gguf_file([], tensors)), "'b'", "offset 16", "general.alignment 32")


def test_overlapping_tensors(write):
    tensors = [random_tensor("a", (16,), F32), random_tensor("b", (8,), F32)]
    tensors[1].offset = 32  # a occupies [0, 64)
    fails(write(gguf_file([], tensors)), "'b'", "offset 32", "overlaps", "'a'", "[0, 64)")


def test_a_shape_that_does_not_match_its_bytes(write):
    # a's dims say 4 floats (16 bytes, padded to 32), but b starts after 96 bytes: a's data is 24 floats
    tensors = [Tensor("a", (4,), F32, b"\0" * 96), random_tensor("b", (8,), F32)]
    tensors[1].offset = 96
    fails(write(gguf_file([], tensors)), "'b'", "offset 96", "should start at 32", "shape and type of 'a' do not match")


def test_first_tensor_must_start_the_data_section(write):
    tensors = [random_tensor("a", (8,), F32)]
    tensors[0].offset = 64
    fails(write(gguf_file([], tensors)), "'a'", "offset 64", "offset 0")


def test_tensor_data_past_the_end_of_the_file(write):
    data = gguf_file([], [random_tensor("a", (8,), F32), random_tensor("b", (64,), F32)])
    fails(write(data[:-4]), "'b'", "past the end of the file")


def test_a_shape_larger_than_the_file(write):
    data = gguf_file([], [Tensor("huge", (2**31, 2**31), F32, b"\0" * 64)])
    fails(write(data), "'huge'", "past the end of the file")


def test_data_section_beyond_the_file(write):
    layout = Layout()
    data = gguf_file([], [random_tensor("a", (8,), F32)], layout=layout)
    fails(write(data[: layout.data_offset - 1]), "data section starts at byte", "general.alignment 32")


