"""tokenizer_from_gguf: every metadata key is checked, and bad ones are clear errors.

A tiny byte-level vocab is trained here with the `tokenizers` package, written out as GGUF
metadata, and the same `tokenizers` model (with the same added tokens) is the reference for ids.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from llamanuts.common import TokenizerError
from llamanuts.tokenizer import BPETokenizer, tokenizer_from_gguf
from tokenizer_testdata import VARIED_TEXTS

tokenizers = pytest.importorskip("tokenizers")

TRAINING_TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, hello tokens; 12345 and 678",
    "byte pair encoding merges the most frequent pair",
    "<think>reasoning</think> then an answer",
] * 20
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@pytest.fixture(scope="module")
def trained() -> Any:
    """A 400-token byte-level BPE with three special tokens and one user-defined token."""
    model = tokenizers.Tokenizer(tokenizers.models.BPE())
    model.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    model.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    model.train_from_iterator(TRAINING_TEXT, trainer)
    model.add_tokens([tokenizers.AddedToken("<think>", special=False, normalized=False)])
    model.encode_special_tokens = True
    return model


def metadata_of(trained: Any, **changes: Any) -> dict[str, Any]:
    """The GGUF keys llama.cpp's converter would write for `trained`."""
    spec = json.loads(trained.to_str())
    vocab = trained.get_vocab(with_added_tokens=True)
    tokens = [""] * len(vocab)
    for text, id in vocab.items():
        tokens[id] = text
    types = [1] * len(tokens)
    for id, token in trained.get_added_tokens_decoder().items():
        types[id] = 3 if token.special else 4
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]]
    metadata: dict[str, Any] = {
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt-2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": np.array(types, dtype=np.int32),
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
        "tokenizer.chat_template": "{{ messages }}",
    }
    for key, value in changes.items():
        name = key if key.startswith("tokenizer.") else "tokenizer.ggml." + key
        if value is None:
            metadata.pop(name, None)
        else:
            metadata[name] = value
    return metadata


def test_ids_equal_the_tokenizers_package(trained: Any) -> None:
    ours = tokenizer_from_gguf(metadata_of(trained), "tiny.gguf")
    texts = VARIED_TEXTS + TRAINING_TEXT[:4] + ["<think>x<think>", "a<|im_end|>b", "  <think>  "]
    assert [t for t in texts if ours.encode(t) != trained.encode(t, add_special_tokens=False).ids] == []


def test_user_defined_tokens_are_matched_whole_and_print_their_text(trained: Any) -> None:
    ours = tokenizer_from_gguf(metadata_of(trained), "tiny.gguf")
    think = ours.piece_to_id("<think>")
    assert ours.encode("<think>") == [think]
    assert ours.piece_bytes(think) == b"<think>"
    assert "<think>" not in ours.special_tokens


def test_flags_ids_and_template_are_read(trained: Any) -> None:
    ours = tokenizer_from_gguf(metadata_of(trained, add_bos_token=True, eot_token_id=0), "tiny.gguf")
    assert isinstance(ours, BPETokenizer)
    assert ours.add_bos is True
    assert ours.stop_ids == frozenset({2, 0})
    assert ours.chat_template == "{{ messages }}"
    ids = ours.encode("hi", bos=True, eos=True)
    assert (ids[0], ids[-1]) == (1, 2)


