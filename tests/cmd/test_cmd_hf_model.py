"""llama_infer --model DIR on a bad Hugging Face directory: one line on stderr naming the file, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY_HF = REPO / "tests" / "fixtures" / "hf" / "tiny-llama2-hf"


def _run(model: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmd.llama_infer", "--model", str(model), "--prompt", "hi", "--max-tokens", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    # the banner (a box) and other decorations come before the error; the error is the last output
    return [line for line in result.stderr.splitlines() if "Error:" in line]


@pytest.fixture
def bad_dir(tmp_path: Path) -> Path:
    target = tmp_path / "bad-hf"
    shutil.copytree(TINY_HF, target)
    return target


def test_a_config_value_out_of_range_exits_2_with_one_line_naming_config_json(bad_dir: Path) -> None:
    config = json.loads((bad_dir / "config.json").read_text())
    config["num_hidden_layers"] = 0
    (bad_dir / "config.json").write_text(json.dumps(config))
    result = _run(bad_dir)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    lines = _error_lines(result)
    assert len(lines) == 1 and "ModelArgsError" in lines[0], result.stderr
    assert str(bad_dir / "config.json") in result.stderr.replace("\n", "")
    assert "'num_hidden_layers' is 0" in result.stderr.replace("\n", "")


def test_a_corrupt_safetensors_header_exits_2_naming_the_file(bad_dir: Path) -> None:
    (bad_dir / "model.safetensors").write_bytes((10**9).to_bytes(8, "little") + b"{}")
    result = _run(bad_dir)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    flat = result.stderr.replace("\n", "")
    assert str(bad_dir / "model.safetensors") in flat and "header length says 1,000,000,000 bytes" in flat


# ---- every kind of bad safetensors file through the CLI ------------------------------------------------
# The tiny fixture's model.safetensors, its header edited (the format, by hand: an 8-byte little-endian
# length, then JSON); the reader's own tests (tests/safetensors) check each message in detail, these
# check that each reaches the user as one line naming the file, exit 2, no traceback.
def _header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + length]), raw[8 + length :]


def _rewrite(path: Path, header: dict | bytes, data: bytes) -> None:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * ((-(8 + len(text))) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


def _first_two(header: dict) -> tuple[str, str]:
    names = sorted((n for n in header if n != "__metadata__"), key=lambda n: header[n]["data_offsets"][0])
    return names[0], names[1]


def _offsets_past_the_end(header: dict, data: bytes):  # type: ignore[no-untyped-def]
    a, _ = _first_two(header)
    begin, end = header[a]["data_offsets"]
    header[a]["data_offsets"] = [len(data) - (end - begin) + 4, len(data) + 4]
    return header, data, "lie outside the data section"


def _overlapping(header: dict, data: bytes):  # type: ignore[no-untyped-def]
    a, b = _first_two(header)
    size = header[b]["data_offsets"][1] - header[b]["data_offsets"][0]
    header[b]["data_offsets"] = [header[a]["data_offsets"][1] - 4, header[a]["data_offsets"][1] - 4 + size]
    return header, data, "overlap"


def _unsupported_dtype(header: dict, data: bytes):  # type: ignore[no-untyped-def]
    a, _ = _first_two(header)
    header[a]["dtype"] = "I8"
    return header, data, "not supported"


def _shape_not_its_bytes(header: dict, data: bytes):  # type: ignore[no-untyped-def]
    a, _ = _first_two(header)
    header[a]["shape"] = [header[a]["shape"][0] + 1, *header[a]["shape"][1:]]
    return header, data, "but data_offsets"


def _invalid_json(header: dict, data: bytes):  # type: ignore[no-untyped-def]
    return json.dumps(header).encode()[:-20], data, "not valid JSON"


def _truncated(header: dict, data: bytes):  # type: ignore[no-untyped-def]
    return header, data[: len(data) // 2], "data section"


@pytest.mark.parametrize(
    "damage",
    [_offsets_past_the_end, _overlapping, _unsupported_dtype, _shape_not_its_bytes, _invalid_json, _truncated],
    ids=lambda f: f.__name__.strip("_"),
)
def test_a_bad_safetensors_file_exits_2_with_one_line_naming_it(bad_dir: Path, damage) -> None:  # type: ignore[no-untyped-def]
    weights = bad_dir / "model.safetensors"
    header, data, phrase = damage(*_header(weights))
    _rewrite(weights, header, data)
    result = _run(bad_dir)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    assert len(_error_lines(result)) == 1, result.stderr
    flat = result.stderr.replace("\n", "")
    assert str(weights) in flat and phrase in flat, result.stderr


def test_a_missing_shard_exits_2_naming_it(bad_dir: Path) -> None:
    # the fixture split in two shards by hand, with the index transformers writes; then one shard deleted
    header, data = _header(bad_dir / "model.safetensors")
    names = [n for n in header if n != "__metadata__"]
    index = {"metadata": {}, "weight_map": {}}
    for part, chosen in enumerate((names[: len(names) // 2], names[len(names) // 2 :]), start=1):
        shard, chunks, offset = {}, [], 0
        for name in chosen:
            begin, end = header[name]["data_offsets"]
            shard[name] = {**header[name], "data_offsets": [offset, offset + end - begin]}
            chunks.append(data[begin:end])
            offset += end - begin
            index["weight_map"][name] = f"model-0000{part}-of-00002.safetensors"
        _rewrite(bad_dir / f"model-0000{part}-of-00002.safetensors", shard, b"".join(chunks))
    (bad_dir / "model.safetensors").unlink()
    (bad_dir / "model.safetensors.index.json").write_text(json.dumps(index))
    assert _run(bad_dir).returncode == 0  # the split itself is a valid checkpoint
    (bad_dir / "model-00002-of-00002.safetensors").unlink()
    result = _run(bad_dir)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    assert len(_error_lines(result)) == 1, result.stderr
    flat = result.stderr.replace("\n", "")
    assert str(bad_dir / "model-00002-of-00002.safetensors") in flat and "shard not found" in flat, result.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_config_json_that_is_not_a_regular_file_exits_2_saying_what_it_is(bad_dir: Path, kind: str) -> None:
    # is_file() took such a directory for a Meta one ("consolidated.00.pth not found"), and reading
    # a FIFO blocks, /dev/zero never ends
    config = bad_dir / "config.json"
    config.unlink()
    if kind == "fifo":
        os.mkfifo(config)
    else:
        config.symlink_to("/dev/zero")
    result = _run(bad_dir)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    flat = result.stderr.replace("\n", "")
    what = "a named pipe (FIFO)" if kind == "fifo" else "a character device"
    assert f"{config}: config.json is {what}, not a regular file" in flat, result.stderr
