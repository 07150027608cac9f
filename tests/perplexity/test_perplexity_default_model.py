"""The default model's held-out perplexity, computed by our engine, equals what the PyTorch training
script reported for the same slice (models/kjv/eval.json): loader, tokenizer and forward pass agree
with PyTorch on a real trained model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamanuts.inference.perplexity import perplexity
from llamanuts.model import LlamaTransformer
from llamanuts.model.loader import load_model

MODEL = Path(__file__).resolve().parents[2] / "models" / "kjv"


def test_first_8_validation_chunks_match_the_pytorch_evaluation_in_f32() -> None:
    evaluation = json.loads((MODEL / "eval.json").read_text())
    expected = evaluation["first_8_chunks"]
    loaded = load_model(MODEL)
    model = LlamaTransformer(loaded.args, loaded.weights, "f32")
    stream = loaded.tokenizer.encode((MODEL / evaluation["validation_file"]).read_text(encoding="utf-8"))
    assert len(stream) == evaluation["stream_tokens"]
    result = perplexity(model, stream, loaded.tokenizer.bos_id, ctx=evaluation["ctx"], max_chunks=8)
    assert result.tokens == expected["n_tokens"]
    assert result.mean_nll == pytest.approx(expected["mean_nll"], rel=1e-6)
    assert result.perplexity == pytest.approx(expected["perplexity"], rel=1e-5)


def test_bf16_mode_perplexity_stays_within_one_percent_of_f32() -> None:
    evaluation = json.loads((MODEL / "eval.json").read_text())
    loaded = load_model(MODEL)
    model = LlamaTransformer(loaded.args, loaded.weights, "bf16")
    stream = loaded.tokenizer.encode((MODEL / evaluation["validation_file"]).read_text(encoding="utf-8"))
    result = perplexity(model, stream, loaded.tokenizer.bos_id, ctx=evaluation["ctx"], max_chunks=2)
    f32 = LlamaTransformer(loaded.args, loaded.weights, "f32")
    reference = perplexity(f32, stream, loaded.tokenizer.bos_id, ctx=evaluation["ctx"], max_chunks=2)
    assert result.perplexity == pytest.approx(reference.perplexity, rel=0.01)
