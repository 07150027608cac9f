"""SetThreads / GetThreads: the thread count of the parallel kernels; results do not depend on it."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import llamanuts.ml.matmul as matmul_module
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

    names = ("OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(env_overrides)
    code = "import llamanuts, os; print(*(os.environ[name] for name in %r))" % (names,)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_importing_llamanuts_makes_idle_workers_of_both_pools_sleep_and_gives_blas_half_the_cores():
    # src/common/threadpolicy.py: libgomp's passive policy, OpenBLAS's short spin before sleeping
    import os

    half = str(max(1, (os.cpu_count() or 2) // 2))
    assert _policy_seen_by_a_fresh_interpreter({}) == ["PASSIVE", "12", half]


def test_a_thread_policy_set_by_the_user_wins():
    chosen = {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_THREAD_TIMEOUT": "20", "OPENBLAS_NUM_THREADS": "3"}
    assert _policy_seen_by_a_fresh_interpreter(chosen) == ["ACTIVE", "20", "3"]
