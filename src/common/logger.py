"""GLogger: one logger with a console side (rich, to stderr) and a `debug.log` side.

Mirrors the Go original's `common.GLogger`. The debug side is what a reader follows beside the docs:
each line is `[DEBUG]` + wall time with microseconds + message + `(x.xxxx secs)` since the previous
debug line. When debug is off, `DebugPrintf` is a no-op bound at `Init` time: no string formatting,
no shape formatting, only the cost of one call, because Forward calls it hundreds of times per token.

Arguments are formatted only when debug is on; a Tensor argument is printed as `shape([32 4096])`.
So the call sites need no `if GLogger.debug_enabled:` of their own: pass the objects, and pass an
argument that costs work to build (a list of token pieces, say) as a zero-argument lambda, which is
called only when the line is written.

With values on (`Init(debug=True, values=True)`, the CLI's `--trace-values`), each tensor argument
is followed by a fixed-width summary of its numbers, taken from its LAST row (`x[-1]` of a 2-D
tensor, `x[-1, -1]` of a 3-D one: the row of the last token, the one that predicts the next token,
and during decoding the only row):

    shape([7 576]) last row [  -0.01228   +0.04565    +0.7891     -1.234 …] mean +0.001213 std 0.1234

the first four values (`.4g`, each 10 characters wide), then that row's mean and standard deviation
(so its root mean square is sqrt(mean² + std²)). bf16 and quantized rows are widened to float32 first
(`Tensor.numpy`); integer tensors show their first values only, complex ones (the rotary table) as
real and imaginary parts. `DebugValues` writes lines meant only for that mode (the top next tokens,
one head's attention weights); it is the same no-op as `DebugPrintf` otherwise.

One debug log, one writer: `Init` takes an exclusive, non-blocking `flock` on the file before it
empties it, and keeps it until `Close`. A second run pointed at the same file (four `--debug` runs
started in one folder) is refused with DebugLogInUseError naming the process that holds it, rather
than both truncating and interleaving one file. A lock rather than distinct file names, because the
docs tell the reader to open `debug.log`: that name must mean the run they just started. The lock
goes away with the process, however it ends, so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import os
import stat
import time
from datetime import datetime
from typing import IO, Any, Callable

import numpy as np
from rich.console import Console

from .errors import DebugLogInUseError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, the log is not locked
    fcntl = None  # type: ignore[assignment]


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


def format_shape(shape: tuple[int, ...] | list[int]) -> str:
    """`(32, 4096)` -> `shape([32 4096])`, the Go original's notation."""
    return "shape([" + " ".join(str(d) for d in shape) + "])"


VALUES_SHOWN = 4  # leading values of the summary
VALUE_WIDTH = 10  # characters per value: `.4g` never needs more ("-1.234e-05")


def _last_row(arg: Any) -> np.ndarray:
    """The last row of a Tensor (or numpy array) as numpy values, float32 for bf16/quantized dtypes.

    Only that row is widened, so a summary of a [vocab, dim] quantized matrix costs one row's work."""
    data = getattr(arg, "data", None)
    if isinstance(arg, np.ndarray) or not isinstance(data, np.ndarray):
        values = np.asarray(arg)
        return values.reshape(-1, values.shape[-1])[-1] if values.ndim else values.reshape(1)
    shape = tuple(arg.shape)
    if not shape:
        return np.asarray(arg.numpy()).reshape(1)
    row = data.reshape(-1, data.shape[-1])[-1:]  # the storage of the last row (bytes for quantized)
    return np.asarray(type(arg)((1, shape[-1]), arg.dtype, row).numpy()).reshape(-1)


def _fixed(value: float, width: int = VALUE_WIDTH, sign: bool = True) -> str:
    return format(float(value), "+.4g" if sign else ".4g").rjust(width)


def summarize_values(arg: Any) -> str:
    """The fixed-width summary of a tensor's last row (see the module docstring), '' if it has no values."""
    row = _last_row(arg)
    if row.size == 0:
        return ""
    more = " …" if row.size > VALUES_SHOWN else ""
    head = row[:VALUES_SHOWN]
    if np.iscomplexobj(row):
        pairs = " ".join(f"({_fixed(v.real)}{_fixed(v.imag)}i)" for v in head)
        return f" last row [{pairs}{more}]"
    if row.dtype.kind in "iub":
        return f" last row [{' '.join(str(int(v)) for v in head)}{more}]"
    with np.errstate(all="ignore"):  # a masked row holds -inf: its mean is -inf, its std nan
        wide = row.astype(np.float64)
        mean, std = wide.mean(), wide.std()
    values = " ".join(_fixed(v) for v in head)
    return f" last row [{values}{more}] mean {_fixed(mean)} std {_fixed(std, 9, sign=False)}"


def _format_arg(arg: Any, values: bool = False) -> Any:
    if callable(arg) and getattr(arg, "__name__", "") == "<lambda>":
        arg = arg()  # a lazy argument: built only now that the line is written
    shape = getattr(arg, "shape", None)
    if shape is not None and hasattr(arg, "dtype") and not isinstance(arg, (str, bytes)):
        if values:
            return format_shape(tuple(shape)) + summarize_values(arg)
        return format_shape(tuple(shape))
    return arg


