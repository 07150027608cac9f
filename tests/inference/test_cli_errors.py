"""cmd/llama_infer's error exits: a message on stderr, no traceback, exit 2, nothing on stdout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_REFS = REPO_ROOT.parent / "shared" / "refs"
STORIES = SHARED_REFS / "stories260K.bin"
TOK512 = SHARED_REFS / "tok512.bin"
TINY_MODEL = REPO_ROOT / "tests" / "fixtures" / "models" / "tiny-mha"


def run_cli(*flags: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmd.llama_infer", *flags],
        cwd=REPO_ROOT,
        input="",
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)


def test_no_model_says_where_files_are_expected_and_how_to_get_them(tmp_path: Path) -> None:
    result = run_cli("--model", str(tmp_path / "no-such-model"), "--prompt", "hi")
    assert_clean_failure(result, "no model found", "consolidated.00.pth", "params.json", "tokenizer.model", "Meta")


def test_unknown_flag_is_a_usage_error() -> None:
    result = run_cli("--no-such-flag")
    assert result.returncode == 2
    assert "usage:" in result.stderr and "unrecognized arguments: --no-such-flag" in result.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dtype", "f16"], "invalid choice"),
        (["--max-tokens", "-2"], "--max-tokens must be >= 0, or -1 for no limit"),
        (["--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["--temperature", "-0.1"], "--temperature must be >= 0"),
        (["--threads", "abc"], "invalid int value"),
    ],
)
def test_bad_flag_values_are_usage_errors(flags: list[str], message: str) -> None:
    result = run_cli(*flags, "--prompt", "x")
    assert result.returncode == 2 and "usage:" in result.stderr and message in result.stderr


def test_bad_model_file_prints_the_loaders_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.bin"
    bad.write_bytes(b"\x07\x00\x00\x00not a model at all" * 3)
    tokenizer = TOK512 if TOK512.exists() else TINY_MODEL / "tokenizer.model"
    result = run_cli("--model", str(bad), "--tokenizer", str(tokenizer), "--prompt", "hi")
    assert_clean_failure(result, str(bad))


def test_meta_directory_missing_a_file(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "params.json").write_text((TINY_MODEL / "params.json").read_text())
    result = run_cli("--model", str(model), "--prompt", "hi")
    assert_clean_failure(result, "consolidated.00.pth")


def test_llama2c_model_without_tokenizer() -> None:
    if not STORIES.exists():
        pytest.skip(f"{STORIES} not found")
    result = run_cli("--model", str(STORIES), "--prompt", "hi")
    assert_clean_failure(result, "needs a tokenizer")


def test_unwritable_debug_log_is_reported_before_any_work(tmp_path: Path) -> None:
    log = tmp_path / "no-such-dir" / "debug.log"
    result = run_cli("--model", str(TINY_MODEL), "--prompt", "hi", "--debug", "--debug-log", str(log))
    assert_clean_failure(result, "cannot write the debug log")
    assert "loaded" not in result.stderr  # reported before the model was touched


def test_prompt_too_long_for_the_sequence_length() -> None:
    result = run_cli("--model", str(TINY_MODEL), "--prompt", "the cat sat on the mat " * 3, "--sequence-length", "4")
    assert_clean_failure(result, "SequenceLengthError", "sequence length")


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    result = run_cli("--model", str(TINY_MODEL), "--prompt", "the cat sat", "--sequence-length", "2", "--verbose")
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "SequenceLengthError" in result.stderr
