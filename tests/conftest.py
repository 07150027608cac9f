"""Loaded by pytest before any test module.

llamanuts.ml sets OMP_WAIT_POLICY=PASSIVE (see src/ml/__init__.py) so that numba's idle OpenMP
workers sleep instead of spinning. libgomp reads that variable once, when it is loaded, and torch
loads it at import: a test module that imported torch before llamanuts would leave the workers
spinning for the whole session, and every torch op after an engine run then competes with them
(measured: transformers' greedy generation 6x slower in CPU time after one engine run). Importing
llamanuts.ml here, first, keeps the policy for the whole test session.
"""

import llamanuts.ml  # noqa: F401  (for its side effect above)
