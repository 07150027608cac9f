"""The byte-level BPE of a GGUF `gpt2` vocab, on the real SmolLM2-135M-Instruct file.

References:
- transformers' tokenizer built from the same GGUF (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`),
  encoding with special tokens split as text (`split_special_tokens=True`);
- the same transformers tokenizer with SmolLM2's own pre-tokenizer put back: its tokenizer.json
  (HuggingFaceTB/SmolLM2-135M-Instruct) pre-tokenizes with `Digits(individual_digits=True)` then
  `ByteLevel`, which is what llama.cpp's "smollm" names. transformers' GGUF loader does not map
  "smollm" and uses plain ByteLevel, which differs where digits follow a run of spaces (see
  test_transformers_gguf_loader_drops_smollms_digit_split).
"""

from __future__ import annotations

from typing import Any

import pytest

from corpus_testdata import corpus
from gguf_testdata import smollm2_metadata, smollm2_path, transformers_gguf_tokenizer
from llamanuts.tokenizer import BPETokenizer, InvalidTextError, TokenType, tokenizer_from_gguf
from llamanuts.tokenizer.pair_merge import MergeCounters, merge_adjacent_pairs


@pytest.fixture(scope="module")
def smollm2() -> BPETokenizer:
    tokenizer = tokenizer_from_gguf(smollm2_metadata(), smollm2_path())
    assert isinstance(tokenizer, BPETokenizer)
    return tokenizer


@pytest.fixture(scope="module")
def hf_gguf() -> Any:
    return transformers_gguf_tokenizer(smollm2_path())


