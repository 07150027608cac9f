"""How much memory this process may still allocate, and a check to make before a big allocation.

A params.json can ask for a KV cache of terabytes with one number (`max_seq_len`, `n_layers`), and
numpy would try: a MemoryError traceback at best, the kernel's OOM killer at worst (np.full touches
every page). So the big allocations an input implies are checked first against the smallest of:

- MemAvailable in /proc/meminfo (free memory plus what the kernel can reclaim, e.g. page cache,
  which is where mapped weights live);
- the cgroup's memory limit minus its usage (a container may allow far less than the host has);
- the soft RLIMIT_AS minus the address space already in use (`ulimit -v`, and the fuzz suite).

Where none of these can be read (not Linux), the check lets the allocation go ahead.
"""

from __future__ import annotations

import os
import resource
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import InsufficientMemoryError

_CGROUP_V2 = Path("/sys/fs/cgroup")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except (OSError, ValueError):
        return None
    return int(text) if text.isdigit() else None  # "max" (no limit) reads as None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    for limit_file, usage_file in (
        (_CGROUP_V2 / "memory.max", _CGROUP_V2 / "memory.current"),
        (_CGROUP_V1 / "memory.limit_in_bytes", _CGROUP_V1 / "memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        # cgroup v1 spells "no limit" as a huge number; anything beyond 2^60 is no limit.
        if limit is not None and usage is not None and limit < 1 << 60:
            return max(0, limit - usage)
    return None


def _address_space_in_use() -> int | None:
    """Bytes of address space this process has mapped (VmSize), or None if unknown."""
    try:
        fd = os.open("/proc/self/statm", os.O_RDONLY)
        try:
            pages = int(os.read(fd, 128).split()[0])
        finally:
            os.close(fd)
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _address_space_available() -> int | None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    in_use = _address_space_in_use()
    return None if in_use is None else max(0, soft - in_use)


def available_memory() -> int | None:
    """Bytes this process can still allocate (the smallest known bound), or None if unknown."""
    known = [v for v in (_meminfo_available(), _cgroup_available(), _address_space_available()) if v is not None]
    return min(known) if known else None


def format_bytes(count: int) -> str:
    """1536 -> '1.5 KiB'; 3 * 2**30 -> '3.0 GiB'."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{count} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_allocation(
    what: str, nbytes: int, detail: str, advice: str | Callable[[int], str] = ""
) -> None:
    """Raise InsufficientMemoryError if `nbytes` for `what` is more than `available_memory()`.

    `detail` says how the size arises ("2 x 32 layers x 4096 positions x ..."); `advice` says what
    to do, or is a function of the available bytes that says it (e.g. the largest size that fits).
    """
    available = available_memory()
    if available is None or nbytes <= available:
        return
    message = (
        f"{what} needs {format_bytes(nbytes)} ({detail}), but only {format_bytes(available)} of memory "
        f"is available"
    )
    text = advice(available) if callable(advice) else advice
    raise InsufficientMemoryError(message + (f"; {text}" if text else ""))


@contextmanager
def address_space_cap(extra_bytes: int) -> Iterator[None]:
    """While inside, this process may map at most `extra_bytes` more address space than it holds on
    entry: the soft RLIMIT_AS is lowered, so an allocation beyond it fails at once with MemoryError
    (instead of growing until the machine swaps), and restored on exit.

    For work whose memory cannot be bounded by checking sizes first, because it builds values out
    of other values in too many ways (a chat template is a program). A limit already tighter is
    kept; where the address space in use cannot be read (not Linux), nothing is capped.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = _address_space_in_use()
    cap = None if in_use is None else in_use + extra_bytes
    if hard != resource.RLIM_INFINITY and cap is not None:
        cap = min(cap, hard)
    if cap is None or (soft != resource.RLIM_INFINITY and soft <= cap):
        yield
        return
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


__all__ = ["address_space_cap", "available_memory", "check_allocation", "format_bytes"]
