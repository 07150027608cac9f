"""Debugging must work when programs start as `python -m cmd.<tool>` from the repository root.

There the local `cmd/` package shadows the standard library's `cmd` module, which pdb subclasses.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_local_cmd_package_is_the_one_imported_from_the_repo_root() -> None:
    result = _run(["-c", "import cmd; print(cmd.__file__)"], "")
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == REPO / "cmd" / "__init__.py"


def test_local_cmd_package_exposes_the_standard_library_cmd_class() -> None:
    result = _run(["-c", "import cmd, cmd as c2; import pdb; print(issubclass(pdb.Pdb, cmd.Cmd))"], "")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_breakpoint_stops_and_evaluates_commands_from_the_repo_root() -> None:
    result = _run(["-c", "x = 6\nbreakpoint()\nprint('after', x)"], "p x * 7\nc\n")
    assert result.returncode == 0, result.stderr
    assert "42" in result.stdout
    assert "after 6" in result.stdout


def test_pdb_runs_a_cmd_module_started_with_dash_m() -> None:
    # python -m pdb -m cmd.llama_infer: pdb itself imports `cmd` with the repo root on sys.path
    result = _run(["-m", "pdb", "-m", "cmd.llama_infer", "--help"], "c\nq\n")
    assert "usage" in result.stdout.lower(), result.stdout + result.stderr
    assert "Traceback" not in result.stderr
