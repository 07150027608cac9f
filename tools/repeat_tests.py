#!/usr/bin/env python3
"""Run a set of tests many times in a row, to show they do not flake (dev-only; the suite itself
runs the signal races 20 times in tests/inference/test_cli_signal_races.py).

    python tools/repeat_tests.py --count 20 tests/inference/test_cli_interactive.py
    python tools/repeat_tests.py --count 5 tests/inference -k "ctrl_c or sigterm"

Each run is a fresh `python -m pytest -q` from the repository root; the script prints one line per
run (its status and seconds) and a summary, and exits 1 if any run failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--count", type=int, default=20, help="how many runs (default 20)")
    parser.add_argument("--stop", action="store_true", help="stop at the first failing run")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="paths and pytest options")
    args = parser.parse_args(argv)
    failures = 0
    for run in range(1, args.count + 1):
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.pytest_args], cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        last = (result.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"run {run:>3}/{args.count}: {'ok  ' if result.returncode == 0 else 'FAIL'} {seconds:6.1f} s  {last}", flush=True)
        if result.returncode != 0:
            failures += 1
            print(result.stdout[-4000:], result.stderr[-2000:], sep="\n")
            if args.stop:
                break
    print(f"{args.count - failures if not args.stop else run - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
