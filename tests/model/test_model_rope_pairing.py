"""The two RoPE layouts: one model saved in Meta's layout and in Hugging Face's gives the same bits.

Hugging Face's conversion script (transformers' models/llama/convert_llama_weights_to_hf.py)
permutes the rows of every wq and wk so that its rotate_half pairs feature i with i + head_dim/2:

    def permute(w, n_heads, dim1, dim2):
        return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)

`hf_permute` below is that formula in numpy. The Meta fixtures (tests/fixtures/models) are written
out as Hugging Face directories with it, and the engine must give bit-identical logits: the rows are
the same numbers in another order, each row's dot product is computed alike, and applyRotaryEmbeddings
puts each Hugging Face pair back side by side before the same complex multiply, so from stage 10 on
every value is the Meta model's own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llamanuts.ml import DT_BF16, DT_F32, Tensor
from llamanuts.model import LlamaTransformer, ModelWeights, tokens_tensor
from llamanuts.model import loader
from llamanuts.model.loader import load_model
from llamanuts.model.rope import ROPE_HALVES, ROPE_INTERLEAVED, applyRotaryEmbeddings, precomputeFreqsCis

from ..safetensors.writer import write

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
TOKENS = [1, 17, 240, 5, 99, 63, 8, 150, 42]


class StandInTokenizer:
    kind = "stand-in"
    vocab_size = 320


def hf_permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    rows, cols = w.shape
    return np.ascontiguousarray(w.reshape(n_heads, rows // n_heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols))


def write_hf_layout(meta_dir: Path, out: Path) -> Path:
    """A Meta fixture as transformers' conversion would save it: config.json, q/k rows permuted."""
    meta = load_model(meta_dir)
    a, w = meta.args, meta.weights
    out.mkdir()
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": a.dim,
        "intermediate_size": a.hidden_dim, "num_hidden_layers": a.n_layers, "num_attention_heads": a.n_heads,
        "num_key_value_heads": a.n_kv_heads, "rms_norm_eps": a.norm_eps, "rope_theta": a.rope_theta,
        "max_position_embeddings": a.max_seq_len, "vocab_size": a.vocab_size, "tie_word_embeddings": False,
        "rope_scaling": None if a.rope_scaling is None else {
            "rope_type": "llama3", "factor": a.rope_scaling.factor, "low_freq_factor": a.rope_scaling.low_freq_factor,
            "high_freq_factor": a.rope_scaling.high_freq_factor,
            "original_max_position_embeddings": a.rope_scaling.original_max_position_embeddings},
    }
    (out / "config.json").write_text(json.dumps(config))
    bf16 = lambda t: ("BF16", t.data)  # noqa: E731 - the Meta fixtures are bf16
    arrays = {"model.embed_tokens.weight": bf16(w.tok_embeddings)}
    for i, layer in enumerate(w.layers):
        p = f"model.layers.{i}."
        arrays[p + "self_attn.q_proj.weight"] = ("BF16", hf_permute(layer.wq.data, a.n_heads))
        arrays[p + "self_attn.k_proj.weight"] = ("BF16", hf_permute(layer.wk.data, a.n_kv_heads))
        arrays[p + "self_attn.v_proj.weight"] = bf16(layer.wv)
        arrays[p + "self_attn.o_proj.weight"] = bf16(layer.wo)
        arrays[p + "mlp.gate_proj.weight"] = bf16(layer.w1)
        arrays[p + "mlp.down_proj.weight"] = bf16(layer.w2)
        arrays[p + "mlp.up_proj.weight"] = bf16(layer.w3)
        arrays[p + "input_layernorm.weight"] = bf16(layer.attention_norm)
        arrays[p + "post_attention_layernorm.weight"] = bf16(layer.ffn_norm)
    arrays["model.norm.weight"] = bf16(w.norm)
    arrays["lm_head.weight"] = bf16(w.output)
    write(out / "model.safetensors", arrays)
    return out


def _run(weights: ModelWeights, args, mode: str) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    model = LlamaTransformer(args, weights, mode)
    ctx = model.NewInferenceContext()
    prefill = model.Forward(ctx, tokens_tensor(TOKENS), 0).data
    decode = model.Forward(ctx, tokens_tensor([7]), len(TOKENS)).data
    return prefill, decode


