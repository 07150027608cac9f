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
from pathlib import Path
from typing import ClassVar

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


class Tokenizer(ABC):
    """Text <-> token ids, plus the per-token facts a streaming decoder and a CLI need.

    Subclasses set the class-level `kind` and `strip_leading_space_after_bos`, and call
    `__init__` with what they read from their file.
    """

    kind: ClassVar[str]
    # SentencePiece adds a dummy space before the text; run.c and Meta's Llama 2 code drop the
    # leading space of the first piece printed after BOS so the output does not start with it.
    strip_leading_space_after_bos: ClassVar[bool]

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
    "SENTENCEPIECE_SPACE",
    "Tokenizer",
    "byte_piece_text",
    "parse_byte_piece",
]
