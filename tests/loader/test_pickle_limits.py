"""The pickle VM bounds the work and memory a file can cost (issue 13, items 1-3 and 10).

Each hostile pickle is issue 13's: tiny, grammatical, and before the limits it hung the process in
C code (Ctrl-C could not stop it), crashed it, or ate memory without end. The child-process tests
run it under a wall clock and a 1 GiB address-space cap, so the old behaviour shows as a failed
test, not a hung suite.
"""

from __future__ import annotations

import pytest

from llamanuts.common.errors import ModelFileError, UnsafeModelError
from llamanuts.pickle import TensorRecord, unpickle
from llamanuts.pickle.limits import Limits
from llamanuts.torch import load_torch_checkpoint
from tools import forge

# The child prints the error's class and message; anything else (a traceback, a timeout, a signal)
# fails the test.
_LOAD_CHECKPOINT = """
from llamanuts.common.errors import LlamaError
from llamanuts.torch import load_torch_checkpoint
try:
    load_torch_checkpoint({path!r})
except LlamaError as exc:
    print(type(exc).__name__, exc)
"""
_UNPICKLE = """
from llamanuts.common.errors import LlamaError
from llamanuts.pickle import unpickle
data = open({path!r}, "rb").read()
try:
    unpickle(data, "hostile.pkl")
except LlamaError as exc:
    print(type(exc).__name__, exc)
"""


def _clean_error(run, expected: str) -> str:
    assert run.returncode is not None, f"still running at the timeout: {run.stderr[-500:]}"
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-800:]}"
    assert "Traceback" not in run.stderr
    assert expected in run.stdout, run.stdout[:500]
    assert len(run.stdout) < 1000, "the message itself must be short"
    return run.stdout


# ---- item 1: a tuple graph with shared children as a dict key -------------------------------------
def test_shared_tuple_graph_key_is_refused_without_hashing_it(tmp_path, bounded):
    path = tmp_path / "graph.pkl"
    path.write_bytes(forge.shared_tuple_graph_key(60))
    run = bounded(_UNPICKLE.format(path=str(path)), timeout=60)
    _clean_error(run, "is not a small flat value")


# ---- item 2: a key nested 150,000 tuples deep -----------------------------------------------------
def test_key_nested_150000_deep_is_refused_not_a_crash(tmp_path, bounded):
    path = tmp_path / "deep.pkl"
    path.write_bytes(forge.deep_tuple_key(150_000))
    assert 140_000 < path.stat().st_size < 160_000  # issue 13's 150 KB file
    run = bounded(_UNPICKLE.format(path=str(path)), timeout=60)
    _clean_error(run, "nested more than 64 levels deep")


# ---- item 3: untrusted values in error messages ---------------------------------------------------
def test_doubling_list_persistent_id_gives_a_short_message(tmp_path, bounded):
    path = forge.write_checkpoint(tmp_path / "pid.pth", forge.PROTO2 + forge.doubling_list(40) + b"Q.")
    run = bounded(_LOAD_CHECKPOINT.format(path=str(path)), timeout=60)
    _clean_error(run, "persistent id [[[")


def test_reduce_on_a_doubling_list_gives_a_short_message(tmp_path, bounded):
    path = forge.write_checkpoint(tmp_path / "reduce.pth", forge.PROTO2 + forge.doubling_list(40) + b")R.")
    run = bounded(_LOAD_CHECKPOINT.format(path=str(path)), timeout=60)
    _clean_error(run, "UnsafeModelError")


def test_doubling_list_as_storage_key_gives_a_short_message(tmp_path, bounded):
    levels = forge.doubling_list(40)
    pickle_bytes = forge.PROTO2 + levels + forge.float_storage_pid(forge.get(40), 4) + b"."
    path = forge.write_checkpoint(tmp_path / "key.pth", pickle_bytes)
    run = bounded(_LOAD_CHECKPOINT.format(path=str(path)), timeout=60)
    _clean_error(run, "has a bad key or element count")


