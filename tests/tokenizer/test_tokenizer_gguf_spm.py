"""The SentencePiece-style GGUF vocab (`tokenizer.ggml.model` = "llama"), against sentencepiece.

The metadata is made from Meta's Llama 2 tokenizer.model (shared/refs) the way llama.cpp's
converter writes it: every piece, its score, and its type (normal, unknown, control, byte). The
`sentencepiece` package on the same model is the reference for the ids.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from corpus_testdata import corpus
from llamanuts.tokenizer import InvalidTextError, SPMTokenizer, tokenizer_from_gguf
from llamanuts.tokenizer.pair_merge import MergeCounters, merge_adjacent_pairs
from tokenizer_testdata import LLAMA2_MODEL, VARIED_TEXTS, ref_path

sentencepiece = pytest.importorskip("sentencepiece")


@pytest.fixture(scope="module")
def sp() -> Any:
    return sentencepiece.SentencePieceProcessor(model_file=str(ref_path(LLAMA2_MODEL)))


def gguf_type(sp: Any, id: int) -> int:
    """llama.cpp's convert: the SentencePiece piece type as a GGUF token type."""
    if sp.is_unknown(id):
        return 2
    if sp.is_control(id):
        return 3
    if sp.is_unused(id):
        return 5
    if sp.is_byte(id):
        return 6
    return 1


def llama2_metadata(sp: Any, **extra: Any) -> dict[str, Any]:
    n = sp.vocab_size()
    metadata = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [sp.id_to_piece(i) for i in range(n)],
        "tokenizer.ggml.scores": np.array([sp.get_score(i) for i in range(n)], dtype=np.float32),
        "tokenizer.ggml.token_type": np.array([gguf_type(sp, i) for i in range(n)], dtype=np.int32),
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 0,
    }
    metadata.update(extra)
    return metadata


@pytest.fixture(scope="module")
def llama2(sp: Any) -> SPMTokenizer:
    tokenizer = tokenizer_from_gguf(llama2_metadata(sp), "llama-2.gguf")
    assert isinstance(tokenizer, SPMTokenizer)
    return tokenizer


def test_llama2_vocab_facts(llama2: SPMTokenizer) -> None:
    assert (llama2.kind, llama2.vocab_size) == ("spm", 32000)
    assert (llama2.bos_id, llama2.eos_id, llama2.unk_id) == (1, 2, 0)
    assert llama2.special_tokens == {"<unk>": 0, "<s>": 1, "</s>": 2}
    assert llama2.stop_ids == frozenset({2})
    assert llama2.add_bos is True  # llama.cpp's default for a SentencePiece vocab that does not say
    assert llama2.strip_leading_space_after_bos is True


def test_corpus_ids_equal_sentencepiece(llama2: SPMTokenizer, sp: Any) -> None:
    texts = list(corpus()) + VARIED_TEXTS
    assert [t for t in texts if llama2.encode(t) != sp.encode(t)] == []


def test_decode_equals_sentencepiece(llama2: SPMTokenizer, sp: Any) -> None:
    texts = list(corpus()) + VARIED_TEXTS
    assert [t for t in texts if llama2.decode(llama2.encode(t)) != sp.decode(sp.encode(t))] == []


def test_the_published_llama2_prompt_ids(llama2: SPMTokenizer) -> None:
    assert llama2.encode("I believe the meaning of life is", bos=True) == [1, 306, 4658, 278, 6593, 310, 2834, 338]


def test_byte_fallback_and_piece_bytes(llama2: SPMTokenizer) -> None:
    ids = llama2.encode("👋")
    assert [llama2.id_to_piece(i) for i in ids] == ["▁", "<0xF0>", "<0x9F>", "<0x91>", "<0x8B>"]
    assert all(llama2.is_byte_piece(i) for i in ids[1:])
    assert b"".join(llama2.piece_bytes(i) for i in ids) == " 👋".encode()


