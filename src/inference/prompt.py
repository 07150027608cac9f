"""Prompts: plain text completion and the chat templates, turned into token ids.

Text completion is BOS followed by the prompt's tokens; an empty prompt is BOS alone, so the model
starts from nothing (how llama2.c's stories models are usually run).

Chat models were fine-tuned on one exact layout of the dialog, and they only behave when they see
that layout again, byte for byte. A template renders a dialog to `PromptPart`s: plain text, which
the tokenizer encodes, and special tokens, which are inserted by id (a user typing "</s>" must not
produce the end-of-sequence token, so specials never go through the text encoder).

  Llama 2 (Meta's `chat_completion`), for each finished (user, assistant) pair and the last user turn:
      <s>[INST] {user} [/INST] {answer} </s><s>[INST] {user} [/INST]
  a system prompt is folded into the first user message as "<<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user}".

  Llama 3 (Meta's `ChatFormat`):
      <|begin_of_text|> then per message
      <|start_header_id|>{role}<|end_header_id|>\\n\\n{content}<|eot_id|>
      and finally <|start_header_id|>assistant<|end_header_id|>\\n\\n for the model to fill in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, Sequence

from ..common.errors import LlamaError

ROLE_SYSTEM = "system"
ROLE_USER = "user"
ROLE_ASSISTANT = "assistant"

# The names used for BOS/EOS whatever the tokenizer spells them as ("<s>", "\n<s>\n" in llama2.c).
BOS = "<s>"
EOS = "</s>"

# Llama 2 chat markers, as Meta's llama/generation.py defines them.
B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"

# Llama 3 special tokens.
BEGIN_OF_TEXT = "<|begin_of_text|>"
START_HEADER_ID = "<|start_header_id|>"
END_HEADER_ID = "<|end_header_id|>"
EOT_ID = "<|eot_id|>"


class PromptTokenizer(Protocol):
    """What prompt building needs from a tokenizer (src/tokenizer's `Tokenizer` has it all)."""

    kind: str
    bos_id: int | None
    eos_id: int | None
    special_tokens: dict[str, int]

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]: ...


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class PromptPart:
    """A run of plain text, or one special token named by `text` when `special` is True."""

    text: str
    special: bool = False


def special_id(tokenizer: PromptTokenizer, name: str) -> int:
    """The id of a special token; BOS and EOS come from the tokenizer's own ids."""
    if name == BOS and tokenizer.bos_id is not None:
        return tokenizer.bos_id
    if name == EOS and tokenizer.eos_id is not None:
        return tokenizer.eos_id
    try:
        return tokenizer.special_tokens[name]
    except KeyError:
        raise LlamaError(f"the tokenizer has no special token {name!r}: this prompt template needs another tokenizer") from None


def encode_parts(tokenizer: PromptTokenizer, parts: Sequence[PromptPart]) -> list[int]:
    """Each text part is encoded on its own (as Meta does), each special part becomes its id."""
    ids: list[int] = []
    for part in parts:
        if part.special:
            ids.append(special_id(tokenizer, part.text))
        elif part.text:
            ids.extend(tokenizer.encode(part.text, bos=False, eos=False))
    return ids


def render_parts(parts: Sequence[PromptPart]) -> str:
    """The prompt as one string, specials written by name: what the model "sees", for display and tests."""
    return "".join(part.text for part in parts)


# ---- text completion -----------------------------------------------------------------------------
def text_prompt_parts(prompt: str, tokenizer_kind: str = "sentencepiece") -> list[PromptPart]:
    bos = BEGIN_OF_TEXT if tokenizer_kind == "tiktoken" else BOS
    parts = [PromptPart(bos, special=True)]
    if prompt:
        parts.append(PromptPart(prompt))
    return parts


def encode_text_prompt(tokenizer: PromptTokenizer, prompt: str) -> list[int]:
    """BOS + the prompt's tokens; "" gives [BOS]."""
    if tokenizer.bos_id is None:
        raise LlamaError("the tokenizer has no BOS token, so no prompt can be started")
    return [tokenizer.bos_id] + (tokenizer.encode(prompt, bos=False, eos=False) if prompt else [])


