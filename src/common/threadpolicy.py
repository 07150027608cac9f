"""The thread policy: how idle worker threads wait. Applied when llamanuts is imported.

Two thread pools share the cores. Numba's parallel kernels run on OpenMP's (libgomp); numpy's BLAS
(the prefill of float32 weights) runs on OpenBLAS's own. An idle worker of either can spin (keep a
core busy, checking for work) or sleep (be woken by the next task). Measured (bench.threads; docs/18):
- waking a sleeping OpenMP worker costs 6-8 us on some machines and 45-70 us on others (a 2-core
  virtual machine, where a halted virtual CPU must be woken through the hypervisor); a decode step
  launches a few parallel kernels per layer, tens of microseconds apart, so there sleeping workers
  made two threads no faster than one (110M shape: 68-71 tok/s on two, 72-76 on one);
- so OpenMP's idle workers spin for a moment, GOMP_SPINCOUNT=30000 (about 2 ms of spinning
  measured after a launch), which covers the gaps inside a decode step and between tokens, then
  sleep: a launch then costs about 1.5 us (110M: 89-107 tok/s on two threads). A chat waiting for
  the user costs nothing after those 2 ms;
- a spinning worker collapses when another process holds a core (it spins while its partner
  waits for the core: 110M decode 25 tok/s), which src/ml/threads.py prevents by using fewer
  threads while other processes keep cores busy;
- OpenBLAS's idle workers spin for 2^28 cycles (a tenth of a second) after each product, through
  the OpenMP kernels that follow: a 32-token prefill of the 110M shape ran at 13-20 tokens/s on a
  busy hour, and at 51-52 with OpenBLAS's workers sleeping after 2^12 cycles (1-2 us);
- inside a product OpenBLAS's threads meet at barriers by spinning, and one whose core is taken
  holds up the others: on 2 cores with other work running, one BLAS thread ran the same prefill at
  70-160 tokens/s against 20-40 with two, and `x @ w.T` of a [32 768] by [768 2048] product took
  2.2 ms against 16-32 ms. A single thread loses little when the machine is quiet (one core reaches
  about 70 of the 80 GFLOP/s two reached), so BLAS gets half the cores, at least one, and the other
  half stays free for whatever else the machine runs.
Both libraries read their setting once, when they start, so this must run before numpy is
imported; llamanuts/__init__.py calls it first thing. A setting already in the environment (the
user's) wins: OMP_WAIT_POLICY or GOMP_SPINCOUNT set by the user leaves libgomp's waiting to them.
"""

from __future__ import annotations

import os

THREAD_POLICY = {
    "GOMP_SPINCOUNT": "30000",  # libgomp: idle workers spin about 2 ms, then sleep
    "OPENBLAS_THREAD_TIMEOUT": "12",  # OpenBLAS: idle workers sleep after 2^12 cycles
    "OPENBLAS_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2)),  # BLAS: half the cores
}


def set_thread_policy() -> None:
    for name, value in THREAD_POLICY.items():
        if name == "GOMP_SPINCOUNT" and "OMP_WAIT_POLICY" in os.environ:
            continue  # the user chose how libgomp waits
        os.environ.setdefault(name, value)
