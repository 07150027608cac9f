"""What every Tokenizer promises, checked on the new vocab kinds: GGUF byte-level BPE (SmolLM2),
GGUF SentencePiece-style (Llama 2's pieces), and Hugging Face tokenizer.json (both shapes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gguf_testdata import smollm2_metadata, smollm2_path
from hf_testdata import byte_level_dir, sentencepiece_style_dir
from llamanuts.tokenizer import Tokenizer, load_hf_tokenizer, tokenizer_from_gguf
from tokenizer_testdata import LLAMA2_MODEL, VARIED_TEXTS, ref_path


def llama2_gguf() -> Tokenizer:
    sentencepiece = pytest.importorskip("sentencepiece")
    sp = sentencepiece.SentencePieceProcessor(model_file=str(ref_path(LLAMA2_MODEL)))
    n = sp.vocab_size()
    types = [2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1 for i in range(n)]
    metadata: dict[str, Any] = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [sp.id_to_piece(i) for i in range(n)],
        "tokenizer.ggml.scores": np.array([sp.get_score(i) for i in range(n)], dtype=np.float32),
        "tokenizer.ggml.token_type": np.array(types, dtype=np.int32),
    }
    return tokenizer_from_gguf(metadata, "llama-2.gguf")


@pytest.fixture(scope="module", params=["gguf-bpe", "gguf-spm", "hf-byte-level", "hf-sentencepiece-style"])
def tokenizer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    if request.param == "gguf-bpe":
        return tokenizer_from_gguf(smollm2_metadata(), smollm2_path())
    if request.param == "gguf-spm":
        return llama2_gguf()
    build = byte_level_dir if request.param == "hf-byte-level" else sentencepiece_style_dir
    return load_hf_tokenizer(build(Path(tmp_path_factory.mktemp(request.param))))


def test_eos_is_a_stop_id(tokenizer: Tokenizer) -> None:
    assert tokenizer.eos_id is not None and tokenizer.is_stop(tokenizer.eos_id)


def test_special_tokens_map_names_to_ids_that_print_nothing(tokenizer: Tokenizer) -> None:
    assert tokenizer.special_tokens
    for piece, id in tokenizer.special_tokens.items():
        assert tokenizer.piece_to_id(piece) == id
        assert tokenizer.piece_bytes(id) == b""


def test_piece_to_id_inverts_id_to_piece_on_encoded_text(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("mixed: café 你好 👋 123!", bos=True, eos=True)
    assert [tokenizer.piece_to_id(tokenizer.id_to_piece(i)) for i in ids] == ids


@pytest.mark.parametrize("text", VARIED_TEXTS)
def test_output_bytes_after_bos_print_the_text_exactly(tokenizer: Tokenizer, text: str) -> None:
    ids = tokenizer.encode(text, bos=True, eos=True)
    printed = b"".join(tokenizer.output_bytes(prev, id) for prev, id in zip([None, *ids], ids))
    assert printed == text.encode("utf-8")


def test_decode_replaces_an_incomplete_character_instead_of_raising(tokenizer: Tokenizer) -> None:
    ids = tokenizer.encode("👋")
    assert "\ufffd" in tokenizer.decode(ids[:-1])


@pytest.mark.parametrize("method", ["id_to_piece", "piece_bytes", "is_byte_piece"])
def test_out_of_range_id_raises_index_error(tokenizer: Tokenizer, method: str) -> None:
    with pytest.raises(IndexError, match="out of range"):
        getattr(tokenizer, method)(tokenizer.vocab_size)


def test_piece_to_id_rejects_an_unknown_piece(tokenizer: Tokenizer) -> None:
    with pytest.raises(KeyError, match="not in the vocab"):
        tokenizer.piece_to_id("definitely-not-a-piece-of-any-vocab")


def test_text_that_is_not_valid_unicode_is_a_clear_error(tokenizer: Tokenizer) -> None:
    # b"caf\xe9" (Latin-1) read as UTF-8 with surrogateescape, as Python reads a command line
    from llamanuts.tokenizer import InvalidTextError

    text = b"caf\xe9 au lait".decode("utf-8", errors="surrogateescape")
    with pytest.raises(InvalidTextError, match=r"not valid Unicode: a lone surrogate \(U\+DCE9\) at character 3"):
        tokenizer.encode(text)
    with pytest.raises(InvalidTextError, match=r"a lone surrogate \(U\+D800\)"):
        tokenizer.encode("\ud800", bos=True)
