"""Benchmarks: `python -m bench.load` and friends."""

# llamanuts first: it sets the thread policy, which numpy's BLAS reads once, when numpy is imported
import llamanuts  # noqa: F401
