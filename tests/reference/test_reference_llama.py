"""The PyTorch reference (tools/reference_llama.py) against published facts and Meta's rules.

The reference is what the engine is judged against, so it is itself checked here:
greedy output of the real llama2.c models as documented in /work/shared/refs/SOURCES.md,
Meta's sizing and rope-scaling rules, bf16 op ordering, and KV-cache consistency.
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
    sys.path.insert(0, str(ROOT))  # plain `pytest` does not put the repo root on sys.path

from tools import reference_llama as ref  # noqa: E402

REFS = Path("/work/shared/refs")
FIXTURE_MODELS = ROOT / "tests" / "fixtures" / "models"
TINY = ("tiny-mha", "tiny-gqa", "tiny-llama3", "tiny-llama31")

STORIES_FIRST_32 = [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
                    338, 401, 396, 267, 337, 410, 408, 419, 292, 411, 322, 265, 282, 295, 433,
                    426, 385]
AIDREAMS_FIRST_16 = [319, 459, 355, 260, 275, 429, 339, 315, 374, 327, 446, 262, 421, 392, 275,
                     280]


def needs_ref(name: str) -> Path:
    path = REFS / name
    if not path.exists():
        pytest.skip(f"{path} absent (shared reference files not mounted)")
    return path


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 -> nearest bf16 (ties to even), returned as float32; written without torch."""
    bits = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return rounded.astype(np.uint32).view(np.float32)


def is_bf16_exact(x: np.ndarray) -> bool:
    finite = np.asarray(x, dtype=np.float32)
    return bool(np.all((finite.view(np.uint32) & 0xFFFF) == 0))


# ----------------------------------------------------------------------------- published facts


def test_stories260k_greedy_matches_published_ids() -> None:
    model = ref.load_llama2c_bin(needs_ref("stories260K.bin"))
    ids = ref.greedy_generate(model, 1000, bos_id=1, stop_ids=(1,), mode="f32")
    assert ids[:32] == STORIES_FIRST_32
    assert len(ids) == 345, "SOURCES.md: a full greedy run stops on BOS after 345 tokens"


def test_aidreams260k_greedy_matches_published_ids() -> None:
    model = ref.load_llama2c_bin(needs_ref("aidreams260K.bin"))
    assert model.args.n_kv_heads == model.args.n_heads == 4
    ids = ref.greedy_generate(model, 1000, mode="f32")
    assert ids[:16] == AIDREAMS_FIRST_16
    assert len(ids) == 128, "SOURCES.md: it runs to seq_len without emitting BOS"


def test_llama2c_header_and_shapes() -> None:
    model = ref.load_llama2c_bin(needs_ref("stories260K.bin"))
    a = model.args
    assert (a.dim, a.hidden_dim, a.n_layers, a.n_heads, a.n_kv_heads, a.vocab_size,
            a.max_seq_len) == (64, 172, 5, 8, 4, 512, 512)
    # Shared classifier: the output matrix is the embedding.
    assert torch.equal(model.weights["output.weight"], model.weights["tok_embeddings.weight"])


def test_llama2c_stored_freq_cis_equals_our_rope_table() -> None:
    """The file carries run.c's cos/sin table; our Meta-style freqs_cis must agree with it."""
    path = needs_ref("stories260K.bin")
    model = ref.load_llama2c_bin(path)
    a = model.args
    half = a.head_dim // 2
    kv_dim = a.n_kv_heads * a.head_dim
    before = (a.vocab_size * a.dim
              + a.n_layers * (2 * a.dim + 2 * a.dim * a.dim + 2 * kv_dim * a.dim
                              + 3 * a.dim * a.hidden_dim)
              + a.dim)
    floats = np.fromfile(path, dtype="<f4", offset=28)
    real = floats[before: before + a.max_seq_len * half].reshape(a.max_seq_len, half)
    imag = floats[before + a.max_seq_len * half: before + 2 * a.max_seq_len * half]
    imag = imag.reshape(a.max_seq_len, half)
    table = model.freqs_cis()[: a.max_seq_len].numpy()
    np.testing.assert_allclose(table.real, real, atol=2e-5)
    np.testing.assert_allclose(table.imag, imag, atol=2e-5)


