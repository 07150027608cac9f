"""LlamaFeedForward: the SwiGLU FFN, w2(silu(w1 x) * w3 x)."""

from __future__ import annotations

from ..common import GLogger
from ..ml import LinearTransformation, MultiplyElementwise, Silu, Tensor
from .inferencecontext import InferenceContext
from .weights import LayerWeights


class LlamaFeedForward:
    def __init__(self, layer_index: int, weights: LayerWeights) -> None:
        self.layer_index = layer_index
        self.ffn_gate = weights.w1  # [hidden, dim]
        self.ffn_down = weights.w2  # [dim, hidden]
        self.ffn_up = weights.w3  # [hidden, dim]

    def Forward(self, infContext: InferenceContext, x: Tensor) -> Tensor:
        GLogger.DebugPrintf("Calling LinearTransformation for x %s and LlamaFeedForward.ffn_gate (w1) weights %s -> tensor h", x, self.ffn_gate)
        h = LinearTransformation(x, self.ffn_gate)
        GLogger.DebugPrintf("Calling Silu for h %s -> tensor h", h)
        h = Silu(h)
        GLogger.DebugPrintf("Calling LinearTransformation for x %s and LlamaFeedForward.ffn_up (w3) weights %s -> tensor ffnUpX", x, self.ffn_up)
        ffnUpX = LinearTransformation(x, self.ffn_up)
        if infContext.recorder is not None:
            infContext.recorder[f"layers.{self.layer_index}.ffn_w1_silu"] = h.numpy().copy()
            infContext.recorder[f"layers.{self.layer_index}.ffn_w3"] = ffnUpX.numpy().copy()
        GLogger.DebugPrintf("Calling MultiplyElementwise for h %s and ffnUpX %s -> tensor h", h, ffnUpX)
        h = MultiplyElementwise(h, ffnUpX)
        if infContext.recorder is not None:
            infContext.recorder[f"layers.{self.layer_index}.ffn_hidden"] = h.numpy().copy()  # what w2 reads
        GLogger.DebugPrintf("Calling LinearTransformation for h %s and LlamaFeedForward.ffn_down (w2) weights %s -> tensor output", h, self.ffn_down)
        return LinearTransformation(h, self.ffn_down)
