"""The model: ModelArgs, ModelWeights, LlamaTransformer and its parts, InferenceContext (KV cache)."""

from .inferencecontext import COMPUTE_MODES, InferenceContext, compute_dtype
from .llamatransformer import LlamaTransformer, tokens_tensor
from .modelargs import ModelArgs, ffn_hidden_dim
from .weights import LayerWeights, ModelWeights

__all__ = [
    "COMPUTE_MODES",
    "InferenceContext",
    "LayerWeights",
    "LlamaTransformer",
    "ModelArgs",
    "ModelWeights",
    "compute_dtype",
    "ffn_hidden_dim",
    "tokens_tensor",
]
