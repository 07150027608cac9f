"""Inference: prompts and chat templates, the generation loop, sampling and UTF-8 buffering.

`InferenceEngine.Generate(promptTokens)` yields `GeneratedPart`s; a `Conversation` keeps a chat's
history and KV cache across turns and calls Generate with that cache; the CLI (cmd/llama_infer.py) only
consumes those parts and never touches logits or the KV cache.
"""

from .conversation import ContextFullError, Conversation, Turn, TurnPlan
from .engine import GeneratedPart, GenerationState, GenerationStats, InferenceArgs, InferenceEngine
from .prompt import (
    ChatMessage,
    ChatTemplate,
    Llama2ChatTemplate,
    Llama3ChatTemplate,
    PromptPart,
    build_dialog,
    chat_template_for,
    encode_text_prompt,
    render_parts,
    text_prompt_parts,
)
from .sampling import Sampler, SamplingArgs
from .utf8 import REPLACEMENT_CHARACTER, DecodedChunk, StreamingUTF8Decoder

__all__ = [
    "ChatMessage",
    "ChatTemplate",
    "ContextFullError",
    "Conversation",
    "DecodedChunk",
    "GeneratedPart",
    "GenerationState",
    "GenerationStats",
    "InferenceArgs",
    "InferenceEngine",
    "Llama2ChatTemplate",
    "Llama3ChatTemplate",
    "PromptPart",
    "REPLACEMENT_CHARACTER",
    "Sampler",
    "SamplingArgs",
    "StreamingUTF8Decoder",
    "Turn",
    "TurnPlan",
    "build_dialog",
    "chat_template_for",
    "encode_text_prompt",
    "render_parts",
    "text_prompt_parts",
]
