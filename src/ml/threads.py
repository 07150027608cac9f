"""How many threads the parallel kernels use, and when they use fewer.

Idle OpenMP workers spin for a moment (about 2 ms) before they sleep (src/common/threadpolicy.py),
so the parallel launches of a decode step, a few per layer and tens of microseconds apart, find the
other thread awake: a launch then costs about 1.5 us, where waking a sleeping worker cost 45-70 us
on the 2-core virtual machine this was measured on (bench/threads.py). Spinning is only safe while
each of our threads has a core: when another process keeps a core busy, the thread that finished
its share of a launch spins while its partner waits for the core, and decode collapsed (110M shape:
25 tok/s spinning on two threads against 66 sleeping, and 70-78 on one thread).

So the kernels ask `parallel_ok()` before a parallel launch. Every 0.1 s it looks at how much CPU
time the other processes used on our cores since the last look (the kernel's counters in /proc/stat,
minus this process's own CPU time) and keeps as many threads in force as there are cores left for
us, at least one and at most the count set by SetThreads. With one thread in force the kernels take
their serial versions, and the idle worker falls asleep after its spin. The look costs about 20 us
ten times a second; between looks it is one clock read. `LLAMANUTS_THREAD_WATCH=off` turns it off
(the count set by SetThreads is then always used), for benchmarks of the policy itself; without
/proc/stat (not Linux) it is off too.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numba

WATCH_ENV = "LLAMANUTS_THREAD_WATCH"
WATCH_INTERVAL_S = 0.1  # how often the other processes' CPU use is looked at
# A look longer after the last one than this (the program sat idle between two tasks, waiting for
# its user or for another program that has since finished) says little about now: the count goes
# back to the requested one, and the next look, WATCH_INTERVAL_S later, decides.
STALE_AFTER_S = 0.3
_PROC_STAT = "/proc/stat"


def read_busy_ticks(cpus: frozenset[int], path: str = _PROC_STAT) -> int | None:
    """Clock ticks the CPUs in `cpus` spent busy (user, nice, system, irq, softirq) since boot, or
    None where /proc/stat cannot be read. Idle, waiting for I/O, and time stolen by the hypervisor
    (when the virtual CPU wanted to run and could not) do not count."""
    try:
        with open(path, "rb") as stat:
            text = stat.read(1 << 16)  # (a few KB; the CPU lines come first)
    except OSError:
        return None
    total = 0
    for line in text.split(b"\n"):
        if not line.startswith(b"cpu") or line[3:4] in (b" ", b""):
            continue
        name, *fields = line.split()
        try:
            cpu = int(name[3:])
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
        except ValueError:
            return None
        if cpu in cpus:
            total += user + nice + system + irq + softirq
    return total


@dataclass
class CoreWatch:
    """The count of threads in force: the requested one, lowered while other processes hold cores."""

    requested: int
    cpus: frozenset[int]
    read_ticks: Callable[[frozenset[int]], int | None] = read_busy_ticks
    own_cpu_s: Callable[[], float] = time.process_time
    clock: Callable[[], float] = time.monotonic
    ticks_per_s: float = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    enabled: bool = True
    in_force: int = field(default=0, init=False)
    _next_look: float = field(default=0.0, init=False)
    _last: tuple[float, int, float] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.in_force = self.requested

    def others_cores(self, now: float) -> float | None:
        """Cores' worth of CPU the other processes used since the last look (None at the first look
        and after a stale one)."""
        ticks = self.read_ticks(self.cpus)
        if ticks is None:
            self.enabled = False
            return None
        own = self.own_cpu_s()
        last, self._last = self._last, (now, ticks, own)
        if last is None or not 0 < now - last[0] <= STALE_AFTER_S:
            return None
        busy_s = (ticks - last[1]) / self.ticks_per_s
        return max(0.0, busy_s - (own - last[2])) / (now - last[0])

    def threads_now(self) -> int:
        """The threads a parallel launch should use now (looks again every WATCH_INTERVAL_S)."""
        if not self.enabled:
            return self.requested
        now = self.clock()
        if now >= self._next_look:
            self._next_look = now + WATCH_INTERVAL_S
            others = self.others_cores(now)
            if others is None:
                self.in_force = self.requested  # (a first or stale look, or no /proc/stat)
            else:
                # cores left for us, rounded to the nearest: 0.4 of a core taken still leaves two
                free = int(len(self.cpus) - others + 0.5)
                self.in_force = max(1, min(self.requested, free))
        return self.in_force


def _our_cpus() -> frozenset[int]:
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset(range(os.cpu_count() or 1))


_WATCH = CoreWatch(
    requested=int(numba.config.NUMBA_NUM_THREADS),
    cpus=_our_cpus(),
    enabled=os.environ.get(WATCH_ENV, "on").lower() not in ("off", "0", "no", "false"),
)


_set_in_numba = _WATCH.requested  # Numba's own default is every CPU, NUMBA_NUM_THREADS


def parallel_ok() -> bool:
    """Whether the parallel launch about to happen may use more than one thread; sets the count in
    force for Numba's kernels first (see the module docstring)."""
    global _set_in_numba
    n = _WATCH.threads_now()
    if n != _set_in_numba:
        numba.set_num_threads(n)
        _set_in_numba = n
    return n > 1


def SetThreads(n: int) -> int:
    """Use up to `n` threads in the parallel kernels (1..number of CPUs); returns the value set."""
    limit = numba.config.NUMBA_NUM_THREADS
    if not 1 <= n <= limit:
        from ..common.errors import LlamaError

        raise LlamaError(f"SetThreads: threads must be between 1 and {limit}, got {n}")
    global _set_in_numba
    _WATCH.requested = n
    _WATCH.in_force = n
    numba.set_num_threads(n)
    _set_in_numba = n
    return n


def GetThreads() -> int:
    """The count set by SetThreads (the parallel kernels may use fewer while other processes hold cores)."""
    return _WATCH.requested


def ThreadsInForce() -> int:
    """The threads the next parallel launch would use."""
    return _WATCH.in_force
