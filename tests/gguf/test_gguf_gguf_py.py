"""Our reader against an independent one: files written by gguf-py's GGUFWriter (llama.cpp's own
Python package), read by us and by gguf-py's GGUFReader."""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="gguf-py (pip install gguf) writes the fixture files")

from llamanuts.gguf import read_gguf  # noqa: E402
from llamanuts.ml.dtype import DT_BF16, DT_F16, DT_F32, DT_Q4_0, DT_Q4_1, DT_Q8_0  # noqa: E402

VT = gguf.GGUFValueType
QT = gguf.GGMLQuantizationType


def write_with_gguf_py(path, build, alignment: int | None = None):
    writer = gguf.GGUFWriter(str(path), arch="llama")
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    build(writer)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def every_value_type(writer) -> None:
    writer.add_uint8("t.u8", 200)
    writer.add_int8("t.i8", -100)
    writer.add_uint16("t.u16", 60000)
    writer.add_int16("t.i16", -30000)
    writer.add_uint32("t.u32", 4_000_000_000)
    writer.add_int32("t.i32", -2_000_000_000)
    writer.add_uint64("t.u64", 2**63 + 5)
    writer.add_int64("t.i64", -(2**62))
    writer.add_float32("t.f32", 1.0 / 3.0)
    writer.add_float64("t.f64", 1.0 / 3.0)
    writer.add_bool("t.bool", True)
    writer.add_string("t.str", "Grüße 🦙")
    writer.add_array("t.strings", ["a", "", "日本"])
    writer.add_array("t.ints", [1, -2, 3])  # gguf-py picks int32 for Python ints
    writer.add_array("t.floats", [0.5, 1.5])  # ... and float32 for floats
    writer.add_array("t.bools", [True, False])
    writer.add_key_value("t.u64s", [1, 2**40], VT.ARRAY, sub_type=VT.UINT64)
    writer.add_array("t.nested", [[1, 2], [3]])
    writer.add_array("t.nested_strings", [["x", "y"], ["z"]])


def _flatten(value):
    if isinstance(value, (list, np.ndarray)):
        return [x for item in value for x in _flatten(item)]
    return [value.item() if isinstance(value, np.generic) else value]


def _same(ours, reference) -> bool:
    if isinstance(ours, np.ndarray):
        return ours.tolist() == list(reference)
    if isinstance(ours, list):
        return len(ours) == len(reference) and all(_same(a, b) for a, b in zip(ours, reference))
    return ours == reference


def test_metadata_of_every_value_type_matches_gguf_py(tmp_path):
    path = write_with_gguf_py(tmp_path / "values.gguf", every_value_type)
    ours = read_gguf(path).metadata
    reference = gguf.GGUFReader(path)
    keys = [k for k in reference.fields if not k.startswith("GGUF.")]
    assert list(ours) == keys
    for key in keys:
        field = reference.fields[key]
        if len(field.types) > 1 and field.types[1] == VT.ARRAY:
            # gguf-py's reader flattens arrays of arrays; compare the leaves (the nesting is checked below)
            assert _flatten(ours[key]) == _flatten(field.contents()), key
        else:
            assert _same(ours[key], field.contents()), key
    assert ours["t.u64"] == 2**63 + 5 and ours["t.str"] == "Grüße 🦙"
    assert ours["t.ints"].dtype == np.int32 and ours["t.u64s"].dtype == np.uint64 and ours["t.bools"].dtype == np.bool_
    assert [a.tolist() for a in ours["t.nested"]] == [[1, 2], [3]] and ours["t.nested_strings"] == [["x", "y"], ["z"]]


def _tensors(writer) -> None:
    rng = np.random.default_rng(7)
    writer.add_tensor("f32", rng.standard_normal((3, 5)).astype(np.float32))
    writer.add_tensor("f16", rng.standard_normal((2, 8)).astype(np.float16))
    writer.add_tensor("vec", rng.standard_normal(7).astype(np.float32))
    bf16 = (rng.standard_normal((4, 6)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    writer.add_tensor("bf16", bf16, raw_shape=bf16.shape, raw_dtype=QT.BF16)
    for qtype in (QT.Q8_0, QT.Q4_0, QT.Q4_1):
        values = rng.standard_normal((6, 64)).astype(np.float32)
        blocks = gguf.quants.quantize(values, qtype)  # uint8 [6, 64/32 * block bytes]
        writer.add_tensor(qtype.name.lower(), blocks, raw_dtype=qtype)


@pytest.mark.parametrize("alignment", [None, 64, 8])
def test_tensors_match_gguf_py_byte_for_byte(tmp_path, alignment):
    path = write_with_gguf_py(tmp_path / "tensors.gguf", _tensors, alignment)
    ours = read_gguf(path)
    reference = gguf.GGUFReader(path)
    assert ours.alignment == (alignment or 32) == reference.alignment
    assert ours.data_offset == reference.data_offset
    assert [t.name for t in reference.tensors] == list(ours.tensors)
    for ref in reference.tensors:
        tensor = ours.tensors[ref.name]
        info = next(i for i in ours.tensor_infos if i.name == ref.name)
        # gguf-py reports dims innermost first, as the file stores them; our shape is the reverse
        assert info.dims == tuple(int(d) for d in ref.shape), ref.name
        assert tensor.shape == tuple(int(d) for d in ref.shape[::-1]), ref.name
        assert info.type.name == ref.tensor_type.name and info.offset + ours.data_offset == ref.data_offset
        assert tensor.data.tobytes() == np.asarray(ref.data).tobytes(), ref.name
    dtypes = {name: t.dtype for name, t in ours.tensors.items()}
    assert dtypes == {"f32": DT_F32, "f16": DT_F16, "vec": DT_F32, "bf16": DT_BF16,
                      "q8_0": DT_Q8_0, "q4_0": DT_Q4_0, "q4_1": DT_Q4_1}
    assert ours.tensors["q4_1"].shape == (6, 64) and ours.tensors["q4_1"].data.shape == (6, 40)


def test_version_2_file_reads_like_version_3(tmp_path):
    # gguf-py writes version 3; a little-endian version 2 file differs only in that field.
    path = write_with_gguf_py(tmp_path / "v3.gguf", lambda w: (every_value_type(w), _tensors(w)))
    data = bytearray(path.read_bytes())
    assert data[4:8] == (3).to_bytes(4, "little")
    data[4:8] = (2).to_bytes(4, "little")
    v2 = tmp_path / "v2.gguf"
    v2.write_bytes(bytes(data))
    a, b = read_gguf(path), read_gguf(v2)
    assert (a.version, b.version) == (3, 2)
    assert b.metadata["t.strings"] == a.metadata["t.strings"]
    assert all(b.tensors[n].data.tobytes() == a.tensors[n].data.tobytes() for n in a.tensors)


def test_big_endian_file_from_gguf_py_is_refused_by_name(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "be.gguf"), arch="llama", endianess=gguf.GGUFEndian.BIG)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    from llamanuts.common.errors import ModelFileError

    with pytest.raises(ModelFileError, match="big-endian"):
        read_gguf(tmp_path / "be.gguf")
