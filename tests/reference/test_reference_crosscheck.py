"""A second, deliberately naive implementation cross-checks the PyTorch reference in f32.

It is written the way llama2.c's run.c works rather than the way Meta's code works: one
position at a time, explicit loops over heads, rope on pairs (i, i+1) with cos/sin, kv head
h // (n_heads / n_kv_heads), and float64 numpy.  Agreement between two differently shaped
implementations is what makes the fixtures trustworthy.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is a development-only tool; not installed")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import reference_llama as ref  # noqa: E402

REFS = Path("/work/shared/refs")
FIXTURE_MODELS = ROOT / "tests" / "fixtures" / "models"
TINY = ("tiny-mha", "tiny-gqa", "tiny-llama3", "tiny-llama31")


def scaled_freq(freq: float) -> float:
    """Llama 3.1 rope scaling, re-derived from its description (float64)."""
    wavelen = 2 * math.pi / freq
    if wavelen < 8192 / 4:  # high frequency: untouched
        return freq
    if wavelen > 8192:  # low frequency: slowed down 8x
        return freq / 8
    smooth = (8192 / wavelen - 1) / 3
    return (1 - smooth) * freq / 8 + smooth * freq


def rope_inplace(vec: np.ndarray, pos: int, head_dim: int, theta: float, scaled: bool) -> None:
    for i in range(0, vec.size, 2):
        freq = 1.0 / theta ** ((i % head_dim) / head_dim)
        if scaled:
            freq = scaled_freq(freq)
        c, s = math.cos(pos * freq), math.sin(pos * freq)
        a, b = vec[i], vec[i + 1]
        vec[i], vec[i + 1] = a * c - b * s, a * s + b * c


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return w * (x / np.sqrt(np.mean(x * x) + eps))


def naive_forward(model: ref.ReferenceModel, tokens: list[int]) -> dict[str, np.ndarray]:
    """Stages of a forward at start_pos 0, one position at a time, like run.c."""
    a = model.args
    w = {k: v.double().numpy() for k, v in model.weights.items()}
    hd, n_rep, n = a.head_dim, a.n_heads // a.n_kv_heads, len(tokens)
    key_cache = np.zeros((a.n_layers, n, a.n_kv_heads * hd))
    value_cache = np.zeros_like(key_cache)
    rows: dict[str, list[np.ndarray]] = {}

    def keep(name: str, value: np.ndarray) -> None:
        rows.setdefault(name, []).append(value.copy())

    for pos, tok in enumerate(tokens):
        x = w["tok_embeddings.weight"][tok].copy()
        for layer in range(a.n_layers):
            p = f"layers.{layer}"
            xb = rmsnorm(x, w[f"{p}.attention_norm.weight"], a.norm_eps)
            q = w[f"{p}.attention.wq.weight"] @ xb
            k = w[f"{p}.attention.wk.weight"] @ xb
            v = w[f"{p}.attention.wv.weight"] @ xb
            rope_inplace(q, pos, hd, a.rope_theta, a.use_scaled_rope)
            rope_inplace(k, pos, hd, a.rope_theta, a.use_scaled_rope)
            key_cache[layer, pos], value_cache[layer, pos] = k, v
            att = np.zeros(a.n_heads * hd)
            probs = np.zeros((a.n_heads, n))
            for h in range(a.n_heads):
                kvh = h // n_rep
                qh = q[h * hd:(h + 1) * hd]
                scores = np.array([qh @ key_cache[layer, t, kvh * hd:(kvh + 1) * hd]
                                   for t in range(pos + 1)]) / math.sqrt(hd)
                e = np.exp(scores - scores.max())
                probs[h, : pos + 1] = e / e.sum()
                for t in range(pos + 1):
                    att[h * hd:(h + 1) * hd] += probs[h, t] * value_cache[layer, t,
                                                                          kvh * hd:(kvh + 1) * hd]
            keep(f"{p}.xq_rope", q.reshape(a.n_heads, hd))
            keep(f"{p}.scores", probs)
            keep(f"{p}.attention", att)
            x = x + w[f"{p}.attention.wo.weight"] @ att
            keep(f"{p}.h", x)
            xb = rmsnorm(x, w[f"{p}.ffn_norm.weight"], a.norm_eps)
            g = w[f"{p}.feed_forward.w1.weight"] @ xb
            g = g / (1 + np.exp(-g))
            u = w[f"{p}.feed_forward.w3.weight"] @ xb
            keep(f"{p}.ffn_w1_silu", g)
            x = x + w[f"{p}.feed_forward.w2.weight"] @ (g * u)
            keep(f"{p}.out", x)
        x = rmsnorm(x, w["norm.weight"], a.norm_eps)
        keep("logits", w["output.weight"] @ x)
    stages = {k: np.stack(v) for k, v in rows.items()}
    for layer in range(a.n_layers):
        key = f"layers.{layer}.scores"
        stages[key] = stages[key].transpose(1, 0, 2)  # [heads, n, n] like the reference
    return stages


def assert_stages_close(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    for key, expected in want.items():
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got[key], expected, rtol=0, atol=2e-5 * scale, err_msg=key)


@pytest.mark.parametrize("name", TINY)
def test_tiny_models_agree_with_naive_forward(name: str) -> None:
    path = FIXTURE_MODELS / name
    if not (path / "consolidated.00.pth").exists():
        pytest.skip(f"{path} missing: run python -m tools.make_fixtures")
    model = ref.load_meta_dir(path)
    tokens = [1, 267, 273, 279, 278, 270, 261, 88, 5, 319]
    _, stages = ref.run_reference(model, tokens, 0, "f32", record=True)
    assert_stages_close(stages, naive_forward(model, tokens))


@pytest.mark.parametrize("name", ["stories260K.bin", "aidreams260K.bin"])
def test_llama2c_models_agree_with_naive_forward(name: str) -> None:
    path = REFS / name
    if not path.exists():
        pytest.skip(f"{path} absent (shared reference files not mounted)")
    model = ref.load_llama2c_bin(path)
    tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376]
    _, stages = ref.run_reference(model, tokens, 0, "f32", record=True)
    assert_stages_close(stages, naive_forward(model, tokens))


def test_naive_scaling_agrees_with_reference_scaling() -> None:
    freqs = 1.0 / (500000.0 ** (torch.arange(0, 128, 2).float() / 128))
    want = np.array([scaled_freq(float(f)) for f in freqs])
    np.testing.assert_allclose(ref.apply_scaling(freqs).numpy(), want, rtol=1e-6)
