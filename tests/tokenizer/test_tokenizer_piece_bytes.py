"""piece_bytes is exact: concatenated over encode(text) it gives back text's UTF-8 bytes.

This is the property the streaming decoder relies on. SentencePiece-style tokenizers add one
dummy-prefix space, which is exactly what `output_bytes` drops after BOS.
"""

from __future__ import annotations

import pytest

from llamanuts.tokenizer import Tokenizer
from tokenizer_testdata import LLAMA2_MODEL, LLAMA2C_BIN, LLAMA3_MODEL, TOK512_BIN, VARIED_TEXTS, load_ref

# One file per kind, plus tok512.bin for a small vocab where many characters fall back to bytes.
TOKENIZERS = [LLAMA2_MODEL, LLAMA2C_BIN, LLAMA3_MODEL, TOK512_BIN]


def concatenated_piece_bytes(tokenizer: Tokenizer, ids: list[int]) -> bytes:
    return b"".join(tokenizer.piece_bytes(i) for i in ids)


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("text", VARIED_TEXTS)
def test_piece_bytes_rebuild_the_text(name: str, text: str) -> None:
    tokenizer = load_ref(name)
    data = concatenated_piece_bytes(tokenizer, tokenizer.encode(text))
    if tokenizer.strip_leading_space_after_bos:
        assert data.startswith(b" ")  # the dummy prefix
        data = data[1:]
    assert data == text.encode("utf-8")


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("text", VARIED_TEXTS)
def test_output_bytes_after_bos_print_the_text_exactly(name: str, text: str) -> None:
    # What a generation loop prints for a prompt: BOS, then each piece via output_bytes.
    tokenizer = load_ref(name)
    ids = tokenizer.encode(text, bos=True, eos=True)
    printed = b"".join(tokenizer.output_bytes(prev, id) for prev, id in zip([None, *ids], ids, strict=False))
    assert printed == text.encode("utf-8")


@pytest.mark.parametrize("name", TOKENIZERS)
def test_control_tokens_print_nothing(name: str) -> None:
    tokenizer = load_ref(name)
    assert tokenizer.bos_id is not None and tokenizer.eos_id is not None
    assert tokenizer.piece_bytes(tokenizer.bos_id) == b""
    assert tokenizer.piece_bytes(tokenizer.eos_id) == b""


@pytest.mark.parametrize("name", TOKENIZERS)
def test_every_byte_piece_is_exactly_one_byte(name: str) -> None:
    tokenizer = load_ref(name)
    byte_ids = [i for i in range(tokenizer.vocab_size) if tokenizer.is_byte_piece(i)]
    assert byte_ids, "each of these vocabularies has byte pieces"
    assert all(len(tokenizer.piece_bytes(i)) == 1 for i in byte_ids)
