"""InferenceContext: what one generation carries between Forward calls: the KV cache.

Each layer keeps the keys and values of every position seen so far, [sequence_length, n_kv_heads,
head_dim], so decoding a new token only computes that token's keys and values and reuses the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..common.errors import LlamaError, SequenceLengthError
from ..common.memory import check_allocation
from ..ml import DT_BF16, DT_F32, DataType, Tensor, Zeros
from .modelargs import ModelArgs

COMPUTE_MODES = ("bf16", "f32")


def compute_dtype(mode: str) -> DataType:
    """The activation dtype of a compute mode: 'bf16' -> BF16, 'f32' -> F32."""
    if mode == "bf16":
        return DT_BF16
    if mode == "f32":
        return DT_F32
    raise LlamaError(f"unknown compute mode {mode!r} (expected one of {', '.join(COMPUTE_MODES)})")


def sequence_length_advice(fits: int, max_seq_len: int) -> str:
    """What to pass when a sequence length's memory does not fit: the length that does, and the flags."""
    if fits < 1:
        return "not even one position fits"
    return (
        f"a sequence length of at most {fits} fits (llama_infer --sequence-length, llama_perplexity --ctx; "
        f"the default is the model's max_seq_len {max_seq_len})"
    )


@dataclass
class InferenceContext:
    args: ModelArgs
    sequence_length: int
    mode: str = "bf16"
    cache_k: list[Tensor] = field(default_factory=list)
    cache_v: list[Tensor] = field(default_factory=list)
    # When a dict, Forward stores a float32 copy of every stage's tensor under the reference names
    # (tools/reference_llama.py); the fidelity tests use it. None (the default) costs nothing.
    recorder: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        dtype = compute_dtype(self.mode)
        if not 1 <= self.sequence_length <= self.args.max_seq_len:
            raise SequenceLengthError(
                f"sequence length {self.sequence_length} must be between 1 and the model's "
                f"max_seq_len {self.args.max_seq_len}"
            )
        shape = (self.sequence_length, self.args.n_kv_heads, self.args.head_dim)
        self._check_memory(dtype)
        self.cache_k = [Zeros(shape, dtype) for _ in range(self.args.n_layers)]
        self.cache_v = [Zeros(shape, dtype) for _ in range(self.args.n_layers)]

    def _check_memory(self, dtype: DataType) -> None:
        """Before np.full touches every page of a cache that cannot fit: say so, and what would."""
        a = self.args
        per_position = 2 * a.n_layers * a.n_kv_heads * a.head_dim * dtype.itemsize
        check_allocation(
            "the KV cache",
            per_position * self.sequence_length,
            f"keys and values: 2 x {a.n_layers} layers x {self.sequence_length} positions x {a.n_kv_heads} "
            f"kv heads x head_dim {a.head_dim} x {dtype.itemsize} bytes ({dtype})",
            lambda available: sequence_length_advice(available // per_position, a.max_seq_len),
        )

    @property
    def dtype(self) -> DataType:
        return compute_dtype(self.mode)

    def cache_bytes(self) -> int:
        return sum(t.nbytes() for t in self.cache_k + self.cache_v)
