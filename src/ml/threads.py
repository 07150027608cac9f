"""How many threads the parallel kernels use."""

from __future__ import annotations

import numba


def SetThreads(n: int) -> int:
    """Use `n` threads in the parallel kernels (1..number of CPUs); returns the value in force."""
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        from ..common.errors import LlamaError

        raise LlamaError(f"SetThreads: threads must be between 1 and {limit}, got {n}")
    numba.set_num_threads(n)
    return n


def GetThreads() -> int:
    return int(numba.get_num_threads())
