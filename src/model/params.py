"""Meta's params.json -> ModelArgs.

Llama 2 7B's file is `{"dim": 4096, "multiple_of": 256, "n_heads": 32, "n_layers": 32,
"norm_eps": 1e-05, "vocab_size": -1}`: vocab_size -1 means "ask the tokenizer". Llama 3 adds
n_kv_heads, ffn_dim_multiplier and rope_theta; Llama 3.1 adds use_scaled_rope. Every key is checked
for its type, finiteness and range here, so a wrong value is reported by name instead of failing
deep inside Forward, and a number that would make the model allocate terabytes (n_layers 10^8,
max_seq_len 10^7) is refused before anything is allocated.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..common.errors import ModelArgsError
from ..common.files import describe_path, read_regular_file
from .modelargs import ModelArgs, ffn_hidden_dim

# Real params.json files are under 1 KB; the file is read whole.
MAX_PARAMS_BYTES = 1 << 20
# An integer in JSON with more digits than this is no hyperparameter (and Python refuses to parse
# one of more than 4300 digits with a ValueError).
_MAX_INT_DIGITS = 20

# Ranges, (low, high) inclusive, with room above the largest real model (Llama 3.1 405B: dim 16384,
# 126 layers, 128 heads, 8 kv heads, multiple_of 4096, vocab 128256, context 131072). They keep
# every derived size (FFN width, RoPE table, KV cache) a number that can be checked and printed.
INT_RANGES: dict[str, tuple[int, int]] = {
    "dim": (1, 1 << 16),
    "n_layers": (1, 1 << 10),
    "n_heads": (1, 1 << 10),
    "n_kv_heads": (1, 1 << 10),
    "multiple_of": (1, 1 << 16),
    "max_seq_len": (1, 1 << 22),
    "vocab_size": (1, 1 << 22),
}
# Floats: (low, high), exclusive low, inclusive high; NaN and infinities are refused for all.
FLOAT_RANGES: dict[str, tuple[float, float]] = {
    "norm_eps": (0.0, 1.0),  # real: 1e-5, 1e-6
    "rope_theta": (1.0, 1e12),  # real: 1e4 (Llama 2), 5e5 (Llama 3); theta <= 1 makes no frequencies
    "ffn_dim_multiplier": (0.0, 16.0),  # real: 1.3, 1.5
}

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
    if describe_path(path) == "not found":
        raise ModelArgsError(path, "params.json not found (Meta's download puts it beside consolidated.00.pth)")
    raw = read_regular_file(path, MAX_PARAMS_BYTES, ModelArgsError, "params.json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelArgsError(path, f"params.json is not UTF-8 text (byte {exc.start})") from None
    try:
        params = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except _BadNumber as exc:
        raise ModelArgsError(path, f"not valid JSON for hyperparameters: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ModelArgsError(path, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise ModelArgsError(path, "not valid JSON for hyperparameters: values nested too deeply") from None
    if not isinstance(params, dict):
        raise ModelArgsError(path, f"expected a JSON object of hyperparameters, got a {type(params).__name__}")
    return params


class _BadNumber(ValueError):
    """A number in params.json that no hyperparameter can be (raised from inside json.loads)."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _BadNumber(f"an integer of {len(text.lstrip('-'))} digits ({text[:12]}...)")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BadNumber(f"{text[:24]} is not a finite number")
    return value


def _parse_constant(text: str) -> float:
    # Python's json accepts NaN, Infinity and -Infinity, which JSON itself does not.
    raise _BadNumber(f"{text} is not a number JSON allows (and no hyperparameter may be {text})")


