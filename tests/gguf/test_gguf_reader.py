"""read_gguf on files built byte by byte (tests/gguf/ggufbytes.py): every value type, nested arrays,
versions 2 and 3, alignment, and tensors as zero-copy views with numpy's order of dimensions."""

from __future__ import annotations

import math
import mmap

import numpy as np
import pytest

from llamanuts.gguf import GGUFValueType, read_gguf
from llamanuts.gguf.reader import abbreviate
from llamanuts.ml.dtype import DT_BF16, DT_F16, DT_F32, DT_Q4_0, DT_Q4_1, DT_Q4_K, DT_Q6_K, DT_Q8_0

from .ggufbytes import (
    ARRAY, BF16, BOOL, F16, F32, FLOAT32, FLOAT64, INT8, INT16, INT32, INT64, Q4_0, Q4_1, Q4_K, Q6_K, Q8_0,
    STRING, UINT8, UINT16, UINT32, UINT64, KV, Array, Layout, Tensor, gguf_file, random_tensor,
)

EVERY_SCALAR = [
    KV("u8", UINT8, 255),
    KV("i8", INT8, -128),
    KV("u16", UINT16, 65535),
    KV("i16", INT16, -32768),
    KV("u32", UINT32, 2**32 - 1),
    KV("i32", INT32, -(2**31)),
    KV("u64", UINT64, 2**64 - 1),
    KV("i64", INT64, -(2**63)),
    KV("f32", FLOAT32, 0.1),
    KV("f64", FLOAT64, 0.1),
    KV("yes", BOOL, True),
    KV("no", BOOL, False),
    KV("text", STRING, "Grüße, 世界 🦙"),
    KV("empty", STRING, ""),
]



def test_every_scalar_type_reads_back_as_plain_python(write):
    gguf = read_gguf(write(gguf_file(EVERY_SCALAR)))
    m = gguf.metadata
    assert (m["u8"], m["i8"], m["u16"], m["i16"]) == (255, -128, 65535, -32768)
    assert (m["u32"], m["i32"], m["u64"], m["i64"]) == (2**32 - 1, -(2**31), 2**64 - 1, -(2**63))
    # float32 holds the nearest float32 to 0.1, not 0.1 itself (numpy is the reference)
    assert m["f32"] == float(np.float32(0.1)) and m["f64"] == 0.1
    assert m["yes"] is True and m["no"] is False
    assert m["text"] == "Grüße, 世界 🦙" and m["empty"] == ""
    for key in m:
        assert type(m[key]) in (int, float, bool, str), key


def test_value_types_are_recorded_for_each_key(write):
    gguf = read_gguf(write(gguf_file(EVERY_SCALAR + [KV("a", ARRAY, Array(STRING, ["x", "y"]))])))
    assert gguf.value_types["u32"] == "uint32" and gguf.value_types["f64"] == "float64"
    assert gguf.value_types["text"] == "string" and gguf.value_types["a"] == "array[string; 2]"
    assert [t.value for t in GGUFValueType] == list(range(13))


@pytest.mark.parametrize(
    "type_id, values, dtype",
    [
        (UINT8, [0, 7, 255], np.uint8),
        (INT8, [-128, 0, 127], np.int8),
        (UINT16, [0, 65535], np.uint16),
        (INT16, [-32768, 32767], np.int16),
        (UINT32, [0, 2**32 - 1], np.uint32),
        (INT32, [-(2**31), 5, 2**31 - 1], np.int32),
        (UINT64, [0, 2**64 - 1], np.uint64),
        (INT64, [-(2**63), 2**63 - 1], np.int64),
        (FLOAT32, [0.5, -1.25, 3.0e38], np.float32),
        (FLOAT64, [0.1, -2.5e300], np.float64),
        (BOOL, [True, False, True], np.bool_),
    ],
)
def test_numeric_arrays_are_numpy_arrays_of_the_matching_dtype(write, type_id, values, dtype):
    gguf = read_gguf(write(gguf_file([KV("a", ARRAY, Array(type_id, values))])))
    array = gguf.metadata["a"]
    assert isinstance(array, np.ndarray) and array.dtype == np.dtype(dtype) and array.ndim == 1
    np.testing.assert_array_equal(array, np.array(values, dtype=dtype))
    # a copy: it owns its memory and does not pin the file's map
    assert array.flags.owndata and array.flags.writeable