@pytest.fixture(autouse=True)
def stand_in_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_load_hf_tokenizer", lambda directory: StandInTokenizer())


@pytest.mark.parametrize("mode", ["f32", "bf16"])
@pytest.mark.parametrize("name", ["tiny-mha", "tiny-gqa", "tiny-llama3", "tiny-llama31"])
def test_meta_and_hugging_face_layouts_of_one_model_give_bit_identical_logits(tmp_path: Path, name: str, mode: str) -> None:
    meta = load_model(MODELS / name)
    hf = load_model(write_hf_layout(MODELS / name, tmp_path / name))
    assert hf.format == "huggingface" and hf.weights.rope_pairing == ROPE_HALVES
    assert meta.weights.rope_pairing == ROPE_INTERLEAVED
    assert not np.array_equal(hf.weights.layers[0].wq.data, meta.weights.layers[0].wq.data)  # really permuted
    for ours, theirs in zip(_run(hf.weights, hf.args, mode), _run(meta.weights, meta.args, mode)):
        np.testing.assert_array_equal(ours, theirs)


def test_the_permuted_weights_rotated_the_meta_way_give_other_logits(tmp_path: Path) -> None:
    """The control: the pairing matters, so the test above could fail."""
    hf = load_model(write_hf_layout(MODELS / "tiny-gqa", tmp_path / "m"))
    wrong = ModelWeights(hf.weights.tok_embeddings, hf.weights.layers, hf.weights.norm, hf.weights.output,
                         rope_pairing=ROPE_INTERLEAVED)
    right_logits, _ = _run(hf.weights, hf.args, "f32")
    wrong_logits, _ = _run(wrong, hf.args, "f32")
    assert np.abs(right_logits - wrong_logits).max() > 1e-2


@pytest.mark.parametrize("dtype", [DT_F32, DT_BF16])
def test_rotating_halves_of_permuted_features_equals_rotating_interleaved_pairs(dtype) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    n, heads, head_dim = 5, 3, 8
    x = rng.standard_normal((n, heads, head_dim)).astype(np.float32)
    # Hugging Face's order of a head's features: the real parts (2i), then the imaginary parts (2i+1).
    x_hf = np.concatenate([x[..., 0::2], x[..., 1::2]], axis=-1)
    freqs = precomputeFreqsCis(head_dim, n, 10000.0)
    if dtype is DT_BF16:
        from llamanuts.ml import ToBFloat16

        meta_x, hf_x = ToBFloat16(Tensor.from_numpy(x)), ToBFloat16(Tensor.from_numpy(x_hf))
    else:
        meta_x, hf_x = Tensor.from_numpy(x), Tensor.from_numpy(x_hf)
    ours = applyRotaryEmbeddings(hf_x, freqs, "xq", ROPE_HALVES)
    theirs = applyRotaryEmbeddings(meta_x, freqs, "xq", ROPE_INTERLEAVED)
    assert ours.dtype is dtype
    np.testing.assert_array_equal(ours.data, theirs.data)


def test_rotate_half_formula_of_transformers_matches_the_halves_rotation() -> None:
    """q*cos + rotate_half(q)*sin, written out in numpy as transformers' apply_rotary_pos_emb does, gives
    the halves rotation's numbers once its output is put in the interleaved order (float32 rounding aside)."""
    rng = np.random.default_rng(4)
    n, heads, head_dim = 6, 2, 16
    half = head_dim // 2
    q = rng.standard_normal((n, heads, head_dim)).astype(np.float32)
    inv_freq = 1.0 / (10000.0 ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    angles = np.outer(np.arange(n, dtype=np.float32), inv_freq)
    emb = np.concatenate([angles, angles], axis=-1)[:, None, :]
    rotate_half = np.concatenate([-q[..., half:], q[..., :half]], axis=-1)
    expected = q * np.cos(emb) + rotate_half * np.sin(emb)  # Hugging Face layout
    got = applyRotaryEmbeddings(Tensor.from_numpy(q), precomputeFreqsCis(head_dim, n, 10000.0), "xq", ROPE_HALVES).data
    got_hf_order = np.concatenate([got[..., 0::2], got[..., 1::2]], axis=-1)
    np.testing.assert_allclose(got_hf_order, expected, rtol=0, atol=1e-5)
