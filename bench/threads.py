"""The thread policy: how idle OpenMP workers wait, and the two ways a policy can fail.

    python -m bench.threads [--policies passive,spin-short,active] [--json]

Numba's parallel kernels run on libgomp's thread pool; numpy's BLAS (prefill's matrix products)
runs on a pool of its own. An idle libgomp worker first spins (burns its core, checking for work),
then sleeps. Spinning makes the next parallel launch cheap (about 1.5 us, against 6-8 us to wake a
sleeping worker), and decode launches a few per layer; but a spinning worker holds a core that
someone else may need. Two failure modes follow, both measured here, each policy in a fresh process:

- **BLAS starvation in prefill**: between two BLAS calls, a parallel kernel (widening a block of
  bf16 weights) leaves its workers spinning while BLAS's threads want the same two cores;
- **another process holding a core**: with one core taken by a busy process (a Python busy loop,
  started here), a worker that spins uses up its share of that core, and every launch then waits for
  it to be scheduled again.

Policies (POLICIES below): `passive`, the default, where both pools' idle workers sleep at once (or
after 2^12 cycles) and BLAS has half the cores; `blas-all-cores`, the same with BLAS on every core;
`blas-spins`, the policy before, with BLAS on every core and its workers spinning 2^28 cycles after
each product; and three spinning OpenMP policies, `spin-short` (GOMP_SPINCOUNT=3000: tens of
microseconds), `spin-long` (30000, the setting an earlier report tried) and `active`
(OMP_WAIT_POLICY=ACTIVE: spin for minutes). Each runs bench.decode on
the fixed-cost shape (decode: launch-bound), smollm2-135M (decode) and 110M (decode and a 32-token
prefill), quiet and with the busy process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from llamanuts.common.threadpolicy import THREAD_POLICY

REPO = Path(__file__).resolve().parents[1]
SHORT_SPIN = "3000"  # libgomp counts roughly 100000 spins per millisecond: a few tens of microseconds
BLAS_DEFAULT_TIMEOUT = "28"  # OpenBLAS's own default: idle workers spin 2^28 cycles before they sleep

CORES = str(os.cpu_count() or 2)

POLICIES: dict[str, dict[str, str]] = {
    # the default (src/common/threadpolicy.py): idle workers of both pools sleep, BLAS on half the cores
    "passive": dict(THREAD_POLICY),
    # BLAS on every core, its idle workers sleeping after 2^12 cycles
    "blas-all-cores": {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "12", "OPENBLAS_NUM_THREADS": CORES},
    # the policy before: OpenMP passive, BLAS on every core and spinning 2^28 cycles after each product
    "blas-spins": {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": BLAS_DEFAULT_TIMEOUT, "OPENBLAS_NUM_THREADS": CORES},
    # spinning OpenMP workers (GOMP_SPINCOUNT overrides the passive policy's spin count of 0)
    "spin-short": {**THREAD_POLICY, "OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": SHORT_SPIN},
    "spin-long": {**THREAD_POLICY, "OMP_WAIT_POLICY": "", "GOMP_SPINCOUNT": "30000"},
    "active": {**THREAD_POLICY, "OMP_WAIT_POLICY": "ACTIVE"},
}
WORKLOADS = [("fixed-cost", "bf16", 32), ("smollm2-135M", "bf16", 16), ("110M", "bf16", 16)]
BUSY_LOOP = "while True: pass"


def policy_env(policy: str) -> dict[str, str]:
    names = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    # an empty value stays in the environment (so llamanuts' default does not fill it in) and
    # libgomp reads it as unset
    env.update(POLICIES[policy])
    return env


def run_decode(shape: str, dtype: str, tokens: int, env: dict[str, str], repeats: int = 3) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.decode", "--shape", shape, "--dtype", dtype, "--tokens", str(tokens),
               "--repeats", str(repeats), "--no-torch", "--json"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(policies: list[str], repeats: int) -> list[dict[str, Any]]:
    rows = []
    for busy in (False, True):
        for policy in policies:
            hog = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if busy else None
            try:
                for shape, dtype, tokens in WORKLOADS:
                    print(f"threads: {policy}, {'one core busy' if busy else 'quiet'}, {shape}", file=sys.stderr, flush=True)
                    r = run_decode(shape, dtype, tokens, policy_env(policy), repeats)
                    rows.append(
                        {
                            "policy": policy,
                            "env": POLICIES[policy],
                            "busy_core": busy,
                            "shape": shape,
                            "dtype": dtype,
                            "decode_tok_s": r["decode_tok_s"],
                            "decode_runs": r["decode_runs"],
                            "prefill_tok_s": r["prefill_tok_s"],
                            "prefill_runs": r["prefill_runs"],
                            "us_per_layer": r["us_per_layer"],
                        }
                    )
            finally:
                if hog is not None:
                    hog.kill()
                    hog.wait()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__.split("\n\n")[0])
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated, from: " + ", ".join(POLICIES))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    policies = [p for p in args.policies.split(",") if p]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policies: {', '.join(unknown)}")
    rows = measure(policies, args.repeats)
    if args.json:
        print(json.dumps(rows))
    else:
        for r in rows:
            print(f"{r['policy']:>22} {'busy' if r['busy_core'] else 'quiet':>5} {r['shape']:>13}: decode {r['decode_tok_s']:8.1f} "
                  f"tok/s {r['decode_runs']}, prefill {r['prefill_tok_s']:8.1f} tok/s, {r['us_per_layer']:7.1f} us/layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