# ----------------------------------------------------------------------------- Meta's rules


@pytest.mark.parametrize(
    "dim, multiple_of, mult, expected",
    [
        (4096, 256, None, 11008),  # Llama 2 7B
        (5120, 256, None, 13824),  # Llama 2 13B
        (8192, 4096, 1.3, 28672),  # Llama 2 70B / Llama 3 70B
        (4096, 1024, 1.3, 14336),  # Llama 3 8B
        (2048, 256, 1.5, 8192),  # Llama 3.2 1B
    ],
)
def test_ffn_hidden_dim_matches_published_sizes(dim, multiple_of, mult, expected) -> None:
    assert ref.ffn_hidden_dim(dim, multiple_of, mult) == expected


def meta_style_scaling_loop(freqs: "torch.Tensor") -> "torch.Tensor":
    """Per-element loop over 0-d float32 tensors, the way Meta's llama3 code is shaped."""
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < 8192 / 4:
            out.append(freq)
        elif wavelen > 8192 / 1:
            out.append(freq / 8)
        else:
            smooth = (8192 / wavelen - 1) / (4 - 1)
            out.append((1 - smooth) * freq / 8 + smooth * freq)
    return torch.tensor(out, dtype=freqs.dtype)


@pytest.mark.parametrize("head_dim", [8, 64, 128])
def test_apply_scaling_is_bit_identical_to_the_elementwise_loop(head_dim: int) -> None:
    freqs = 1.0 / (500000.0 ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    scaled = ref.apply_scaling(freqs)
    assert torch.equal(scaled, meta_style_scaling_loop(freqs))
    wavelen = 2 * math.pi / freqs
    assert bool((wavelen > 8192).any()) and bool((wavelen < 2048).any())
    assert bool(((wavelen >= 2048) & (wavelen <= 8192)).any()), "blend band exercised"


def test_freqs_cis_table_values() -> None:
    table = ref.precompute_freqs_cis(8, 16, 10000.0)
    assert table.dtype == torch.complex64 and tuple(table.shape) == (16, 4)
    pos, i = 5, 1
    angle = pos * 10000.0 ** (-2 * i / 8)
    assert abs(complex(table[pos, i]) - complex(math.cos(angle), math.sin(angle))) < 1e-6


def test_rope_rotates_adjacent_pairs() -> None:
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 2, 8)
    freqs = ref.precompute_freqs_cis(8, 4)[3:4]
    out = ref.apply_rotary_emb(x, freqs)[0, 0, 1].numpy()
    xs = x[0, 0, 1].numpy()
    for i in range(4):
        ang = 3 * 10000.0 ** (-2 * i / 8)
        c, s = math.cos(ang), math.sin(ang)
        a, b = xs[2 * i], xs[2 * i + 1]
        np.testing.assert_allclose(out[2 * i: 2 * i + 2], [a * c - b * s, a * s + b * c],
                                   rtol=1e-5, atol=1e-5)