# ---- chat templates ------------------------------------------------------------------------------
def check_dialog(dialog: Sequence[ChatMessage]) -> None:
    """A dialog is an optional system message, then user/assistant turns ending with a user turn."""
    if not dialog:
        raise LlamaError("a chat needs at least one user message")
    turns = dialog[1:] if dialog[0].role == ROLE_SYSTEM else dialog
    if not turns:
        raise LlamaError("a chat needs a user message after the system prompt")
    for index, message in enumerate(turns):
        expected = ROLE_USER if index % 2 == 0 else ROLE_ASSISTANT
        if message.role != expected:
            raise LlamaError(
                f"chat message {index + 1} has role {message.role!r}, expected {expected!r}: "
                "after an optional system prompt, roles must alternate user, assistant, user, ..."
            )
    if turns[-1].role != ROLE_USER:
        raise LlamaError("the last chat message must come from the user")


class ChatTemplate(ABC):
    """Renders a dialog to the exact prompt layout a chat model was fine-tuned on."""

    name: str

    @abstractmethod
    def Render(self, dialog: Sequence[ChatMessage]) -> list[PromptPart]:
        """The prompt parts for `dialog` (checked with `check_dialog`)."""

    def Encode(self, tokenizer: PromptTokenizer, dialog: Sequence[ChatMessage]) -> list[int]:
        return encode_parts(tokenizer, self.Render(dialog))


class Llama2ChatTemplate(ChatTemplate):
    name = "llama2"

    def Render(self, dialog: Sequence[ChatMessage]) -> list[PromptPart]:
        check_dialog(dialog)
        messages = list(dialog)
        if messages[0].role == ROLE_SYSTEM:
            # Llama 2 has no system role: the system text rides in front of the first user message.
            first = messages[1]
            messages = [ChatMessage(first.role, B_SYS + messages[0].content + E_SYS + first.content)] + messages[2:]
        parts: list[PromptPart] = []
        for user, answer in zip(messages[0:-1:2], messages[1::2]):
            parts += [
                PromptPart(BOS, special=True),
                PromptPart(f"{B_INST} {user.content.strip()} {E_INST} {answer.content.strip()} "),
                PromptPart(EOS, special=True),
            ]
        parts += [PromptPart(BOS, special=True), PromptPart(f"{B_INST} {messages[-1].content.strip()} {E_INST}")]
        return parts


class Llama3ChatTemplate(ChatTemplate):
    name = "llama3"

    @staticmethod
    def header(role: str) -> list[PromptPart]:
        return [PromptPart(START_HEADER_ID, special=True), PromptPart(role), PromptPart(END_HEADER_ID, special=True), PromptPart("\n\n")]

    def Render(self, dialog: Sequence[ChatMessage]) -> list[PromptPart]:
        check_dialog(dialog)
        parts = [PromptPart(BEGIN_OF_TEXT, special=True)]
        for message in dialog:
            parts += self.header(message.role)
            parts += [PromptPart(message.content.strip()), PromptPart(EOT_ID, special=True)]
        return parts + self.header(ROLE_ASSISTANT)


def chat_template_for(tokenizer_kind: str) -> ChatTemplate:
    """Llama 3's header template for tiktoken tokenizers, Llama 2's [INST] template otherwise."""
    return Llama3ChatTemplate() if tokenizer_kind == "tiktoken" else Llama2ChatTemplate()


def build_dialog(user: str, system: str | None = None, history: Sequence[tuple[str, str]] = ()) -> list[ChatMessage]:
    """A dialog from an optional system prompt, earlier (user, answer) pairs and the new user text."""
    dialog: list[ChatMessage] = []
    if system:
        dialog.append(ChatMessage(ROLE_SYSTEM, system))
    for question, answer in history:
        dialog += [ChatMessage(ROLE_USER, question), ChatMessage(ROLE_ASSISTANT, answer)]
    dialog.append(ChatMessage(ROLE_USER, user))
    return dialog


__all__ = [
    "BOS",
    "EOS",
    "ChatMessage",
    "ChatTemplate",
    "Llama2ChatTemplate",
    "Llama3ChatTemplate",
    "PromptPart",
    "PromptTokenizer",
    "build_dialog",
    "chat_template_for",
    "check_dialog",
    "encode_parts",
    "encode_text_prompt",
    "render_parts",
    "special_id",
    "text_prompt_parts",
]
