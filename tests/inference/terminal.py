"""A program on a pseudo-terminal, driven like a user would (stdlib pty, no pexpect), for the
interactive tests. Every wait has a hard deadline, so a hang fails the test fast instead of
blocking CI; nothing is timed by sleeping: a test waits for text on the screen, or for a
checkpoint the program writes (cmd/common.py: checkpoint) right before the moment to signal it."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_REFS = REPO_ROOT.parent / "shared" / "refs"
STORIES = SHARED_REFS / "stories260K.bin"
TOK512 = SHARED_REFS / "tok512.bin"
FIXTURE_MODELS = REPO_ROOT / "tests" / "fixtures" / "models"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|[\x01\x02]")
START_TIMEOUT = 90.0  # the first screen: imports and the model load (Numba may compile on a cold cache)
TIMEOUT = 45.0  # any later step


class Terminal:
    """A child process on a pseudo-terminal, with expect-style reading."""

    def __init__(self, args: list[str], home: Path, env: dict[str, str] | None = None) -> None:
        master, slave = os.openpty()
        full_env = dict(os.environ, COLUMNS="200", LINES="50", TERM="xterm-256color", HOME=str(home))
        full_env.pop("NO_COLOR", None)
        full_env.update(env or {})
        self.process = subprocess.Popen(args, cwd=REPO_ROOT, stdin=slave, stdout=slave, stderr=slave, env=full_env, close_fds=True)
        os.close(slave)
        self.master = master
        self.output = ""  # everything read so far, escape sequences removed
        self._raw = b""
        self.started = False

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

    def expect(self, pattern: str, start: int = 0, timeout: float | None = None) -> int:
        """Wait until `pattern` (a regex) appears after offset `start`; return the offset after it."""
        if timeout is None:
            timeout = TIMEOUT if self.started else START_TIMEOUT
        self.started = True
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.output[start:])
            if match:
                return start + match.end()
            if time.monotonic() > deadline or (not self._read(0.2) and self.process.poll() is not None):
                raise AssertionError(f"{pattern!r} did not appear; output so far:\n{self.output[start:]}")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def signal(self, signum: int = signal.SIGINT) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        while self._read(0.05):
            pass
        if self.process.poll() is None:
            self.close()
            raise AssertionError(f"the program did not exit within {timeout} s; output so far:\n{self.output}")
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


class Checkpoints:
    """The file a program appends checkpoint names to (LLAMANUTS_TEST_CHECKPOINTS)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def env(self, pause: str | None = None) -> dict[str, str]:
        env = {"LLAMANUTS_TEST_CHECKPOINTS": str(self.path)}
        if pause:
            env["LLAMANUTS_TEST_PAUSE"] = pause
        return env

    def count(self, name: str) -> int:
        try:
            return self.path.read_text(encoding="utf-8").split().count(name)
        except FileNotFoundError:
            return 0

    def wait_for(self, name: str, count: int = 1, timeout: float = START_TIMEOUT, process: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout
        while self.count(name) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"checkpoint {name!r} #{count} not reached within {timeout} s")
            if process is not None and process.poll() is not None:
                raise AssertionError(f"the program exited ({process.returncode}) before checkpoint {name!r} #{count}")
            time.sleep(0.02)


def cli(*flags: str) -> list[str]:
    return [sys.executable, "-m", "cmd.llama_infer", *flags]


def chat_model(tmp: Path, max_seq_len: int = 512, name: str = "tiny-gqa") -> Path:
    """A copy of a tiny fixture model with a longer context (the weights do not depend on it), so a
    conversation has room for several turns."""
    import json

    target = tmp / f"{name}-{max_seq_len}"
    if not target.exists():
        shutil.copytree(FIXTURE_MODELS / name, target)
        params = json.loads((target / "params.json").read_text())
        params["max_seq_len"] = max_seq_len
        (target / "params.json").write_text(json.dumps(params))
    return target
