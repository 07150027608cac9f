"""SetThreads / GetThreads: the thread count of the parallel kernels; results do not depend on it."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import llamanuts.ml.matmul as matmul_module
import llamanuts.ml.threads as threads_module
from llamanuts import ml
from llamanuts.common import LlamaError
from llamanuts.ml import DT_BF16, Tensor
from ml_reference import rne_bf16_array


@pytest.fixture
def restore_threads():
    before = ml.GetThreads()
    yield
    ml.SetThreads(before)


def test_set_threads_returns_the_value_in_force(restore_threads):
    assert ml.SetThreads(1) == 1
    assert ml.GetThreads() == 1


def test_one_thread_and_all_threads_give_identical_results(restore_threads, monkeypatch):
    # the parallel matrix-vector kernel, forced; each output element is one thread's dot product,
    # so the split over threads must not change a single bit.
    monkeypatch.setattr(matmul_module, "_PARALLEL_MIN_BYTES", 0)
    rng = np.random.default_rng(9)
    w = Tensor.from_numpy(rne_bf16_array(rng.uniform(-0.25, 0.25, size=(301, 256))), DT_BF16)
    x = Tensor.from_numpy(rng.standard_normal((2, 256)).astype(np.float32))
    ml.SetThreads(1)
    one = ml.LinearTransformation(x, w).data.copy()
    ml.SetThreads(numba.config.NUMBA_NUM_THREADS)
    many = ml.LinearTransformation(x, w).data
    np.testing.assert_array_equal(one.view(np.uint32), many.view(np.uint32))


def test_softmax_is_the_same_with_one_thread(restore_threads):
    x = Tensor.from_numpy(np.random.default_rng(10).uniform(-5, 5, size=(64, 1024)).astype(np.float32))
    ml.SetThreads(1)
    one = ml.Softmax(x).data.copy()
    ml.SetThreads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(one, ml.Softmax(x).data)


@pytest.mark.parametrize("count", [0, -1, "too many"])
def test_invalid_thread_counts_are_an_error(count, restore_threads):
    limit = numba.config.NUMBA_NUM_THREADS
    n = limit + 1 if count == "too many" else count
    with pytest.raises(LlamaError, match=rf"SetThreads: threads must be between 1 and {limit}, got {n}"):
        ml.SetThreads(n)


def _policy_seen_by_a_fresh_interpreter(env_overrides: dict[str, str]) -> list[str]:
    import os
    import subprocess
    import sys

    names = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(env_overrides)
    code = "import llamanuts, os; print(*(os.environ.get(name, '-') for name in %r))" % (names,)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_importing_llamanuts_makes_idle_openmp_workers_spin_briefly_and_gives_blas_half_the_cores():
    # src/common/threadpolicy.py: libgomp spins about 2 ms before sleeping, OpenBLAS's workers sleep
    # after a short spin, and BLAS gets half the cores
    import os

    half = str(max(1, (os.cpu_count() or 2) // 2))
    assert _policy_seen_by_a_fresh_interpreter({}) == ["-", "30000", "12", half]


def test_a_thread_policy_set_by_the_user_wins():
    chosen = {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_THREAD_TIMEOUT": "20", "OPENBLAS_NUM_THREADS": "3"}
    # (a wait policy of the user's own leaves libgomp's spin count to libgomp too)
    assert _policy_seen_by_a_fresh_interpreter(chosen) == ["ACTIVE", "-", "20", "3"]


# ---- the core watch: fewer threads while other processes hold cores (src/ml/threads.py) ---------


class FakeMachine:
    """/proc/stat's busy ticks (100 a second per busy core) and our own CPU time, on a fake clock."""

    def __init__(self, cores: int, others_busy: float, own_busy: float = 1.0) -> None:
        self.now, self.cpus = 100.0, frozenset(range(cores))
        self.others_busy, self.own_busy = others_busy, own_busy
        self.ticks, self.own = 0.0, 0.0
        self.stat_readable = True

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.ticks += 100 * seconds * (self.others_busy + self.own_busy)
        self.own += seconds * self.own_busy

    def watch(self, requested: int) -> threads_module.CoreWatch:
        return threads_module.CoreWatch(
            requested=requested, cpus=self.cpus, read_ticks=lambda cpus: int(self.ticks) if self.stat_readable else None,
            own_cpu_s=lambda: self.own, clock=lambda: self.now, ticks_per_s=100.0,
        )


