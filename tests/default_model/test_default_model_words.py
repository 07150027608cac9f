"""The default model writes the corpus' English: at least 95% of the words it generates, greedy and
sampled, from the CLI's predefined prompts, occur in its training text (models/kjv/corpus_words.txt,
made by tools/make_corpus_words.py from the same Debian package the model was trained on)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llamanuts.inference import InferenceArgs, InferenceEngine
from llamanuts.model import LlamaTransformer
from llamanuts.model.loader import load_model

MODEL = Path(__file__).resolve().parents[2] / "models" / "kjv"
PROMPTS = ["In the beginning", "And the LORD said unto Moses", "Blessed are the"]  # cmd.llama_infer's menu
WORD = re.compile(r"[A-Za-z]+")


@pytest.fixture(scope="module")
def corpus_words() -> set[str]:
    return set((MODEL / "corpus_words.txt").read_text(encoding="utf-8").split())


@pytest.fixture(scope="module")
def model() -> tuple[LlamaTransformer, object]:
    loaded = load_model(MODEL)
    return LlamaTransformer(loaded.args, loaded.weights, "bf16"), loaded.tokenizer


def _continuation(model: tuple[LlamaTransformer, object], prompt: str, args: InferenceArgs) -> str:
    transformer, tokenizer = model
    engine = InferenceEngine(transformer, tokenizer, args)
    return "".join(part.text for part in engine.Generate(engine.TokenizeText(prompt))) + engine.FlushText()


def test_the_corpus_word_list_is_the_kjv_vocabulary(corpus_words: set[str]) -> None:
    assert {"LORD", "Moses", "begat", "thee", "thou", "unto"} <= corpus_words
    assert 10_000 < len(corpus_words) < 20_000


@pytest.mark.parametrize(
    "sampling",
    [
        InferenceArgs(max_new_tokens=60, temperature=0.0),
        InferenceArgs(max_new_tokens=60, temperature=0.8, top_p=0.9, seed=1),
        InferenceArgs(max_new_tokens=60, temperature=0.8, top_p=0.9, seed=2),
        InferenceArgs(max_new_tokens=60, temperature=1.0, seed=3),
    ],
    ids=["greedy", "t0.8-p0.9-seed1", "t0.8-p0.9-seed2", "t1.0-seed3"],
)
def test_at_least_95_percent_of_generated_words_occur_in_the_corpus(
    model: tuple[LlamaTransformer, object], corpus_words: set[str], sampling: InferenceArgs
) -> None:
    words = [w for prompt in PROMPTS for w in WORD.findall(_continuation(model, prompt, sampling))]
    assert len(words) >= 60, "the model should write words, not only punctuation"
    unknown = [w for w in words if w not in corpus_words]
    assert len(unknown) / len(words) <= 0.05, f"{len(unknown)}/{len(words)} not in the corpus: {unknown[:20]}"
