"""ModelWeights: every tensor of the model under Meta's names, whatever file it came from.

The transformer reads only this structure, so Meta's `consolidated.00.pth`, a llama2.c `.bin` and a
Hugging Face checkpoint feed the same Forward. What the structure does say is one convention of the
weights themselves: how the rows of wq and wk pair the features that RoPE rotates together
(`rope_pairing`, see rope.py), because Hugging Face's checkpoints order them differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..ml import Tensor
from .rope import ROPE_INTERLEAVED


@dataclass
class LayerWeights:
    attention_norm: Tensor  # [dim]
    wq: Tensor  # [n_heads*head_dim, dim]
    wk: Tensor  # [n_kv_heads*head_dim, dim]
    wv: Tensor  # [n_kv_heads*head_dim, dim]
    wo: Tensor  # [dim, n_heads*head_dim]
    ffn_norm: Tensor  # [dim]
    w1: Tensor  # [hidden, dim]
    w2: Tensor  # [dim, hidden]
    w3: Tensor  # [hidden, dim]

    def named(self, index: int) -> Iterator[tuple[str, Tensor]]:
        p = f"layers.{index}."
        yield p + "attention.wq.weight", self.wq
        yield p + "attention.wk.weight", self.wk
        yield p + "attention.wv.weight", self.wv
        yield p + "attention.wo.weight", self.wo
        yield p + "feed_forward.w1.weight", self.w1
        yield p + "feed_forward.w2.weight", self.w2
        yield p + "feed_forward.w3.weight", self.w3
        yield p + "attention_norm.weight", self.attention_norm
        yield p + "ffn_norm.weight", self.ffn_norm


@dataclass
class ModelWeights:
    tok_embeddings: Tensor  # [vocab, dim]
    layers: list[LayerWeights]
    norm: Tensor  # [dim]
    output: Tensor  # [vocab, dim]; the same Tensor as tok_embeddings when the classifier is shared
    # ROPE_INTERLEAVED: wq/wk rows pair features (2i, 2i+1) (Meta, llama2.c, GGUF);
    # ROPE_HALVES: (i, i + head_dim/2) (Hugging Face). The loader that read the file sets it.
    rope_pairing: str = ROPE_INTERLEAVED

    @property
    def shared_classifier(self) -> bool:
        return self.output is self.tok_embeddings

    def named_tensors(self) -> Iterator[tuple[str, Tensor]]:
        """(Meta name, tensor) for every distinct tensor, in checkpoint order."""
        yield "tok_embeddings.weight", self.tok_embeddings
        for i, layer in enumerate(self.layers):
            yield from layer.named(i)
        yield "norm.weight", self.norm
        if not self.shared_classifier:
            yield "output.weight", self.output
