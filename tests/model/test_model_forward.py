"""LlamaTransformer.Forward checked against itself: KV-cache decoding, errors, modes, the debug trace."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from llamanuts.common import GLogger, SequenceLengthError, ShapeError
from llamanuts.ml import DT_F32
from llamanuts.model import tokens_tensor

from .randommodel import random_model

TOKENS = [1, 7, 23, 4, 42, 9, 17, 3]


@pytest.mark.parametrize("mode", ["f32", "bf16"])
def test_forward_returns_float32_logits_of_shape_tokens_by_vocab(mode: str) -> None:
    model = random_model(mode)
    logits = model.Forward(model.NewInferenceContext(), tokens_tensor(TOKENS), 0)
    assert logits.dtype is DT_F32
    assert logits.shape == (len(TOKENS), 50)
    assert np.isfinite(logits.data).all()


@pytest.mark.parametrize("mode", ["f32", "bf16"])
def test_last_row_only_gives_the_last_row_of_the_full_logits(mode: str) -> None:
    model = random_model(mode)
    full = model.Forward(model.NewInferenceContext(), tokens_tensor(TOKENS), 0).data
    ctx = model.NewInferenceContext()
    last = model.Forward(ctx, tokens_tensor(TOKENS), 0, lastRowOnly=True).data
    assert last.shape == (1, 50)
    # the one row takes the matrix-vector kernel, the full forward the prefill kernel: the float32
    # sums differ in order only (in bf16 mode the logits may then round to a neighbouring bf16)
    tolerance = (1e-5 if mode == "f32" else 2**-7) * np.abs(full[-1]).max()
    np.testing.assert_allclose(last[0], full[-1], rtol=0, atol=tolerance)
    # the KV cache is filled for every position all the same: decoding continues from it
    following = model.Forward(ctx, tokens_tensor([5]), len(TOKENS)).data[0]
    reference = model.Forward(model.NewInferenceContext(), tokens_tensor(TOKENS + [5]), 0).data[-1]
    np.testing.assert_allclose(following, reference, rtol=0, atol=(1e-4 if mode == "f32" else 0.05) * np.abs(reference).max())


def test_decoding_one_token_at_a_time_gives_the_logits_of_one_full_forward() -> None:
    model = random_model("f32")
    full = model.Forward(model.NewInferenceContext(), tokens_tensor(TOKENS), 0).data
    ctx = model.NewInferenceContext()
    steps = [model.Forward(ctx, tokens_tensor([t]), pos).data[0] for pos, t in enumerate(TOKENS)]
    np.testing.assert_allclose(np.stack(steps), full, rtol=0, atol=1e-4 * np.abs(full).max())


def test_prefill_then_decode_gives_the_logits_of_one_full_forward() -> None:
    model = random_model("f32")
    full = model.Forward(model.NewInferenceContext(), tokens_tensor(TOKENS), 0).data
    ctx = model.NewInferenceContext()
    model.Forward(ctx, tokens_tensor(TOKENS[:5]), 0)
    rest = model.Forward(ctx, tokens_tensor(TOKENS[5:]), 5).data
    np.testing.assert_allclose(rest, full[5:], rtol=0, atol=1e-4 * np.abs(full).max())


def test_bf16_mode_stays_close_to_f32_mode() -> None:
    f32 = random_model("f32").Forward(random_model("f32").NewInferenceContext(), tokens_tensor(TOKENS), 0).data
    model = random_model("bf16")
    bf16 = model.Forward(model.NewInferenceContext(), tokens_tensor(TOKENS), 0).data
    assert np.abs(bf16 - f32).max() < 0.05 * np.abs(f32).max()


def test_forward_past_the_sequence_length_raises_and_leaves_the_cache_untouched() -> None:
    model = random_model("f32", max_seq_len=16)
    ctx = model.NewInferenceContext(8)
    model.Forward(ctx, tokens_tensor(TOKENS[:6]), 0)
    before = [k.data.copy() for k in ctx.cache_k]
    with pytest.raises(SequenceLengthError, match="sequence length 8"):
        model.Forward(ctx, tokens_tensor([1, 2, 3]), 6)
    for k, b in zip(ctx.cache_k, before):
        np.testing.assert_array_equal(k.data, b)


def test_context_longer_than_max_seq_len_is_refused() -> None:
    model = random_model("f32", max_seq_len=16)
    with pytest.raises(SequenceLengthError, match="max_seq_len 16"):
        model.NewInferenceContext(17)


def test_out_of_vocabulary_token_raises_a_shape_error() -> None:
    model = random_model("f32")
    with pytest.raises(ShapeError, match="outside the vocabulary"):
        model.Forward(model.NewInferenceContext(), tokens_tensor([1, 50]), 0)


def test_unknown_compute_mode_is_refused() -> None:
    with pytest.raises(Exception, match="unknown compute mode 'f16'"):
        random_model("f16")


@pytest.mark.parametrize("mode", ["f32", "bf16"])
def test_debug_log_has_every_forward_stage_marker_with_shapes(tmp_path: Path, mode: str) -> None:
    model = random_model(mode)
    log_path = tmp_path / "debug.log"
    GLogger.Init(debug=True, debug_path=str(log_path))
    try:
        ctx = model.NewInferenceContext()
        model.Forward(ctx, tokens_tensor(TOKENS[:3]), 0)
        model.Forward(ctx, tokens_tensor([5]), 3)
    finally:
        GLogger.Init(debug=False)
    text = log_path.read_text()
    for stage in range(4, 20):
        assert f"STAGE {stage:02d}:" in text, f"stage {stage} missing"
    line = re.compile(r"^\[DEBUG\]\d\d:\d\d:\d\d\.\d{6} .* \(\d+\.\d{4} secs\)$")
    for row in text.splitlines():
        assert line.match(row), row
    assert "shape([3 32])" in text  # the input tensor of the prefill
    assert "shape([3 4 8])" in text  # xq in heads
    assert f"mode: {mode}" in text


def test_debug_off_writes_nothing(tmp_path: Path) -> None:
    GLogger.Init(debug=False)
    model = random_model("f32")
    model.Forward(model.NewInferenceContext(), tokens_tensor(TOKENS[:3]), 0)
    assert not list(tmp_path.iterdir())
