"""The model: ModelArgs, ModelWeights, LlamaTransformer and its parts, InferenceContext (KV cache)."""

from .inferencecontext import COMPUTE_MODES, InferenceContext, compute_dtype
from .llamatransformer import LlamaTransformer, tokens_tensor
from .modelargs import LLAMA31_ROPE_SCALING, ModelArgs, RopeScaling, ffn_hidden_dim
from .weights import LayerWeights, ModelWeights

__all__ = [
    "COMPUTE_MODES",
    "InferenceContext",
    "LayerWeights",
    "LlamaTransformer",
    "LLAMA31_ROPE_SCALING",
    "ModelArgs",
    "RopeScaling",
    "ModelWeights",
    "compute_dtype",
    "ffn_hidden_dim",
    "tokens_tensor",
]
