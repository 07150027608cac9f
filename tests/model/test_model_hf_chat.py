"""Chat on Hugging Face directories, end to end with our own parts: tokenizer.json read by our
HFTokenizer, the directory's chat template rendered by our JinjaChatTemplate, our engine generating.

The reference is transformers: for the tiny committed fixtures (random models, tests/fixtures/hf/),
its outputs committed beside them by tools/make_hf_fixture.py (the chat prompt ids from
apply_chat_template and 40 ids from generate(do_sample=False) with end-of-sequence stopping off, at
top-2 margins of at least 0.05 chosen by that script), and live when transformers is installed.
SmolLM2 converted to a Hugging Face directory is in test_model_hf_reference_live.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llamanuts.inference import InferenceArgs, InferenceEngine
from llamanuts.inference.prompt import ChatMessage
from llamanuts.model import LlamaTransformer
from llamanuts.model.loader import FORMAT_HF, load_model

ROOT = Path(__file__).resolve().parents[2]
HF = ROOT / "tests" / "fixtures" / "hf"
MODELS = ["tiny-llama2-hf", "tiny-llama32-hf"]
# tools/make_hf_fixture.py's PROMPT, the dialog its reference ids were made from
SYSTEM, USER = "You answer briefly.", "The cat finds 42 apples!"
DIALOG = [ChatMessage("system", SYSTEM), ChatMessage("user", USER)]


def _reference(name: str) -> np.lib.npyio.NpzFile:
    return np.load(HF / "reference" / f"{name}.npz")


def _engine(name: str, max_new_tokens: int) -> InferenceEngine:
    loaded = load_model(HF / name)
    assert loaded.format == FORMAT_HF and loaded.tokenizer.kind == "huggingface"
    model = LlamaTransformer(loaded.args, loaded.weights, "f32")
    return InferenceEngine(model, loaded.tokenizer, InferenceArgs(max_new_tokens=max_new_tokens))


MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]


def _transformers():  # type: ignore[no-untyped-def]
    return pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[reference]')")


@pytest.mark.parametrize("name", MODELS)
def test_chat_prompt_ids_equal_the_shipped_tokenizer_json_encoding_transformers_rendering(name: str) -> None:
    # transformers renders the template; the `tokenizers` library encodes that text with the directory's
    # own tokenizer.json (its special tokens split out as the added tokens they are).
    tokenizers = pytest.importorskip("tokenizers")
    text = _transformers().AutoTokenizer.from_pretrained(HF / name).apply_chat_template(
        MESSAGES, add_generation_prompt=True, tokenize=False
    )
    expected = tokenizers.Tokenizer.from_file(str(HF / name / "tokenizer.json")).encode(text, add_special_tokens=False).ids
    assert _engine(name, 1).TokenizeChat(DIALOG) == expected


def test_byte_level_chat_prompt_ids_equal_transformers_apply_chat_template() -> None:
    name = "tiny-llama32-hf"
    committed = [int(i) for i in _reference(name)["ids"]]  # apply_chat_template's ids, by make_hf_fixture.py
    assert _engine(name, 1).TokenizeChat(DIALOG) == committed
    live = _transformers().AutoTokenizer.from_pretrained(HF / name).apply_chat_template(
        MESSAGES, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    assert [int(i) for i in live] == committed


def test_transformers_5_llama_tokenizer_drops_the_dummy_prefix_after_bos_where_tokenizer_json_keeps_it() -> None:
    # A documented divergence. tiny-llama2-hf's tokenizer.json (like meta-llama/Llama-2-7b-hf's) normalizes
    # with Prepend("▁") + Replace(" ", "▁"), so the text after the <s> the template writes starts with "▁",
    # as in Meta's chat_completion, which encodes "[INST] ..." with SentencePiece's dummy prefix. transformers
    # 5's LlamaTokenizer (tokenizer_class in tokenizer_config.json) does not use that normalizer: it rebuilds
    # the pipeline as Metaspace(prepend_scheme="first"), which adds no "▁" after a special token
    # (transformers/models/llama/tokenization_llama.py; huggingface/transformers PR 47700 describes the gap).
    # We follow tokenizer.json; the ids differ by exactly that one "▁" token after <s>.
    name = "tiny-llama2-hf"
    engine = _engine(name, 1)
    ours = engine.TokenizeChat(DIALOG)
    theirs = [int(i) for i in _reference(name)["ids"]]
    assert ours[:1] == theirs[:1] == [engine.tokenizer.bos_id]
    assert engine.tokenizer.id_to_piece(ours[1]) == "▁" and ours[2:] == theirs[1:]


def test_greedy_chat_answer_equals_transformers_generate_for_40_tokens_byte_level() -> None:
    name = "tiny-llama32-hf"  # our prompt ids are transformers' (above): its committed generate output applies
    expected = [int(t) for t in _reference(name)["greedy"]]
    engine = _engine(name, len(expected))
    engine.stop_ids = frozenset()  # as the reference: end-of-sequence stopping off, a fixed length
    assert [part.token_id for part in engine.Generate(engine.TokenizeChat(DIALOG))] == expected


def test_greedy_chat_answer_equals_transformers_generate_for_40_tokens_sentencepiece_style() -> None:
    # Our prompt (with the "▁" after <s>) differs from the committed one, so transformers runs live on it.
    pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[reference]')")
    _transformers()
    from tools import reference_hf

    name = "tiny-llama2-hf"
    engine = _engine(name, 40)
    engine.stop_ids = frozenset()
    ids = engine.TokenizeChat(DIALOG)
    expected, gaps = reference_hf.greedy(reference_hf.load_reference_model(HF / name), ids, 40)
    assert min(gaps) > 1e-3  # no near-tie: exact agreement is required (measured: smallest gap 4.2e-3)
    assert [part.token_id for part in engine.Generate(ids)] == expected


def test_the_cli_chats_with_a_hugging_face_directory_and_prints_transformers_answer() -> None:
    transformers = _transformers()
    name = "tiny-llama32-hf"  # byte-level BPE: the printed text is exactly the decoded ids
    greedy = [int(t) for t in _reference(name)["greedy"]]
    stops = _engine(name, 1).stop_ids
    answer = greedy[: next((i for i, t in enumerate(greedy) if t in stops), len(greedy))]
    expected = transformers.AutoTokenizer.from_pretrained(HF / name).decode(answer, clean_up_tokenization_spaces=False)
    run = subprocess.run(
        [sys.executable, "-m", "cmd.llama_infer", "--model", str(HF / name), "--dtype", "f32",
         "--system", SYSTEM, "--prompt", USER, "--max-tokens", str(len(greedy))],
        cwd=ROOT, capture_output=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")
    # bytes, decoded here: text mode would turn the answer's "\r" into "\n"
    assert run.stdout.decode("utf-8").rstrip("\n") == expected
    assert "loaded huggingface model" in run.stderr.decode("utf-8", "replace")  # the summary names the format
