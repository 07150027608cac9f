"""Opening the files a user names: only regular files, bounded reads, and messages that say what a
path is when it is not one.

`/dev/zero` as a tokenizer reads forever, a FIFO blocks `open` until a writer comes, and a dangling
symlink is not "not found" (the link is there; what it points to is not). So a file is opened
with O_NONBLOCK (a FIFO then opens at once instead of waiting), checked with fstat on the open
descriptor (no gap between the check and the read), and read only if it is a regular file no
larger than the caller's limit, which is checked before any byte is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Callable

from .errors import LlamaError

ErrorFactory = Callable[[Path, str], LlamaError]

# What `describe_path` calls each kind of non-regular file.
_KINDS = (
    (stat.S_ISDIR, "is a directory"),
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)


def describe_mode(mode: int) -> str | None:
    """None for a regular file, else what the st_mode says the path is."""
    if stat.S_ISREG(mode):
        return None
    for test, text in _KINDS:
        if test(mode):
            return text
    return "is not a regular file"


def describe_path(path: str | Path) -> str | None:
    """None if `path` is (or links to) a regular file; else why not, in words:
    'not found', 'is a dangling symbolic link to X', 'is a directory', 'is a named pipe (FIFO)', ..."""
    path = Path(path)
    try:
        link = path.lstat()
    except FileNotFoundError:
        return "not found"
    except NotADirectoryError:
        return "not found (a part of the path is not a directory)"
    except OSError as exc:
        return f"cannot be examined: {exc.strerror or exc}"
    try:
        target = path.stat()
    except FileNotFoundError:
        if stat.S_ISLNK(link.st_mode):
            return f"is a dangling symbolic link (to {os.readlink(path)!r}, which does not exist)"
        return "not found"
    except OSError as exc:
        return f"cannot be examined: {exc.strerror or exc}"
    return describe_mode(target.st_mode)


def open_regular_file(path: str | Path, error: ErrorFactory, what: str = "file") -> tuple[int, int]:
    """Open `path` read-only; (descriptor, size) of a regular file, else `error(path, why)` is raised,
    `why` starting with `what` ("tokenizer file not found", "file is a named pipe (FIFO), ...").

    The caller owns the descriptor (os.close it).
    """
    path = Path(path)
    problem = describe_path(path)
    if problem is not None:
        raise error(path, f"{what} {problem}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(path, f"{what} cannot be opened: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        problem = describe_mode(info.st_mode)  # it may have changed since describe_path looked
        if problem is not None:
            raise error(path, f"{what} {problem}")
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_regular_file(path: str | Path, max_bytes: int, error: ErrorFactory, what: str = "file") -> bytes:
    """The whole content of a regular file of at most `max_bytes` bytes; anything else is `error`."""
    path = Path(path)
    fd, size = open_regular_file(path, error, what)
    try:
        if size > max_bytes:
            raise error(path, f"{what} is {size} bytes, more than the limit of {max_bytes} bytes")
        chunks: list[bytes] = []
        total = 0
        while True:
            # One byte more than the limit: a file that grows while it is read is still caught.
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise error(path, f"{what} grew past the limit of {max_bytes} bytes while it was read")
        return b"".join(chunks)
    except OSError as exc:
        raise error(path, f"cannot read the {what}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def read_text_file(path: str | Path, max_bytes: int, error: ErrorFactory, what: str = "text file") -> str:
    """`read_regular_file`, decoded as UTF-8; invalid UTF-8 is an error that names the byte."""
    data = read_regular_file(path, max_bytes, error, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            Path(path), f"{what} is not valid UTF-8: byte {exc.start} is 0x{data[exc.start]:02x} ({exc.reason})"
        ) from None


__all__ = ["describe_mode", "describe_path", "open_regular_file", "read_regular_file", "read_text_file"]
