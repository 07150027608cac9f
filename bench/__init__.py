"""Benchmarks: `python -m bench.load` and friends."""
