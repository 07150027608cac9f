"""The named pre-tokenizers of byte-level BPE, against the `tokenizers` package and tiktoken.

`tokenizers` is an independent implementation (Rust, Oniguruma regexes) of the same definitions:
GPT-2's ByteLevel regex, `Digits`, and `Split(regex, "isolated")`, which cuts text into matches
and the gaps between them as llama.cpp's `unicode_regex_split` does. Where our pattern strings
come from llama.cpp or Meta, the tests also check them against those sources' other copies
(transformers' GGUF mapping, our tiktoken tokenizer's Meta pattern).
"""

from __future__ import annotations

import sys
import unicodedata
from functools import lru_cache
from typing import Any

import pytest

from corpus_testdata import corpus
from llamanuts.common import TokenizerError
from llamanuts.tokenizer.bpe_tokenizer import (
    GPT2_PATTERN,
    LLAMA3_PATTERN,
    PRE_TOKENIZERS,
    QWEN2_PATTERN,
    bytes_to_unicode,
    pre_tokenizer_named,
)
from llamanuts.tokenizer.tiktoken_tokenizer import LLAMA3_SPLIT_PATTERN

tokenizers = pytest.importorskip("tokenizers")
pre = tokenizers.pre_tokenizers


def spelled(piece: str) -> str:
    table = bytes_to_unicode()
    return "".join(table[b] for b in piece.encode("utf-8"))


def reference_pieces(reference: Any, text: str) -> list[str]:
    return [piece for piece, _offsets in reference.pre_tokenize_str(text)]


def our_pieces(name: str, text: str, byte_level: bool) -> list[str]:
    pieces = PRE_TOKENIZERS[name].split(text)
    return [spelled(p) for p in pieces] if byte_level else pieces


def isolated(*patterns: str) -> Any:
    return pre.Sequence([pre.Split(tokenizers.Regex(p), behavior="isolated") for p in patterns])


# name -> (reference pre-tokenizer, whether it writes pieces in GPT-2's alphabet)
REFERENCES = {
    "gpt2": (pre.ByteLevel(add_prefix_space=False, use_regex=True), True),
    "smollm": (pre.Sequence([pre.Digits(individual_digits=True), pre.ByteLevel(add_prefix_space=False, use_regex=True)]), True),
    "llama-bpe": (isolated(LLAMA3_SPLIT_PATTERN), False),
    "qwen2": (isolated(QWEN2_PATTERN), False),
    "default": (isolated(r"[\p{P}\$\+<=>\^~\|]+", GPT2_PATTERN, r"\p{N}+", r"[0-9][0-9][0-9]"), False),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_corpus_splits_like_the_tokenizers_package(name: str) -> None:
    reference, byte_level = REFERENCES[name]
    mismatches = [t for t in corpus() if our_pieces(name, t, byte_level) != reference_pieces(reference, t)]
    assert mismatches == []


@lru_cache(maxsize=1)
def code_points() -> list[str]:
    """Every assigned code point outside the surrogates and private use (about 150 thousand)."""
    return [
        chr(c) for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")
    ]


@pytest.mark.parametrize("name", ["smollm", "llama-bpe"])
def test_every_character_class_agrees_with_the_tokenizers_package(name: str) -> None:
    # \s, \p{L}, \p{N} and case folding come from two Unicode tables (Python's `regex`, Rust's
    # Oniguruma); put every character between a letter, a space and a digit to compare them.
    # ("smollm" runs GPT-2's regex after its digit split, so it covers "gpt2" too.)
    reference, byte_level = REFERENCES[name]
    chars = code_points()
    texts = ["".join(f"a{c} {c}1{c}{c}'{c}\n" for c in chars[i : i + 64]) for i in range(0, len(chars), 64)]
    mismatches = [t for t in texts if our_pieces(name, t, byte_level) != reference_pieces(reference, t)]
    assert mismatches == []


def test_pattern_strings_match_their_other_sources() -> None:
    # Meta's Llama 3 pattern (our tiktoken tokenizer) and transformers' copy for GGUF "llama-bpe".
    ggml = pytest.importorskip("transformers.integrations.gguf.gguf_tokenizer_mapping")
    assert LLAMA3_PATTERN == LLAMA3_SPLIT_PATTERN
    assert ggml.GGUF_PRE_TOKENIZER_SPLITS["llama-bpe"] == LLAMA3_PATTERN
    qwen2 = pytest.importorskip("transformers.models.qwen2.tokenization_qwen2")
    assert qwen2.PRETOKENIZE_REGEX == QWEN2_PATTERN


def test_llama3_names_take_whole_words_without_merging() -> None:
    assert all(PRE_TOKENIZERS[name].ignore_merges for name in ("llama3", "llama-v3", "llama-bpe"))
    assert not any(PRE_TOKENIZERS[name].ignore_merges for name in ("gpt2", "smollm", "default", "qwen2"))


def test_an_unknown_name_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(TokenizerError, match=r"tokenizer.ggml.pre is 'tekken', .* supported: .*llama-bpe.*smollm"):
        pre_tokenizer_named("model.gguf", "tekken")


def test_gpt2_byte_alphabet_matches_transformers() -> None:
    convert = pytest.importorskip("transformers.convert_slow_tokenizer")
    assert bytes_to_unicode() == convert.bytes_to_unicode()
