"""Ctrl-C (SIGINT) and SIGTERM for the command-line tools: a clean end at any moment.

Each entry point calls `install()` before its heavy imports (Numba, the model), so a Ctrl-C while
Python is still importing ends as cleanly as one during generation: exit status 130 for SIGINT,
143 for SIGTERM (128 + the signal number, the shell's convention), one line on stderr, no traceback.
This module imports only the standard library, to keep the moment before `install()` short.

The rules:

- Outside a `cancellable()` section (imports, loading, building the model, the menu's own code),
  the program exits at once: the registered cleanups run (flush the generated text, close the debug
  log, save the line history), one line goes to stderr, then `os._exit`. Nothing half-done runs on:
  not Numba's compiler, not an atexit hook that a second Ctrl-C would interrupt again.
- Inside `cancellable()` (a generation, a wait at a prompt) SIGINT raises KeyboardInterrupt and
  SIGTERM raises `Terminated` (a KeyboardInterrupt too), and the code there handles it: a
  generation stops and prints its statistics, the chat returns to its prompt (SIGINT) or exits
  (SIGTERM). The code that catches it calls `acknowledge()`.
- A signal that lands inside Numba's compiler (the first Forward compiles the kernels when their
  cache is cold) is not raised there: LLVM calls back into Python through ctypes, and ctypes
  swallows an exception raised in a callback ("Exception ignored on calling ctypes callback
  function"), leaving the compiler half-way. The signal stays pending and `check()` raises it at the
  next safe point (the CLI calls it after every generated token). If an interrupt was swallowed
  anyway, `check()` raises it too. A second signal while one is pending exits at once.
- A blocking read (input() at a prompt, stdin) has a window: a signal that arrives after the last
  Python instruction but before read() blocks is noted by C, and its Python handler runs only when
  read() returns, that is after the next keypress. A watcher thread sees every signal through
  `signal.set_wakeup_fd`; while the main thread waits in `blocking_read()` and the handler has not
  run, it nudges the main thread with a thread-directed SIGUSR1 (whose handler does nothing), which
  interrupts the read so the pending handler runs.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
_NUDGE = signal.SIGUSR1
_NUDGE_DELAYS = (0.01, 0.03, 0.1, 0.2, 0.4, 0.8, 1.6)  # seconds, until the handler has run
_COMPILER_MODULES = ("numba", "llvmlite")


class Terminated(KeyboardInterrupt):
    """SIGTERM inside a cancellable section: stop like Ctrl-C, then exit with 143."""


class _State:
    def __init__(self) -> None:
        self.installed = False
        self.tool = "llama"
        self.depth = 0  # > 0 inside cancellable()
        self.reading = 0  # > 0 inside blocking_read()
        self.pending: int | None = None  # a signal raised (or deferred) and not yet acknowledged
        self.runs = 0  # how many times the Python handler ran (the watcher compares)
        self.line_at_signal = ""  # what the user had typed at the prompt when the signal came
        self.cleanups: list[Callable[[], None]] = []
        self.main_ident = threading.main_thread().ident


_state = _State()


def install(tool: str) -> None:
    """Take over SIGINT and SIGTERM for the whole run (call it from the main thread, first)."""
    _state.tool = tool
    _state.main_ident = threading.get_ident()
    signal.signal(signal.SIGINT, _handle)
    signal.signal(signal.SIGTERM, _handle)
    signal.signal(_NUDGE, _ignore)
    if not _state.installed:
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        threading.Thread(target=_watch, args=(read_end,), name="signal-watcher", daemon=True).start()
    _state.installed = True


def add_cleanup(cleanup: Callable[[], None]) -> None:
    """Run `cleanup` (best effort, errors ignored) before an immediate exit."""
    if cleanup not in _state.cleanups:
        _state.cleanups.append(cleanup)


@contextmanager
def cancellable() -> Iterator[None]:
    """A section whose code handles KeyboardInterrupt (and Terminated) itself."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1


@contextmanager
def blocking_read() -> Iterator[None]:
    """A cancellable wait for input: the watcher makes sure a signal interrupts it."""
    _state.line_at_signal = ""
    _state.depth += 1
    _state.reading += 1
    try:
        yield
    finally:
        _state.reading -= 1
        _state.depth -= 1


def acknowledge() -> int:
    """Called where a KeyboardInterrupt is handled: forget the pending signal, return its number."""
    signum = _state.pending if _state.pending is not None else signal.SIGINT
    _state.pending = None
    return signum


def exit_code(signum: int) -> int:
    return 128 + signum


def check() -> None:
    """Raise a deferred (or swallowed) interrupt at this safe point."""
    if _state.pending is not None:
        raise Terminated() if _state.pending == signal.SIGTERM else KeyboardInterrupt()


def line_at_signal() -> str:
    """The text on the prompt line when the last signal came (readline only; "" otherwise)."""
    return _state.line_at_signal


def exit_now(signum: int) -> None:
    """Clean up, say why in one line on stderr, and exit with 128 + signum."""
    for cleanup in reversed(_state.cleanups):
        try:
            cleanup()
        except BaseException:  # noqa: BLE001 - exiting anyway; a failing cleanup must not stop it
            pass
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - e.g. a reentrant flush, a closed pipe
        pass
    word = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    # On a terminal: show the cursor again (a progress bar hides it while it runs) and start a new line.
    lead = "\x1b[?25h\n" if _isatty(2) else ""
    try:
        os.write(2, f"{lead}{_state.tool}: {word}\n".encode())
    except OSError:
        pass
    os._exit(exit_code(signum))


# ---- the handlers ------------------------------------------------------------------------------
def _handle(signum: int, frame) -> None:  # type: ignore[no-untyped-def]
    _state.runs += 1
    if _state.reading:
        _state.line_at_signal = _readline_buffer()
    if _state.pending is not None or not _state.depth:
        exit_now(signum)
    _state.pending = signum
    if _inside_compiler(frame):
        try:
            os.write(2, b"\nstopping once the kernels are compiled (Ctrl-C again to quit now)\n")
        except OSError:
            pass
        return
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _ignore(signum: int, frame) -> None:  # type: ignore[no-untyped-def]
    """SIGUSR1, the watcher's nudge: its only job was to interrupt a blocking read."""


def _inside_compiler(frame) -> bool:  # type: ignore[no-untyped-def]
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_COMPILER_MODULES):
            return True
        frame = frame.f_back
    return False


def _readline_buffer() -> str:
    readline = sys.modules.get("readline")
    try:
        return readline.get_line_buffer() if readline is not None else ""
    except Exception:  # noqa: BLE001 - best effort
        return ""


def _watch(read_end: int) -> None:
    """The watcher thread: nudge a main thread blocked in a read whose signal handler has not run."""
    wanted = {signal.SIGINT, signal.SIGTERM}
    while True:
        try:
            data = os.read(read_end, 64)
        except OSError:
            return
        if not data:
            return
        if not wanted.intersection(data):
            continue  # our own nudges, or signals nobody waits on
        runs = _state.runs
        for delay in _NUDGE_DELAYS:
            time.sleep(delay)
            if _state.runs != runs or not _state.reading:
                break
            try:
                signal.pthread_kill(_state.main_ident, _NUDGE)
            except (OSError, ValueError):
                return


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "Terminated",
    "acknowledge",
    "add_cleanup",
    "blocking_read",
    "cancellable",
    "check",
    "exit_code",
    "exit_now",
    "install",
    "line_at_signal",
]