def test_a_missing_pre_tokenizer_name_means_llama_cpps_default(trained: Any) -> None:
    ours = tokenizer_from_gguf(metadata_of(trained, pre=None), "tiny.gguf")
    assert isinstance(ours, BPETokenizer)
    assert ours.pre_tokenizer.name == "default"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": None}, r"tokenizer.ggml.model is missing"),
        ({"model": "bert"}, r"tokenizer.ggml.model is 'bert', a tokenizer we do not support; supported: 'gpt2' .*'llama'"),
        ({"model": 7}, r"tokenizer.ggml.model should be a string, got int"),
        ({"pre": "tekken"}, r"tokenizer.ggml.pre is 'tekken', a pre-tokenizer we do not know"),
        ({"tokens": None}, r"tokenizer.ggml.tokens is missing"),
        ({"tokens": np.zeros(3)}, r"tokenizer.ggml.tokens should be an array of strings"),
        ({"merges": None}, r"tokenizer.ggml.merges is missing"),
        ({"merges": ["Ġ"]}, r"merge 0 \('Ġ'\) is not two tokens separated by a space"),
        ({"merges": ["Ġ zzzz"]}, r"merge 0 \('Ġ zzzz'\) needs the token 'zzzz', which is not in the vocab"),
        ({"token_type": np.ones(5, dtype=np.int32)}, r"tokenizer.ggml.token_type has 5 entries but tokenizer.ggml.tokens has \d+"),
        ({"token_type": np.full((2, 2), 1)}, r"tokenizer.ggml.token_type should be a 1-D array of integers"),
        ({"bos_token_id": 10**6}, r"tokenizer.ggml.bos_token_id is 1000000, outside the vocab of \d+ tokens"),
        ({"eos_token_id": -1}, r"tokenizer.ggml.eos_token_id is -1, outside the vocab"),
        ({"eos_token_id": True}, r"tokenizer.ggml.eos_token_id should be an integer token id, got bool"),
        ({"add_bos_token": 1}, r"tokenizer.ggml.add_bos_token should be a boolean, got int"),
        ({"tokenizer.chat_template": ["x"]}, r"tokenizer.chat_template should be a string, got list"),
    ],
)
def test_bad_metadata_is_a_clear_error_naming_the_file_and_key(trained: Any, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(TokenizerError, match=message) as info:
        tokenizer_from_gguf(metadata_of(trained, **changes), "/models/tiny.gguf")
    assert str(info.value).startswith("/models/tiny.gguf: ")


def test_an_unknown_token_type_is_an_error(trained: Any) -> None:
    types = metadata_of(trained)["tokenizer.ggml.token_type"].copy()
    types[7] = 9
    with pytest.raises(TokenizerError, match=r"token_type has type 9 for token 7; known types are \[1, 2, 3, 4, 5, 6\]"):
        tokenizer_from_gguf(metadata_of(trained, token_type=types), "tiny.gguf")


def test_a_repeated_token_is_an_error(trained: Any) -> None:
    tokens = list(metadata_of(trained)["tokenizer.ggml.tokens"])
    tokens[300] = tokens[299]
    with pytest.raises(TokenizerError, match=r"token 300 repeats the text .* of token 299"):
        tokenizer_from_gguf(metadata_of(trained, tokens=tokens), "tiny.gguf")


def test_a_merge_that_would_build_a_control_token_is_dropped(trained: Any) -> None:
    # Mark the merged word "the" as a control token: text "the" must no longer produce it, while
    # the unchanged vocab does (so the merge really is what the rule removes).
    metadata = metadata_of(trained)
    the = metadata["tokenizer.ggml.tokens"].index("the")
    assert tokenizer_from_gguf(metadata, "tiny.gguf").encode("the") == [the]
    types = metadata["tokenizer.ggml.token_type"].copy()
    types[the] = 3
    ours = tokenizer_from_gguf(metadata_of(trained, token_type=types), "tiny.gguf")
    ids = ours.encode("the")
    assert the not in ids
    assert ours.decode(ids) == "the"


def test_scores_are_required_and_finite_for_a_sentencepiece_vocab() -> None:
    base = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "▁"]}
    with pytest.raises(TokenizerError, match="tokenizer.ggml.scores is missing"):
        tokenizer_from_gguf(base, "spm.gguf")
    with pytest.raises(TokenizerError, match="non-finite score nan for token 3"):
        tokenizer_from_gguf({**base, "tokenizer.ggml.scores": np.array([0, 0, 0, np.nan])}, "spm.gguf")
    with pytest.raises(TokenizerError, match="typed as a byte piece but reads '▁'"):
        tokenizer_from_gguf(
            {**base, "tokenizer.ggml.scores": np.zeros(4), "tokenizer.ggml.token_type": np.array([2, 3, 3, 6])}, "spm.gguf"
        )