@pytest.mark.parametrize("text", ["<s>", "</s>", "<unk>", "<0x41>", "[INST] </s><s>"])
def test_typed_control_text_stays_text(llama2: SPMTokenizer, sp: Any, text: str) -> None:
    ids = llama2.encode(text)
    assert ids == sp.encode(text)
    assert not {0, 1, 2} & set(ids)
    assert not any(llama2.is_byte_piece(i) for i in ids)


def test_a_long_prompt_merges_in_linear_heap_work(llama2: SPMTokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    import llamanuts.tokenizer.spm_tokenizer as module

    counters = MergeCounters()
    monkeypatch.setattr(module, "merge_adjacent_pairs", lambda ids, lookup: merge_adjacent_pairs(ids, lookup, counters))
    text = "x" * 20_000 + " and then some ordinary words" * 200
    ids = llama2.encode(text)
    symbols = len(text) + 1  # the dummy prefix, then one symbol per character
    assert counters.pushes <= 3 * symbols
    assert llama2.decode(ids) == text


def test_a_lone_surrogate_is_a_clear_error(llama2: SPMTokenizer) -> None:
    with pytest.raises(InvalidTextError, match="lone surrogate"):
        llama2.encode("\ud800")


# ---- the rules on a tiny hand-made vocab ---------------------------------------------------------
def tiny(add_space_prefix: bool | None = None, user_defined: bool = False) -> SPMTokenizer:
    pieces = ["<unk>", "<s>", "</s>", "▁", "a", "b", "ab", "▁ab", "<0xC3>", "<0xA9>", "<tag>"]
    scores = [0, 0, 0, -1, -1, -1, -2, -3, 0, 0, 0]
    types = [2, 3, 3, 1, 1, 1, 1, 1, 6, 6, 4 if user_defined else 1]
    metadata: dict[str, Any] = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": pieces,
        "tokenizer.ggml.scores": np.array(scores, dtype=np.float32),
        "tokenizer.ggml.token_type": np.array(types, dtype=np.int32),
    }
    if add_space_prefix is not None:
        metadata["tokenizer.ggml.add_space_prefix"] = add_space_prefix
    tokenizer = tokenizer_from_gguf(metadata, "tiny.gguf")
    assert isinstance(tokenizer, SPMTokenizer)
    return tokenizer


def test_the_dummy_prefix_joins_the_first_word() -> None:
    tokenizer = tiny()
    # "▁" "a" "b": "▁a" is no piece, so "a"+"b" -> "ab", then "▁"+"ab" -> "▁ab".
    assert [tokenizer.id_to_piece(i) for i in tokenizer.encode("ab")] == ["▁ab"]


def test_without_the_dummy_prefix_the_first_word_has_no_space() -> None:
    tokenizer = tiny(add_space_prefix=False)
    assert [tokenizer.id_to_piece(i) for i in tokenizer.encode("ab ab")] == ["ab", "▁ab"]
    assert tokenizer.strip_leading_space_after_bos is False


def test_a_character_missing_from_the_vocab_falls_back_to_byte_pieces() -> None:
    tokenizer = tiny()
    assert [tokenizer.id_to_piece(i) for i in tokenizer.encode("é")] == ["▁", "<0xC3>", "<0xA9>"]


def test_a_byte_missing_from_the_vocab_becomes_unk() -> None:
    tokenizer = tiny()
    assert tokenizer.encode("ü") == [3, 8, 0]  # "ü" is C3 BC; there is no <0xBC>


def test_user_defined_tokens_are_matched_whole() -> None:
    tokenizer = tiny(user_defined=True)
    # llama.cpp puts the dummy prefix at the start and again after a user-defined token.
    assert [tokenizer.id_to_piece(i) for i in tokenizer.encode("ab<tag>ab")] == ["▁ab", "<tag>", "▁ab"]
    assert tokenizer.piece_bytes(10) == b"<tag>"
