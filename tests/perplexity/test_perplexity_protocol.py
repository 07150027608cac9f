"""The perplexity protocol and cmd.llama_perplexity, checked against independent computations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llamanuts.inference.perplexity import chunk_nll_sum, chunk_tokens, perplexity
from llamanuts.model import LlamaTransformer, tokens_tensor
from llamanuts.model.loader import load_model

REPO = Path(__file__).resolve().parents[2]
REFS = REPO.parent / "shared" / "refs"
STORY = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high. Lily asked her "
    "mom to help her. Her mom said, \"Sure, Lily!\" They played together all day long."
)


def test_chunks_are_consecutive_and_the_partial_tail_is_dropped() -> None:
    assert chunk_tokens(list(range(10)), 4) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert chunk_tokens(list(range(10)), 4, max_chunks=1) == [[0, 1, 2, 3]]
    assert chunk_tokens(list(range(3)), 4) == []


def test_nll_sum_equals_the_definition_in_float64() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 11)).astype(np.float32)
    targets = [3, 0, 10, 7, 7]
    expected = 0.0
    for row, t in zip(logits.astype(np.float64), targets):
        expected -= np.log(np.exp(row[t]) / np.exp(row).sum())
    assert chunk_nll_sum(logits, targets) == pytest.approx(expected, rel=1e-12)


def test_standard_error_is_the_sample_standard_deviation_over_sqrt_n() -> None:
    from llamanuts.inference.perplexity import nll_standard_error

    values = np.array([2.0, 3.5, 1.25, 4.0, 2.75])
    expected = np.std(values, ddof=1) / np.sqrt(len(values))  # numpy's sample standard deviation
    assert nll_standard_error(float(values.sum()), float((values**2).sum()), len(values)) == pytest.approx(expected, rel=1e-12)
    assert np.isnan(nll_standard_error(2.0, 4.0, 1))


def test_perplexity_reports_its_standard_error_and_the_running_value() -> None:
    model, stream, bos = _stories()
    seen: list[tuple[int, int, float]] = []
    result = perplexity(model, stream, bos, ctx=16, running=lambda done, total, ppl: seen.append((done, total, ppl)))
    nlls = []
    for chunk in chunk_tokens(stream, 16):
        logits = model.Forward(model.NewInferenceContext(17), tokens_tensor([bos] + chunk), 0).data
        row = logits[:-1].astype(np.float64)
        nlls.extend(np.log(np.exp(row).sum(axis=1)) - row[np.arange(16), chunk])
    nlls = np.array(nlls)
    assert result.nll_stderr == pytest.approx(np.std(nlls, ddof=1) / np.sqrt(len(nlls)), rel=1e-6)
    assert result.perplexity_stderr == pytest.approx(result.perplexity * result.nll_stderr)
    assert [s[0] for s in seen] == list(range(1, result.chunks + 1)) and all(s[1] == result.chunks for s in seen)
    assert seen[-1][2] == pytest.approx(result.perplexity)
    assert seen[0][2] == pytest.approx(np.exp(nlls[:16].mean()), rel=1e-6)


def _stories() -> tuple[LlamaTransformer, list[int], int]:
    if not (REFS / "stories260K.bin").exists():
        pytest.skip(f"{REFS} is absent (the shared reference models live beside the repository)")
    loaded = load_model(REFS / "stories260K.bin", tokenizer_path=REFS / "tok512.bin")
    return LlamaTransformer(loaded.args, loaded.weights, "f32"), loaded.tokenizer.encode(STORY), loaded.tokenizer.bos_id


def test_perplexity_matches_the_pytorch_reference_on_stories260K() -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[reference]')")
    from tools import reference_llama

    model, stream, bos = _stories()
    result = perplexity(model, stream, bos, ctx=16)
    reference = reference_llama.load_model(REFS / "stories260K.bin")
    total = 0.0
    with torch.inference_mode():
        for chunk in chunk_tokens(stream, 16):
            logits, _ = reference_llama.run_reference(reference, [bos] + chunk, 0, "f32", record=False)
            log_probs = torch.log_softmax(torch.from_numpy(logits[:-1]).double(), dim=-1).numpy()
            total -= float(log_probs[np.arange(16), chunk].sum())
    assert result.tokens == len(stream) // 16 * 16
    assert result.mean_nll == pytest.approx(total / result.tokens, rel=1e-5)


def test_perplexity_cli_prints_json(tmp_path: Path) -> None:
    _stories()
    text = tmp_path / "story.txt"
    text.write_text(STORY, encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "cmd.llama_perplexity", "--model", str(REFS / "stories260K.bin"),
         "--tokenizer", str(REFS / "tok512.bin"), "--text", str(text), "--ctx", "16", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ctx"] == 16 and report["tokens"] % 16 == 0
    assert report["perplexity"] == pytest.approx(np.exp(report["mean_nll"]))
    assert 1.0 < report["perplexity"] < 50.0  # far below the 512 of a uniform guess: a trained story model


def test_perplexity_cli_reports_an_unreadable_text_without_a_traceback(tmp_path: Path) -> None:
    _stories()
    out = subprocess.run(
        [sys.executable, "-m", "cmd.llama_perplexity", "--model", str(REFS / "stories260K.bin"),
         "--tokenizer", str(REFS / "tok512.bin"), "--text", str(tmp_path / "missing.txt")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 2
    assert "missing.txt" in out.stderr and "Traceback" not in out.stderr
