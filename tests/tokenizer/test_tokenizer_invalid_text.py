"""Text that is not valid Unicode is a clear InvalidTextError for every tokenizer, never a traceback.

Python reads bytes that are not UTF-8 (in argv, with surrogateescape) as lone surrogates; such a
str has no UTF-8 form, so no tokenizer can encode it.
"""

from __future__ import annotations

import pytest

from llamanuts.common.errors import LlamaError
from llamanuts.tokenizer import InvalidTextError
from tokenizer_testdata import LLAMA2_MODEL, LLAMA2C_BIN, LLAMA3_MODEL, TOK512_BIN, load_ref

# b"caf\xe9" (Latin-1 "café") read as UTF-8 with surrogateescape
NOT_UTF8 = b"caf\xe9 au lait".decode("utf-8", errors="surrogateescape")


@pytest.mark.parametrize("name", [LLAMA2_MODEL, LLAMA2C_BIN, LLAMA3_MODEL, TOK512_BIN])
def test_lone_surrogates_are_a_clear_error(name: str) -> None:
    tokenizer = load_ref(name)
    with pytest.raises(InvalidTextError, match=r"not valid Unicode: a lone surrogate \(U\+DCE9\) at character 3"):
        tokenizer.encode(NOT_UTF8)


def test_tiktoken_with_specials_checks_too() -> None:
    tokenizer = load_ref(LLAMA3_MODEL)
    with pytest.raises(InvalidTextError):
        tokenizer.encode_with_specials(NOT_UTF8)  # type: ignore[attr-defined]


def test_the_error_is_a_llama_error_the_cli_prints() -> None:
    assert issubclass(InvalidTextError, LlamaError)
