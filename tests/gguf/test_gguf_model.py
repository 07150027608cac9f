"""A llama GGUF -> ModelArgs + ModelWeights: keys, names, tied embeddings, RoPE scaling, and every
bad value named by its key (files built by tests/gguf/ggufbytes.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llamanuts.common.errors import ModelArgsError, ModelFileError
from llamanuts.gguf.model import gguf_name, load_gguf_model, meta_name
from llamanuts.ml.dtype import DT_F32, DT_Q4_1, DT_Q8_0
from llamanuts.model.modelargs import LLAMA31_ROPE_SCALING
from llamanuts.model.rope import applyRopeScaling

from .ggufbytes import (
    ARRAY, BOOL, F32, FLOAT32, INT32, Q4_1, Q8_0, STRING, UINT32, KV, Array, TinyLlama, random_tensor, replace_kv,
)


def load(write, data: bytes, name: str = "model.gguf"):
    return load_gguf_model(write(data, name))


def fails(write, data: bytes, *phrases: str, error: type = ModelFileError) -> str:
    path = write(data, "bad.gguf")
    with pytest.raises(error) as info:
        load_gguf_model(path)
    message = str(info.value)
    assert str(path) in message
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    return message


# ---- the good path -------------------------------------------------------------------------------------
def test_llama_keys_become_model_args(write):
    tiny = TinyLlama(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, hidden=96, vocab=40, context=128, eps=1e-6, theta=500000.0)
    args, _, _ = load(write, tiny.build())
    assert (args.dim, args.n_layers, args.n_heads, args.n_kv_heads, args.hidden_dim) == (64, 2, 4, 2, 96)
    assert (args.vocab_size, args.max_seq_len, args.head_dim) == (40, 128, 16)
    assert args.norm_eps == float(np.float32(1e-6)) and args.rope_theta == 500000.0  # float32 values in the file
    assert args.rope_scaling is None and not args.use_scaled_rope


def test_tensor_names_map_to_meta_names():
    assert meta_name("token_embd.weight") == "tok_embeddings.weight"
    assert meta_name("output_norm.weight") == "norm.weight"
    assert meta_name("output.weight") == "output.weight"
    assert meta_name("blk.12.attn_norm.weight") == "layers.12.attention_norm.weight"
    expected = {"attn_q": "attention.wq", "attn_k": "attention.wk", "attn_v": "attention.wv",
                "attn_output": "attention.wo", "ffn_gate": "feed_forward.w1", "ffn_down": "feed_forward.w2",
                "ffn_up": "feed_forward.w3", "ffn_norm": "ffn_norm"}
    for ours, meta in expected.items():
        assert meta_name(f"blk.3.{ours}.weight") == f"layers.3.{meta}.weight"
        assert gguf_name(f"layers.3.{meta}.weight") == f"blk.3.{ours}.weight"
    assert meta_name("blk.01.attn_q.weight") is None and meta_name("blk.0.attn_q.bias") is None


def test_weights_are_the_file_tensors_under_meta_names(write):
    tiny = TinyLlama()
    args, weights, gguf = load(write, tiny.build())
    t = gguf.tensors
    assert weights.tok_embeddings is t["token_embd.weight"] and weights.norm is t["output_norm.weight"]
    layer = weights.layers[1]
    pairs = {"wq": "attn_q", "wk": "attn_k", "wv": "attn_v", "wo": "attn_output", "w1": "ffn_gate",
             "w2": "ffn_down", "w3": "ffn_up", "attention_norm": "attn_norm", "ffn_norm": "ffn_norm"}
    for field, name in pairs.items():
        assert getattr(layer, field) is t[f"blk.1.{name}.weight"], field
    # [out, in] matrices: wq [n_heads*head_dim, dim], wk [n_kv_heads*head_dim, dim], w2 [dim, hidden]
    assert layer.wq.shape == (64, 64) and layer.wk.shape == (32, 64) and layer.w2.shape == (64, 96)
    assert layer.w1.shape == (96, 64) and weights.tok_embeddings.shape == (40, 64)


def test_no_output_weight_means_tied_embeddings(write):
    _, weights, _ = load(write, TinyLlama(tied=True).build())
    assert weights.shared_classifier and weights.output is weights.tok_embeddings


def test_an_output_weight_is_the_classifier(write):
    _, weights, gguf = load(write, TinyLlama(tied=False).build())
    assert not weights.shared_classifier and weights.output is gguf.tensors["output.weight"]


def test_quantized_matrices_keep_their_types(write):
    _, weights, _ = load(write, TinyLlama(matrix_type=Q4_1, embedding_type=Q8_0).build())
    assert weights.tok_embeddings.dtype is DT_Q8_0 and weights.layers[0].wq.dtype is DT_Q4_1
    assert weights.layers[0].attention_norm.dtype is DT_F32
    assert weights.layers[0].w2.shape == (64, 96) and weights.layers[0].w2.data.shape == (64, 96 // 32 * 20)


def test_optional_keys_have_llama_cpp_defaults(write):
    tiny = TinyLlama(n_heads=4, n_kv_heads=4)
    metadata = replace_kv(tiny.metadata(), "llama.attention.head_count_kv", drop=True)
    for key in ("llama.rope.freq_base", "llama.vocab_size", "llama.rope.dimension_count"):
        metadata = replace_kv(metadata, key, drop=True)
    args, _, _ = load(write, tiny.build(metadata))
    assert args.n_kv_heads == 4 and args.rope_theta == 10000.0 and args.vocab_size == 40 and args.head_dim == 16


def test_key_length_sets_a_head_size_other_than_dim_over_heads(write):
    # as in Mistral NeMo: 4 heads of 32 on a 64-wide model (q has 128 rows)
    tiny = TinyLlama(dim=64, n_heads=4, n_kv_heads=2)
    metadata = replace_kv(tiny.metadata(), "llama.rope.dimension_count", UINT32, 32)
    metadata.append(KV("llama.attention.key_length", UINT32, 32))
    metadata.append(KV("llama.attention.value_length", UINT32, 32))
    tensors = [t for t in tiny.tensors() if "attn_q" not in t.name and "attn_k" not in t.name
               and "attn_v" not in t.name and "attn_output" not in t.name]
    for i in range(tiny.n_layers):
        tensors += [random_tensor(f"blk.{i}.attn_q.weight", (64, 128), F32), random_tensor(f"blk.{i}.attn_k.weight", (64, 64), F32),
                    random_tensor(f"blk.{i}.attn_v.weight", (64, 64), F32), random_tensor(f"blk.{i}.attn_output.weight", (128, 64), F32)]
    args, weights, _ = load(write, tiny.build(metadata, tensors))
    assert args.head_dim == 32 and weights.layers[0].wq.shape == (128, 64) and weights.layers[0].wo.shape == (64, 128)


def test_unused_llama_keys_are_kept_in_extra(write):
    tiny = TinyLlama()
    args, _, _ = load(write, tiny.build(tiny.metadata() + [KV("llama.some_future_key", UINT32, 3)]))
    assert args.extra == {"llama.some_future_key": 3}


# ---- RoPE scaling ------------------------------------------------------------------------------------------
def llama_cpp_rope_factors(head_dim: int, theta: float, factor=8.0, low=1.0, high=4.0, old_context=8192) -> np.ndarray:
    """The factors llama.cpp's convert_hf_to_gguf.py writes as rope_freqs.weight for Llama 3.1
    (restated from its LlamaModel: 1 for fast pairs, `factor` for slow ones, 1/blend between)."""
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_context / high:
            out.append(1.0)
        elif wavelen > old_context / low:
            out.append(factor)
        else:
            smooth = (old_context / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def test_llama31_rope_freqs_tensor_gives_meta_scaled_frequencies(write):
    tiny = TinyLlama(theta=500000.0)
    factors = llama_cpp_rope_factors(tiny.head_dim, tiny.theta)
    assert (factors == 1).any() and (factors == 8).any() and ((factors > 1) & (factors < 8)).any()  # all 3 regions
    tensors = tiny.tensors() + [random_tensor("rope_freqs.weight", (tiny.head_dim // 2,), F32)]
    tensors[-1].data = factors.tobytes()
    args, weights, _ = load(write, tiny.build(tensors=tensors))
    assert args.use_scaled_rope and args.rope_scaling.freq_factors == tuple(float(f) for f in factors)
    assert "rope_freqs.weight" not in [n for n, _ in weights.named_tensors()]
    # Meta's apply_scaling (rope.py, the params.json path) and ggml's divisors give the same frequencies
    freqs = (1.0 / np.power(np.float32(tiny.theta), np.arange(0, 16, 2, dtype=np.float32) / 16)).astype(np.float32)
    np.testing.assert_allclose(applyRopeScaling(freqs, args.rope_scaling), applyRopeScaling(freqs, LLAMA31_ROPE_SCALING), rtol=1e-6)
    assert ("rope_scaling", "per-pair divisors from the file (8 pairs, 1 to 8)") in args.as_rows()


def test_rope_freqs_of_the_wrong_shape(write):
    tiny = TinyLlama()
    tensors = tiny.tensors() + [random_tensor("rope_freqs.weight", (4,), F32)]
    fails(write, tiny.build(tensors=tensors), "'rope_freqs.weight'", "[4]", "expected F32 [8]")


def test_rope_freqs_must_be_positive(write):
    tiny = TinyLlama()
    tensors = tiny.tensors() + [random_tensor("rope_freqs.weight", (8,), F32)]
    tensors[-1].data = np.array([1, 1, 1, 0, 1, 1, 1, 1], dtype=np.float32).tobytes()
    fails(write, tiny.build(tensors=tensors), "'rope_freqs.weight'", "positive finite")


def test_linear_rope_scaling_divides_every_frequency(write):
    tiny = TinyLlama()
    metadata = tiny.metadata() + [KV("llama.rope.scaling.type", STRING, "linear"), KV("llama.rope.scaling.factor", FLOAT32, 4.0)]
    args, _, _ = load(write, tiny.build(metadata))
    assert args.rope_scaling.freq_factors == (4.0,) * 8


def test_rope_scaling_type_none_ignores_the_factor(write):
    tiny = TinyLlama()
    metadata = tiny.metadata() + [KV("llama.rope.scaling.type", STRING, "none"), KV("llama.rope.scaling.factor", FLOAT32, 4.0)]
    assert load(write, tiny.build(metadata))[0].rope_scaling is None


@pytest.mark.parametrize("kind", ["yarn", "longrope", "llama3"])
def test_other_rope_scaling_types_are_refused_by_name(write, kind):
    tiny = TinyLlama()
    metadata = tiny.metadata() + [KV("llama.rope.scaling.type", STRING, kind)]
    fails(write, tiny.build(metadata), "llama.rope.scaling.type", repr(kind), "not supported", "rope_freqs")


# ---- bad metadata ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("architecture", ["gpt2", "qwen2", "gemma"])
def test_other_architectures_are_refused_naming_it_and_llama(write, architecture):
    tiny = TinyLlama()
    metadata = replace_kv(tiny.metadata(), "general.architecture", STRING, architecture)
    fails(write, tiny.build(metadata), "general.architecture", repr(architecture), "only 'llama'", error=ModelArgsError)


def test_missing_architecture(write):
    tiny = TinyLlama()
    fails(write, tiny.build(replace_kv(tiny.metadata(), "general.architecture", drop=True)), "'general.architecture'", "missing")


def test_a_megabyte_architecture_name_is_quoted_short(write):
    # the message quotes the file's value through short_repr: bounded, whatever the file holds
    tiny = TinyLlama()
    message = fails(write, tiny.build(replace_kv(tiny.metadata(), "general.architecture", STRING, "g" * (1 << 20))),
                    "general.architecture is 'ggg", "only 'llama'", error=ModelArgsError)
    assert len(message) < 1000


def test_architecture_must_be_a_string(write):
    tiny = TinyLlama()
    fails(write, tiny.build(replace_kv(tiny.metadata(), "general.architecture", UINT32, 7)), "'general.architecture'", "string")


@pytest.mark.parametrize(
    "key",
    ["llama.block_count", "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
     "llama.context_length", "llama.attention.layer_norm_rms_epsilon"],
)
def test_missing_required_key(write, key):
    tiny = TinyLlama()
    fails(write, tiny.build(replace_kv(tiny.metadata(), key, drop=True)), repr(key), "missing", error=ModelArgsError)


@pytest.mark.parametrize(
    "key, type_id, value, phrase",
    [
        ("llama.block_count", STRING, "2", "must be an integer"),
        ("llama.attention.head_count", FLOAT32, 4.0, "must be an integer"),
        ("llama.embedding_length", BOOL, True, "must be an integer"),
        ("llama.feed_forward_length", ARRAY, Array(INT32, [96, 96]), "must be an integer, got an array"),
        ("llama.attention.layer_norm_rms_epsilon", STRING, "1e-5", "must be a number"),
        ("llama.rope.freq_base", BOOL, False, "must be a number"),
    ],
)
def test_wrong_value_type_names_the_key(write, key, type_id, value, phrase):
    tiny = TinyLlama()
    fails(write, tiny.build(replace_kv(tiny.metadata(), key, type_id, value)), repr(key), phrase, error=ModelArgsError)


@pytest.mark.parametrize(
    "key, type_id, value, phrase",
    [
        ("llama.attention.layer_norm_rms_epsilon", FLOAT32, float("nan"), "positive finite"),
        ("llama.attention.layer_norm_rms_epsilon", FLOAT32, 0.0, "positive finite"),
        ("llama.attention.layer_norm_rms_epsilon", FLOAT32, 1e30, "positive finite number below 1"),
        ("llama.rope.freq_base", FLOAT32, float("inf"), "positive finite"),
        ("llama.rope.freq_base", FLOAT32, -1.0, "positive finite"),
        ("llama.block_count", UINT32, 0, "at least 1"),
        ("llama.attention.head_count", INT32, -4, "at least 1"),
        ("llama.context_length", UINT32, 2**21, "larger than 1048576"),
    ],
)
def test_out_of_range_values_name_the_key(write, key, type_id, value, phrase):
    tiny = TinyLlama()
    fails(write, tiny.build(replace_kv(tiny.metadata(), key, type_id, value)), repr(key), phrase, error=ModelArgsError)


def test_block_count_larger_than_the_tensors_can_back(write):
    tiny = TinyLlama()
    fails(write, tiny.build(replace_kv(tiny.metadata(), "llama.block_count", UINT32, 10**9)),
          "llama.block_count = 1000000000", "holds only", error=ModelArgsError)


def test_dim_not_divisible_by_heads(write):
    tiny = TinyLlama()
    metadata = replace_kv(tiny.metadata(), "llama.attention.head_count", UINT32, 5)
    metadata = replace_kv(metadata, "llama.attention.head_count_kv", UINT32, 5)
    fails(write, tiny.build(metadata), "llama.embedding_length = 64", "not divisible", "llama.attention.head_count = 5")


def test_heads_not_a_multiple_of_kv_heads(write):
    tiny = TinyLlama()
    metadata = replace_kv(tiny.metadata(), "llama.attention.head_count_kv", UINT32, 3)
    fails(write, tiny.build(metadata), "llama.attention.head_count = 4", "not a multiple", "head_count_kv = 3")


def test_rope_dimension_count_must_be_the_head_size(write):
    tiny = TinyLlama()
    metadata = replace_kv(tiny.metadata(), "llama.rope.dimension_count", UINT32, 8)
    fails(write, tiny.build(metadata), "llama.rope.dimension_count = 8", "head size 16", "not supported")


def test_vocab_sizes_must_agree(write):
    tiny = TinyLlama()
    message = fails(write, tiny.build(replace_kv(tiny.metadata(), "llama.vocab_size", UINT32, 41)), "llama.vocab_size = 41")
    assert "tokenizer.ggml.tokens = 40" in message and "token_embd.weight = 40" in message


def test_token_list_length_must_match_the_embedding(write):
    tiny = TinyLlama()
    metadata = replace_kv(tiny.metadata(), "llama.vocab_size", drop=True)
    metadata = replace_kv(metadata, "tokenizer.ggml.tokens", ARRAY, Array(STRING, ["a"] * 39))
    fails(write, tiny.build(metadata), "tokenizer.ggml.tokens = 39", "token_embd.weight = 40")


def test_mixture_of_experts_is_refused(write):
    tiny = TinyLlama()
    fails(write, tiny.build(tiny.metadata() + [KV("llama.expert_count", UINT32, 8)]), "llama.expert_count = 8", "mixture-of-experts")


# ---- bad tensors -------------------------------------------------------------------------------------------------
def test_unknown_tensor_is_named(write):
    tiny = TinyLlama()
    tensors = tiny.tensors() + [random_tensor("blk.0.attn_q.bias", (64,), F32)]
    fails(write, tiny.build(tensors=tensors), "'blk.0.attn_q.bias'", "a llama model does not have")


def test_missing_tensor_is_named_in_gguf_terms(write):
    tiny = TinyLlama()
    tensors = [t for t in tiny.tensors() if t.name != "blk.1.ffn_up.weight"]
    fails(write, tiny.build(tensors=tensors), "'blk.1.ffn_up.weight'", "missing")


def test_missing_embeddings(write):
    tiny = TinyLlama()
    tensors = [t for t in tiny.tensors() if t.name != "token_embd.weight"]
    fails(write, tiny.build(tensors=tensors), "'token_embd.weight'", "missing")


def test_a_block_beyond_block_count(write):
    tiny = TinyLlama()
    extra = [random_tensor(f"blk.2.{n}", (64,), F32) for n in ("attn_norm.weight",)]
    fails(write, tiny.build(tensors=tiny.tensors() + extra), "'blk.2.attn_norm.weight'", "block 2", "block_count is 2")


def test_a_tensor_shape_that_disagrees_with_the_metadata(write):
    tiny = TinyLlama()
    tensors = [t if t.name != "blk.0.attn_k.weight" else random_tensor(t.name, (64, 64), F32) for t in tiny.tensors()]
    message = fails(write, tiny.build(tensors=tensors), "'blk.0.attn_k.weight'", "dims [64 64]", "[n_kv_heads*head_dim, dim] = [32 64]")
    assert "innermost first" in message


def test_embedding_with_wrong_columns(write):
    tiny = TinyLlama()
    tensors = [t if t.name != "token_embd.weight" else random_tensor(t.name, (32, 40), F32) for t in tiny.tensors()]
    fails(write, tiny.build(tensors=tensors), "'token_embd.weight'", "[vocab_size, dim] = [40 64]")
