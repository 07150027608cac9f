"""Fixtures for the tokenizer tests (the helpers themselves are in tokenizer_testdata.py).

pytest runs with `--import-mode=importlib`, which does not put test directories on sys.path, so
this directory is added here, before the test modules import `tokenizer_testdata`.
"""

from __future__ import annotations

import os
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from tokenizer_testdata import (  # noqa: E402  (needs the sys.path line above)
    LLAMA2_MODEL,
    LLAMA2C_BIN,
    LLAMA3_MODEL,
    TOK512_BIN,
    TOK512_MODEL,
    load_ref,
)
from llamanuts.tokenizer import Tokenizer  # noqa: E402


@pytest.fixture
def llama2_sp() -> Tokenizer:
    return load_ref(LLAMA2_MODEL)


@pytest.fixture
def llama2c_bin() -> Tokenizer:
    return load_ref(LLAMA2C_BIN)


@pytest.fixture
def tok512_sp() -> Tokenizer:
    return load_ref(TOK512_MODEL)


@pytest.fixture
def tok512_bin() -> Tokenizer:
    return load_ref(TOK512_BIN)


@pytest.fixture
def llama3() -> Tokenizer:
    return load_ref(LLAMA3_MODEL)
