"""cmd/llama_infer in scriptable mode, end to end through a subprocess from the repository root.

Standard output must hold the generated text and one final newline, nothing else; everything else
(banner, progress, statistics) goes to stderr.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_REFS = REPO_ROOT.parent / "shared" / "refs"
STORIES = SHARED_REFS / "stories260K.bin"
TOK512 = SHARED_REFS / "tok512.bin"
STORIES_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "reference" / "stories260K.npz"
TINY_MODELS = REPO_ROOT / "tests" / "fixtures" / "models"
FIRST_SENTENCE = "Once upon a time, there was a little girl named Lily."


def run_cli(*flags: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmd.llama_infer", *flags],
        cwd=REPO_ROOT,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def stories() -> list[str]:
    if not (STORIES.exists() and TOK512.exists()):
        pytest.skip(f"stories260K.bin / tok512.bin not found in {SHARED_REFS}")
    return ["--model", str(STORIES), "--tokenizer", str(TOK512)]


def expected_text(ids: list[int]) -> str:
    """What the CLI must print for `ids` generated after BOS: each piece's bytes, the first one
    without the SentencePiece leading space."""
    from llamanuts.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(TOK512)
    data = b"".join(tokenizer.piece_bytes(i) for i in ids)
    return data.removeprefix(b" ").decode("utf-8", errors="replace")


def test_greedy_story_from_bos_equals_the_reference(stories: list[str]) -> None:
    """The default dtype of this float32 file is f32, which matches the PyTorch reference token for token."""
    result = run_cli(*stories, "--prompt", "", "--temperature", "0", "--max-tokens", "200")  # the exact command
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(FIRST_SENTENCE)
    assert result.stdout.endswith("\n")
    if STORIES_FIXTURE.exists():
        ids = np.load(STORIES_FIXTURE)["f32/greedy"].tolist()
        assert result.stdout == expected_text(ids) + "\n"
    assert "finish reason: max tokens reached, prompt tokens: 1, generated tokens: 200" in result.stderr
    assert "time to first token" in result.stderr and "tokens/s" in result.stderr
    assert FIRST_SENTENCE not in result.stderr  # the text is on stdout only


def test_default_dtype_of_a_float32_llama2c_file_is_f32(stories: list[str]) -> None:
    result = run_cli(*stories, "--prompt", "", "--max-tokens", "15")
    assert result.returncode == 0, result.stderr
    assert result.stdout == FIRST_SENTENCE + "\n"
    assert "compute f32" in result.stderr


def test_bf16_tells_the_same_story_start(stories: list[str]) -> None:
    result = run_cli(*stories, "--prompt", "", "--max-tokens", "15", "--dtype", "bf16")
    assert result.returncode == 0, result.stderr
    assert result.stdout == FIRST_SENTENCE + "\n"
    assert "compute bf16" in result.stderr


def test_prompt_from_stdin_when_no_prompt_flag(stories: list[str]) -> None:
    result = run_cli(*stories, "--max-tokens", "11", stdin="Once upon a time\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(", there was a little girl named Lily.")
    assert "prompt tokens: 5" in result.stderr


def test_stops_on_bos_like_run_c(stories: list[str]) -> None:
    result = run_cli(*stories, "--prompt", "", "--dtype", "f32")
    assert result.returncode == 0, result.stderr
    assert "finish reason: end of sequence" in result.stderr
    assert "generated tokens: 346," in result.stderr  # 345 ids, then BOS (SOURCES.md)


def test_sequence_length_limit(stories: list[str]) -> None:
    result = run_cli(*stories, "--prompt", "", "--sequence-length", "8")
    assert result.returncode == 0, result.stderr
    assert "finish reason: sequence length reached, prompt tokens: 1, generated tokens: 8," in result.stderr


def test_same_seed_same_text_and_the_seed_is_reported(stories: list[str]) -> None:
    flags = [*stories, "--prompt", "Once upon a time", "--max-tokens", "30", "--temperature", "1.0", "--top-p", "0.9", "--top-k", "40"]
    first = run_cli(*flags, "--seed", "42")
    second = run_cli(*flags, "--seed", "42")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert "seed: 42" in first.stderr
    unseeded = run_cli(*flags)
    seed = unseeded.stderr.rsplit("seed: ", 1)[1].split()[0]
    assert run_cli(*flags, "--seed", seed).stdout == unseeded.stdout


def test_debug_log_has_the_generation_stages(stories: list[str], tmp_path: Path) -> None:
    log = tmp_path / "trace.log"
    result = run_cli(*stories, "--prompt", "Once upon a time", "--max-tokens", "3", "--debug", "--debug-log", str(log))
    assert result.returncode == 0, result.stderr
    text = log.read_text(encoding="utf-8")
    for line in (
        "==== STAGE 01: TOKENIZATION ====",
        "Prompt tokens (5): [1, 403, 407, 261, 378]",
        "==== STAGE 02: CREATING THE TOKENS TENSOR ====",
        "==== STAGE 03: LOOPING THROUGH THE SEQUENCE LENGTH ====",
        "Running Forward for curPos: 5, prevPos: 0, tokens [1, 403, 407, 261, 378]",
        "Running Forward for curPos: 6, prevPos: 5, tokens [",
        "Generated token id ",
        "==== STAGE 19:",
    ):
        assert line in text, line


@pytest.mark.parametrize("name", ["tiny-mha", "tiny-llama3"])
def test_meta_format_models_text_and_chat(name: str) -> None:
    model = TINY_MODELS / name
    text = run_cli("--model", str(model), "--prompt", "The cat", "--max-tokens", "5")
    assert text.returncode == 0, text.stderr
    assert text.stdout.endswith("\n") and "generated tokens: 5" in text.stderr
    chat = run_cli("--model", str(model), "--chat", "--system", "Be brief.", "--prompt", "Hi", "--max-tokens", "4", "--dtype", "f32")
    assert chat.returncode == 0, chat.stderr
    assert "loaded meta model" in chat.stderr


def test_ctrl_c_during_generation_exits_130_and_keeps_the_text(stories: list[str], tmp_path: Path) -> None:
    # --debug slows each token down (thousands of log lines), leaving a wide window for the signal.
    process = subprocess.Popen(
        [sys.executable, "-m", "cmd.llama_infer", *stories, "--prompt", "", "--dtype", "f32", "--debug", "--debug-log", str(tmp_path / "d.log")],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = os.read(process.stdout.fileno(), 64)  # generation has started once text flows
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stdout, stderr = (first + rest).decode("utf-8"), err.decode("utf-8")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "finish reason: interrupted" in stderr
    assert stdout.startswith("Once") and stdout.endswith("\n")
    assert len(stdout) < len(expected_text(np.load(STORIES_FIXTURE)["f32/greedy"].tolist())) if STORIES_FIXTURE.exists() else True


def test_default_model_when_present() -> None:
    """Without --model the CLI runs the shipped KJV model (skipped until models/kjv exists)."""
    default = REPO_ROOT / "models" / "kjv"
    if not (default / "consolidated.00.pth").exists():
        pytest.skip(f"the default model is not at {default} yet")
    result = run_cli("--prompt", "In the beginning", "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and result.stdout.endswith("\n")
    assert "loaded meta model" in result.stderr and "generated tokens:" in result.stderr
