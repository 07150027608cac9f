"""The one small interface every tokenizer implements.

Three file formats reach this project: Meta's SentencePiece model (Llama 2), llama2.c's
`tokenizer.bin` (the same kind of vocab, exported for run.c) and Meta's tiktoken ranks file
(Llama 3). Generation code only ever talks to `Tokenizer`, so it never needs to know which one
it holds.

The streaming decoder concatenates `piece_bytes` of each generated id and holds back incomplete
UTF-8, so `piece_bytes` must give the exact bytes a token adds to the output, nothing more.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path
from typing import ClassVar

from ..common.errors import LlamaError, TokenizerError

SENTENCEPIECE_SPACE = "\u2581"  # "▁": how SentencePiece writes a space inside a piece


def byte_piece_text(value: int) -> str:
    """The SentencePiece spelling of a byte-fallback piece: 0xF0 -> "<0xF0>"."""
    return f"<0x{value:02X}>"


def parse_byte_piece(piece: str) -> int | None:
    """"<0xF0>" -> 0xF0; anything that is not exactly that shape -> None."""
    if len(piece) != 6 or not (piece.startswith("<0x") and piece.endswith(">")):
        return None
    digits = piece[3:5]
    if any(c not in "0123456789abcdefABCDEF" for c in digits):
        return None
    return int(digits, 16)


class InvalidTextError(LlamaError, ValueError):
    """Text to encode that is not valid Unicode (so it has no UTF-8 bytes to tokenize)."""


def check_text(text: str) -> None:
    """Raise InvalidTextError if `text` cannot be written as UTF-8.

    A Python str holds any code point, including lone surrogates (U+D800..U+DFFF), which is what
    bytes that were not valid UTF-8 become when a program reads them with `surrogateescape`
    (as Python does for command-line arguments). Such text has no UTF-8 form, so no tokenizer can
    encode it; saying so beats a UnicodeEncodeError from deep inside a library.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ", ".join(f"U+{ord(c):04X}" for c in text[exc.start : min(exc.end, exc.start + 4)])
        raise InvalidTextError(
            f"the text is not valid Unicode: a lone surrogate ({bad}) at character {exc.start}; "
            "text that was not valid UTF-8 reads that way"
        ) from None


def token_ids_by_text(path: str | Path, tokens: Sequence[str]) -> dict[str, int]:
    """text -> id for a vocab given by id; a text that appears twice is an error.

    A repeated text would make encoding ambiguous (llama.cpp refuses such a vocab too). Empty
    entries, which llama.cpp warns about, are left out: nothing can encode to them.
    """
    ids: dict[str, int] = {}
    for id, text in enumerate(tokens):
        if not text:
            continue
        if text in ids:
            raise TokenizerError(path, f"token {id} repeats the text {text!r} of token {ids[text]}")
        ids[text] = id
    return ids


class TokenType(IntEnum):
    """What a vocab entry is, as GGUF's `tokenizer.ggml.token_type` (llama.cpp's numbering) says."""

    NORMAL = 1  # text, produced by encoding
    UNKNOWN = 2  # <unk>
    CONTROL = 3  # BOS, EOS, chat markers: never produced from text, print nothing
    USER_DEFINED = 4  # added text tokens, matched whole in the text (e.g. "<think>")
    UNUSED = 5
    BYTE = 6  # SentencePiece byte fallback "<0xXX>"


