"""The thread policy: how idle OpenMP workers wait, and the two ways a policy can fail.

    python -m bench.threads [--policies default,spin-no-watch,passive] [--json]

Numba's parallel kernels run on libgomp's thread pool; numpy's BLAS (the prefill of float32
weights) runs on a pool of its own. An idle libgomp worker first spins (burns its core, checking for
work), then sleeps. Spinning makes the next parallel launch cheap (about 1.5 us, against 6-8 us to
wake a sleeping worker on some machines and 45-70 us on a 2-core virtual machine), and decode
launches a few per layer; but a spinning worker holds a core that someone else may need. Two
failure modes follow, both measured here, each policy in a fresh process:

- **BLAS starvation in prefill**: after a parallel kernel, spinning OpenMP workers hold cores that
  BLAS's threads want (the float32 workload's prefill runs on BLAS);
- **another process holding a core**: with one core taken by a busy process (a Python busy loop,
  started here), a worker that spins uses up its share of that core, and every launch then waits for
  it to be scheduled again.

Policies (POLICIES below): `default` (src/common/threadpolicy.py: OpenMP workers spin about 2 ms,
GOMP_SPINCOUNT=30000, and the core watch of src/ml/threads.py uses fewer threads while other
processes hold cores); `spin-no-watch`, the same spin without the watch (the collapse it prevents);
`passive`, the policy before, where both pools' idle workers sleep at once (or after 2^12 cycles);
`blas-all-cores`, the same with BLAS on every core; `blas-spins`, the one before that, with BLAS on
every core and its workers spinning 2^28 cycles after each product; `spin-short`
(GOMP_SPINCOUNT=3000, with the watch) and `active` (OMP_WAIT_POLICY=ACTIVE, spin for minutes, with
the watch). Each runs bench.decode on the fixed-cost shape (decode: launch-bound), smollm2-135M in
bf16, and 110M in bf16 and float32 (decode and a 32-token prefill), quiet and with the busy process.
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
SHORT_SPIN = "3000"  # measured: about 0.1 ms of spinning after a launch (30000: about 2 ms)
BLAS_DEFAULT_TIMEOUT = "28"  # OpenBLAS's own default: idle workers spin 2^28 cycles before they sleep

CORES = str(os.cpu_count() or 2)

WATCH_OFF = {"LLAMANUTS_THREAD_WATCH": "off"}
PASSIVE_BEFORE = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "12", "OPENBLAS_NUM_THREADS": str(max(1, int(CORES) // 2))}

POLICIES: dict[str, dict[str, str]] = {
    # the default (src/common/threadpolicy.py): OpenMP's idle workers spin about 2 ms, BLAS on half
    # the cores and sleeping after 2^12 cycles, and the core watch (src/ml/threads.py) on
    "default": dict(THREAD_POLICY),
    # the same spin without the core watch: the failure mode when another process holds a core
    "spin-no-watch": {**THREAD_POLICY, **WATCH_OFF},
    # the policy before: idle workers of both pools sleep at once, no watch
    "passive": {**PASSIVE_BEFORE, **WATCH_OFF},
    # sleeping workers with BLAS on every core, its idle workers sleeping after 2^12 cycles
    "blas-all-cores": {**PASSIVE_BEFORE, "OPENBLAS_NUM_THREADS": CORES, **WATCH_OFF},
    # the policy before that: BLAS on every core and spinning 2^28 cycles after each product
    "blas-spins": {**PASSIVE_BEFORE, "OPENBLAS_THREAD_TIMEOUT": BLAS_DEFAULT_TIMEOUT, "OPENBLAS_NUM_THREADS": CORES, **WATCH_OFF},
    # a shorter spin, with the watch
    "spin-short": {**THREAD_POLICY, "GOMP_SPINCOUNT": SHORT_SPIN},
    # spin for minutes (OMP_WAIT_POLICY=ACTIVE), with the watch
    "active": {**{k: v for k, v in THREAD_POLICY.items() if k != "GOMP_SPINCOUNT"}, "OMP_WAIT_POLICY": "ACTIVE"},
}
WORKLOADS = [("fixed-cost", "bf16", 32), ("smollm2-135M", "bf16", 16), ("110M", "bf16", 16), ("110M", "f32", 16)]
BUSY_LOOP = "while True: pass"


def policy_env(policy: str) -> dict[str, str]:
    names = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_NUM_THREADS", "LLAMANUTS_THREAD_WATCH")
    env = {k: v for k, v in os.environ.items() if k not in names}
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
                    print(f"threads: {policy}, {'one core busy' if busy else 'quiet'}, {shape} {dtype}", file=sys.stderr, flush=True)
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
            print(f"{r['policy']:>22} {'busy' if r['busy_core'] else 'quiet':>5} {r['shape']:>13} {r['dtype']:>4}: decode {r['decode_tok_s']:8.1f} "
                  f"tok/s {r['decode_runs']}, prefill {r['prefill_tok_s']:8.1f} tok/s, {r['us_per_layer']:7.1f} us/layer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