def _look(machine: FakeMachine, watch: threads_module.CoreWatch) -> int:
    machine.advance(threads_module.WATCH_INTERVAL_S + 0.01)
    return watch.threads_now()


def test_core_watch_keeps_every_requested_thread_on_a_quiet_machine():
    machine = FakeMachine(cores=2, others_busy=0.1, own_busy=2.0)
    watch = machine.watch(requested=2)
    assert [_look(machine, watch) for _ in range(4)] == [2, 2, 2, 2]


def test_core_watch_drops_to_the_cores_left_while_another_process_keeps_one_busy():
    machine = FakeMachine(cores=2, others_busy=1.0, own_busy=1.0)
    watch = machine.watch(requested=2)
    _look(machine, watch)  # the first look has nothing to compare with
    assert _look(machine, watch) == 1
    machine.others_busy = 0.0
    assert _look(machine, watch) == 2  # and back when the other process stops


def test_core_watch_rounds_the_free_cores_to_the_nearest():
    for others, expected in ((0.4, 4), (0.6, 3), (2.6, 1), (3.9, 1)):
        machine = FakeMachine(cores=4, others_busy=others)
        watch = machine.watch(requested=4)
        _look(machine, watch)
        assert _look(machine, watch) == expected, others


def test_core_watch_never_uses_more_threads_than_requested():
    machine = FakeMachine(cores=8, others_busy=0.0)
    watch = machine.watch(requested=3)
    _look(machine, watch)
    assert _look(machine, watch) == 3


def test_core_watch_looks_again_only_after_its_interval():
    machine = FakeMachine(cores=2, others_busy=1.0)
    watch = machine.watch(requested=2)
    _look(machine, watch)
    reads = []
    watch.read_ticks = lambda cpus: reads.append(1) or int(machine.ticks)
    machine.advance(threads_module.WATCH_INTERVAL_S / 4)
    watch.threads_now()
    watch.threads_now()
    assert reads == []
    _look(machine, watch)
    assert reads == [1]


def test_core_watch_after_an_idle_gap_uses_every_thread_until_the_next_look():
    # an old window (another program ran while this one waited) says nothing about now
    machine = FakeMachine(cores=2, others_busy=1.0)
    watch = machine.watch(requested=2)
    _look(machine, watch)
    assert _look(machine, watch) == 1
    machine.advance(5.0)  # idle for 5 s while the other process kept its core busy...
    machine.others_busy = 0.0  # ...and has just stopped
    assert watch.threads_now() == 2
    assert _look(machine, watch) == 2


def test_core_watch_without_proc_stat_uses_the_requested_count():
    machine = FakeMachine(cores=2, others_busy=1.5)
    machine.stat_readable = False
    watch = machine.watch(requested=2)
    assert [_look(machine, watch) for _ in range(3)] == [2, 2, 2]
    assert not watch.enabled


def test_read_busy_ticks_sums_the_busy_fields_of_our_cpus_only(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  900 900 900 900 900 900 900 900 0 0\n"
        "cpu0 1 2 3 1000 10 4 5 77 0 0\n"  # user nice system idle iowait irq softirq steal ...
        "cpu1 10 20 30 1000 10 40 50 77 0 0\n"
        "intr 12345 0 0\n"
    )
    assert threads_module.read_busy_ticks(frozenset({0}), str(stat)) == 1 + 2 + 3 + 4 + 5
    assert threads_module.read_busy_ticks(frozenset({0, 1}), str(stat)) == 15 + 150
    assert threads_module.read_busy_ticks(frozenset({0}), str(tmp_path / "missing")) is None