def model_args_from_params(
    params: dict[str, Any], path: str | Path, vocab_size_from_tokenizer: int | None
) -> ModelArgs:
    """Check each key's type and value, fill in defaults, and derive the FFN width."""
    for key in REQUIRED_INT_KEYS:
        if key not in params:
            raise ModelArgsError(path, f"required key {key!r} is missing")
    dim = _int_in_range(params, "dim", path)
    n_layers = _int_in_range(params, "n_layers", path)
    n_heads = _int_in_range(params, "n_heads", path)
    n_kv_heads = n_heads if params.get("n_kv_heads") is None else _int_in_range(params, "n_kv_heads", path)
    multiple_of = _int_in_range(params, "multiple_of", path, default=OPTIONAL_DEFAULTS["multiple_of"])
    max_seq_len = _int_in_range(params, "max_seq_len", path, default=OPTIONAL_DEFAULTS["max_seq_len"])
    ffn_dim_multiplier = None if params.get("ffn_dim_multiplier") is None else _float_in_range(params, "ffn_dim_multiplier", path)
    norm_eps = _float_in_range(params, "norm_eps", path)
    rope_theta = _float_in_range(params, "rope_theta", path)
    use_scaled_rope = _bool(params, "use_scaled_rope", path)
    vocab_size = _vocab_size(params, path, vocab_size_from_tokenizer)

    if dim % n_heads:
        raise ModelArgsError(path, f"dim {dim} is not divisible by n_heads {n_heads}")
    if n_heads % n_kv_heads:
        raise ModelArgsError(path, f"n_heads {n_heads} is not a multiple of n_kv_heads {n_kv_heads}")
    if (dim // n_heads) % 2:
        raise ModelArgsError(path, f"head_dim {dim // n_heads} (dim / n_heads) must be even for RoPE")
    # Within the ranges above the FFN width is at most 16 * 8/3 * 65536 + 65536, about 2.9 million.
    hidden_dim = ffn_hidden_dim(dim, multiple_of, ffn_dim_multiplier)

    extra = {k: v for k, v in params.items() if k not in REQUIRED_INT_KEYS and k not in OPTIONAL_DEFAULTS}
    return ModelArgs(
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        vocab_size=vocab_size,
        hidden_dim=hidden_dim,
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


def _int_in_range(params: dict[str, Any], key: str, path: str | Path, default: int | None = None) -> int:
    value = params.get(key, default)
    if not _is_int(value):
        raise ModelArgsError(path, f"{key!r} must be an integer, got {_shown(value)} ({type(value).__name__})")
    low, high = INT_RANGES[key]
    if value <= 0:
        raise ModelArgsError(path, f"{key!r} must be positive, got {value}")
    if not low <= value <= high:
        raise ModelArgsError(path, f"{key!r} is {value}, outside the range [{low}, {high}] this loader accepts")
    return value


def _float_in_range(params: dict[str, Any], key: str, path: str | Path) -> float:
    value = params.get(key, OPTIONAL_DEFAULTS[key])
    if not (isinstance(value, float) or _is_int(value)):
        raise ModelArgsError(path, f"{key!r} must be a number, got {_shown(value)} ({type(value).__name__})")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: JSON allows 10**400
        raise ModelArgsError(path, f"{key!r} is an integer of {abs(value).bit_length()} bits: it must be a finite number") from None
    low, high = FLOAT_RANGES[key]
    if not math.isfinite(number):
        raise ModelArgsError(path, f"{key!r} must be a finite number, got {number}")
    if key != "rope_theta" and number <= 0:
        raise ModelArgsError(path, f"{key!r} must be positive, got {number}")
    if not low < number <= high:
        raise ModelArgsError(path, f"{key!r} is {number}, outside the range ({low:g}, {high:g}] this loader accepts")
    return number


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, (str, int, float, bool, type(None))) else f"a JSON {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _bool(params: dict[str, Any], key: str, path: str | Path) -> bool:
    value = params.get(key, OPTIONAL_DEFAULTS[key])
    if not isinstance(value, bool):
        raise ModelArgsError(path, f"{key!r} must be true or false, got {_shown(value)} ({type(value).__name__})")
    return value


def _vocab_size(params: dict[str, Any], path: str | Path, from_tokenizer: int | None) -> int:
    value = params.get("vocab_size", -1)
    if not _is_int(value):
        raise ModelArgsError(path, f"'vocab_size' must be an integer, got {_shown(value)} ({type(value).__name__})")
    if value == -1:
        if from_tokenizer is None:
            raise ModelArgsError(path, "'vocab_size' is -1 (take the tokenizer's) but no tokenizer vocab size was given")
        return from_tokenizer
    if value <= 0:
        raise ModelArgsError(path, f"'vocab_size' must be positive or -1, got {value}")
    low, high = INT_RANGES["vocab_size"]
    if value > high:
        raise ModelArgsError(path, f"'vocab_size' is {value}, outside the range [{low}, {high}] this loader accepts")
    return value


__all__ = [
    "FLOAT_RANGES",
    "INT_RANGES",
    "MAX_PARAMS_BYTES",
    "OPTIONAL_DEFAULTS",
    "REQUIRED_INT_KEYS",
    "load_params",
    "model_args_from_params",
]
