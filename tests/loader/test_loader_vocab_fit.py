"""Tokenizer and model are checked against each other at load (issue 13, item 5).

A model whose embedding has a few more rows than its tokenizer has tokens is common (rows padded
for alignment: Qwen2 151936 rows for 151646 tokens, Phi-3 32064 for 32011). Such a model can
still *generate* a padding id, which no tokenizer can decode: before, generation then died with an
IndexError. Now the padding rows are cut from the classifier at load, so every id the model can
produce is one the tokenizer knows; a tokenizer much smaller than the model is refused as a
mismatch. The reference for the padded model's output is the same model without the padding.
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.inference import InferenceArgs, InferenceEngine
from llamanuts.model import LlamaTransformer
from llamanuts.model.loader import load_model

HEADER = struct.Struct("<7i")


def _padded_copy(source, target, extra_rows: np.ndarray) -> None:
    """stories260K with `extra_rows` appended to its (shared) embedding: vocab 512 + len(extra_rows)."""
    data = source.read_bytes()
    dim, hidden, layers, heads, kv, vocab, seq = HEADER.unpack_from(data, 0)
    embedding_end = HEADER.size + vocab * dim * 4
    header = HEADER.pack(dim, hidden, layers, heads, kv, vocab + len(extra_rows), seq)
    target.write_bytes(header + data[HEADER.size:embedding_end] + extra_rows.astype(np.float32).tobytes() + data[embedding_end:])


def _greedy_ids(loaded, prompt: str = "Once upon a time", tokens: int = 6) -> list[int]:
    engine = InferenceEngine(LlamaTransformer(loaded.args, loaded.weights, "f32"), loaded.tokenizer,
                             InferenceArgs(max_new_tokens=tokens, stop_on_bos=True))
    return [part.token_id for part in engine.Generate(engine.TokenizeText(prompt))]


@pytest.fixture
def stories(refs):
    return refs / "stories260K.bin", refs / "tok512.model"


def test_padding_rows_are_never_generated(stories, tmp_path):
    model, tokenizer = stories
    original = load_model(model, tokenizer)
    expected = _greedy_ids(original)
    # Padding rows that would win every argmax: 50 times the row of the first token greedy picks.
    embedding = original.weights.tok_embeddings.numpy()
    padded = tmp_path / "padded.bin"
    _padded_copy(model, padded, np.repeat(50 * embedding[expected[0]][None, :], 8, axis=0))
    loaded = load_model(padded, tokenizer)
    assert loaded.args.vocab_size == 512 and loaded.weights.output.shape == (512, 64)
    assert loaded.weights.shared_classifier
    assert _greedy_ids(loaded) == expected


def test_a_tokenizer_much_smaller_than_the_model_is_refused(stories, tmp_path):
    model, tokenizer = stories
    padded = tmp_path / "padded.bin"
    _padded_copy(model, padded, np.zeros((512, 64), np.float32))  # 1024 rows, 512 tokens
    with pytest.raises(ModelFileError, match=r"the tokenizer has 512 tokens but the model's embedding has 1024 rows"):
        load_model(padded, tokenizer)


def test_a_tokenizer_larger_than_the_model_is_refused(refs, tmp_path):
    data = (refs / "stories260K.bin").read_bytes()
    dim, hidden, layers, heads, kv, vocab, seq = HEADER.unpack_from(data, 0)
    cut = tmp_path / "cut.bin"  # 256 rows: the first 256 of the embedding
    embedding_end = HEADER.size + vocab * dim * 4
    cut.write_bytes(HEADER.pack(dim, hidden, layers, heads, kv, 256, seq) + data[HEADER.size:HEADER.size + 256 * dim * 4]
                    + data[embedding_end:])
    with pytest.raises(ModelFileError, match="tokenizer has 512 tokens but the model's embedding has only 256 rows"):
        load_model(cut, refs / "tok512.model")


# ---- the same check for GGUF files and Hugging Face directories, on real mismatching files ---------------
REPO = Path(__file__).resolve().parents[2]
HF = REPO / "tests" / "fixtures" / "hf"
TINY_META_TOKENIZER = REPO / "tests" / "fixtures" / "loader" / "tiny_meta" / "tokenizer.model"  # 512 pieces


def test_a_gguf_with_a_larger_tokenizer_file_is_refused(tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "gguf"))
    from ggufbytes import TinyLlama  # the test suite's GGUF writer (40 tokens, 40 embedding rows)

    path = tmp_path / "tiny.gguf"
    path.write_bytes(TinyLlama().build())
    assert load_model(path).tokenizer.vocab_size == 40  # its own vocab fits
    with pytest.raises(ModelFileError, match=r"tokenizer.model: the tokenizer has 512 tokens but the model's embedding has only 40 rows"):
        load_model(path, TINY_META_TOKENIZER)


def _hf_copy(tmp_path: Path, edit_tokenizer) -> Path:
    target = tmp_path / "tiny-llama2-hf"
    shutil.copytree(HF / "tiny-llama2-hf", target)
    spec = json.loads((target / "tokenizer.json").read_text())
    edit_tokenizer(spec)
    (target / "tokenizer.json").write_text(json.dumps(spec))
    return target


def _keep_first(count: int):
    """A tokenizer.json edit: only the vocab ids below `count`, and the merges that stay within them."""
    def edit(spec) -> None:
        model = spec["model"]
        model["vocab"] = {t: i for t, i in model["vocab"].items() if i < count}
        model["merges"] = [m for m in model["merges"] if all(p in model["vocab"] for p in (*m, "".join(m)))]
    return edit


def test_a_hugging_face_tokenizer_with_more_tokens_than_rows_is_refused(tmp_path):
    def add_tokens(spec) -> None:
        spec["added_tokens"] += [{"id": 320 + i, "content": f"<extra_{i}>", "single_word": False, "lstrip": False,
                                  "rstrip": False, "normalized": False, "special": True} for i in range(4)]

    directory = _hf_copy(tmp_path, add_tokens)
    with pytest.raises(ModelFileError, match=r"tokenizer.json: the tokenizer has 324 tokens but the model's embedding has only 320 rows"):
        load_model(directory)


def test_a_hugging_face_tokenizer_a_little_smaller_than_the_rows_cuts_the_padding(tmp_path):
    loaded = load_model(_hf_copy(tmp_path, _keep_first(300)))  # 20 rows of 320: within 1/16
    assert loaded.tokenizer.vocab_size == loaded.args.vocab_size == 300
    assert loaded.weights.output.shape == (300, 32) and loaded.weights.tok_embeddings.shape == (300, 32)


def test_a_hugging_face_tokenizer_much_smaller_than_the_rows_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match=r"the tokenizer has 250 tokens but the model's embedding has 320 rows: more than 1/16"):
        load_model(_hf_copy(tmp_path, _keep_first(250)))
