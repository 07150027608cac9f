"""cmd/llama_infer in interactive mode, driven through a pseudo-terminal (stdlib pty, no pexpect).

The child sees a terminal on stdin/stdout/stderr, so it shows the banner, the menu and streams the
generation; the test answers the prompts like a user would.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_REFS = REPO_ROOT.parent / "shared" / "refs"
STORIES = SHARED_REFS / "stories260K.bin"
TOK512 = SHARED_REFS / "tok512.bin"
TINY_MODEL = REPO_ROOT / "tests" / "fixtures" / "models" / "tiny-gqa"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")
TIMEOUT = 120.0


class Terminal:
    """A child process on a pseudo-terminal, with expect-style reading."""

    def __init__(self, args: list[str]) -> None:
        master, slave = os.openpty()
        env = dict(os.environ, COLUMNS="200", LINES="50", TERM="xterm-256color")
        env.pop("NO_COLOR", None)
        self.process = subprocess.Popen(args, cwd=REPO_ROOT, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.master = master
        self.output = ""  # everything read so far, escape sequences removed
        self._raw = b""

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not data:
            return False
        self._raw += data
        self.output = ANSI.sub("", self._raw.decode("utf-8", errors="replace")).replace("\r", "")
        return True

    def expect(self, pattern: str, start: int = 0, timeout: float = TIMEOUT) -> int:
        """Wait until `pattern` (a regex) appears after offset `start`; return the offset after it."""
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output[start:])
            if match:
                return start + match.end()
            if time.monotonic() > deadline or (not self._read(0.2) and self.process.poll() is not None):
                raise AssertionError(f"{pattern!r} did not appear; output so far:\n{self.output[start:]}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.05):
            pass
        return self.process.wait(timeout=1)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)


def cli(*flags: str) -> list[str]:
    return [sys.executable, "-m", "cmd.llama_infer", *flags]


@pytest.fixture
def stories_terminal():
    if not (STORIES.exists() and TOK512.exists()):
        pytest.skip(f"stories260K.bin / tok512.bin not found in {SHARED_REFS}")
    terminal = Terminal(cli("--model", str(STORIES), "--tokenizer", str(TOK512), "--max-tokens", "24"))
    yield terminal
    terminal.close()


def test_menu_metadata_predefined_and_manual_prompts(stories_terminal: Terminal) -> None:
    t = stories_terminal
    at = t.expect(r"Llama Nuts and Bolts")
    at = t.expect(r"loaded llama2c model", at)
    at = t.expect(r"0\. show the model metadata", at)
    assert "Once upon a time" in t.output[at:] or t.expect(r"Once upon a time", at)
    at = t.expect(r"other, manual input \(text completion\)", at)
    at = t.expect(r"choose", at)

    t.send("0\n")
    at = t.expect(r"Hyperparameters", at)
    at = t.expect(r"n_kv_heads\s*│?\s*4", at)
    at = t.expect(r"layers\.4\.feed_forward\.w3\.weight", at)
    at = t.expect(r"260,032", at)
    at = t.expect(r"choose", at)

    t.send("1\n")  # the first predefined prompt: "Once upon a time"
    at = t.expect(r"Once upon a time, there was a little girl", at)
    at = t.expect(r"finish reason: max tokens reached, prompt tokens: 5, generated tokens: 24", at)
    at = t.expect(r"choose", at)

    manual = 1 + len(re.findall(r"^\d+\. text: ", t.output[: t.output.index("other, manual input")], re.M))
    t.send(f"{manual}\n")
    at = t.expect(r"prompt \(empty: start from BOS\):", at)
    t.send("Lily and Ben\n")
    at = t.expect(r"finish reason: \w[\w ]*, prompt tokens: \d+, generated tokens: \d+, time to first token: [\d.]+ s", at)
    at = t.expect(r"choose", at)

    t.send("q\n")
    assert t.wait() == 0
    assert "Traceback" not in t.output


def test_ctrl_c_in_the_menu_exits_130_cleanly(stories_terminal: Terminal) -> None:
    t = stories_terminal
    t.expect(r"choose")
    t.process.send_signal(signal.SIGINT)
    assert t.wait() == 130
    assert "Traceback" not in t.output


def test_end_of_input_in_the_menu_exits_0(stories_terminal: Terminal) -> None:
    t = stories_terminal
    t.expect(r"choose")
    t.send("\x04")  # Ctrl-D on an empty line: end of input
    assert t.wait() == 0
    assert "Traceback" not in t.output


def test_bad_choice_says_so_and_shows_the_menu_again(stories_terminal: Terminal) -> None:
    t = stories_terminal
    at = t.expect(r"choose")
    t.send("42\n")
    at = t.expect(r"no such choice: '42'", at)
    t.expect(r"choose", at)
    t.send("q\n")
    assert t.wait() == 0


def test_manual_chat_on_a_meta_model() -> None:
    """A Meta-format model (the tiny fixture) through the chat entry: system prompt, user message."""
    t = Terminal(cli("--model", str(TINY_MODEL), "--max-tokens", "6"))
    try:
        at = t.expect(r"loaded meta model")
        at = t.expect(r"(\d+)\. other, manual input \(chat\)", at)
        number = re.findall(r"(\d+)\. other, manual input \(chat\)", t.output)[-1]
        at = t.expect(r"choose", at)
        t.send(f"{number}\n")
        at = t.expect(r"system prompt \(empty for none\):", at)
        t.send("Be brief.\n")
        at = t.expect(r"user message:", at)
        t.send("Hello there\n")
        at = t.expect(r"assistant:", at)
        at = t.expect(r"finish reason: [\w ]+, prompt tokens: \d+, generated tokens: \d+", at)
        t.expect(r"choose", at)
        t.send("q\n")
        assert t.wait() == 0
        assert "Traceback" not in t.output
    finally:
        t.close()


def test_ctrl_c_during_generation_exits_130_and_keeps_the_text(tmp_path: Path) -> None:
    if not (STORIES.exists() and TOK512.exists()):
        pytest.skip(f"stories260K.bin / tok512.bin not found in {SHARED_REFS}")
    # No --max-tokens and --debug: a long, slowed-down generation to interrupt.
    t = Terminal(cli("--model", str(STORIES), "--tokenizer", str(TOK512), "--dtype", "f32", "--debug", "--debug-log", str(tmp_path / "d.log")))
    try:
        at = t.expect(r"2\. text: \(empty prompt")
        at = t.expect(r"choose", at)
        t.send("2\n")
        at = t.expect(r"Once upon", at)
        t.process.send_signal(signal.SIGINT)
        assert t.wait() == 130
        t.expect(r"finish reason: interrupted", at)
        assert "Traceback" not in t.output
    finally:
        t.close()
