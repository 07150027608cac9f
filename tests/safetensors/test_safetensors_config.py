"""config.json -> ModelArgs: published configs read right, every bad value named with its key and file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llamanuts.common.errors import ModelArgsError, ModelFileError
from llamanuts.model import RopeScaling
from llamanuts.safetensors import load_hf_config, model_args_from_hf_config
from llamanuts.safetensors.config import MAX_CONFIG_BYTES

PATH = "/models/x/config.json"

# HuggingFaceTB/SmolLM2-135M-Instruct's config.json on the hub (the keys we read, as published).
SMOLLM2 = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "hidden_size": 576,
    "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
    "rms_norm_eps": 1e-05, "rope_theta": 100000, "rope_scaling": None, "max_position_embeddings": 8192,
    "vocab_size": 49152, "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False,
    "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
}
# meta-llama/Llama-3.2-1B-Instruct's config.json (transformers 4 spelling: rope_theta + rope_scaling).
LLAMA32_1B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu", "hidden_size": 2048,
    "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
    "head_dim": 64, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "max_position_embeddings": 131072,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "vocab_size": 128256, "tie_word_embeddings": True, "attention_bias": False, "mlp_bias": False,
    "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009],
}


def _args(**changes):  # type: ignore[no-untyped-def]
    config = dict(SMOLLM2)
    for key, value in changes.items():
        if value is _DELETE:
            config.pop(key, None)
        else:
            config[key] = value
    return model_args_from_hf_config(config, PATH)


_DELETE = object()


def _refused(phrase: str, config: dict | None = None, **changes: object) -> None:
    with pytest.raises(ModelArgsError) as info:
        if config is not None:
            model_args_from_hf_config(config, PATH)
        else:
            _args(**changes)
    message = str(info.value)
    assert message.startswith(PATH + ":") and phrase in message, message


def test_smollm2_config_gives_its_published_shape() -> None:
    args = _args()
    assert (args.dim, args.n_layers, args.n_heads, args.n_kv_heads, args.head_dim) == (576, 30, 9, 3, 64)
    assert (args.hidden_dim, args.vocab_size, args.max_seq_len) == (1536, 49152, 8192)
    assert args.norm_eps == 1e-5 and args.rope_theta == 100000.0
    assert args.rope_scaling is None and not args.use_scaled_rope
    assert args.extra["bos_token_id"] == 1  # unused keys are kept for the metadata table


def test_llama32_config_with_llama3_rope_scaling() -> None:
    args = model_args_from_hf_config(LLAMA32_1B, PATH)
    assert (args.dim, args.n_layers, args.n_heads, args.n_kv_heads, args.head_dim) == (2048, 16, 32, 8, 64)
    assert args.rope_theta == 500000.0 and args.max_seq_len == 131072 and args.use_scaled_rope
    assert args.rope_scaling == RopeScaling(factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                            original_max_position_embeddings=8192)


def test_transformers_5_rope_parameters_spelling() -> None:
    config = {k: v for k, v in LLAMA32_1B.items() if k not in ("rope_theta", "rope_scaling")}
    config["rope_parameters"] = dict(LLAMA32_1B["rope_scaling"], rope_theta=500000.0)
    new, old = model_args_from_hf_config(config, PATH), model_args_from_hf_config(LLAMA32_1B, PATH)
    assert (new.rope_theta, new.rope_scaling) == (old.rope_theta, old.rope_scaling) == (500000.0, RopeScaling(32.0, 1.0, 4.0, 8192))
    default = dict(SMOLLM2, rope_parameters={"rope_type": "default", "rope_theta": 100000.0})
    del default["rope_theta"], default["rope_scaling"]
    assert model_args_from_hf_config(default, PATH).rope_theta == 100000.0


def test_legacy_type_key_of_rope_scaling_is_read() -> None:
    scaling = dict(LLAMA32_1B["rope_scaling"])
    scaling["type"] = scaling.pop("rope_type")
    assert model_args_from_hf_config(dict(LLAMA32_1B, rope_scaling=scaling), PATH).rope_scaling is not None


def test_defaults_follow_transformers_llama_config() -> None:
    args = _args(num_key_value_heads=_DELETE, rms_norm_eps=_DELETE, rope_theta=_DELETE, max_position_embeddings=_DELETE,
                 rope_scaling=_DELETE)
    assert args.n_kv_heads == 9 and args.norm_eps == 1e-6 and args.rope_theta == 10000.0 and args.max_seq_len == 2048


def test_explicit_head_dim_need_not_be_hidden_over_heads() -> None:
    args = _args(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=32)
    assert args.head_dim == 32 and args.dim == 64


def test_model_type_llama_without_architectures_is_accepted() -> None:
    assert _args(architectures=_DELETE).dim == 576


# ---- refused ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("architectures", [["MistralForCausalLM"], ["Qwen2ForCausalLM", "Foo"], []])
def test_another_architecture_is_named(architectures: list[str]) -> None:
    _refused(f"architecture {', '.join(architectures) or '(none)'} is not supported", architectures=architectures)


def test_another_model_type_is_named() -> None:
    _refused("model_type 'qwen2' is not supported", architectures=_DELETE, model_type="qwen2")
    _refused("model_type 'mistral' is not supported", model_type="mistral")


@pytest.mark.parametrize("rope_type", ["linear", "dynamic", "yarn", "longrope"])
def test_rope_types_other_than_default_and_llama3_are_refused(rope_type: str) -> None:
    _refused(f"rope type {rope_type!r}, which is not supported", rope_scaling={"rope_type": rope_type, "factor": 2.0})


@pytest.mark.parametrize(
    "key, value, phrase",
    [
        ("num_hidden_layers", 0, "'num_hidden_layers' is 0, outside the range 1..1024"),
        ("num_hidden_layers", -3, "'num_hidden_layers' is -3, outside"),
        ("num_hidden_layers", 10**9, "'num_hidden_layers' is 1000000000, outside"),
        ("hidden_size", "576", "'hidden_size' must be an integer, got '576' (str)"),
        ("hidden_size", True, "'hidden_size' must be an integer, got True (bool)"),
        ("hidden_size", 576.0, "'hidden_size' must be an integer"),
        ("vocab_size", 2**40, "'vocab_size' is 1099511627776, outside"),
        ("max_position_embeddings", 10**12, "'max_position_embeddings' is 1000000000000, outside"),
        ("rms_norm_eps", float("nan"), "'rms_norm_eps' is nan: it must be a finite number between 0 and 1"),
        ("rms_norm_eps", -1e-5, "'rms_norm_eps' is -1e-05"),
        ("rms_norm_eps", float("inf"), "'rms_norm_eps' is inf"),
        ("rms_norm_eps", "1e-5", "'rms_norm_eps' must be a number"),
        ("rope_theta", 0, "'rope_theta' is 0.0: it must be a finite number greater than 0"),
        ("rope_theta", float("nan"), "'rope_theta' is nan"),
        ("tie_word_embeddings", "yes", "'tie_word_embeddings' must be true or false"),
        ("hidden_act", "gelu", "'hidden_act' 'gelu' is not supported"),
        ("attention_bias", True, "'attention_bias' is True: linear layers with biases are not supported"),
        ("rope_scaling", "llama3", "'rope_scaling' must be an object or null"),
        # found by the fuzz suite: an integer too large for a float was an OverflowError traceback
        ("rms_norm_eps", 10**400, "'rms_norm_eps' is an integer of 1329 bits: it must be a finite number between 0 and 1"),
        ("rope_theta", -(10**400), "'rope_theta' is an integer of 1329 bits: it must be a finite number greater than 0"),
    ],
)
def test_a_bad_value_is_named_with_its_key(key: str, value: object, phrase: str) -> None:
    _refused(phrase, **{key: value})


@pytest.mark.parametrize("key", ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"])
def test_a_missing_required_key_is_named(key: str) -> None:
    _refused(f"required key {key!r} is missing", **{key: _DELETE})


def test_heads_must_be_a_multiple_of_kv_heads() -> None:
    _refused("'num_attention_heads' 9 is not a multiple of 'num_key_value_heads' 2", num_key_value_heads=2)


def test_hidden_size_must_divide_into_heads_without_head_dim() -> None:
    _refused("'hidden_size' 577 is not divisible by 'num_attention_heads' 9", hidden_size=577)


def test_head_dim_must_be_even_for_rope() -> None:
    _refused("the head dimension 63 must be even", head_dim=63)


def test_llama3_scaling_needs_its_four_values_in_range() -> None:
    good = LLAMA32_1B["rope_scaling"]
    _refused("'rope_scaling.factor' is nan", config=dict(LLAMA32_1B, rope_scaling=dict(good, factor=float("nan"))))
    _refused("'rope_scaling.high_freq_factor' 1.0 must be larger than 'rope_scaling.low_freq_factor' 1.0",
             config=dict(LLAMA32_1B, rope_scaling=dict(good, high_freq_factor=1.0)))
    _refused("required key 'rope_scaling.original_max_position_embeddings' is missing",
             config=dict(LLAMA32_1B, rope_scaling={k: v for k, v in good.items() if k != "original_max_position_embeddings"}))
    _refused("'rope_scaling.original_max_position_embeddings' is 0, outside",
             config=dict(LLAMA32_1B, rope_scaling=dict(good, original_max_position_embeddings=0)))


def test_two_disagreeing_rope_thetas_are_refused() -> None:
    _refused("'rope_theta' 10000 disagrees with 'rope_parameters.rope_theta' 100000.0",
             rope_theta=10000, rope_parameters={"rope_type": "default", "rope_theta": 100000.0})


# ---- the file ---------------------------------------------------------------------------------------
def test_config_file_is_read_as_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(SMOLLM2))
    assert load_hf_config(path)["hidden_size"] == 576


@pytest.mark.parametrize("content, phrase", [("{", "not valid JSON"), ("[]", "must be a JSON object"), ("", "not valid JSON")])
def test_a_config_that_is_not_a_json_object(tmp_path: Path, content: str, phrase: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ModelFileError, match=phrase) as info:
        load_hf_config(path)
    assert str(path) in str(info.value)


def test_a_config_too_large_to_be_real_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    with open(path, "wb") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)
    with pytest.raises(ModelFileError, match="more than the") as info:
        load_hf_config(path)
    assert str(path) in str(info.value)
