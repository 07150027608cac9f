"""The dedicated check of the signal races, 20 times in a row, kept under a minute.

The flaky test this replaces sent SIGINT once "choose" was on screen; when the signal landed after
the prompt was written but before the read blocked, the handler waited for a keypress that never
came (a hang, then a failure). cmd/interrupts.py closes that window with a watcher thread; these
tests hit the window as often as they can:

- a small driver (the CLI's own line reader and signal handling, no model) is started 20 times and
  signalled the moment its prompt appears;
- the window is forced deterministically: the driver's main thread blocks SIGINT, so the signal is
  taken by another thread and the main thread stays blocked in its read with the handler pending,
  exactly the state of the race;
- one chat session is interrupted mid-answer 20 times (each time once its first text is out), and
  must come back to its prompt each time, then exit 130 on a Ctrl-C at the empty prompt.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

from .terminal import REPO_ROOT, Checkpoints, Terminal, chat_model, cli

REPEAT = 20
DRIVER = f"""
import os, signal, sys
sys.path.insert(0, {str(REPO_ROOT)!r})
from cmd import common, interrupts
interrupts.install("driver")
reader = common.LineReader(history=False)
if os.environ.get("DRIVER_MASK_SIGINT"):
    signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGINT}})
try:
    line = reader.read("ready> ")
except KeyboardInterrupt:
    interrupts.acknowledge()
    print("got the interrupt")
    sys.exit(130)
sys.exit(0 if line is None else 3)
"""


def driver(tmp_path: Path, **env: str) -> Terminal:
    return Terminal([sys.executable, "-c", DRIVER], home=tmp_path, env=env)


def test_sigint_the_moment_the_prompt_appears_exits_130_every_time(tmp_path: Path) -> None:
    for attempt in range(REPEAT):
        t = driver(tmp_path)
        try:
            t.expect(r"ready> ", timeout=30)
            t.signal(signal.SIGINT)
            assert t.wait(timeout=10) == 130, (attempt, t.output)
            assert "Traceback" not in t.output
        finally:
            t.close()


def test_a_pending_handler_while_the_read_blocks_is_run_by_the_watcher(tmp_path: Path) -> None:
    for attempt in range(3):
        t = driver(tmp_path, DRIVER_MASK_SIGINT="1")
        try:
            t.expect(r"ready> ", timeout=30)
            time.sleep(0.2)  # make sure the read is blocking before the signal (the state of the race)
            t.signal(signal.SIGINT)
            assert t.wait(timeout=10) == 130, (attempt, t.output)
            assert "got the interrupt" in t.output
        finally:
            t.close()


def test_ctrl_c_mid_answer_20_times_in_one_session(tmp_path: Path) -> None:
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    t = Terminal(cli("-m", str(chat_model(tmp_path, max_seq_len=2048)), "--chat", "-n", "8"), home=tmp_path, env=checkpoints.env(pause="answer"))
    try:
        at = t.expect(r"user> ")
        for attempt in range(1, REPEAT + 1):
            t.send(f"question {attempt}\n")
            checkpoints.wait_for("answer", count=attempt, timeout=45, process=t.process)
            t.signal(signal.SIGINT)
            at = t.expect(r"finish reason: interrupted", at)
            at = t.expect(r"answer stopped", at)
            at = t.expect(r"user> ", at)
        t.send("/stats\n")
        at = t.expect(rf"{REPEAT} turn\(s\)", at)
        at = t.expect(r"user> ", at)
        t.signal(signal.SIGINT)
        assert t.wait() == 130
        assert "Traceback" not in t.output
        assert len(re.findall(r"answer stopped", t.output)) == REPEAT
    finally:
        t.close()
