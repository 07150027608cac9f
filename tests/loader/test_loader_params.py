"""params.json -> ModelArgs: Meta's defaults, and errors that name the key."""

from __future__ import annotations

import json

import pytest

from llamanuts.common.errors import ModelArgsError
from llamanuts.model.params import load_params, model_args_from_params

LLAMA2_7B = {"dim": 4096, "multiple_of": 256, "n_heads": 32, "n_layers": 32, "norm_eps": 1e-05, "vocab_size": -1}
LLAMA3_8B = {
    "dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8, "vocab_size": 128256, "multiple_of": 1024,
    "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0,
}


def _args(params, vocab=32000):
    return model_args_from_params(params, "params.json", vocab)


def test_llama2_7b_params():
    args = _args(LLAMA2_7B)
    assert (args.dim, args.n_layers, args.n_heads, args.n_kv_heads) == (4096, 32, 32, 32)
    assert (args.vocab_size, args.hidden_dim, args.head_dim) == (32000, 11008, 128)
    assert (args.rope_theta, args.use_scaled_rope, args.max_seq_len, args.norm_eps) == (10000.0, False, 2048, 1e-5)


def test_llama3_8b_params():
    args = _args(LLAMA3_8B, vocab=None)
    assert (args.n_kv_heads, args.vocab_size, args.hidden_dim, args.rope_theta) == (8, 128256, 14336, 500000.0)


def test_defaults_for_missing_optional_keys():
    args = _args({"dim": 64, "n_layers": 2, "n_heads": 4})
    assert args.n_kv_heads == 4 and args.multiple_of == 256 and args.ffn_dim_multiplier is None
    assert args.vocab_size == 32000  # from the tokenizer


def test_unknown_keys_are_kept_in_extra():
    args = _args({**LLAMA2_7B, "some_future_flag": 3})
    assert args.extra == {"some_future_flag": 3}
    assert ("some_future_flag (unused)", "3") in args.as_rows()


@pytest.mark.parametrize("key", ["dim", "n_layers", "n_heads"])
def test_missing_required_key_is_named(key):
    params = {k: v for k, v in LLAMA2_7B.items() if k != key}
    with pytest.raises(ModelArgsError, match=f"required key '{key}' is missing"):
        _args(params)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("dim", "4096", "'dim' must be an integer"),
        ("n_heads", 32.0, "'n_heads' must be an integer"),
        ("n_layers", True, "'n_layers' must be an integer"),
        ("n_kv_heads", "8", "'n_kv_heads' must be an integer"),
        ("norm_eps", "1e-5", "'norm_eps' must be a number"),
        ("rope_theta", None, "'rope_theta' must be a number"),
        ("use_scaled_rope", 1, "'use_scaled_rope' must be true or false"),
        ("vocab_size", 3.5, "'vocab_size' must be an integer"),
        ("ffn_dim_multiplier", "1.3", "'ffn_dim_multiplier' must be a number"),
        ("max_seq_len", 0, "'max_seq_len' must be positive"),
        ("dim", -1, "'dim' must be positive"),
    ],
)
def test_wrong_type_or_value_is_named(key, value, message):
    with pytest.raises(ModelArgsError, match=message):
        _args({**LLAMA2_7B, key: value})


def test_dim_not_divisible_by_heads():
    with pytest.raises(ModelArgsError, match="dim 100 is not divisible by n_heads 32"):
        _args({**LLAMA2_7B, "dim": 100})


def test_heads_not_multiple_of_kv_heads():
    with pytest.raises(ModelArgsError, match="n_heads 32 is not a multiple of n_kv_heads 5"):
        _args({**LLAMA2_7B, "n_kv_heads": 5})


def test_vocab_minus_one_needs_a_tokenizer():
    with pytest.raises(ModelArgsError, match="'vocab_size' is -1"):
        _args(LLAMA2_7B, vocab=None)


def test_load_params_reads_json(tmp_path):
    path = tmp_path / "params.json"
    path.write_text(json.dumps(LLAMA2_7B))
    assert load_params(path) == LLAMA2_7B


def test_load_params_invalid_json(tmp_path):
    path = tmp_path / "params.json"
    path.write_text("{dim: 4096}")
    with pytest.raises(ModelArgsError, match=r"params.json: not valid JSON.*line 1"):
        load_params(path)


def test_load_params_not_an_object(tmp_path):
    path = tmp_path / "params.json"
    path.write_text("[1, 2]")
    with pytest.raises(ModelArgsError, match="expected a JSON object"):
        load_params(path)


def test_load_params_missing_file(tmp_path):
    with pytest.raises(ModelArgsError, match="params.json not found"):
        load_params(tmp_path / "params.json")