def test_a_sentencepiece_vocab_without_types_types_its_byte_and_control_pieces() -> None:
    tokens = ["<unk>", "<s>", "</s>", "▁", "<0x41>"]
    ours = tokenizer_from_gguf(
        {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.scores": np.zeros(5)}, "spm.gguf"
    )
    assert ours.special_tokens == {"<unk>": 0, "<s>": 1, "</s>": 2}
    assert ours.is_byte_piece(4) and ours.piece_bytes(4) == b"A"


# ---- token strings that are wrong for their role (issue 13) ---------------------------------------------
@pytest.mark.parametrize("key", ["bos_token_id", "eos_token_id", "unknown_token_id", "eot_token_id", "eom_token_id"])
def test_a_special_id_that_names_an_empty_token_is_an_error(trained: Any, key: str) -> None:
    # An empty BOS would render as '' in the chat template and silently vanish from the prompt.
    tokens = list(metadata_of(trained)["tokenizer.ggml.tokens"])
    tokens[5] = ""
    with pytest.raises(TokenizerError, match=rf"tokenizer.ggml.{key} is 5, and token 5 is an empty string"):
        tokenizer_from_gguf(metadata_of(trained, tokens=tokens, **{key: 5}), "tiny.gguf")


def test_an_empty_ordinary_token_is_kept_as_a_token_no_text_encodes_to(trained: Any) -> None:
    # llama.cpp accepts (and warns about) empty entries; they print nothing and nothing encodes to them.
    metadata = metadata_of(trained)
    tokens = list(metadata["tokenizer.ggml.tokens"])
    last_merged = tokens.index(metadata["tokenizer.ggml.merges"][-1].replace(" ", ""))
    tokens[last_merged] = ""
    ours = tokenizer_from_gguf(metadata_of(trained, tokens=tokens, merges=metadata["tokenizer.ggml.merges"][:-1]), "tiny.gguf")
    assert ours.piece_bytes(last_merged) == b""
    assert last_merged not in ours.encode(" ".join(TRAINING_TEXT[:4]))


@pytest.mark.parametrize("dtype", [np.float32, np.bool_, np.float64])
def test_token_types_that_are_not_integers_are_an_error(trained: Any, dtype: type) -> None:
    types = metadata_of(trained)["tokenizer.ggml.token_type"].astype(dtype)
    with pytest.raises(TokenizerError, match=rf"tokenizer.ggml.token_type should be a 1-D array of integers, got a {np.dtype(dtype)} array"):
        tokenizer_from_gguf(metadata_of(trained, token_type=types), "tiny.gguf")


def test_token_types_given_as_strings_are_an_error(trained: Any) -> None:
    types = [str(t) for t in metadata_of(trained)["tokenizer.ggml.token_type"]]
    with pytest.raises(TokenizerError, match=r"tokenizer.ggml.token_type should be a 1-D array of integers, got list"):
        tokenizer_from_gguf(metadata_of(trained, token_type=types), "tiny.gguf")


def test_scores_that_are_not_numbers_are_an_error() -> None:
    base = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>", "▁"]}
    with pytest.raises(TokenizerError, match=r"tokenizer.ggml.scores should be a 1-D array of numbers, got list"):
        tokenizer_from_gguf({**base, "tokenizer.ggml.scores": ["0"] * 4}, "spm.gguf")


def test_a_merge_whose_parts_are_unknown_names_the_merge_and_the_token(trained: Any) -> None:
    merges = list(metadata_of(trained)["tokenizer.ggml.merges"])
    merges[3] = "<|im_end|> Ġ"  # both parts are tokens; their join is not
    with pytest.raises(TokenizerError, match=r"merge 3 \('<\|im_end\|> Ġ'\) needs the token '<\|im_end\|>Ġ', which is not in the vocab"):
        tokenizer_from_gguf(metadata_of(trained, merges=merges), "tiny.gguf")
