"""The "llama-bpe" pre-tokenizer on Llama 3's own vocab, against tiktoken (Meta's tokenizer).

A Llama 3 GGUF stores the vocab as GPT-2-alphabet strings with merges. We make that metadata from
Meta's tokenizer.model (shared/refs) with transformers' own tiktoken converter (the one that made
Llama 3's tokenizer.json, from which llama.cpp makes the GGUF), then check that our byte-level BPE
gives tiktoken's ids: Llama 3's regex, whole words taken without merging (ignore_merges), ranks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from corpus_testdata import corpus
from llamanuts.tokenizer import BPETokenizer, Tokenizer, tokenizer_from_gguf
from llamanuts.tokenizer.tiktoken_tokenizer import llama3_special_token_names
from tokenizer_testdata import LLAMA3_MODEL, VARIED_TEXTS, load_ref, ref_path


@pytest.fixture(scope="module")
def llama3_metadata() -> dict[str, Any]:
    converter = pytest.importorskip("transformers.convert_slow_tokenizer")
    path = str(ref_path(LLAMA3_MODEL))
    vocab, merges = converter.TikTokenConverter(vocab_file=path).extract_vocab_merges_from_model(path)
    tokens = [""] * len(vocab)
    for text, rank in vocab.items():
        tokens[rank] = text
    tokens += llama3_special_token_names()
    return {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "llama-bpe",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": np.array([1] * len(vocab) + [3] * 256, dtype=np.int32),
        "tokenizer.ggml.merges": [f"{left} {right}" for left, right in merges],
        "tokenizer.ggml.bos_token_id": 128000,
        "tokenizer.ggml.eos_token_id": 128009,
    }


@pytest.fixture(scope="module")
def llama3_bpe(llama3_metadata: dict[str, Any]) -> BPETokenizer:
    tokenizer = tokenizer_from_gguf(llama3_metadata, "Llama-3.gguf")
    assert isinstance(tokenizer, BPETokenizer)
    return tokenizer


def test_corpus_ids_equal_tiktoken(llama3_bpe: BPETokenizer) -> None:
    tiktoken: Tokenizer = load_ref(LLAMA3_MODEL)
    texts = list(corpus()) + VARIED_TEXTS + ["'S 'ſ 'Ll 'VE", "K\u212a 'K\u212a"]  # case-folded contractions
    assert [t for t in texts if llama3_bpe.encode(t) != tiktoken.encode(t)] == []


def test_llama3_specials_and_bos_rule(llama3_bpe: BPETokenizer) -> None:
    assert llama3_bpe.special_tokens["<|eot_id|>"] == 128009
    assert llama3_bpe.stop_ids == frozenset({128009})
    assert llama3_bpe.add_bos is True  # llama.cpp adds BOS for the llama-bpe names unless told not to
    assert llama3_bpe.piece_bytes(128000) == b""
    assert llama3_bpe.encode("<|eot_id|>") == load_ref(LLAMA3_MODEL).encode("<|eot_id|>")