def test_repeat_kv_maps_query_head_to_kv_head_h_div_nrep() -> None:
    kv = torch.arange(2 * 3).float().reshape(1, 1, 2, 3)
    rep = ref.repeat_kv(kv, 3)[0, 0]
    for h in range(6):
        assert torch.equal(rep[h], kv[0, 0, h // 3])


def test_causal_mask_with_cached_prefix() -> None:
    mask = ref.causal_mask(3, 4, torch.float32).numpy()
    assert mask.shape == (3, 7)
    assert np.all(mask[:, :4] == 0)
    for r in range(3):
        for c in range(3):
            assert mask[r, 4 + c] == (0 if c <= r else -np.inf)
    assert ref.causal_mask(1, 9, torch.float32) is None


def test_rms_norm_bf16_rounds_before_the_weight_multiply() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 32, generator=g).bfloat16()
    w = (1 + 0.1 * torch.randn(32, generator=g)).bfloat16()
    got = ref.rms_norm(x, w, 1e-5).float().numpy()
    xf = x.float().numpy().astype(np.float64)
    normed = (xf / np.sqrt((xf**2).mean(-1, keepdims=True) + 1e-5)).astype(np.float32)
    want = bf16_round(bf16_round(normed) * w.float().numpy())
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- forward


def fixture_model(name: str) -> ref.ReferenceModel:
    path = FIXTURE_MODELS / name
    if not (path / "consolidated.00.pth").exists():
        pytest.skip(f"{path} missing: run python -m tools.make_fixtures")
    return ref.load_meta_dir(path)


def test_meta_loader_defaults() -> None:
    mha = fixture_model("tiny-mha")
    assert mha.args.n_kv_heads == mha.args.n_heads  # params.json has no n_kv_heads
    assert mha.args.vocab_size == 320  # vocab_size -1 resolved from the tensors
    assert mha.args.rope_theta == 10000.0 and not mha.args.use_scaled_rope
    l31 = fixture_model("tiny-llama31")
    assert l31.args.use_scaled_rope and l31.args.rope_theta == 500000.0
    assert l31.args.hidden_dim == ref.ffn_hidden_dim(32, 32, 1.3) == 128
    assert all(v.dtype == torch.bfloat16 for v in l31.weights.values())


@pytest.mark.parametrize("name", TINY)
def test_prefill_then_decode_equals_full_forward(name: str) -> None:
    model = fixture_model(name)
    tokens = [1, 17, 200, 5, 99, 300, 42, 7]
    full, _ = ref.run_reference(model, tokens, 0, "f32", record=False)
    pre, _ = ref.run_reference(model, tokens[:5], 0, "f32", record=False)
    mid, _ = ref.run_reference(model, tokens[5:7], 5, "f32", record=False)
    last, _ = ref.run_reference(model, tokens[7:], 7, "f32", record=False)
    np.testing.assert_allclose(np.concatenate([pre, mid, last]), full, atol=1e-5)


@pytest.mark.parametrize("name", TINY)
def test_bf16_mode_stages_are_bf16_values_close_to_f32(name: str) -> None:
    model = fixture_model(name)
    tokens = [1, 30, 31, 32, 250]
    f32_logits, f32_st = ref.run_reference(model, tokens, 0, "f32", record=True)
    bf_logits, bf_st = ref.run_reference(model, tokens, 0, "bf16", record=True)
    assert f32_st.keys() == bf_st.keys()
    for key, value in bf_st.items():
        assert value.dtype == (np.complex64 if key == "freqs_cis" else np.float32), key
        if key != "freqs_cis":
            assert is_bf16_exact(value), f"{key} holds non-bf16 values"
    scale = np.abs(f32_logits).max()
    assert np.abs(bf_logits - f32_logits).max() < 0.05 * scale
    assert not np.array_equal(bf_logits, f32_logits), "bf16 mode must actually round"


def test_stage_names_and_shapes() -> None:
    model = fixture_model("tiny-gqa")
    a = model.args
    _, pre = ref.run_reference(model, [1, 2, 3, 4], 0, "f32", record=True)
    _, dec = ref.run_reference(model, [5], 4, "f32", record=True)
    n, p = 4, 0
    expect = {
        "embedding": (n, a.dim), "freqs_cis": (n, a.head_dim // 2), "mask": (n, p + n),
        "norm": (n, a.dim), "logits": (n, a.vocab_size),
    }
    per_layer = {
        "attention_norm": (n, a.dim), "xq": (n, a.n_heads * a.head_dim),
        "xk": (n, a.n_kv_heads * a.head_dim), "xv": (n, a.n_kv_heads * a.head_dim),
        "xq_rope": (n, a.n_heads, a.head_dim), "xk_rope": (n, a.n_kv_heads, a.head_dim),
        "scores": (a.n_heads, n, p + n), "attention": (n, a.dim), "attention_wo": (n, a.dim),
        "h": (n, a.dim), "ffn_norm": (n, a.dim), "ffn_w1_silu": (n, a.hidden_dim),
        "ffn_w3": (n, a.hidden_dim), "ffn_out": (n, a.dim), "out": (n, a.dim),
    }
    for layer in range(a.n_layers):
        expect.update({f"layers.{layer}.{k}": v for k, v in per_layer.items()})
    assert {k: v.shape for k, v in pre.items()} == expect
    assert "mask" not in dec
    assert dec["layers.1.scores"].shape == (a.n_heads, 1, 5)
    np.testing.assert_allclose(dec["layers.0.scores"].sum(-1), 1.0, atol=1e-6)
