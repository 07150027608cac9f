"""Import the entry points in-process, as `cmd.<tool>`, whatever way pytest was started.

`cmd/` is the repository's entry-point package; it shadows the standard library's `cmd` (and
re-exports `Cmd`, so pdb keeps working). Started as `python -m pytest` from the repository root it
is already the `cmd` pytest imported; started otherwise, the standard library's may be there.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]


def load_cli(tool: str) -> ModuleType:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    package = sys.modules.get("cmd")
    if package is None or Path(getattr(package, "__file__", "") or "").resolve() != REPO_ROOT / "cmd" / "__init__.py":
        sys.modules.pop("cmd", None)
        importlib.import_module("cmd")
    return importlib.import_module(f"cmd.{tool}")
