"""Makes the shared float64 reference helpers (`ml_reference.py`) importable by the ml tests.

pytest runs with `--import-mode=importlib`, which does not put test directories on sys.path, so the
directory is added here, once, before the test modules are imported.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
