"""MmapFile: a file mapped read-only into memory, so tensors can be numpy views over its bytes.

Mapping costs no reading: the kernel brings a page in the first time a kernel (or a check) touches
it, which is why loading a 13 GB checkpoint takes as long as loading a 1 MB one. Several tensors
share one map, and the map lives as long as any view over it does.

What a map cannot protect against: the file changing under it. If another program truncates the
file while it is mapped, touching a page past the new end raises SIGBUS and the process dies with
no Python error at all (there is no way to turn that fault into an exception). Do not shorten or
rewrite a model file while it is in use; replacing it (write a new file, then rename) is safe, as
the map keeps the old file's pages.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np

from .errors import ModelFileError
from .files import open_regular_file


def _advise_huge_pages(buffer: mmap.mmap) -> None:
    """Ask for the file's pages in 2 MB pieces where the kernel can (Linux, transparent huge pages
    for files: a hint, ignored elsewhere). Decode streams every weight once per token, and the
    streaming rate depends on it: measured on the Llama 2 7B checkpoint (13.5 GB), matrices read at
    22 GB/s with 40% of the file mapped in 2 MB pages and at 27-30 GB/s with all of it, once the
    file's pages had been read again under this advice. Pages already cached keep their size."""
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is None:
        return
    try:
        buffer.madvise(advice)
    except OSError:
        pass  # (no transparent huge pages on this kernel: 4 KB pages, as without the advice)


class MmapFile:
    """Open `path` and map all of it read-only. Use as a context manager or call `close()`.

    `buffer` is the `mmap` object (bytes-like: slicing copies, `np.frombuffer` does not).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Only a regular file can be mapped: the message says what the path is otherwise (missing,
        # a dangling symlink, a directory, a FIFO, a device).
        fd, self.size = open_regular_file(self.path, ModelFileError)
        try:
            if self.size == 0:
                # mmap refuses an empty file with a bare ValueError; say what it means instead.
                raise ModelFileError(self.path, "file is empty (0 bytes)")
            # The descriptor may be closed right after mapping: the map keeps its own reference.
            self.buffer: mmap.mmap = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            _advise_huge_pages(self.buffer)
        except OSError as exc:
            raise ModelFileError(self.path, f"cannot map the file: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    def array(self, dtype: np.dtype | type, offset: int, count: int) -> np.ndarray:
        """A read-only numpy view of `count` items of `dtype` starting at byte `offset`. No copy.

        The caller has already checked the range; this check only guards against a caller bug.
        """
        itemsize = np.dtype(dtype).itemsize
        if offset < 0 or count < 0 or offset + count * itemsize > self.size:
            raise ModelFileError(
                self.path,
                f"range [{offset}, {offset + count * itemsize}) lies outside the file ({self.size} bytes)",
            )
        return np.frombuffer(self.buffer, dtype=dtype, count=count, offset=offset)

    def read(self, offset: int, length: int) -> bytes:
        """A copy of `length` bytes at `offset` (for headers and the small pickle), bounds-checked."""
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ModelFileError(
                self.path, f"cannot read bytes [{offset}, {offset + length}): the file has {self.size} bytes"
            )
        return self.buffer[offset : offset + length]

    def close(self) -> None:
        """Unmap now if no numpy view uses the map; otherwise the last view's release unmaps it."""
        try:
            self.buffer.close()
        except BufferError:
            # Tensors still point into the map: closing would pull the pages from under them.
            pass

    @property
    def closed(self) -> bool:
        return self.buffer.closed

    def __enter__(self) -> "MmapFile":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MmapFile({str(self.path)!r}, {self.size} bytes)"


__all__ = ["MmapFile"]
