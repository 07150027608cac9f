"""ModelArgs: the hyperparameters, from Meta's params.json or a llama2.c header.

Field names follow Meta's `llama/model.py` (`dim`, `n_layers`, `n_heads`, `n_kv_heads`, ...), so a
reader can put params.json, this class and Meta's code side by side.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def ffn_hidden_dim(dim: int, multiple_of: int, ffn_dim_multiplier: float | None) -> int:
    """Meta's rule for the FFN width: 2/3 of 4*dim, scaled, rounded up to a multiple of `multiple_of`.

    Llama 2 7B: dim 4096, multiple_of 256 -> 11008. Llama 3 8B: dim 4096, multiplier 1.3,
    multiple_of 1024 -> 14336.
    """
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3.1's stretch of the slow RoPE frequencies (Meta's `apply_scaling`, Hugging Face's
    `rope_scaling` of type "llama3").

    A GGUF file states the result instead of the rule: `freq_factors` holds one divisor per pair of
    a head (llama.cpp's `rope_freqs.weight`), and when it is set the four constants are unused."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192
    freq_factors: tuple[float, ...] | None = None


# Meta's params.json only says `"use_scaled_rope": true`; its code hard-codes these constants.
LLAMA31_ROPE_SCALING = RopeScaling()


@dataclass
class ModelArgs:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    hidden_dim: int
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    use_scaled_rope: bool = False
    max_seq_len: int = 2048
    # 0: dim // n_heads (Meta's rule); Hugging Face configs and GGUF files may give it explicitly
    head_dim: int = 0
    # None: plain RoPE. Set for Llama 3.1-style scaled RoPE (use_scaled_rope is then True).
    rope_scaling: RopeScaling | None = None
    # params.json keys we do not use, kept so the metadata can show them
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.head_dim:
            self.head_dim = self.dim // self.n_heads
        if self.use_scaled_rope and self.rope_scaling is None:
            self.rope_scaling = LLAMA31_ROPE_SCALING
        self.use_scaled_rope = self.rope_scaling is not None

    @property
    def n_rep(self) -> int:
        """How many query heads share one key/value head (1 without grouped-query attention)."""
        return self.n_heads // self.n_kv_heads

    def as_rows(self) -> list[tuple[str, str]]:
        """(name, value) rows for the metadata table."""
        rows = [
            ("dim", str(self.dim)),
            ("n_layers", str(self.n_layers)),
            ("n_heads", str(self.n_heads)),
            ("n_kv_heads", str(self.n_kv_heads)),
            ("head_dim", str(self.head_dim)),
            ("vocab_size", str(self.vocab_size)),
            ("hidden_dim (FFN)", str(self.hidden_dim)),
            ("multiple_of", str(self.multiple_of)),
            ("ffn_dim_multiplier", str(self.ffn_dim_multiplier)),
            ("norm_eps", str(self.norm_eps)),
            ("rope_theta", str(self.rope_theta)),
            ("rope_scaling", _rope_scaling_text(self.rope_scaling)),
            ("max_seq_len", str(self.max_seq_len)),
        ]
        rows += [(f"{k} (unused)", repr(v)) for k, v in self.extra.items()]
        return rows


def _rope_scaling_text(scaling: RopeScaling | None) -> str:
    if scaling is None:
        return "none"
    if scaling.freq_factors is not None:
        factors = scaling.freq_factors
        return f"per-pair divisors from the file ({len(factors)} pairs, {min(factors):g} to {max(factors):g})"
    return (
        f"factor {scaling.factor:g}, low_freq_factor {scaling.low_freq_factor:g}, "
        f"high_freq_factor {scaling.high_freq_factor:g}, original context {scaling.original_max_position_embeddings}"
    )
