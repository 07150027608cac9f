"""Meta's params.json -> ModelArgs.

Llama 2 7B's file is `{"dim": 4096, "multiple_of": 256, "n_heads": 32, "n_layers": 32,
"norm_eps": 1e-05, "vocab_size": -1}`: vocab_size -1 means "ask the tokenizer". Llama 3 adds
n_kv_heads, ffn_dim_multiplier and rope_theta; Llama 3.1 adds use_scaled_rope. Every key is checked
for its type here, so a wrong value is reported by name instead of failing deep inside Forward.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..common.errors import ModelArgsError
from .modelargs import ModelArgs, ffn_hidden_dim

REQUIRED_INT_KEYS = ("dim", "n_layers", "n_heads")

# key -> default; the type of each is checked by the functions below.
OPTIONAL_DEFAULTS: dict[str, Any] = {
    "n_kv_heads": None,  # None: the same as n_heads (no grouped-query attention)
    "vocab_size": -1,  # -1: take the tokenizer's
    "multiple_of": 256,
    "ffn_dim_multiplier": None,
    "norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "use_scaled_rope": False,
    "max_seq_len": 2048,
}


def load_params(path: str | Path) -> dict[str, Any]:
    """Read params.json as a dict; a missing file or invalid JSON is a ModelArgsError."""
    path = Path(path)
    if not path.is_file():
        raise ModelArgsError(path, "params.json not found (Meta's download puts it beside consolidated.00.pth)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelArgsError(path, f"cannot read params.json: {exc}") from exc
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelArgsError(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(params, dict):
        raise ModelArgsError(path, f"expected a JSON object of hyperparameters, got a {type(params).__name__}")
    return params


def model_args_from_params(
    params: dict[str, Any], path: str | Path, vocab_size_from_tokenizer: int | None
) -> ModelArgs:
    """Check each key's type and value, fill in defaults, and derive the FFN width."""
    for key in REQUIRED_INT_KEYS:
        if key not in params:
            raise ModelArgsError(path, f"required key {key!r} is missing")
    dim = _positive_int(params, "dim", path)
    n_layers = _positive_int(params, "n_layers", path)
    n_heads = _positive_int(params, "n_heads", path)
    n_kv_heads = n_heads if params.get("n_kv_heads") is None else _positive_int(params, "n_kv_heads", path)
    multiple_of = _positive_int(params, "multiple_of", path, default=OPTIONAL_DEFAULTS["multiple_of"])
    max_seq_len = _positive_int(params, "max_seq_len", path, default=OPTIONAL_DEFAULTS["max_seq_len"])
    ffn_dim_multiplier = _optional_float(params, "ffn_dim_multiplier", path)
    norm_eps = _float(params, "norm_eps", path)
    rope_theta = _float(params, "rope_theta", path)
    use_scaled_rope = _bool(params, "use_scaled_rope", path)
    vocab_size = _vocab_size(params, path, vocab_size_from_tokenizer)

    if dim % n_heads:
        raise ModelArgsError(path, f"dim {dim} is not divisible by n_heads {n_heads}")
    if n_heads % n_kv_heads:
        raise ModelArgsError(path, f"n_heads {n_heads} is not a multiple of n_kv_heads {n_kv_heads}")
    if norm_eps <= 0:
        raise ModelArgsError(path, f"'norm_eps' must be positive, got {norm_eps}")
    if rope_theta <= 0:
        raise ModelArgsError(path, f"'rope_theta' must be positive, got {rope_theta}")
    if ffn_dim_multiplier is not None and ffn_dim_multiplier <= 0:
        raise ModelArgsError(path, f"'ffn_dim_multiplier' must be positive, got {ffn_dim_multiplier}")

    extra = {k: v for k, v in params.items() if k not in REQUIRED_INT_KEYS and k not in OPTIONAL_DEFAULTS}
    return ModelArgs(
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        vocab_size=vocab_size,
        hidden_dim=ffn_hidden_dim(dim, multiple_of, ffn_dim_multiplier),
        multiple_of=multiple_of,
        ffn_dim_multiplier=ffn_dim_multiplier,
        norm_eps=norm_eps,
        rope_theta=rope_theta,
        use_scaled_rope=use_scaled_rope,
        max_seq_len=max_seq_len,
        extra=extra,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(params: dict[str, Any], key: str, path: str | Path, default: int | None = None) -> int:
    value = params.get(key, default)
    if not _is_int(value):
        raise ModelArgsError(path, f"{key!r} must be an integer, got {value!r} ({type(value).__name__})")
    if value <= 0:
        raise ModelArgsError(path, f"{key!r} must be positive, got {value}")
    return value


def _float(params: dict[str, Any], key: str, path: str | Path) -> float:
    value = params.get(key, OPTIONAL_DEFAULTS[key])
    if not (isinstance(value, float) or _is_int(value)):
        raise ModelArgsError(path, f"{key!r} must be a number, got {value!r} ({type(value).__name__})")
    return float(value)


def _optional_float(params: dict[str, Any], key: str, path: str | Path) -> float | None:
    if params.get(key) is None:
        return None
    return _float(params, key, path)


def _bool(params: dict[str, Any], key: str, path: str | Path) -> bool:
    value = params.get(key, OPTIONAL_DEFAULTS[key])
    if not isinstance(value, bool):
        raise ModelArgsError(path, f"{key!r} must be true or false, got {value!r} ({type(value).__name__})")
    return value


def _vocab_size(params: dict[str, Any], path: str | Path, from_tokenizer: int | None) -> int:
    value = params.get("vocab_size", -1)
    if not _is_int(value):
        raise ModelArgsError(path, f"'vocab_size' must be an integer, got {value!r} ({type(value).__name__})")
    if value == -1:
        if from_tokenizer is None:
            raise ModelArgsError(path, "'vocab_size' is -1 (take the tokenizer's) but no tokenizer vocab size was given")
        return from_tokenizer
    if value <= 0:
        raise ModelArgsError(path, f"'vocab_size' must be positive or -1, got {value}")
    return value


__all__ = ["OPTIONAL_DEFAULTS", "REQUIRED_INT_KEYS", "load_params", "model_args_from_params"]