def test_string_arrays_are_lists_of_str(write):
    words = ["", "a", "Grüße", "<|im_start|>", "Ġthe"]
    gguf = read_gguf(write(gguf_file([KV("words", ARRAY, Array(STRING, words))])))
    assert gguf.metadata["words"] == words


def test_arrays_of_arrays_are_lists(write):
    nested = Array(ARRAY, [Array(INT32, [1, 2, 3]), Array(STRING, ["x"]), Array(ARRAY, [Array(BOOL, [True])]), Array(UINT8, [])])
    gguf = read_gguf(write(gguf_file([KV("nested", ARRAY, nested)])))
    value = gguf.metadata["nested"]
    assert isinstance(value, list) and len(value) == 4
    np.testing.assert_array_equal(value[0], np.array([1, 2, 3], dtype=np.int32))
    assert value[1] == ["x"]
    assert isinstance(value[2], list) and value[2][0].tolist() == [True]
    assert value[3].size == 0 and value[3].dtype == np.uint8
    assert gguf.value_types["nested"] == "array[array; 4]"


def test_empty_arrays_of_every_kind(write):
    gguf = read_gguf(write(gguf_file([KV("s", ARRAY, Array(STRING, [])), KV("f", ARRAY, Array(FLOAT32, []))])))
    assert gguf.metadata["s"] == [] and gguf.metadata["f"].shape == (0,)


@pytest.mark.parametrize("version", [2, 3])
def test_versions_2_and_3_read_the_same(write, version):
    data = gguf_file(EVERY_SCALAR, [random_tensor("w", (32, 2), F32)], version=version)
    gguf = read_gguf(write(data))
    assert gguf.version == version and gguf.metadata["text"] == "Grüße, 世界 🦙"
    assert gguf.tensors["w"].shape == (2, 32)


def test_key_order_is_kept(write):
    gguf = read_gguf(write(gguf_file(EVERY_SCALAR)))
    assert list(gguf.metadata) == [m.key for m in EVERY_SCALAR]


def test_a_file_without_tensors_has_only_metadata(write):
    gguf = read_gguf(write(gguf_file(EVERY_SCALAR)))
    assert gguf.tensor_infos == [] and gguf.tensors == {}


# ---- tensors --------------------------------------------------------------------------------------
def test_dims_are_innermost_first_and_the_shape_is_turned_around(write):
    # A [3 rows, 32 cols] row-major float32 matrix: GGUF writes dims (32, 3).
    matrix = np.arange(96, dtype=np.float32).reshape(3, 32)
    gguf = read_gguf(write(gguf_file([], [Tensor("m", (32, 3), F32, matrix.tobytes())])))
    info = gguf.tensor_infos[0]
    assert info.dims == (32, 3) and info.shape == (3, 32)
    tensor = gguf.tensors["m"]
    assert tensor.shape == (3, 32) and tensor.dtype is DT_F32 and tensor.name == "m"
    np.testing.assert_array_equal(tensor.data, matrix)  # row i, column j is the same number


def test_four_dimensional_tensor_shape(write):
    values = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    gguf = read_gguf(write(gguf_file([], [Tensor("t", (5, 4, 3, 2), F32, values.tobytes())])))
    np.testing.assert_array_equal(gguf.tensors["t"].data, values)


@pytest.mark.parametrize(
    "type_id, dtype, storage",
    [(F32, DT_F32, np.float32), (F16, DT_F16, np.float16), (BF16, DT_BF16, np.uint16)],
)
def test_float_types_map_to_our_dtypes(write, type_id, dtype, storage):
    t = random_tensor("w", (32, 4), type_id)
    tensor = read_gguf(write(gguf_file([], [t]))).tensors["w"]
    assert tensor.dtype is dtype and tensor.data.dtype == np.dtype(storage) and tensor.shape == (4, 32)
    assert tensor.data.tobytes() == t.data