def test_deeply_nested_list_is_refused_by_depth_not_a_recursion_error(tmp_path, bounded):
    path = forge.write_checkpoint(tmp_path / "deep.pth", forge.PROTO2 + forge.deep_list(100_000) + b"Q.")
    run = bounded(_LOAD_CHECKPOINT.format(path=str(path)), timeout=60)
    _clean_error(run, "nested more than 64 levels deep")


# ---- item 10: a tensor of more dimensions than numpy has ------------------------------------------
def test_tensor_with_65_dimensions_is_a_clear_error(tmp_path):
    tensor = forge.rebuild_tensor(forge.float_storage_pid(forge.text("0"), 1), 0, (1,) * 65, (1,) * 65)
    path = forge.write_checkpoint(tmp_path / "dims.pth", forge.state_dict([("w", tensor)]), {"0": b"\0" * 4})
    with pytest.raises(ModelFileError, match="size has 65 dimensions, more than the 32 a tensor may have"):
        load_torch_checkpoint(path)


def test_tensor_with_32_dimensions_loads(tmp_path):
    tensor = forge.rebuild_tensor(forge.float_storage_pid(forge.text("0"), 1), 0, (1,) * 32, (1,) * 32)
    path = forge.write_checkpoint(tmp_path / "dims.pth", forge.state_dict([("w", tensor)]), {"0": b"\0" * 4})
    assert load_torch_checkpoint(path)["w"].shape == (1,) * 32


def test_tensor_size_beyond_int64_is_a_clear_error(tmp_path):
    dims = (1 << 200, 1 << 200)
    tensor = forge.rebuild_tensor(forge.float_storage_pid(forge.text("0"), 1), 0, dims, (1, 1))
    path = forge.write_checkpoint(tmp_path / "big.pth", forge.state_dict([("w", tensor)]), {"0": b"\0" * 4})
    with pytest.raises(ModelFileError, match="size must be a tuple of 64-bit ints, got \\(<int of 201 bits>"):
        load_torch_checkpoint(path)


# ---- each limit, in process, with the limit made small ----------------------------------------------
def test_depth_limit():
    data = forge.PROTO2 + b"K\x00" + b"\x85" * 5 + forge.STOP
    assert unpickle(data, "f", limits=Limits(max_depth=5)) == (((((0,),),),),)
    with pytest.raises(ModelFileError, match="TUPLE1 at byte 8: values are nested more than 4 levels deep"):
        unpickle(data, "f", limits=Limits(max_depth=4))


def test_object_limit():
    data = forge.PROTO2 + b"]" + b"(" + b"N" * 10 + b"e" + forge.STOP
    assert unpickle(data, "f", limits=Limits(max_objects=12)) == [None] * 10
    with pytest.raises(ModelFileError, match="more than 11 values"):
        unpickle(data, "f", limits=Limits(max_objects=11))


def test_memo_limit():
    data = forge.PROTO2 + b"N" + b"".join(forge.put(i) for i in range(5)) + forge.STOP
    assert unpickle(data, "f", limits=Limits(max_memo=5)) is None
    with pytest.raises(ModelFileError, match="memo grows beyond 4 entries"):
        unpickle(data, "f", limits=Limits(max_memo=4))


def test_container_limit():
    data = forge.PROTO2 + b"(" + b"N" * 10 + b"t" + forge.STOP
    assert unpickle(data, "f", limits=Limits(max_container_items=10)) == (None,) * 10
    with pytest.raises(ModelFileError, match="a tuple of 10 items is larger than the limit of 9"):
        unpickle(data, "f", limits=Limits(max_container_items=9))


def test_string_limit():
    data = forge.PROTO2 + forge.text("x" * 100) + forge.STOP
    assert unpickle(data, "f", limits=Limits(max_string_bytes=100)) == "x" * 100
    with pytest.raises(ModelFileError, match="a string of 100 bytes is longer than the limit of 99"):
        unpickle(data, "f", limits=Limits(max_string_bytes=99))