class Tokenizer(ABC):
    """Text <-> token ids, plus the per-token facts a streaming decoder and a CLI need.

    Subclasses set the class-level `kind` and `strip_leading_space_after_bos`, and call
    `__init__` with what they read from their file.
    """

    kind: ClassVar[str]
    # SentencePiece adds a dummy space before the text; run.c and Meta's Llama 2 code drop the
    # leading space of the first piece printed after BOS so the output does not start with it.
    # (A class-level constant for the file formats whose rule is fixed; GGUF and Hugging Face
    # vocabularies say per file, so their tokenizers set it per instance.)
    strip_leading_space_after_bos: bool
    # Whether a text prompt starts with BOS. Llama 2 and 3 always do; a GGUF or Hugging Face
    # vocabulary says (SmolLM2's does not: its BOS is the chat marker <|im_start|>).
    add_bos: bool = True
    # The model's own Jinja chat template, when its files carry one (GGUF `tokenizer.chat_template`,
    # Hugging Face `chat_template`); None means the built-in Llama 2 / Llama 3 layouts apply.
    chat_template: str | None = None

    def __init__(
        self,
        path: str | Path,
        vocab_size: int,
        bos_id: int | None,
        eos_id: int | None,
        unk_id: int | None,
        stop_ids: frozenset[int],
        special_tokens: dict[str, int],
    ) -> None:
        self.path: str = str(path)
        self.vocab_size: int = vocab_size
        self.bos_id: int | None = bos_id
        self.eos_id: int | None = eos_id
        self.unk_id: int | None = unk_id
        self.stop_ids: frozenset[int] = stop_ids
        self.special_tokens: dict[str, int] = special_tokens

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.path!r}, vocab_size={self.vocab_size})"

    # ---- the interface ------------------------------------------------------------------------
    @abstractmethod
    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Token ids for `text`, with BOS in front and/or EOS at the end when asked."""

    @abstractmethod
    def decode(self, ids: list[int]) -> str:
        """The text for a whole id sequence (invalid UTF-8 is replaced, never raised)."""

    @abstractmethod
    def id_to_piece(self, id: int) -> str:
        """The vocab entry for `id` in this format's own notation (accepted by `piece_to_id`)."""

    @abstractmethod
    def piece_to_id(self, piece: str) -> int:
        """The id of a vocab entry; KeyError if `piece` is not in the vocab."""

    @abstractmethod
    def piece_bytes(self, id: int) -> bytes:
        """The exact bytes `id` adds to the output stream (b"" for control/special tokens)."""

    @abstractmethod
    def is_byte_piece(self, id: int) -> bool:
        """True if `id` stands for one raw byte rather than for text."""

    # ---- shared helpers -----------------------------------------------------------------------
    def check_id(self, id: int) -> int:
        """Return `id` if it is a valid token id, else raise IndexError saying the valid range."""
        if not isinstance(id, int) or isinstance(id, bool) or not 0 <= id < self.vocab_size:
            raise IndexError(f"token id {id!r} is out of range [0, {self.vocab_size})")
        return id

    def join_pieces(self, ids: list[int], drop_first_space: bool) -> str:
        """`decode` for vocabs whose text is `piece_bytes` joined: the first non-empty piece loses
        its leading space when `drop_first_space` (SentencePiece's dummy prefix)."""
        out = bytearray()
        first = True
        for id in ids:
            data = self.piece_bytes(id)
            if first and data:
                first = False
                if drop_first_space and data.startswith(b" "):
                    data = data[1:]
            out += data
        return out.decode("utf-8", errors="replace")

    def output_bytes(self, prev_id: int | None, id: int) -> bytes:
        """`piece_bytes(id)`, minus the leading space when `id` is the first piece after BOS.

        This is the rule both run.c and the Llama 2 reference apply when printing token by token.
        """
        data = self.piece_bytes(id)
        if (
            self.strip_leading_space_after_bos
            and prev_id is not None
            and prev_id == self.bos_id
            and data.startswith(b" ")
        ):
            return data[1:]
        return data

    def is_stop(self, id: int) -> bool:
        """True if generating `id` should end generation."""
        return id in self.stop_ids


__all__ = [
    "InvalidTextError",
    "SENTENCEPIECE_SPACE",
    "TokenType",
    "Tokenizer",
    "check_text",
    "token_ids_by_text",
    "byte_piece_text",
    "parse_byte_piece",
]