class Logger:
    """Console + debug.log. Use the module-level `GLogger` instance."""

    def __init__(self) -> None:
        self.console = Console(stderr=True, highlight=False)
        self.debug_enabled = False
        self.trace_values = False  # tensor arguments followed by a summary of their values
        self.debug_path: str | None = None
        self._debug_file: IO[str] | None = None
        self._last = time.perf_counter()
        # Bound to a no-op until debug is switched on: see the module docstring.
        self.DebugPrintf: Callable[..., None] = _noop
        self.DebugStage: Callable[..., None] = _noop
        self.DebugSeparator: Callable[..., None] = _noop
        self.DebugValues: Callable[..., None] = _noop  # lines written only with values on

    # ---- set-up -------------------------------------------------------------------------------
    def Init(self, debug: bool = False, debug_path: str = "debug.log", values: bool = False) -> None:
        """Open (truncate) the debug log when `debug` is on; raises OSError if it cannot be written.

        `values` (only with `debug`) adds a summary of each tensor's values to the lines."""
        self.Close()
        self.debug_enabled = debug
        self.trace_values = debug and values
        if not debug:
            self.DebugPrintf = _noop
            self.DebugStage = _noop
            self.DebugSeparator = _noop
            self.DebugValues = _noop
            return
        self._debug_file = _open_locked(debug_path)
        self.debug_path = debug_path
        self._last = time.perf_counter()
        self.DebugPrintf = self._debug_printf
        self.DebugStage = self._debug_stage
        self.DebugSeparator = self._debug_separator
        self.DebugValues = self._debug_printf if values else _noop

    def Close(self) -> None:
        """Flush and close the debug log. A failing flush (disk full) raises OSError, but the file
        is closed and forgotten all the same, so nothing retries the write at exit."""
        file, self._debug_file = self._debug_file, None
        if file is not None:
            file.close()  # close() flushes first, and closes even when that flush fails

    def Flush(self) -> None:
        if self._debug_file is not None:
            self._debug_file.flush()

    # ---- debug.log side -----------------------------------------------------------------------
    def _write_debug(self, message: str) -> None:
        now = time.perf_counter()
        elapsed = now - self._last
        self._last = now
        stamp = datetime.now().strftime("%H:%M:%S.%f")
        assert self._debug_file is not None
        self._debug_file.write(f"[DEBUG]{stamp} {message} ({elapsed:.4f} secs)\n")

    def _debug_printf(self, fmt: str, *args: Any) -> None:
        values = self.trace_values
        self._write_debug(fmt % tuple(_format_arg(a, values) for a in args) if args else fmt)

    def _debug_stage(self, number: int, title: str) -> None:
        self._write_debug(f"==== STAGE {number:02d}: {title.upper()} ====")

    def _debug_separator(self, fmt: str, *args: Any) -> None:
        title = fmt % args if args else fmt
        self._write_debug(f"=================================== {title} ===================================")

    # ---- console side (stderr; stdout is reserved for generated text) --------------------------
    def ConsoleInfo(self, message: str) -> None:
        self.console.print(message)
        self._mirror("INFO", message)

    def ConsoleWarn(self, message: str) -> None:
        self.console.print(f"[yellow]{message}[/yellow]")
        self._mirror("WARN", message)

    def ConsoleError(self, message: str) -> None:
        self.console.print(f"[bold red]{message}[/bold red]", markup=True)
        self._mirror("ERROR", message)

    def _mirror(self, level: str, message: str) -> None:
        if self._debug_file is not None:
            stamp = datetime.now().strftime("%H:%M:%S.%f")
            self._debug_file.write(f"[{level}]{stamp} {message}\n")


GLogger = Logger()


def _open_locked(path: str) -> IO[str]:
    """Open `path` for writing, take its lock, and only then empty it (never another run's log)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                raise DebugLogInUseError(
                    f"the debug log {path} is being written by another running process{holder}; wait for it "
                    f"to finish, or give this run its own file with --debug-log"
                ) from None
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.ftruncate(fd, 0)  # a device (/dev/null, /dev/full) has nothing to empty, and refuses it
        return os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 16)
    except BaseException:
        os.close(fd)
        raise


def _lock_holder(fd: int) -> str:
    """' (pid 1234)' from Linux's /proc/locks for the file open as `fd`, or '' when unknown."""
    info = os.fstat(fd)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                # "1: FLOCK  ADVISORY  WRITE 1234 00:2f:1234567 0 EOF" ("->" marks a waiter)
                if "->" not in fields and len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == device:
                    return f" (pid {fields[4]})"
    except OSError:
        pass
    return ""


def debug_log_writable(path: str) -> str | None:
    """Return None if `path` can be opened for writing, else a message saying why not."""
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        return f"cannot write the debug log {path!r}: {exc.strerror or exc}"
    return None


__all__ = ["GLogger", "Logger", "format_shape", "summarize_values", "debug_log_writable"]