@pytest.fixture(scope="module")
def hf_model_pipeline(hf_gguf: Any) -> Any:
    """transformers' GGUF tokenizer with SmolLM2's tokenizer.json pre-tokenizer restored."""
    tokenizers = pytest.importorskip("tokenizers")
    backend = tokenizers.Tokenizer.from_str(hf_gguf.backend_tokenizer.to_str())
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Sequence(
        [
            tokenizers.pre_tokenizers.Digits(individual_digits=True),
            tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.encode_special_tokens = True  # special-token text is encoded as text, as ours is
    return backend


def hf_ids(hf: Any, text: str) -> list[int]:
    return list(hf.encode(text, add_special_tokens=False, split_special_tokens=True))


# ---- what the metadata says ----------------------------------------------------------------------
def test_smollm2_vocab_facts(smollm2: BPETokenizer) -> None:
    assert (smollm2.kind, smollm2.vocab_size) == ("bpe", 49152)
    assert (smollm2.bos_id, smollm2.eos_id, smollm2.unk_id) == (1, 2, 0)
    assert smollm2.id_to_piece(2) == "<|im_end|>"
    assert smollm2.stop_ids == frozenset({2})
    assert smollm2.add_bos is False
    assert smollm2.strip_leading_space_after_bos is False
    assert smollm2.chat_template is not None and "<|im_start|>" in smollm2.chat_template
    assert smollm2.pre_tokenizer.name == "smollm"


def test_special_tokens_are_the_control_tokens(smollm2: BPETokenizer) -> None:
    metadata = smollm2_metadata()
    controls = {
        text: id
        for id, (text, kind) in enumerate(zip(metadata["tokenizer.ggml.tokens"], metadata["tokenizer.ggml.token_type"]))
        if kind == TokenType.CONTROL
    }
    assert smollm2.special_tokens == controls
    assert len(controls) == 17
    assert all(smollm2.piece_bytes(id) == b"" for id in controls.values())


# ---- ids against the references, on the corpus -------------------------------------------------
def test_corpus_has_at_least_2000_lines() -> None:
    assert len(corpus()) >= 2000


def test_corpus_ids_equal_smollm2s_own_pipeline(smollm2: BPETokenizer, hf_model_pipeline: Any) -> None:
    expected = [e.ids for e in hf_model_pipeline.encode_batch(list(corpus()), add_special_tokens=False)]
    mismatches = [text for text, ids in zip(corpus(), expected) if smollm2.encode(text) != ids]
    assert mismatches == []


def test_corpus_ids_equal_transformers_gguf_tokenizer_where_its_pre_tokenizer_agrees(
    smollm2: BPETokenizer, hf_gguf: Any, hf_model_pipeline: Any
) -> None:
    """On every line where transformers' GGUF tokenizer and SmolLM2's own pipeline agree (both
    references, neither ours), ours agrees too; where they differ, ours is SmolLM2's."""
    pipeline = [e.ids for e in hf_model_pipeline.encode_batch(list(corpus()), add_special_tokens=False)]
    agreeing = [(text, ids) for text, ids in zip(corpus(), pipeline) if hf_ids(hf_gguf, text) == ids]
    assert len(agreeing) >= 2000
    assert [text for text, ids in agreeing if smollm2.encode(text) != ids] == []


def test_decode_of_encode_gives_the_line_back(smollm2: BPETokenizer) -> None:
    assert [text for text in corpus() if smollm2.decode(smollm2.encode(text)) != text] == []


def test_piece_bytes_rebuild_every_corpus_line(smollm2: BPETokenizer) -> None:
    for text in corpus():
        assert b"".join(smollm2.piece_bytes(i) for i in smollm2.encode(text)) == text.encode("utf-8")


def test_transformers_gguf_loader_drops_smollms_digit_split(
    smollm2: BPETokenizer, hf_gguf: Any, hf_model_pipeline: Any
) -> None:
    # Two spaces then digits: SmolLM2 (llama.cpp's "smollm": \p{N} isolated first, then GPT-2's
    # regex) keeps "  " whole as "ĠĠ"; plain GPT-2 splits " " + " 134" and gets "Ġ", "Ġ" instead.
    text = "x =  134"
    ours = smollm2.encode(text)
    assert ours == hf_model_pipeline.encode(text, add_special_tokens=False).ids
    assert ours != hf_ids(hf_gguf, text)
    assert [smollm2.id_to_piece(i) for i in ours[-4:]] == ["ĠĠ", "1", "3", "4"]


# ---- safety and bad input -------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["<|im_end|>", "Hi<|im_start|>assistant\n", "<|endoftext|><repo_name>"])
def test_typed_control_token_text_stays_ordinary_tokens(smollm2: BPETokenizer, hf_gguf: Any, text: str) -> None:
    ids = smollm2.encode(text)
    assert not set(ids) & set(smollm2.special_tokens.values())
    assert ids == hf_ids(hf_gguf, text)


def test_a_lone_surrogate_is_a_clear_error(smollm2: BPETokenizer) -> None:
    with pytest.raises(InvalidTextError, match=r"not valid Unicode: a lone surrogate \(U\+DCFF\) at character 3"):
        smollm2.encode("abc\udcff")


def test_a_byte_missing_from_the_vocab_is_a_clear_error(smollm2: BPETokenizer) -> None:
    # SmolLM2's vocab has no token for the control character U+0004 (see _find_byte_ids).
    with pytest.raises(InvalidTextError, match=r"U\+0004 .* no token for the byte 0x04"):
        smollm2.encode("end of transmission \x04")


def test_a_long_run_of_one_character_merges_in_linear_heap_work(
    smollm2: BPETokenizer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llamanuts.tokenizer.bpe_tokenizer as module

    counters = MergeCounters()
    monkeypatch.setattr(module, "merge_adjacent_pairs", lambda ids, lookup: merge_adjacent_pairs(ids, lookup, counters))
    n = 30_000
    ids = smollm2.encode("a" * n)  # one pre-token of n symbols
    assert counters.pushes <= 3 * n
    assert counters.merges == n - len(ids)
    assert smollm2.decode(ids) == "a" * n


def test_the_word_cache_stays_bounded(smollm2: BPETokenizer, monkeypatch: pytest.MonkeyPatch) -> None:
    import llamanuts.tokenizer.bpe_tokenizer as module

    monkeypatch.setattr(module, "_CACHE_ENTRIES", 100)
    words = [chr(97 + i % 26) + chr(97 + i // 26 % 26) + chr(97 + i // 676) + "q" for i in range(1000)]
    smollm2.encode(" ".join(words))
    assert len(smollm2._cache) <= 100