def test_pickle_size_limit():
    with pytest.raises(ModelFileError, match="the pickle is 4 bytes, more than the limit of 3"):
        unpickle(forge.PROTO2 + b"N.", "f", limits=Limits(max_pickle_bytes=3))


@pytest.mark.parametrize(
    "key, shown",
    [
        (b"K\x00\x85", "(0,) (tuple)"),
        (b"G" + b"\x3f\xf8" + b"\0" * 6, "1.5 (float)"),
        (forge.int_(1 << 31), "2147483648 (int)"),
        (forge.int_(-(1 << 40)), "-1099511627776 (int)"),
    ],
)
def test_keys_that_are_not_small_flat_values_are_not_hashed(key, shown):
    # Large ints collide at will under Python's hash (value mod 2^61-1), and tuples and floats are
    # built from such hashes: a dict of chosen keys costs quadratic time.
    with pytest.raises(ModelFileError, match=rf"dict key {shown.replace('(', '[(]').replace(')', '[)]')} is not a small flat value"):
        unpickle(forge.PROTO2 + b"}" + key + b"Ns" + forge.STOP, "f")


def test_small_flat_keys_are_accepted():
    data = forge.PROTO2 + b"}(" + forge.text("a") + b"N" + forge.int_(-(1 << 31) + 1) + b"N" + b"\x88N" + b"NN" + b"u."
    assert unpickle(data, "f") == {"a": None, -(1 << 31) + 1: None, True: None, None: None}


def test_a_list_cannot_be_filled_once_it_is_inside_another_value():
    # l = []; t = (l,); then append to l: torch.save never does it, and it is how a depth computed
    # when nesting would stop being true (and how cycles are made).
    data = forge.PROTO2 + b"]" + forge.put(0) + b"\x85" + forge.get(0) + b"Na" + forge.STOP
    with pytest.raises(ModelFileError, match="appends to a list that is already inside another value"):
        unpickle(data, "f")


def test_a_list_cannot_contain_itself():
    data = forge.PROTO2 + b"]" + forge.put(0) + forge.get(0) + b"a" + forge.STOP
    with pytest.raises(ModelFileError, match="puts a list inside itself"):
        unpickle(data, "f")


def test_global_name_in_a_message_is_bounded():
    data = forge.PROTO2 + forge.global_("os" * 100_000, "system") + forge.STOP
    with pytest.raises(UnsafeModelError) as error:
        unpickle(data, "f")
    assert len(str(error.value)) < 300


def test_real_torch_pickles_stay_well_inside_the_limits(fixtures):
    # Meta-layout model, protocol 2 and 4: the defaults cost nothing on real files.
    tensors = load_torch_checkpoint(fixtures / "tiny_meta" / "consolidated.00.pth")
    assert len(tensors) == 2 * 9 + 3 + 1  # layers, embedding/norm/output, rope.freqs
    for name in ("tiny_checkpoint.pth", "tiny_checkpoint_proto4.pth"):
        assert isinstance(load_torch_checkpoint(fixtures / name)["f32.parameter"], object)
    record = unpickle(forge.PROTO2 + forge.rebuild_tensor(b"N", 0, (2,), (1,)) + forge.STOP, "f")
    assert isinstance(record, TensorRecord) and record.size == (2,)


def test_empty_tensor_with_a_huge_dimension_is_a_clear_error(tmp_path):
    # 0 elements, but numpy still refuses a shape whose extent overflows (found while fuzzing).
    tensor = forge.rebuild_tensor(forge.float_storage_pid(forge.text("0"), 1), 0, (0, 1 << 62), (1 << 62, 1))
    path = forge.write_checkpoint(tmp_path / "empty.pth", forge.state_dict([("w", tensor)]), {"0": b"\0" * 4})
    with pytest.raises(ModelFileError, match=r"tensor 'w' of shape \[0 4611686018427387904\] is too large to describe"):
        load_torch_checkpoint(path)
