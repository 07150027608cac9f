"""cmd.llama_perplexity: progress with the running perplexity, PPL = x +/- y, flags that mean what
they mean in llama_infer, and hostile input and output, end to end."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFS = REPO.parent / "shared" / "refs"
STORY = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high. Lily asked her "
    "mom to help her. Her mom said, \"Sure, Lily!\" They played together all day long."
)


def run(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cmd.llama_perplexity", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture
def stories(tmp_path: Path) -> list[str]:
    if not (REFS / "stories260K.bin").exists():
        pytest.skip(f"{REFS} is absent (the shared reference models live beside the repository)")
    text = tmp_path / "story.txt"
    text.write_text(STORY, encoding="utf-8")
    return ["-m", str(REFS / "stories260K.bin"), "--tokenizer", str(REFS / "tok512.bin"), "-f", str(text)]


def test_running_perplexity_per_chunk_and_the_final_ppl_with_its_error(stories: list[str]) -> None:
    result = run(*stories, "-c", "17")
    assert result.returncode == 0, result.stderr
    progress = re.search(r"((?:\[\d+\][\d.]+,)*\[\d+\][\d.]+)\n", result.stderr)
    assert progress, result.stderr
    running = [float(v) for v in re.findall(r"\[\d+\]([\d.]+)", progress.group(1))]
    report = dict(line.strip().split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert int(report["chunks"]) == len(running) and report["ctx"] == "16"
    assert running[-1] == pytest.approx(float(report["perplexity"]), rel=1e-4)
    final = re.search(r"^PPL = ([\d.]+) \+/- ([\d.]+)$", result.stdout, re.M)
    assert final and float(final.group(1)) == pytest.approx(float(report["perplexity"]), rel=1e-4)
    assert float(final.group(2)) == pytest.approx(float(report["perplexity_stderr"]), rel=1e-4) and float(final.group(2)) > 0


def test_ctx_size_is_bos_plus_the_scored_tokens_and_dtype_defaults_to_auto(stories: list[str]) -> None:
    by_size = json.loads(run(*stories, "-c", "17", "--json").stdout)
    by_chunk = json.loads(run(*stories, "--ctx", "16", "--json").stdout)
    assert by_size["ctx"] == by_chunk["ctx"] == 16
    assert by_size["perplexity"] == pytest.approx(by_chunk["perplexity"])
    assert by_size["dtype"] == "f32"  # auto: stories260K.bin stores float32 (llama_infer's default too)
    both = run(*stories, "-c", "17", "--ctx", "16")
    assert both.returncode == 2 and "give --ctx-size or --ctx, not both" in both.stderr


def test_text_file_that_is_a_device_or_fifo_is_refused(tmp_path: Path) -> None:
    result = run("-f", "/dev/zero", timeout=60)
    assert result.returncode == 2 and result.stderr.strip() == "/dev/zero: the text is a character device, not a regular file"
    fifo = tmp_path / "text.fifo"
    os.mkfifo(fifo)
    result = run("--text", str(fifo), timeout=60)
    assert result.returncode == 2 and "is a FIFO (named pipe), not a regular file" in result.stderr


def test_an_error_message_is_one_line_whatever_the_terminal_width(tmp_path: Path) -> None:
    missing = tmp_path / ("a-rather-long-directory-name-" * 3) / "missing.txt"
    result = run("-f", str(missing), env=dict(os.environ, COLUMNS="40"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0], result.stderr


def test_output_failures_end_with_one_line(stories: list[str]) -> None:
    closed = subprocess.run([sys.executable, "-m", "cmd.llama_perplexity", *stories, "-c", "17"], cwd=REPO, stderr=subprocess.PIPE, text=True,
                            timeout=300, preexec_fn=lambda: os.close(1))
    assert closed.returncode == 1 and "llama_perplexity: standard output is closed" in closed.stderr
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "cmd.llama_perplexity", *stories, "-c", "17"], cwd=REPO, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "llama_perplexity: cannot write to standard output: No space left on device"


@pytest.mark.parametrize("phase, signum, code", [("imports", signal.SIGINT, 130), ("generate", signal.SIGTERM, 143)])
def test_a_signal_at_any_phase_exits_cleanly(stories: list[str], tmp_path: Path, phase: str, signum: int, code: int) -> None:
    marks = tmp_path / "checkpoints"
    env = dict(os.environ, LLAMANUTS_TEST_CHECKPOINTS=str(marks), LLAMANUTS_TEST_PAUSE=phase)
    process = subprocess.Popen([sys.executable, "-m", "cmd.llama_perplexity", *stories, "-c", "17"], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (marks.exists() and phase in marks.read_text().split()):
            assert time.monotonic() < deadline and process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.02)
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, err
    assert "Traceback" not in err and out == ""
