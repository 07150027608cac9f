"""Shared paths for the loader tests: our fixtures, and the read-only reference models beside the repo."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for `from tools import forge` (plain pytest does not add the root)
FIXTURES = REPO / "tests" / "fixtures" / "loader"
SHARED_REFS = REPO.parent / "shared" / "refs"


@pytest.fixture
def fixtures() -> Path:
    if not (FIXTURES / "tiny_checkpoint.pth").is_file():
        pytest.skip(f"loader fixtures missing in {FIXTURES}: run python tools/make_loader_fixtures.py")
    return FIXTURES


@pytest.fixture
def refs() -> Path:
    if not SHARED_REFS.is_dir():
        pytest.skip(f"shared reference files not found at {SHARED_REFS} (folder shared/refs beside the repo)")
    return SHARED_REFS


# A hostile input can hang in C code (no signal gets through), crash the interpreter or eat all
# memory, so the tests that feed one run it in a child process with a wall clock and a memory cap.
_BOUNDED_PRELUDE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
"""


@dataclass
class BoundedRun:
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str


def run_bounded(code: str, timeout: float = 60, memory: int = 1 << 30) -> BoundedRun:
    """Run Python `code` in a child with `memory` bytes of address space; None as returncode on timeout."""
    script = _BOUNDED_PRELUDE.format(memory=memory) + textwrap.dedent(code)
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as expired:
        def text(value: bytes | str | None) -> str:
            return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")

        return BoundedRun(None, text(expired.stdout), text(expired.stderr))
    return BoundedRun(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def bounded() -> Callable[..., BoundedRun]:
    return run_bounded
