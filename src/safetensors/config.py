"""config.json -> ModelArgs, for Hugging Face's LlamaForCausalLM.

SmolLM2-135M-Instruct's file, in part (Meta's names on the right):

    "architectures": ["LlamaForCausalLM"],   "model_type": "llama",
    "hidden_size": 576,                  dim
    "intermediate_size": 1536,           hidden_dim (the FFN width, given, not derived)
    "num_hidden_layers": 30,             n_layers
    "num_attention_heads": 9,            n_heads
    "num_key_value_heads": 3,            n_kv_heads (absent: n_heads)
    "head_dim": 64,                      head_dim (absent: hidden_size / num_attention_heads)
    "rms_norm_eps": 1e-05,               norm_eps
    "rope_theta": 100000.0,              rope_theta (absent: 10000)
    "rope_scaling": null,                Llama 3.1's scaled RoPE when {"rope_type": "llama3", ...}
    "max_position_embeddings": 8192,     max_seq_len
    "vocab_size": 49152,
    "tie_word_embeddings": true          no lm_head.weight: the classifier is the embedding table

transformers 5 writes the RoPE settings as one object instead, `"rope_parameters": {"rope_theta":
100000.0, "rope_type": "default"}` (with factor etc. for "llama3"); both spellings are read. Every
value is checked for its type, finiteness and range, and an error names the key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..common.saferepr import short_repr
from ..common.errors import ModelArgsError
from ..model.modelargs import ModelArgs, RopeScaling
from .jsonfile import read_json_file

CONFIG_FILE = "config.json"
MAX_CONFIG_BYTES = 4 << 20  # a config is about 1 KB
LLAMA_ARCHITECTURE = "LlamaForCausalLM"
LLAMA_MODEL_TYPE = "llama"
ROPE_TYPES = ("default", "llama3")

# key -> (smallest, largest) accepted; the upper bounds are far beyond any released Llama and keep a
# corrupt value from costing unbounded work (a table per layer, a RoPE table per position).
INT_LIMITS: dict[str, tuple[int, int]] = {
    "hidden_size": (1, 1 << 16),
    "intermediate_size": (1, 1 << 20),
    "num_hidden_layers": (1, 1024),
    "num_attention_heads": (1, 1024),
    "num_key_value_heads": (1, 1024),
    "head_dim": (2, 4096),
    "vocab_size": (1, 1 << 24),
    "max_position_embeddings": (1, 1 << 21),
    "original_max_position_embeddings": (1, 1 << 21),
}
REQUIRED_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
# Keys this module reads; the rest go to ModelArgs.extra for the metadata table.
USED_KEYS = frozenset(
    REQUIRED_KEYS
    + ("num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters",
       "max_position_embeddings", "tie_word_embeddings", "architectures", "model_type", "hidden_act",
       "attention_bias", "mlp_bias")
)


def load_hf_config(path: str | Path) -> dict[str, Any]:
    """Read config.json (bounded in size) as a dict."""
    return read_json_file(path, MAX_CONFIG_BYTES, "config.json")


def tie_word_embeddings(config: dict[str, Any], path: str | Path) -> bool:
    """True when the classifier is the embedding table (no lm_head.weight). transformers' default: false."""
    value = config.get("tie_word_embeddings", False)
    if not isinstance(value, bool):
        raise ModelArgsError(path, f"'tie_word_embeddings' must be true or false, got {short_repr(value)}")
    return value


def model_args_from_hf_config(config: dict[str, Any], path: str | Path) -> ModelArgs:
    """Check the architecture and every value we use, then build ModelArgs under Meta's names."""
    _check_architecture(config, path)
    for key in REQUIRED_KEYS:
        if config.get(key) is None:
            raise ModelArgsError(path, f"required key {key!r} is missing")
    dim = _int(config, "hidden_size", path)
    hidden_dim = _int(config, "intermediate_size", path)
    n_layers = _int(config, "num_hidden_layers", path)
    n_heads = _int(config, "num_attention_heads", path)
    vocab_size = _int(config, "vocab_size", path)
    n_kv_heads = n_heads if config.get("num_key_value_heads") is None else _int(config, "num_key_value_heads", path)
    if n_heads % n_kv_heads:
        raise ModelArgsError(path, f"'num_attention_heads' {n_heads} is not a multiple of 'num_key_value_heads' {n_kv_heads}")
    if config.get("head_dim") is None:
        if dim % n_heads:
            raise ModelArgsError(path, f"'hidden_size' {dim} is not divisible by 'num_attention_heads' {n_heads} (and no 'head_dim' is given)")
        head_dim = dim // n_heads
    else:
        head_dim = _int(config, "head_dim", path)
    if head_dim % 2:
        raise ModelArgsError(path, f"the head dimension {head_dim} must be even: RoPE rotates pairs of features")
    norm_eps = _float(config, "rms_norm_eps", path, default=1e-6, low=0.0, high=1.0)
    max_seq_len = _int(config, "max_position_embeddings", path, default=2048)
    rope_theta, rope_scaling = _rope(config, path)
    tie_word_embeddings(config, path)  # checked here so every config error comes before the weights
    extra = {k: v for k, v in config.items() if k not in USED_KEYS and _displayable(v)}
    return ModelArgs(
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        vocab_size=vocab_size,
        hidden_dim=hidden_dim,
        norm_eps=norm_eps,
        rope_theta=rope_theta,
        max_seq_len=max_seq_len,
        head_dim=head_dim,
        rope_scaling=rope_scaling,
        extra=extra,
    )


