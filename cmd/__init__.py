"""Entry points, run from the repository root: `python -m cmd.llama_infer`.

Why this file is not empty: starting a program with `python -m cmd.<tool>` puts the repository
root first on `sys.path`, so this folder shadows the standard library's `cmd` module. `pdb` (and
therefore `breakpoint()`) does `import cmd` and subclasses `cmd.Cmd`. To keep the debugger working,
this package loads the standard library's `cmd.py` from its own location and re-exports what it
defines (`Cmd`, `PROMPT`, `IDENTCHARS`), so `import cmd; cmd.Cmd` is the real thing either way.
"""

from __future__ import annotations

import importlib.util
import os
import sysconfig


def _load_stdlib_cmd() -> None:
    path = os.path.join(sysconfig.get_paths()["stdlib"], "cmd.py")
    spec = importlib.util.spec_from_file_location("_stdlib_cmd", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a Python without cmd.py
        return
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("Cmd", "PROMPT", "IDENTCHARS"):
        globals()[name] = getattr(module, name)


_load_stdlib_cmd()
