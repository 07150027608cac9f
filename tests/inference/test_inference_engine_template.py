"""InferenceEngine with a model's own chat template: it renders the dialog and stops at the
template's end-of-turn token as well as at EOS (scripted stand-in model, no weights)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from llamanuts.inference.engine import GenerationState, InferenceArgs, InferenceEngine
from llamanuts.inference.prompt import ChatMessage, JinjaChatTemplate, Llama2ChatTemplate
from llamanuts.ml import Tensor

ENDOFTEXT, IM_START, IM_END = 0, 1, 2
VOCAB = 300
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass
class FakeArgs:
    max_seq_len: int


@dataclass
class ScriptedModel:
    script: list[int]
    max_seq_len: int = 128
    calls: int = 0
    args: FakeArgs = field(init=False)

    def __post_init__(self) -> None:
        self.args = FakeArgs(self.max_seq_len)

    def NewInferenceContext(self, sequence_length: int) -> object:
        return object()

    def Forward(self, infContext: object, inputTokens: Tensor, startPos: int, lastRowOnly: bool = False) -> Tensor:
        logits = np.zeros((len(inputTokens.data.tolist()), VOCAB), dtype=np.float32)
        logits[-1, self.script[self.calls]] = 10.0
        self.calls += 1
        return Tensor.from_numpy(logits)


class ChatMLTokenizer:
    """SmolLM2-like: EOS is <|endoftext|> here, so only the template makes <|im_end|> a stop."""

    kind = "bpe"
    bos_id, eos_id, unk_id = IM_START, ENDOFTEXT, None
    stop_ids = frozenset({ENDOFTEXT})
    special_tokens = {"<|endoftext|>": ENDOFTEXT, "<|im_start|>": IM_START, "<|im_end|>": IM_END}
    strip_leading_space_after_bos = False
    add_bos = False
    chat_template = CHATML

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def id_to_piece(self, id: int) -> str:
        return {v: k for k, v in self.special_tokens.items()}.get(id, chr(id))

    def piece_bytes(self, id: int) -> bytes:
        return b"" if id in (ENDOFTEXT, IM_START, IM_END) else chr(id).encode()


def test_the_models_own_template_renders_the_chat() -> None:
    engine = InferenceEngine(ScriptedModel([IM_END]), ChatMLTokenizer(), InferenceArgs())
    assert isinstance(engine.chat_template, JinjaChatTemplate)
    ids = engine.TokenizeChat([ChatMessage("user", "hi")])
    assert ids == [IM_START, *map(ord, "user\nhi"), IM_END, ord("\n"), IM_START, *map(ord, "assistant\n")]


def test_generation_stops_at_the_templates_end_of_turn() -> None:
    engine = InferenceEngine(ScriptedModel([ord("o"), ord("k"), IM_END, ord("x")]), ChatMLTokenizer(), InferenceArgs())
    assert IM_END in engine.stop_ids and ENDOFTEXT in engine.stop_ids
    parts = list(engine.Generate(engine.TokenizeChat([ChatMessage("user", "hi")])))
    assert [p.token_id for p in parts] == [ord("o"), ord("k"), IM_END]
    assert parts[-1].state is GenerationState.FINISHED_EOS
    assert "".join(p.text for p in parts) == "ok"


def test_a_template_given_to_the_engine_wins() -> None:
    engine = InferenceEngine(ScriptedModel([IM_END]), ChatMLTokenizer(), InferenceArgs(), chat_template=Llama2ChatTemplate())
    assert isinstance(engine.chat_template, Llama2ChatTemplate)
    assert IM_END not in engine.stop_ids  # Llama 2's layout ends turns with EOS only
