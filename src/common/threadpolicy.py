"""The thread policy: how idle worker threads wait. Applied when llamanuts is imported.

Two thread pools share the cores. Numba's parallel kernels run on OpenMP's (libgomp); numpy's BLAS
(prefill's matrix products) runs on OpenBLAS's own. An idle worker of either can spin (keep a core
busy, checking for work) or sleep (be woken by the next task, a few microseconds later). On 2
cores a spinning worker takes the core that the other pool, or another program, needs, and every
parallel launch then waits for a worker that cannot run. Measured (bench.threads; docs/18):
- OpenMP workers that spin, even briefly (GOMP_SPINCOUNT=3000), decoded 2-4x slower than sleeping
  ones while the machine had other work, and spinning for longer collapsed decode to about 1
  token/s; sleeping costs a wake-up (6-8 us) per parallel launch, which the kernels keep few;
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
user's) wins.
"""

from __future__ import annotations

import os

THREAD_POLICY = {
    "OMP_WAIT_POLICY": "PASSIVE",  # libgomp: idle workers sleep at once
    "OPENBLAS_THREAD_TIMEOUT": "12",  # OpenBLAS: idle workers sleep after 2^12 cycles
    "OPENBLAS_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2)),  # BLAS: half the cores
}


def set_thread_policy() -> None:
    for name, value in THREAD_POLICY.items():
        os.environ.setdefault(name, value)
