"""The fuzz suite's summary: how many cases each format tried, printed at the end of the run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for `from tools import fuzz`

SUMMARY: list[str] = []


@pytest.fixture
def fuzz_summary() -> list[str]:
    """Lines a test adds here are printed in the "fuzz" section at the end of the run."""
    return SUMMARY


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ANN001 - pytest's hook signature
    if SUMMARY:
        terminalreporter.section("fuzz")
        for line in SUMMARY:
            terminalreporter.write_line(line)
