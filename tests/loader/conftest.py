"""Shared paths for the loader tests: our fixtures, and the read-only reference models beside the repo."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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
