"""Parallel debug runs never clobber each other's debug.log (issue 13, item 13).

Before: every run opened debug.log with mode "w", so four `--debug` runs in one folder truncated
and interleaved one file, all exited 0, and three traces were lost. Now the first run holds an
exclusive lock on the file and the others are refused, before they empty it, naming the holder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llamanuts.common.errors import DebugLogInUseError, LlamaError
from llamanuts.common.logger import Logger

pytest.importorskip("fcntl", reason="flock is POSIX-only")


def test_a_second_logger_on_the_same_file_is_refused_and_the_first_log_survives(tmp_path: Path) -> None:
    path = tmp_path / "debug.log"
    first, second = Logger(), Logger()
    first.Init(debug=True, debug_path=str(path))
    first.DebugPrintf("first run: %d", 1)
    first.Flush()
    with pytest.raises(DebugLogInUseError, match=rf"debug log {path} is being written by another running process"):
        second.Init(debug=True, debug_path=str(path))
    assert issubclass(DebugLogInUseError, LlamaError)  # the CLI prints it and exits 2
    first.DebugPrintf("first run: %d", 2)
    first.Close()
    lines = path.read_text().splitlines()
    assert [line.split(" ", 1)[1].rsplit(" (", 1)[0] for line in lines] == ["first run: 1", "first run: 2"]


def test_the_file_is_free_again_after_close(tmp_path: Path) -> None:
    path = str(tmp_path / "debug.log")
    first, second = Logger(), Logger()
    first.Init(debug=True, debug_path=path)
    first.Close()
    second.Init(debug=True, debug_path=path)
    second.DebugPrintf("second run")
    second.Close()
    assert "second run" in Path(path).read_text()


def test_the_refusal_names_the_process_holding_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "debug.log"
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time, pathlib\n"
         "from llamanuts.common.logger import GLogger\n"
         f"GLogger.Init(debug=True, debug_path={str(path)!r})\n"
         f"pathlib.Path({str(ready)!r}).touch()\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline, "the holder did not start"
            time.sleep(0.05)
        with pytest.raises(DebugLogInUseError) as error:
            Logger().Init(debug=True, debug_path=str(path))
        if os.path.exists("/proc/locks"):
            assert f"(pid {holder.pid})" in str(error.value)
    finally:
        holder.communicate(b"", timeout=60)
    again = Logger()
    again.Init(debug=True, debug_path=str(path))  # the holder has exited: free again
    again.Close()
