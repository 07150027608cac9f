"""cmd/llama_tokenize end to end: run as `python -m cmd.llama_tokenize` from the repo root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokenizer_testdata import LLAMA2_MODEL, LLAMA2C_BIN, LLAMA3_MODEL, TOK512_BIN, load_ref, ref_path

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    # UTF-8 pipes whatever the machine's locale, so "▁" and emoji survive the round trip.
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="120")
    return subprocess.run(
        [sys.executable, "-m", "cmd.llama_tokenize", *map(str, args)],
        cwd=REPO, capture_output=True, text=True, encoding="utf-8", env=env, timeout=120,
    )


def test_json_prints_exactly_ids_and_pieces() -> None:
    # Published ids (SOURCES.md): "Once upon a time" with BOS on tok512.
    result = run_cli("--tokenizer", ref_path(TOK512_BIN), "--bos", "--json", "Once upon a time")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "ids": [1, 403, 407, 261, 378],
        "pieces": ["\n<s>\n", " Once", " upon", " a", " time"],
    }
    assert result.stdout == json.dumps(json.loads(result.stdout)) + "\n"


def test_json_eos_flag_appends_eos() -> None:
    result = run_cli("--tokenizer", ref_path(LLAMA2_MODEL), "--bos", "--eos", "--json", "The best way to attract bees")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ids"] == [1, 450, 1900, 982, 304, 13978, 367, 267, 2]


def test_json_pieces_are_what_piece_to_id_accepts() -> None:
    result = run_cli("--tokenizer", ref_path(LLAMA3_MODEL), "--json", "This is a test sentence.")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "ids": [2028, 374, 264, 1296, 11914, 13],
        "pieces": ["This", " is", " a", " test", " sentence", "."],
    }


def test_table_shows_ids_and_visible_pieces() -> None:
    result = run_cli("--tokenizer", ref_path(LLAMA2C_BIN), "--bos", "Hi 👋\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("8 tokens · llama2c · vocab 32000")
    table = "\n".join(lines[1:])
    for id, piece in [(1, "\\n<s>\\n"), (6324, "▁Hi"), (243, "<0xF0>"), (142, "<0x8B>"), (13, "<0x0A>")]:
        assert any(f" {id} " in line and f" {piece} " in line for line in lines), (id, piece, table)


def test_table_escapes_newlines_in_tiktoken_pieces() -> None:
    result = run_cli("--tokenizer", ref_path(LLAMA3_MODEL), "a\n\nb c")
    assert result.returncode == 0, result.stderr
    assert "\\n\\n" in result.stdout
    assert "▁c" in result.stdout


def test_missing_tokenizer_file_is_a_clean_error() -> None:
    result = run_cli("--tokenizer", "no/such/tokenizer.model", "x")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == "TokenizerError: no/such/tokenizer.model: tokenizer file not found"


def test_unrecognised_file_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some notes\n")
    result = run_cli("--tokenizer", path, "x")
    assert result.returncode == 2
    assert "not a recognised tokenizer" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_flag_is_a_usage_error() -> None:
    result = run_cli("x")
    assert result.returncode == 2
    assert "--tokenizer" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("text", ["", "-dash first"])
def test_empty_text_and_dash_text_after_double_dash(text: str) -> None:
    result = run_cli("--tokenizer", ref_path(TOK512_BIN), "--json", "--", text)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ids"] == load_ref(TOK512_BIN).encode(text)
