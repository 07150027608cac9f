"""The pickle VM: runs torch.save's pickles, refuses everything else, and never executes the file."""

from __future__ import annotations

import builtins
import os
import pickle
import struct
import zipfile
from pathlib import Path

import pytest

from llamanuts.common.errors import ModelFileError, UnsafeModelError
from llamanuts.pickle import TensorRecord, unpickle
from llamanuts.torch import load_torch_checkpoint

MARKER = "llamanuts_malicious_marker"


def _data_pkl(path: Path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/data.pkl"))
        return archive.read(name)


def _text(value: str) -> bytes:
    raw = value.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


@pytest.fixture
def recorded_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, object]]:
    """os.system and builtins.exec replaced by recorders; the working directory is a fresh tmp dir."""
    calls: list[tuple[str, object]] = []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "system", lambda command: calls.append(("os.system", command)) or 0)
    monkeypatch.setattr(builtins, "exec", lambda code, *a: calls.append(("builtins.exec", code)))
    return calls


@pytest.mark.parametrize("name", ["malicious_os_system.pth", "malicious_exec.pth", "malicious_inst.pth"])
def test_malicious_checkpoint_is_refused_and_nothing_runs(fixtures, recorded_calls, tmp_path, name):
    with pytest.raises(UnsafeModelError) as error:
        load_torch_checkpoint(fixtures / name)
    assert name in str(error.value)
    assert recorded_calls == []
    assert not (tmp_path / MARKER).exists()


@pytest.mark.parametrize("name", ["malicious_os_system.pth", "malicious_exec.pth"])
def test_malicious_fixture_really_would_run_code_under_python_pickle(fixtures, recorded_calls, name):
    # Proves the fixture is a real attack: Python's pickle calls the (recorded) function.
    pickle.loads(_data_pkl(fixtures / name))
    assert len(recorded_calls) == 1
    assert MARKER in str(recorded_calls[0][1])


def test_os_system_error_names_the_global(fixtures, recorded_calls):
    with pytest.raises(UnsafeModelError, match=r"global os\.system .*not on the allow-list"):
        load_torch_checkpoint(fixtures / "malicious_os_system.pth")


def test_stack_global_exec_error_names_the_global(fixtures, recorded_calls):
    with pytest.raises(UnsafeModelError, match=r"global builtins\.exec"):
        load_torch_checkpoint(fixtures / "malicious_exec.pth")


def test_inst_opcode_is_refused_by_name_and_byte(fixtures, recorded_calls):
    with pytest.raises(UnsafeModelError, match=r"opcode INST \(0x69\) is not allowed \(at byte 47\)"):
        load_torch_checkpoint(fixtures / "malicious_inst.pth")


def test_unknown_global_in_a_real_torch_file_is_refused(fixtures):
    with pytest.raises(UnsafeModelError, match=r"argparse\.Namespace"):
        load_torch_checkpoint(fixtures / "unknown_global.pth")


def test_protocol_2_torch_pickle_runs(fixtures):
    result = unpickle(_data_pkl(fixtures / "tiny_checkpoint.pth"), "x", persistent_load=lambda pid: pid)
    assert list(result) == ["bf16.matrix", "f16.vector", "f32.matrix", "bf16.rows_2_to_4", "f32.parameter", "f32.scalar"]
    record = result["bf16.rows_2_to_4"]
    assert isinstance(record, TensorRecord)
    assert (record.storage_offset, record.size, record.stride) == (16, (2, 8), (8, 1))
    assert record.storage[0] == "storage" and record.storage[1].dtype == "bfloat16" and record.storage[4] == 48


def test_protocol_4_torch_pickle_runs(fixtures):
    # FRAME, SHORT_BINUNICODE, MEMOIZE and STACK_GLOBAL only appear with protocol >= 4.
    v2 = unpickle(_data_pkl(fixtures / "tiny_checkpoint.pth"), "x", persistent_load=lambda pid: pid[2])
    v4 = unpickle(_data_pkl(fixtures / "tiny_checkpoint_proto4.pth"), "x", persistent_load=lambda pid: pid[2])
    assert v2 == v4


