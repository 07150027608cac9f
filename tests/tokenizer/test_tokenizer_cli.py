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


DEFAULT_TOKENIZER = REPO / "models" / "kjv" / "tokenizer.model"


def run_with_stdin(*args: str | Path, stdin: bytes, **kwargs) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", COLUMNS="120")
    return subprocess.run(
        [sys.executable, "-m", "cmd.llama_tokenize", *map(str, args)],
        cwd=REPO, input=stdin, capture_output=True, env=env, timeout=120, **kwargs,
    )


def sentencepiece_ids(text: str) -> list[int]:
    """The reference: the sentencepiece library itself on the default model's tokenizer."""
    import sentencepiece

    if not DEFAULT_TOKENIZER.exists():
        pytest.skip(f"the default model's tokenizer is not at {DEFAULT_TOKENIZER}")
    return sentencepiece.SentencePieceProcessor(model_file=str(DEFAULT_TOKENIZER)).encode(text)


def test_without_a_tokenizer_flag_the_default_models_tokenizer_is_used() -> None:
    result = run_cli("--json", "In the beginning")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ids"] == sentencepiece_ids("In the beginning")


def test_model_flag_names_the_directory_whose_tokenizer_is_used() -> None:
    result = run_cli("-m", REPO / "models" / "kjv", "--count", "In the beginning")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{len(sentencepiece_ids('In the beginning'))}\n"


def test_count_prints_only_the_number_of_tokens() -> None:
    result = run_cli("--count", "--bos", "Blessed are the meek")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{len(sentencepiece_ids('Blessed are the meek')) + 1}\n"


def test_text_from_stdin_exactly_as_given() -> None:
    text = "Blessed are the meek:\nfor they shall inherit the earth.\n"
    result = run_with_stdin("--json", stdin=text.encode())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ids"] == sentencepiece_ids(text)


def test_text_from_a_file_and_the_prompt_flag(tmp_path: Path) -> None:
    text = "And God said, Let there be light\n"
    file = tmp_path / "verse.txt"
    file.write_text(text, encoding="utf-8")
    from_file = run_cli("--json", "-f", file)
    assert from_file.returncode == 0, from_file.stderr
    assert json.loads(from_file.stdout)["ids"] == sentencepiece_ids(text)
    from_flag = run_cli("--json", "-p", "Let there be light")
    assert json.loads(from_flag.stdout)["ids"] == sentencepiece_ids("Let there be light")


def test_two_texts_are_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("-p", "a", "b")
    assert result.returncode == 2 and "give one text, not TEXT and --prompt" in result.stderr
    result = run_cli("--json", "--count", "a")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


def test_invalid_utf8_on_stdin_or_in_argv_is_a_clear_error() -> None:
    result = run_with_stdin("--count", stdin=b"caf\xe9\n")
    assert result.returncode == 2 and result.stdout == b""
    assert b"standard input is not valid UTF-8: byte 0xe9 at offset 3 (line 1)" in result.stderr
    assert b"Traceback" not in result.stderr
    argv = subprocess.run([sys.executable, "-m", "cmd.llama_tokenize", b"caf\xe9"], cwd=REPO, capture_output=True, timeout=120)
    assert argv.returncode == 2 and b"TEXT is not valid UTF-8: byte 0xe9 at offset 3" in argv.stderr
    assert b"Traceback" not in argv.stderr


def test_a_device_or_a_fifo_is_refused_without_reading_it(tmp_path: Path) -> None:
    result = run_cli("--tokenizer", "/dev/zero", "x")
    assert result.returncode == 2
    assert result.stderr.strip() == "/dev/zero: the tokenizer is a character device, not a regular file"
    fifo = tmp_path / "text.fifo"
    os.mkfifo(fifo)
    result = run_cli("-f", fifo)  # opening a FIFO without a writer would block forever
    assert result.returncode == 2 and "is a FIFO (named pipe), not a regular file" in result.stderr


def test_closed_stdout_and_full_disk_end_with_one_line_and_status_1() -> None:
    closed = subprocess.run(
        [sys.executable, "-m", "cmd.llama_tokenize", "--count", "x"], cwd=REPO, capture_output=False,
        stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(1),
    )
    assert closed.returncode == 1, closed.stderr
    assert closed.stderr.strip() == "llama_tokenize: standard output is closed: nowhere to write the results (run without >&-)"
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "cmd.llama_tokenize", "In the beginning"], cwd=REPO, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == "llama_tokenize: cannot write to standard output: No space left on device"


@pytest.mark.parametrize("text", ["", "-dash first"])
def test_empty_text_and_dash_text_after_double_dash(text: str) -> None:
    result = run_cli("--tokenizer", ref_path(TOK512_BIN), "--json", "--", text)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ids"] == load_ref(TOK512_BIN).encode(text)
