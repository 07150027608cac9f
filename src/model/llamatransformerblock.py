"""LlamaTransformerBlock: x + attention(norm(x)), then h + ffn(norm(h))."""

from __future__ import annotations

from ..common import GLogger
from ..ml import Add, Tensor
from .inferencecontext import InferenceContext
from .llamaattention import LlamaAttention
from .llamafeedforward import LlamaFeedForward
from .modelargs import ModelArgs
from .rmsnorm import RMSNorm
from .rope import ROPE_INTERLEAVED
from .weights import LayerWeights


class LlamaTransformerBlock:
    def __init__(self, layer_index: int, args: ModelArgs, weights: LayerWeights, rope_pairing: str = ROPE_INTERLEAVED) -> None:
        self.layer_index = layer_index
        self.attn_norm = RMSNorm(args.norm_eps, weights.attention_norm, "LlamaTransformerBlock.attn_norm")
        self.attention = LlamaAttention(layer_index, args, weights, rope_pairing)
        self.ffn_norm = RMSNorm(args.norm_eps, weights.ffn_norm, "LlamaTransformerBlock.ffn_norm")
        self.feedForward = LlamaFeedForward(layer_index, weights)

    def _record(self, infContext: InferenceContext, name: str, t: Tensor) -> None:
        if infContext.recorder is not None:
            infContext.recorder[f"layers.{self.layer_index}.{name}"] = t.numpy().copy()

    def Forward(self, infContext: InferenceContext, x: Tensor, startPos: int, freqs_cis: Tensor, mask: Tensor | None) -> Tensor:
        GLogger.DebugStage(6, "Attention pre-normalization")
        GLogger.DebugPrintf("Calling RMSNorm for x %s and LlamaTransformerBlock.attn_norm weights %s -> tensor normalizedX", x, self.attn_norm.weights)
        normalizedX = self.attn_norm.Forward(x)
        self._record(infContext, "attention_norm", normalizedX)

        GLogger.DebugStage(7, "Forward pass through the attention module")
        GLogger.DebugPrintf("Calling LlamaAttention.Forward for normalizedX %s, startPos %d -> tensor h", normalizedX, startPos)
        h = self.attention.Forward(infContext, normalizedX, startPos, freqs_cis, mask)

        GLogger.DebugStage(15, "Adding the attention output to the current tensor")
        GLogger.DebugPrintf("Calling Add for x %s and attention output h %s -> tensor h", x, h)
        h = Add(x, h)
        self._record(infContext, "h", h)

        GLogger.DebugStage(16, "FFN pre-normalization")
        GLogger.DebugPrintf("Calling RMSNorm for h %s and LlamaTransformerBlock.ffn_norm weights %s -> tensor normalizedH", h, self.ffn_norm.weights)
        normalizedH = self.ffn_norm.Forward(h)
        self._record(infContext, "ffn_norm", normalizedH)

        GLogger.DebugStage(17, "Forward pass through the FFN module")
        GLogger.DebugPrintf("Calling LlamaFeedForward.Forward for normalizedH %s -> tensor ffnOutput", normalizedH)
        ffnOutput = self.feedForward.Forward(infContext, normalizedH)
        self._record(infContext, "ffn_out", ffnOutput)

        GLogger.DebugStage(18, "Adding the FFN output to the current tensor")
        GLogger.DebugPrintf("Calling Add for h %s and ffnOutput %s -> tensor output", h, ffnOutput)
        output = Add(h, ffnOutput)
        self._record(infContext, "out", output)
        return output