# ---- the architecture -----------------------------------------------------------------------------
def _check_architecture(config: dict[str, Any], path: str | Path) -> None:
    architectures = config.get("architectures")
    model_type = config.get("model_type")
    if architectures is not None:
        if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
            raise ModelArgsError(path, f"'architectures' must be a list of names, got {short_repr(architectures)}")
        if LLAMA_ARCHITECTURE not in architectures:
            raise ModelArgsError(
                path, f"architecture {', '.join(architectures) or '(none)'} is not supported: only {LLAMA_ARCHITECTURE} is"
            )
    elif model_type != LLAMA_MODEL_TYPE:
        raise ModelArgsError(
            path, f"model_type {short_repr(model_type)} is not supported: expected 'architectures' with {LLAMA_ARCHITECTURE} or model_type 'llama'"
        )
    if model_type is not None and model_type != LLAMA_MODEL_TYPE:
        raise ModelArgsError(path, f"model_type {short_repr(model_type)} is not supported: only 'llama' is")
    if config.get("hidden_act", "silu") != "silu":
        raise ModelArgsError(path, f"'hidden_act' {short_repr(config['hidden_act'])} is not supported: Llama's FFN uses silu (SwiGLU)")
    for key in ("attention_bias", "mlp_bias"):
        if config.get(key, False) not in (False, None):
            raise ModelArgsError(path, f"{key!r} is {short_repr(config[key])}: linear layers with biases are not supported (Llama has none)")


# ---- RoPE -------------------------------------------------------------------------------------------
def _rope(config: dict[str, Any], path: str | Path) -> tuple[float, RopeScaling | None]:
    """rope_theta and the llama3 scaling, from transformers 5's `rope_parameters` or the older
    top-level `rope_theta` + `rope_scaling`."""
    parameters = config.get("rope_parameters")
    if parameters is not None:
        section_name = "rope_parameters"
        if not isinstance(parameters, dict):
            raise ModelArgsError(path, f"'rope_parameters' must be an object, got {short_repr(parameters)}")
        section = parameters
        theta_source, theta_key = (parameters, "rope_theta") if "rope_theta" in parameters else (config, "rope_theta")
        if "rope_theta" in parameters and config.get("rope_theta") not in (None, parameters["rope_theta"]):
            raise ModelArgsError(
                path, f"'rope_theta' {short_repr(config['rope_theta'])} disagrees with 'rope_parameters.rope_theta' {short_repr(parameters['rope_theta'])}"
            )
    else:
        section_name = "rope_scaling"
        section = config.get("rope_scaling") or {}
        if not isinstance(section, dict):
            raise ModelArgsError(path, f"'rope_scaling' must be an object or null, got {short_repr(section)}")
        theta_source, theta_key = config, "rope_theta"
    label = "rope_theta" if theta_source is config else f"{section_name}.rope_theta"
    rope_theta = _float(theta_source, theta_key, path, default=10000.0, low=0.0, label=label)

    rope_type = section.get("rope_type", section.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise ModelArgsError(
            path, f"'{section_name}' has rope type {short_repr(rope_type)}, which is not supported (supported: {', '.join(ROPE_TYPES)})"
        )
    if rope_type == "default":
        return rope_theta, None
    key = section_name + "."
    factor = _float(section, "factor", path, low=0.0, label=key + "factor")
    low = _float(section, "low_freq_factor", path, low=0.0, label=key + "low_freq_factor")
    high = _float(section, "high_freq_factor", path, low=0.0, label=key + "high_freq_factor")
    if high <= low:
        raise ModelArgsError(path, f"'{key}high_freq_factor' {high} must be larger than '{key}low_freq_factor' {low}")
    original = _int(section, "original_max_position_embeddings", path, label=key + "original_max_position_embeddings")
    return rope_theta, RopeScaling(factor, low, high, original)


# ---- values -----------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(section: dict[str, Any], key: str, path: str | Path, default: int | None = None, label: str | None = None) -> int:
    label = label or key
    value = section.get(key, default)
    if value is None:
        raise ModelArgsError(path, f"required key {label!r} is missing")
    if not _is_int(value):
        raise ModelArgsError(path, f"{label!r} must be an integer, got {short_repr(value)} ({type(value).__name__})")
    low, high = INT_LIMITS[key]
    if not low <= value <= high:
        raise ModelArgsError(path, f"{label!r} is {value}, outside the range {low}..{high}")
    return value


def _float(
    section: dict[str, Any], key: str, path: str | Path, default: float | None = None,
    low: float = 0.0, high: float = math.inf, label: str | None = None,
) -> float:
    """A finite number in the open interval (low, high)."""
    label = label or key
    value = section.get(key, default)
    if value is None:
        raise ModelArgsError(path, f"required key {label!r} is missing")
    if not (isinstance(value, float) or _is_int(value)):
        raise ModelArgsError(path, f"{label!r} must be a number, got {short_repr(value)} ({type(value).__name__})")
    bounds = f"greater than {low:g}" if high == math.inf else f"between {low:g} and {high:g} (exclusive)"
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: JSON allows 10**400
        raise ModelArgsError(path, f"{label!r} is an integer of {abs(value).bit_length()} bits: it must be a finite number {bounds}") from None
    if not math.isfinite(number) or not low < number < high:
        raise ModelArgsError(path, f"{label!r} is {number!r}: it must be a finite number {bounds}")
    return number


def _displayable(value: Any) -> bool:
    """Short scalar values are shown in the metadata table; nested objects are left out."""
    scalar = (str, int, float, bool, type(None))
    if isinstance(value, scalar):
        return not isinstance(value, str) or len(value) <= 80
    return isinstance(value, list) and len(value) <= 4 and all(isinstance(v, scalar) for v in value)


__all__ = ["CONFIG_FILE", "ROPE_TYPES", "load_hf_config", "model_args_from_hf_config", "tie_word_embeddings"]
