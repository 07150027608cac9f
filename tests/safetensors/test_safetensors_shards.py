"""load_safetensors_checkpoint: one model.safetensors, or shards listed by model.safetensors.index.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.safetensors import INDEX_FILE, SINGLE_FILE, load_safetensors_checkpoint
from llamanuts.safetensors.checkpoint import MAX_INDEX_BYTES

from .writer import write

A = np.arange(6, dtype=np.float32).reshape(2, 3)
B = np.full(4, 0.5, dtype=np.float32)
C = np.arange(5, dtype=np.float16)
SHARD1, SHARD2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"


def _index(directory: Path, weight_map: dict, **extra) -> Path:
    path = directory / INDEX_FILE
    path.write_text(json.dumps({"metadata": {"total_size": 52}, "weight_map": weight_map, **extra}))
    return path


@pytest.fixture
def sharded(tmp_path: Path) -> Path:
    write(tmp_path / SHARD1, {"a": A, "b": B})
    write(tmp_path / SHARD2, {"c": C})
    _index(tmp_path, {"a": SHARD1, "b": SHARD1, "c": SHARD2})
    return tmp_path


def _refused(directory: Path, *phrases: str) -> str:
    with pytest.raises(ModelFileError) as info:
        load_safetensors_checkpoint(directory)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    return message


def test_shards_are_read_through_the_index(sharded: Path) -> None:
    calls: list[tuple[int, int, str]] = []
    checkpoint = load_safetensors_checkpoint(sharded, lambda d, t, n: calls.append((d, t, n)))
    assert checkpoint.index == sharded / INDEX_FILE
    assert checkpoint.files == [sharded / SHARD1, sharded / SHARD2]
    np.testing.assert_array_equal(checkpoint.tensors["a"].data, A)
    np.testing.assert_array_equal(checkpoint.tensors["b"].data, B)
    np.testing.assert_array_equal(checkpoint.tensors["c"].data, C)
    assert calls == [(1, 3, "a"), (2, 3, "b"), (3, 3, "c")]


def test_a_single_file_is_read_without_an_index(tmp_path: Path) -> None:
    write(tmp_path / SINGLE_FILE, {"a": A})
    checkpoint = load_safetensors_checkpoint(tmp_path)
    assert checkpoint.index is None and checkpoint.files == [tmp_path / SINGLE_FILE]


def test_model_safetensors_wins_over_an_index_as_in_transformers(sharded: Path) -> None:
    write(sharded / SINGLE_FILE, {"only": B})
    assert list(load_safetensors_checkpoint(sharded).tensors) == ["only"]


def test_a_directory_without_weights(tmp_path: Path) -> None:
    _refused(tmp_path, str(tmp_path), f"no {SINGLE_FILE} and no {INDEX_FILE}")


def test_a_dangling_link_named_model_safetensors_is_named_as_such(tmp_path: Path) -> None:
    # a missing file would be "no model.safetensors": the link is there, its target is not
    (tmp_path / SINGLE_FILE).symlink_to(tmp_path / "gone.safetensors")
    _refused(tmp_path, str(tmp_path / SINGLE_FILE), "dangling symbolic link")


def test_an_index_that_is_a_fifo_is_refused_without_blocking(sharded: Path) -> None:
    (sharded / INDEX_FILE).unlink()
    os.mkfifo(sharded / INDEX_FILE)  # opening it to read would wait for a writer forever
    _refused(sharded, str(sharded / INDEX_FILE), "named pipe (FIFO), not a regular file")


def test_a_missing_shard_is_named(sharded: Path) -> None:
    (sharded / SHARD2).unlink()
    _refused(sharded, str(sharded / SHARD2), "shard not found", "maps 1 tensor(s) to it")


def test_a_tensor_the_index_puts_in_a_shard_that_lacks_it(sharded: Path) -> None:
    _index(sharded, {"a": SHARD1, "b": SHARD1, "c": SHARD2, "d": SHARD2})
    _refused(sharded, str(sharded / INDEX_FILE), "puts tensor 'd' in", "which does not hold it")


def test_a_tensor_in_the_wrong_shard(sharded: Path) -> None:
    _index(sharded, {"a": SHARD1, "b": SHARD2, "c": SHARD2})
    _refused(sharded, "puts tensor 'b' in " + SHARD2 + ", but it is in " + SHARD1)


def test_a_tensor_in_two_shards(sharded: Path) -> None:
    write(sharded / SHARD2, {"a": A, "c": C})
    _refused(sharded, "tensor 'a' is in two shards", SHARD1, SHARD2)


def test_a_shard_holding_a_tensor_the_index_does_not_list(sharded: Path) -> None:
    _index(sharded, {"a": SHARD1, "c": SHARD2})
    _refused(sharded, f"shard {SHARD1} holds tensor 'b', which the index does not list")


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/passwd", "sub/dir.safetensors", "model.bin", ".hidden.safetensors", 7])
def test_the_index_can_name_only_safetensors_files_inside_the_directory(sharded: Path, shard: object) -> None:
    _index(sharded, {"a": SHARD1, "b": SHARD1, "c": shard})
    _refused(sharded, str(sharded / INDEX_FILE), "tensor 'c' is mapped to", "not a .safetensors file name in this directory")


@pytest.mark.parametrize(
    "content, phrase",
    [
        ("{not json", "not valid JSON"),
        ('{"metadata": {}}', "'weight_map' must be a non-empty object"),
        ('{"weight_map": {}}', "'weight_map' must be a non-empty object"),
        ('{"weight_map": ["a"]}', "'weight_map' must be a non-empty object"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_a_malformed_index(sharded: Path, content: str, phrase: str) -> None:
    (sharded / INDEX_FILE).write_text(content)
    _refused(sharded, str(sharded / INDEX_FILE), phrase)


def test_an_index_too_large_to_be_real_is_not_read(sharded: Path) -> None:
    with open(sharded / INDEX_FILE, "wb") as f:  # sparse: costs no disk and is never read
        f.truncate(MAX_INDEX_BYTES + 1)
    _refused(sharded, str(sharded / INDEX_FILE), f"{MAX_INDEX_BYTES + 1} bytes, more than the limit of {MAX_INDEX_BYTES} bytes")


def test_a_corrupt_shard_is_named(sharded: Path) -> None:
    (sharded / SHARD2).write_bytes(b"\x00" * 4)
    _refused(sharded, str(sharded / SHARD2), "only 4 bytes")
