"""What every Tokenizer promises, checked on one real file of each kind."""

from __future__ import annotations

import pytest

from tokenizer_testdata import LLAMA2_MODEL, LLAMA2C_BIN, LLAMA3_MODEL, load_ref

# file, kind, whether the first piece after BOS drops its leading space
KINDS = [
    (LLAMA2_MODEL, "sentencepiece", True),
    (LLAMA2C_BIN, "llama2c", True),
    (LLAMA3_MODEL, "tiktoken", False),
]
NAMES = [name for name, _, _ in KINDS]


@pytest.mark.parametrize(("name", "kind", "strips"), KINDS)
def test_kind_and_leading_space_rule(name: str, kind: str, strips: bool) -> None:
    tokenizer = load_ref(name)
    assert tokenizer.kind == kind
    assert tokenizer.strip_leading_space_after_bos is strips


@pytest.mark.parametrize("name", NAMES)
def test_eos_is_a_stop_id(name: str) -> None:
    tokenizer = load_ref(name)
    assert tokenizer.eos_id in tokenizer.stop_ids
    assert tokenizer.is_stop(tokenizer.eos_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", NAMES)
def test_special_tokens_map_names_to_ids_that_print_nothing(name: str) -> None:
    tokenizer = load_ref(name)
    assert tokenizer.special_tokens
    for piece, id in tokenizer.special_tokens.items():
        assert tokenizer.piece_to_id(piece) == id
        assert tokenizer.piece_bytes(id) == b""


@pytest.mark.parametrize("name", NAMES)
def test_piece_to_id_inverts_id_to_piece_on_encoded_text(name: str) -> None:
    tokenizer = load_ref(name)
    ids = tokenizer.encode("mixed: café 你好 👋 123!", bos=True, eos=True)
    assert [tokenizer.piece_to_id(tokenizer.id_to_piece(i)) for i in ids] == ids


@pytest.mark.parametrize("name", NAMES)
def test_decode_replaces_an_incomplete_character_instead_of_raising(name: str) -> None:
    tokenizer = load_ref(name)
    ids = tokenizer.encode("👋")
    # Drop the last token: the emoji's final UTF-8 byte(s) are missing.
    assert "\ufffd" in tokenizer.decode(ids[:-1])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("method", ["id_to_piece", "piece_bytes", "is_byte_piece"])
def test_out_of_range_id_raises_index_error(name: str, method: str) -> None:
    tokenizer = load_ref(name)
    with pytest.raises(IndexError, match="out of range"):
        getattr(tokenizer, method)(tokenizer.vocab_size)


@pytest.mark.parametrize("name", NAMES)
def test_decode_rejects_an_out_of_range_id(name: str) -> None:
    tokenizer = load_ref(name)
    with pytest.raises(IndexError, match="out of range"):
        tokenizer.decode([-1])
