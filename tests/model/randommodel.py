"""A small random Llama built in memory with numpy, for tests that check the engine against itself
(KV cache vs full sequence, errors, the debug trace). Fidelity against an independent reference
uses the PyTorch fixtures instead (test_model_fidelity.py)."""

from __future__ import annotations

import numpy as np

from llamanuts.ml import DT_BF16, Tensor, float32_to_bf16_bits
from llamanuts.model import LayerWeights, LlamaTransformer, ModelArgs, ModelWeights, ffn_hidden_dim


def random_model(
    mode: str = "f32",
    dim: int = 32,
    n_layers: int = 2,
    n_heads: int = 4,
    n_kv_heads: int = 2,
    vocab: int = 50,
    max_seq_len: int = 16,
    seed: int = 0,
) -> LlamaTransformer:
    rng = np.random.default_rng(seed)
    hidden = ffn_hidden_dim(dim, 16, None)
    head_dim = dim // n_heads

    def bf16(*shape: int, scale: float = 0.2, center: float = 0.0) -> Tensor:
        values = (center + scale * rng.standard_normal(shape)).astype(np.float32)
        return Tensor.from_numpy(float32_to_bf16_bits(values), DT_BF16)

    layers = [
        LayerWeights(
            attention_norm=bf16(dim, scale=0.1, center=1.0),
            wq=bf16(n_heads * head_dim, dim),
            wk=bf16(n_kv_heads * head_dim, dim),
            wv=bf16(n_kv_heads * head_dim, dim),
            wo=bf16(dim, n_heads * head_dim),
            ffn_norm=bf16(dim, scale=0.1, center=1.0),
            w1=bf16(hidden, dim),
            w2=bf16(dim, hidden),
            w3=bf16(hidden, dim),
        )
        for _ in range(n_layers)
    ]
    weights = ModelWeights(bf16(vocab, dim, scale=1.0), layers, bf16(dim, scale=0.1, center=1.0), bf16(vocab, dim))
    args = ModelArgs(
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        vocab_size=vocab,
        hidden_dim=hidden,
        multiple_of=16,
        max_seq_len=max_seq_len,
    )
    return LlamaTransformer(args, weights, mode)