def test_unknown_opcode_byte_is_refused():
    with pytest.raises(UnsafeModelError, match=r"opcode unknown \(0x00\) is not allowed \(at byte 2\)"):
        unpickle(b"\x80\x02\x00.", "f.pth")


def test_reduce_on_a_non_callable_is_refused():
    # A string on the stack where a function should be: never called, refused as unsafe.
    with pytest.raises(UnsafeModelError, match=r"REDUCE .*would call a str"):
        unpickle(b"\x80\x02" + _text("os.system") + b")R.", "f.pth")


def test_scalars_and_containers():
    data = (
        b"\x80\x02]q\x00(K\x07M\x00\x01J\xfe\xff\xff\xff\x8a\x05\x00\x00\x00\x00\x01"
        + b"G" + struct.pack(">d", 1.5)
        + b"\x88\x89Ne"
        + b"K\x09a"
        + b"."
    )
    assert unpickle(data, "f") == [7, 256, -2, 1 << 32, 1.5, True, False, None, 9]


def test_memo_get_and_put():
    data = b"\x80\x02" + _text("a") + b"q\x05" + b"h\x05" + b"r\x01\x00\x00\x00" + b"j\x01\x00\x00\x00" + b"\x87."
    assert unpickle(data, "f") == ("a", "a", "a")


def test_dict_items():
    data = b"\x80\x02}(" + _text("a") + b"K\x01" + _text("b") + b"K\x02u" + _text("c") + b"K\x03s."
    assert unpickle(data, "f") == {"a": 1, "b": 2, "c": 3}


def test_truncated_argument_is_a_clear_error():
    with pytest.raises(ModelFileError, match=r"BINUNICODE at byte 2: needs 100 argument bytes.*truncated"):
        unpickle(b"\x80\x02X\x64\x00\x00\x00abc", "f.pth")


def test_missing_stop_is_a_clear_error():
    with pytest.raises(ModelFileError, match="without a STOP"):
        unpickle(b"\x80\x02K\x01", "f.pth")


def test_missing_memo_entry_is_a_clear_error():
    with pytest.raises(ModelFileError, match="memo index 3 was never stored"):
        unpickle(b"\x80\x02h\x03.", "f.pth")


def test_stack_underflow_is_a_clear_error():
    with pytest.raises(ModelFileError, match="empty stack"):
        unpickle(b"\x80\x02\x86.", "f.pth")


def test_newer_protocol_is_refused():
    with pytest.raises(ModelFileError, match="protocol 6"):
        unpickle(b"\x80\x06N.", "f.pth")


def test_rebuild_tensor_with_bad_arguments_is_a_clear_error():
    data = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(NK\x00" + _text("x") + b")\x89}t" + b"R."
    with pytest.raises(ModelFileError, match=r"_rebuild_tensor_v2: size must be a tuple of ints"):
        unpickle(data, "f.pth")


def test_persistent_id_without_resolver_is_a_clear_error():
    with pytest.raises(ModelFileError, match="persistent id"):
        unpickle(b"\x80\x02NQ.", "f.pth")


def test_build_on_an_ordered_dict_sets_attributes_not_items():
    # model.state_dict() is an OrderedDict with a `_metadata` attribute, pickled as BUILD with a
    # dict state. Python's own pickle (the reference) sets it as an attribute and leaves the items.
    data = (
        b"\x80\x02ccollections\nOrderedDict\n)R(" + _text("w") + b"K\x01u"
        + b"}" + _text("_metadata") + b"}s" + b"b."
    )
    reference = pickle.loads(data)
    assert hasattr(reference, "_metadata") and dict(reference) == {"w": 1}
    assert unpickle(data, "f") == dict(reference)


def test_build_with_empty_state_on_a_tensor_is_ignored():
    tensor = (
        b"ctorch._utils\n_rebuild_tensor_v2\n(NK\x00(K\x02t(K\x01t\x89}t" + b"R"
    )
    result = unpickle(b"\x80\x02" + tensor + b"}b.", "f")
    assert isinstance(result, TensorRecord) and result.size == (2,)


def test_build_with_other_state_is_a_clear_error():
    with pytest.raises(ModelFileError, match="BUILD with state int on a list is not supported"):
        unpickle(b"\x80\x02]K\x01b.", "f.pth")
