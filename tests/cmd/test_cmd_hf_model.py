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
