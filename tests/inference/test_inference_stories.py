"""The engine on a real trained model (Karpathy's stories260K, llama2.c format), in-process.

Greedy generation from BOS must reproduce the PyTorch reference's ids (tests/fixtures/reference),
and the streamed text must be exactly the decode of those ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llamanuts.inference import GenerationState, InferenceArgs, InferenceEngine

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_REFS = REPO_ROOT.parent / "shared" / "refs"
STORIES = SHARED_REFS / "stories260K.bin"
TOK512 = SHARED_REFS / "tok512.bin"
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "reference" / "stories260K.npz"


@pytest.fixture(scope="module")
def loaded():
    if not (STORIES.exists() and TOK512.exists()):
        pytest.skip(f"stories260K.bin / tok512.bin not found in {SHARED_REFS}")
    from llamanuts.model.loader import load_model

    return load_model(STORIES, TOK512)


def engine_for(loaded, mode: str, **kwargs) -> InferenceEngine:
    from llamanuts.model.llamatransformer import LlamaTransformer

    model = LlamaTransformer(loaded.args, loaded.weights, mode)
    return InferenceEngine(model, loaded.tokenizer, InferenceArgs(stop_on_bos=True, **kwargs))


def test_f32_greedy_from_bos_equals_the_reference(loaded) -> None:
    if not FIXTURE.exists():
        pytest.skip(f"{FIXTURE} not generated")
    expected = np.load(FIXTURE)["f32/greedy"].tolist()
    engine = engine_for(loaded, "f32", max_new_tokens=len(expected))
    parts = list(engine.Generate(engine.TokenizeText("")))
    assert [p.token_id for p in parts] == expected
    text = "".join(p.text for p in parts)
    assert text.startswith("Once upon a time, there was a little girl named Lily.")
    assert text == loaded.tokenizer.decode(expected).lstrip(" ")


def test_prompt_prefill_continues_the_story(loaded) -> None:
    engine = engine_for(loaded, "bf16", max_new_tokens=11)
    tokens = engine.TokenizeText("Once upon a time")
    assert tokens == [1, 403, 407, 261, 378]
    parts = list(engine.Generate(tokens))
    assert "".join(p.text for p in parts) == ", there was a little girl named Lily."
    assert parts[-1].state is GenerationState.FINISHED_MAX_TOKENS


def test_greedy_run_ends_on_bos(loaded) -> None:
    engine = engine_for(loaded, "f32")
    parts = list(engine.Generate([1]))
    assert parts[-1].token_id == 1 and parts[-1].state is GenerationState.FINISHED_EOS
    assert len(parts) == 346  # 345 ids, then BOS, as SOURCES.md records for run.c
    assert engine.stats.tokens_per_second is not None
