"""Hugging Face tensor names -> Meta's: the table of transformers' LlamaForCausalLM, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.ml import Tensor
from llamanuts.model import ModelArgs
from llamanuts.safetensors import hf_name, meta_name, meta_state_dict

PATH = "/models/x/model.safetensors"
ARGS = ModelArgs(dim=8, n_layers=2, n_heads=2, n_kv_heads=1, vocab_size=10, hidden_dim=16)

# transformers' LlamaForCausalLM state-dict names beside Meta's llama/model.py names for the same weight.
PAIRS = [
    ("model.embed_tokens.weight", "tok_embeddings.weight"),
    ("model.layers.1.input_layernorm.weight", "layers.1.attention_norm.weight"),
    ("model.layers.1.self_attn.q_proj.weight", "layers.1.attention.wq.weight"),
    ("model.layers.1.self_attn.k_proj.weight", "layers.1.attention.wk.weight"),
    ("model.layers.1.self_attn.v_proj.weight", "layers.1.attention.wv.weight"),
    ("model.layers.1.self_attn.o_proj.weight", "layers.1.attention.wo.weight"),
    ("model.layers.1.post_attention_layernorm.weight", "layers.1.ffn_norm.weight"),
    ("model.layers.1.mlp.gate_proj.weight", "layers.1.feed_forward.w1.weight"),
    ("model.layers.1.mlp.down_proj.weight", "layers.1.feed_forward.w2.weight"),
    ("model.layers.1.mlp.up_proj.weight", "layers.1.feed_forward.w3.weight"),
    ("model.norm.weight", "norm.weight"),
    ("lm_head.weight", "output.weight"),
]


def _t() -> Tensor:
    return Tensor.from_numpy(np.zeros(1, np.float32))


def _checkpoint(n_layers: int = 2, lm_head: bool = True) -> dict[str, Tensor]:
    names = ["model.embed_tokens.weight", "model.norm.weight"] + (["lm_head.weight"] if lm_head else [])
    for i in range(n_layers):
        names += [hf.replace("layers.1.", f"layers.{i}.") for hf, _ in PAIRS if "layers.1." in hf]
    return {name: _t() for name in names}


def _refused(tensors: dict[str, Tensor], tied: bool, *phrases: str) -> None:
    with pytest.raises(ModelFileError) as info:
        meta_state_dict(tensors, ARGS, tied, PATH)
    message = str(info.value)
    assert message.startswith(PATH)
    for phrase in phrases:
        assert phrase in message, (phrase, message)


@pytest.mark.parametrize("hf, meta", PAIRS)
def test_each_name_maps_both_ways(hf: str, meta: str) -> None:
    assert meta_name(hf) == meta and hf_name(meta) == hf


@pytest.mark.parametrize("name", ["model.layers.01.mlp.up_proj.weight", "model.layers.0.self_attn.q_proj.bias",
                                  "transformer.wte.weight", "model.layers.x.mlp.up_proj.weight"])
def test_names_outside_the_table_have_no_meta_name(name: str) -> None:
    assert meta_name(name) is None


def test_a_full_untied_checkpoint_maps_to_every_meta_name() -> None:
    renamed = meta_state_dict(_checkpoint(), ARGS, tied=False, path=PATH)
    assert len(renamed) == 3 + 2 * 9 and "output.weight" in renamed and "layers.1.feed_forward.w2.weight" in renamed


def test_tied_embeddings_drop_an_lm_head_the_file_happens_to_hold() -> None:
    tensors = _checkpoint()
    renamed = meta_state_dict(tensors, ARGS, tied=True, path=PATH)
    assert "output.weight" not in renamed and renamed["tok_embeddings.weight"] is tensors["model.embed_tokens.weight"]


def test_rotary_inverse_frequencies_saved_by_old_conversions_are_ignored() -> None:
    tensors = _checkpoint()
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = _t()
    assert "model.layers.0.self_attn.rotary_emb.inv_freq" not in meta_state_dict(tensors, ARGS, False, PATH)


def test_an_unknown_tensor_is_named() -> None:
    tensors = _checkpoint()
    tensors["model.layers.0.self_attn.q_proj.bias"] = _t()
    _refused(tensors, False, "1 tensor(s) that a LlamaForCausalLM does not have", "'model.layers.0.self_attn.q_proj.bias'")


def test_layers_beyond_the_config_are_named() -> None:
    _refused(_checkpoint(n_layers=3), False, "9 tensor(s) of layers beyond num_hidden_layers = 2",
             "'model.layers.2.input_layernorm.weight'")


def test_a_missing_tensor_is_named_as_the_file_would_name_it() -> None:
    tensors = _checkpoint()
    del tensors["model.layers.1.mlp.down_proj.weight"]
    _refused(tensors, False, "1 tensor(s) missing for a 2-layer LlamaForCausalLM", "'model.layers.1.mlp.down_proj.weight'")


def test_an_untied_config_without_lm_head_says_why_it_is_needed() -> None:
    _refused(_checkpoint(lm_head=False), False, "tie_word_embeddings is false, so lm_head.weight is needed", "'lm_head.weight'")