@pytest.mark.parametrize(
    "type_id, dtype, cols",
    [(Q8_0, DT_Q8_0, 64), (Q4_0, DT_Q4_0, 64), (Q4_1, DT_Q4_1, 64), (Q4_K, DT_Q4_K, 512), (Q6_K, DT_Q6_K, 256)],
)
def test_quantized_types_are_rows_of_raw_blocks(write, type_id, dtype, cols):
    t = random_tensor("q", (cols, 3), type_id)
    tensor = read_gguf(write(gguf_file([], [t]))).tensors["q"]
    assert tensor.dtype is dtype and tensor.shape == (3, cols)
    # one row of blocks per row: cols / block_size blocks of block_bytes bytes (ggml.c's sizes)
    assert tensor.data.dtype == np.uint8 and tensor.data.shape == (3, cols // dtype.block_size * dtype.block_bytes)
    assert tensor.data.tobytes() == t.data


def mapped_base(array: np.ndarray) -> object:
    """What an array's memory finally belongs to (np.frombuffer wraps the buffer in a memoryview)."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


def test_tensors_are_read_only_views_of_the_mapped_file(write):
    layout = Layout()
    data = gguf_file([], [random_tensor("a", (32,), F32), random_tensor("b", (64, 2), Q8_0)], layout=layout)
    gguf = read_gguf(write(data))
    for name, tensor in gguf.tensors.items():
        array = tensor.data
        assert not array.flags.writeable and not array.flags.owndata
        assert isinstance(mapped_base(array), mmap.mmap), name  # no copy anywhere between the map and the tensor
        address = array.__array_interface__["data"][0]
        map_address = np.frombuffer(gguf.file.buffer, np.uint8, 1).__array_interface__["data"][0]
        assert address - map_address == layout.tensor_starts[name]


@pytest.mark.parametrize("alignment", [1, 8, 64, 256])
def test_custom_alignment_places_the_data(write, alignment):
    layout = Layout()
    tensors = [random_tensor("a", (3,), F32, 1), random_tensor("b", (5,), F32, 2)]
    metadata = [KV("general.alignment", UINT32, alignment)]
    data = gguf_file(metadata, tensors, alignment=alignment, layout=layout)
    gguf = read_gguf(write(data))
    assert gguf.alignment == alignment and gguf.data_offset == layout.data_offset
    assert gguf.data_offset % alignment == 0
    assert gguf.tensor_infos[1].offset == math.ceil(12 / alignment) * alignment
    for t in tensors:
        assert gguf.tensors[t.name].data.tobytes() == t.data


def test_a_float_tensor_at_an_odd_address_is_copied_into_aligned_memory(write):
    # general.alignment 1 is legal, and puts tensor b's float32 data at an odd byte
    # right after a 34-byte Q8_0 block
    tensors = [random_tensor("a", (32,), Q8_0, 1), random_tensor("b", (5,), F32, 2)]
    layout = Layout()
    data = gguf_file([KV("general.alignment", UINT32, 1)], tensors, alignment=1, layout=layout)
    gguf = read_gguf(write(data))
    b = gguf.tensors["b"]
    assert layout.tensor_starts["b"] % 4 != 0
    assert b.data.flags.aligned and not b.data.flags.writeable and b.data.tobytes() == tensors[1].data


def test_default_alignment_is_32(write):
    gguf = read_gguf(write(gguf_file([], [random_tensor("a", (3,), F32), random_tensor("b", (1,), F32)])))
    assert gguf.alignment == 32 and gguf.data_offset % 32 == 0 and gguf.tensor_infos[1].offset == 32


def test_trailing_padding_after_the_last_tensor_is_optional(write):
    data = gguf_file([], [random_tensor("a", (3,), F32)])
    assert read_gguf(write(data)).tensors["a"].shape == (3,)
    assert read_gguf(write(data + b"\0" * 20, "padded.gguf")).tensors["a"].shape == (3,)


def test_progress_is_called_once_per_tensor(write):
    calls = []
    read_gguf(write(gguf_file([], [random_tensor("a", (3,), F32), random_tensor("b", (1,), F32)])),
              progress=lambda done, total, name: calls.append((done, total, name)))
    assert calls == [(1, 2, "a"), (2, 2, "b")]


def test_abbreviate_cuts_long_values_for_the_log():
    assert abbreviate("x" * 200).endswith("... (200 characters)")
    assert abbreviate([f"t{i}" for i in range(49152)]) == "['t0', 't1', 't2', 't3', 't4', 't5', ... (49152 items)]"
    assert abbreviate(np.arange(3, dtype=np.int32)) == "[0, 1, 2]"
    assert abbreviate(7) == "7"
