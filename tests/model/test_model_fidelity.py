"""Our Forward against the independent PyTorch reference (tools/reference_llama.py), stage by stage.

The fixtures in tests/fixtures/reference/ were recorded by that reference, which follows the
semantics of Meta's llama/model.py and calls none of our code (see the README beside them). Tiny
random models in Meta's format cover MHA, GQA, Llama 3's rope_theta and Llama 3.1's scaled RoPE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from llamanuts.model import LlamaTransformer, tokens_tensor
from llamanuts.model.loader import load_model

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODELS = ["tiny-mha", "tiny-gqa", "tiny-llama3", "tiny-llama31"]


def _bf16_ulp(values: np.ndarray) -> np.ndarray:
    """The spacing of bf16 numbers at each value: 2^(exponent - 7), 8 significant bits."""
    magnitude = np.maximum(np.abs(values), np.float32(2.0**-126))
    return np.exp2(np.floor(np.log2(magnitude)) - 7).astype(np.float32)


def _run(name: str, mode: str) -> tuple[dict, dict, np.ndarray, np.lib.npyio.NpzFile]:
    ref = np.load(FIXTURES / "reference" / f"{name}.npz")
    loaded = load_model(FIXTURES / "models" / name)
    model = LlamaTransformer(loaded.args, loaded.weights, mode)
    ctx = model.NewInferenceContext()
    tokens = [int(t) for t in ref["tokens"]]
    ctx.recorder = {}
    model.Forward(ctx, tokens_tensor(tokens), 0)
    prefill = ctx.recorder
    ctx.recorder = {}
    model.Forward(ctx, tokens_tensor([int(ref["decode_token"])]), len(tokens))
    decode = ctx.recorder
    full = model.Forward(model.NewInferenceContext(), tokens_tensor(tokens + [int(ref["decode_token"])]), 0).data
    return prefill, decode, full, ref


def _stages(mode: str, prefill: dict, decode: dict, ref: np.lib.npyio.NpzFile) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(label, ours, expected) for every stage the reference recorded in `mode`, after checking that
    the shapes agree and that both have their infinities (the mask's -inf) in the same places."""
    for step, ours in (("prefill", prefill), ("decode", decode)):
        prefix = f"{mode}/{step}/"
        for key in ref.files:
            if not key.startswith(prefix):
                continue
            stage = key[len(prefix):]
            expected, got = ref[key], ours[stage]
            assert got.shape == expected.shape, (step, stage)
            np.testing.assert_array_equal(np.isfinite(got), np.isfinite(expected), err_msg=f"{step}/{stage}")
            yield f"{step}/{stage}", got, expected


@pytest.mark.parametrize("name", MODELS)
def test_f32_every_stage_matches_the_reference_within_1e4_of_its_range(name: str) -> None:
    prefill, decode, full, ref = _run(name, "f32")
    for label, got, expected in _stages("f32", prefill, decode, ref):
        if np.iscomplexobj(expected):  # compare real and imaginary parts as floats
            expected, got = expected.view(np.float32), got.astype(np.complex64).view(np.float32)
        finite = np.isfinite(expected)
        value_range = float(np.ptp(expected[finite])) or 1.0
        error = float(np.abs(got[finite] - expected[finite]).max())
        assert error <= 1e-4 * value_range, f"{name} {label}: max error {error:.3g}, range {value_range:.3g}"
    expected_full = ref["f32/full/logits"]
    assert np.abs(full - expected_full).max() <= 1e-4 * np.ptp(expected_full)


@pytest.mark.parametrize("name", MODELS)
def test_bf16_every_stage_matches_the_reference_within_two_bf16_ulps(name: str) -> None:
    prefill, decode, _, ref = _run(name, "bf16")
    for label, got, expected in _stages("bf16", prefill, decode, ref):
        if np.iscomplexobj(expected):
            assert np.abs(got - expected).max() < 1e-6, label
            continue
        finite = np.isfinite(expected)
        # two ulps of the element, or of the stage's typical magnitude for values near zero
        # (where one rounding difference upstream moves a small value by many of its own ulps)
        scale = np.maximum(np.abs(expected), np.float32(np.sqrt(np.mean(expected[finite] ** 2))))
        tolerance = 2 * _bf16_ulp(scale)
        error = np.abs(got[finite] - expected[finite])
        worst = float((error / tolerance[finite]).max())
        assert worst <= 1.0, f"{name} {label}: {worst:.2f} x the 2-ulp tolerance"


@pytest.mark.parametrize("mode", ["f32", "bf16"])
@pytest.mark.parametrize("name", MODELS)
def test_greedy_tokens_equal_the_reference(name: str, mode: str) -> None:
    ref = np.load(FIXTURES / "reference" / f"{name}.npz")
    loaded = load_model(FIXTURES / "models" / name)
    model = LlamaTransformer(loaded.args, loaded.weights, mode)
    ctx = model.NewInferenceContext()
    token, generated = loaded.tokenizer.bos_id, []
    for pos in range(len(ref[f"{mode}/greedy"])):
        logits = model.Forward(ctx, tokens_tensor([token]), pos).data[0]
        token = int(np.argmax(logits))
        generated.append(token)
    assert generated == [int(t) for t in ref[f"{mode}/greedy"]]
