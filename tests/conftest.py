"""Loaded by pytest before any test module.

The test session's idle OpenMP workers sleep at once (OMP_WAIT_POLICY=PASSIVE), not the brief spin
llamanuts sets for itself (src/common/threadpolicy.py): the suite runs the engine and PyTorch in one
process, and both read libgomp's policy once, when they load it; a spinning pool of one then competes
with the other's threads (measured before: transformers' greedy generation 6x slower in CPU time
after one engine run with spinning workers), and CI's machine may be shared. Results never depend on
the policy, only speed does, and the suite measures no speed. The CLI tests' subprocesses inherit it.
Importing llamanuts.ml here, first, sets the rest of the policy for the whole session.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import llamanuts.ml  # noqa: E402,F401  (for its side effect above)
