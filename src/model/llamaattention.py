"""LlamaAttention: multi-head (grouped-query) self-attention with rotary embeddings and a KV cache.

Stages 08 to 14 of the forward pass happen here, in the order of Meta's `Attention.forward`.
"""

from __future__ import annotations

import math

from ..common import GLogger
from ..ml import (
    Add,
    DivToScalar,
    LinearTransformation,
    MatMul,
    RepeatInterleave,
    Reshape,
    SetSlice,
    Slice,
    Softmax,
    Tensor,
    Transpose,
)
from .inferencecontext import InferenceContext
from .modelargs import ModelArgs
from .rope import ROPE_INTERLEAVED, applyRotaryEmbeddings
from .weights import LayerWeights


class LlamaAttention:
    def __init__(self, layer_index: int, args: ModelArgs, weights: LayerWeights, rope_pairing: str = ROPE_INTERLEAVED) -> None:
        self.layer_index = layer_index
        self.rope_pairing = rope_pairing  # how wq/wk rows pair the rotated features (see rope.py)
        self.n_heads = args.n_heads
        self.n_kv_heads = args.n_kv_heads
        self.n_rep = args.n_rep
        self.head_dim = args.head_dim
        self.sqrt_head_dim = math.sqrt(args.head_dim)
        self.attn_wq = weights.wq
        self.attn_wk = weights.wk
        self.attn_wv = weights.wv
        self.attn_wo = weights.wo

    def _record(self, infContext: InferenceContext, name: str, t: Tensor) -> None:
        if infContext.recorder is not None:
            infContext.recorder[f"layers.{self.layer_index}.{name}"] = t.numpy().copy()

    def Forward(self, infContext: InferenceContext, x: Tensor, startPos: int, freqs_cis: Tensor, mask: Tensor | None) -> Tensor:
        sequenceLength = x.shape[0]
        layer = self.layer_index

        GLogger.DebugStage(8, "Calculating xq, xk, xv")
        GLogger.DebugPrintf("Calling LinearTransformation for x %s and LlamaAttention.attn_wq weights %s -> tensor xq", x, self.attn_wq)
        xq = LinearTransformation(x, self.attn_wq)
        GLogger.DebugPrintf("Calling LinearTransformation for x %s and LlamaAttention.attn_wk weights %s -> tensor xk", x, self.attn_wk)
        xk = LinearTransformation(x, self.attn_wk)
        GLogger.DebugPrintf("Calling LinearTransformation for x %s and LlamaAttention.attn_wv weights %s -> tensor xv", x, self.attn_wv)
        xv = LinearTransformation(x, self.attn_wv)
        self._record(infContext, "xq", xq)
        self._record(infContext, "xk", xk)
        self._record(infContext, "xv", xv)

        GLogger.DebugStage(9, "Reshaping xq, xk, xv into heads")
        xq = Reshape(xq, [sequenceLength, self.n_heads, self.head_dim])
        xk = Reshape(xk, [sequenceLength, self.n_kv_heads, self.head_dim])
        xv = Reshape(xv, [sequenceLength, self.n_kv_heads, self.head_dim])
        GLogger.DebugPrintf("Reshaped xq %s, xk %s, xv %s", xq, xk, xv)

        GLogger.DebugStage(10, "Applying rotary embeddings")
        xq = applyRotaryEmbeddings(xq, freqs_cis, "xq", self.rope_pairing)
        xk = applyRotaryEmbeddings(xk, freqs_cis, "xk", self.rope_pairing)
        GLogger.DebugPrintf("Rotated xq %s and xk %s", xq, xk)
        self._record(infContext, "xq_rope", xq)
        self._record(infContext, "xk_rope", xk)

        GLogger.DebugStage(11, "Updating the KV cache")
        cache_k, cache_v = infContext.cache_k[layer], infContext.cache_v[layer]
        GLogger.DebugPrintf("Calling SetSlice to write xk %s into cache_k[%d] %s at positions %d..%d", xk, layer, cache_k, startPos, startPos + sequenceLength - 1)
        SetSlice(cache_k, 0, startPos, xk)
        GLogger.DebugPrintf("Calling SetSlice to write xv %s into cache_v[%d] %s at positions %d..%d", xv, layer, cache_v, startPos, startPos + sequenceLength - 1)
        SetSlice(cache_v, 0, startPos, xv)
        keys = Slice(cache_k, 0, 0, startPos + sequenceLength)
        values = Slice(cache_v, 0, 0, startPos + sequenceLength)
        GLogger.DebugPrintf("Sliced keys %s and values %s from the cache (positions 0..%d)", keys, values, startPos + sequenceLength - 1)
        if self.n_rep > 1:
            # Grouped-query attention: n_rep query heads share each key/value head
            keys = RepeatInterleave(keys, self.n_rep, 1)
            values = RepeatInterleave(values, self.n_rep, 1)
            GLogger.DebugPrintf("Calling RepeatInterleave x%d for GQA -> keys %s, values %s", self.n_rep, keys, values)

        GLogger.DebugStage(12, "Doing transposes")
        xq = Transpose(xq, 0, 1)  # [heads, n, head_dim]
        keys = Transpose(keys, 0, 1)  # [heads, T, head_dim]
        values = Transpose(values, 0, 1)  # [heads, T, head_dim]
        GLogger.DebugPrintf("Transposed xq %s, keys %s, values %s (heads first)", xq, keys, values)

        GLogger.DebugStage(13, "Calculating scores")
        keysT = Transpose(keys, 1, 2)  # [heads, head_dim, T]
        GLogger.DebugPrintf("Calling MatMul for xq %s and keys transposed %s -> tensor scores", xq, keysT)
        scores = MatMul(xq, keysT)
        GLogger.DebugPrintf("Calling DivToScalar for scores %s and sqrt(head_dim) %g -> tensor scores", scores, self.sqrt_head_dim)
        scores = DivToScalar(scores, self.sqrt_head_dim)
        if mask is not None:
            GLogger.DebugPrintf("Calling Add for scores %s and mask %s -> tensor scores", scores, mask)
            scores = Add(scores, mask)
        GLogger.DebugPrintf("Calling Softmax for scores %s over dim -1 (in float32) -> tensor scores", scores)
        scores = Softmax(scores, -1)
        self._record(infContext, "scores", scores)
        GLogger.DebugValues("Attention weights of head 0, last query, over positions 0..%d: %s", scores.shape[-1] - 1, lambda: _weights_row(scores))

        GLogger.DebugStage(14, "Calculating the attention output")
        GLogger.DebugPrintf("Calling MatMul for scores %s and values %s -> tensor output", scores, values)
        output = MatMul(scores, values)  # [heads, n, head_dim]
        output = Transpose(output, 0, 1)  # [n, heads, head_dim]
        output = Reshape(output, [sequenceLength, self.n_heads * self.head_dim])
        GLogger.DebugPrintf("Transposed and reshaped output -> %s", output)
        self._record(infContext, "attention", output)
        GLogger.DebugPrintf("Calling LinearTransformation for output %s and LlamaAttention.attn_wo weights %s -> tensor output", output, self.attn_wo)
        output = LinearTransformation(output, self.attn_wo)
        self._record(infContext, "attention_wo", output)
        return output


def _weights_row(scores: Tensor) -> str:
    """Head 0's last row of softmax weights, three decimals each (the whole row: it sums to 1)."""
    return "[" + " ".join(f"{p:.3f}" for p in scores.numpy()[0, -1]) + "]"
