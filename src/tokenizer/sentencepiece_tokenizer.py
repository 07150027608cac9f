"""Llama 2's tokenizer: a SentencePiece model, run by the `sentencepiece` package.

The package does the encoding; this class adds the per-token facts the rest of the project needs
(exact output bytes, byte-fallback pieces, special tokens) in the shared `Tokenizer` shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import sentencepiece

from ..common.errors import TokenizerError
from ..common.files import read_regular_file
from .tokenizer import SENTENCEPIECE_SPACE, Tokenizer, check_text, parse_byte_piece

# sentencepiece reports "no such token" as -1.
_ABSENT = -1


def _optional_id(value: int) -> int | None:
    return None if value == _ABSENT else value


class SentencePieceTokenizer(Tokenizer):
    """A `.model` SentencePiece file (Meta's Llama 2 tokenizer, llama2.c's tok512.model, ...)."""

    kind: ClassVar[str] = "sentencepiece"
    strip_leading_space_after_bos: ClassVar[bool] = True

    def __init__(self, path: str | Path, model_proto: bytes | None = None) -> None:
        """Load `path`; pass `model_proto` when the bytes are already in memory (the loader)."""
        if model_proto is None:
            from . import MAX_TOKENIZER_BYTES

            model_proto = read_regular_file(path, MAX_TOKENIZER_BYTES, TokenizerError, "SentencePiece model")
        try:
            self._sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        except RuntimeError as exc:
            # sentencepiece raises RuntimeError with its parser's text for a bad protobuf.
            raise TokenizerError(path, f"not a valid SentencePiece model: {exc}") from None
        except UnicodeDecodeError as exc:
            # ... and when that text quotes a corrupt piece, turning it into a str fails instead.
            reason = bytes(exc.object).decode("utf-8", errors="replace")
            raise TokenizerError(path, f"not a valid SentencePiece model: {reason}") from None
        self._check_pieces(path)

        vocab_size = self._sp.vocab_size()
        eos_id = _optional_id(self._sp.eos_id())
        super().__init__(
            path=path,
            vocab_size=vocab_size,
            bos_id=_optional_id(self._sp.bos_id()),
            eos_id=eos_id,
            unk_id=_optional_id(self._sp.unk_id()),
            stop_ids=frozenset() if eos_id is None else frozenset({eos_id}),
            special_tokens=self._find_special_tokens(),
        )
        # Cached because a streaming decoder asks for every generated token.
        self._bytes_cache: dict[int, bytes] = {}

    def _check_pieces(self, path: str | Path) -> None:
        """Every piece must be UTF-8: sentencepiece checks only some, and a corrupt one would raise
        UnicodeDecodeError at the first encode or decode that touches it."""
        try:
            self._sp.id_to_piece(list(range(self._sp.vocab_size())))
            return
        except UnicodeDecodeError:
            pass
        for id in range(self._sp.vocab_size()):
            try:
                self._sp.id_to_piece(id)
            except UnicodeDecodeError as exc:
                raise TokenizerError(
                    path,
                    f"not a valid SentencePiece model: piece {id} is not valid UTF-8 "
                    f"({bytes(exc.object)[:40]!r}); the file is corrupt",
                ) from None

    def _find_special_tokens(self) -> dict[str, int]:
        """Control and unknown pieces ("<unk>", "<s>", "</s>"): they never become text."""
        return {
            self._sp.id_to_piece(i): i
            for i in range(self._sp.vocab_size())
            if self._sp.is_control(i) or self._sp.is_unknown(i)
        }

    # ---- Tokenizer ----------------------------------------------------------------------------
    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        check_text(text)
        ids: list[int] = list(self._sp.encode(text))
        if bos and self.bos_id is not None:
            ids.insert(0, self.bos_id)
        if eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: list[int]) -> str:
        for id in ids:
            self.check_id(id)
        return str(self._sp.decode(list(ids)))

    def id_to_piece(self, id: int) -> str:
        return str(self._sp.id_to_piece(self.check_id(id)))

    def piece_to_id(self, piece: str) -> int:
        id = int(self._sp.piece_to_id(piece))
        # sentencepiece answers the unk id for any unknown piece, so check it round-trips.
        if self._sp.id_to_piece(id) != piece:
            raise KeyError(f"piece {piece!r} is not in the vocab of {self.path}")
        return id

    def piece_bytes(self, id: int) -> bytes:
        cached = self._bytes_cache.get(id)
        if cached is None:
            cached = self._compute_piece_bytes(self.check_id(id))
            self._bytes_cache[id] = cached
        return cached

    def _compute_piece_bytes(self, id: int) -> bytes:
        if self._sp.is_control(id) or self._sp.is_unknown(id):
            return b""
        piece = self._sp.id_to_piece(id)
        if self._sp.is_byte(id):
            value = parse_byte_piece(piece)
            if value is None:  # pragma: no cover - sentencepiece guarantees the <0xXX> form
                raise TokenizerError(self.path, f"byte piece {id} has an unexpected form {piece!r}")
            return bytes([value])
        return piece.replace(SENTENCEPIECE_SPACE, " ").encode("utf-8")

    def is_byte_piece(self, id: int) -> bool:
        return bool(self._sp.is_byte(self.check_id(id)))


__all__ = ["SentencePieceTokenizer"]
