"""A SentencePiece-style vocab given as lists (GGUF `tokenizer.ggml.model` = "llama"), run by hand.

Llama 2 GGUFs carry the SentencePiece model as three lists by id: the pieces (spaces written
"▁"), their scores and their types (normal, control, byte "<0xXX>", ...). Encoding is the same
algorithm as llama2.c's run.c (llama2c_tokenizer.py), and shares its merge loop (pair_merge.py):

1. the dummy prefix: a space in front of the text, if the vocab asks for it (`add_space_prefix`);
   spaces become "▁";
2. one symbol per character, or the character's UTF-8 bytes as byte pieces when the character is
   not in the vocab (byte fallback), or <unk> when there are no byte pieces;
3. merge the adjacent pair whose joined piece has the highest score (leftmost on ties) until no
   adjacent pair joins into a piece of the vocab.

As in SentencePiece, merges only ever build normal or user-defined pieces: control tokens ("<s>",
"</s>"), <unk> and byte pieces never come out of text, whatever a user types.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from ..common.errors import TokenizerError
from .added_tokens import AddedTokenSplitter
from .pair_merge import PairMerge, merge_adjacent_pairs, score_priorities
from .tokenizer import SENTENCEPIECE_SPACE, InvalidTextError, Tokenizer, TokenType, check_text, token_ids_by_text, parse_byte_piece

_MERGEABLE = (TokenType.NORMAL, TokenType.USER_DEFINED)
_SILENT = (TokenType.CONTROL, TokenType.UNKNOWN, TokenType.UNUSED)


class SPMTokenizer(Tokenizer):
    """Pieces, scores and types by id, encoded with SentencePiece's BPE rules."""

    kind: ClassVar[str] = "spm"

    def __init__(
        self,
        path: str | Path,
        tokens: Sequence[str],
        scores: Sequence[float],
        token_types: Sequence[int],
        bos_id: int | None,
        eos_id: int | None,
        unk_id: int | None,
        extra_stop_ids: Sequence[int] = (),
        add_space_prefix: bool = True,
        add_bos: bool = True,
        chat_template: str | None = None,
    ) -> None:
        """The three lists must have one entry per id (the caller checks lengths and ids)."""
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.token_types: tuple[int, ...] = tuple(int(t) for t in token_types)
        self.add_space_prefix = add_space_prefix
        # The dummy prefix is a space nobody typed: drop it from the first piece printed after BOS.
        self.strip_leading_space_after_bos = add_space_prefix
        self.add_bos = add_bos
        self.chat_template = chat_template
        self._ids = token_ids_by_text(path, self.tokens)
        self._text_ids = {text: id for text, id in self._ids.items() if self.token_types[id] in _MERGEABLE}
        self._byte_ids = self._find_byte_pieces(path)
        self._priorities = score_priorities([float(s) for s in scores])
        self._added = AddedTokenSplitter(
            {text: id for text, id in self._ids.items() if self.token_types[id] == TokenType.USER_DEFINED}
        )
        self._space_id = self._text_ids.get(SENTENCEPIECE_SPACE)
        specials = {text: id for text, id in self._ids.items() if self.token_types[id] in (TokenType.CONTROL, TokenType.UNKNOWN)}
        for id in (bos_id, eos_id, unk_id):
            if id is not None:
                specials.setdefault(self.tokens[id], id)
        stops = {id for id in (eos_id, *extra_stop_ids) if id is not None}
        super().__init__(path, len(self.tokens), bos_id, eos_id, unk_id, frozenset(stops), specials)
        self._bytes = [self._compute_piece_bytes(id) for id in range(len(self.tokens))]

    def _find_byte_pieces(self, path: str | Path) -> dict[int, int]:
        """byte value -> id of its "<0xXX>" piece; a byte-typed token of another shape is an error."""
        found: dict[int, int] = {}
        for id, kind in enumerate(self.token_types):
            if kind != TokenType.BYTE:
                continue
            value = parse_byte_piece(self.tokens[id])
            if value is None:
                raise TokenizerError(path, f"token {id} is typed as a byte piece but reads {self.tokens[id]!r}, "
                                           "not <0xXX>")
            found.setdefault(value, id)
        return found

    # ---- encoding -----------------------------------------------------------------------------
    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        check_text(text)
        ids: list[int] = []
        if bos and self.bos_id is not None:
            ids.append(self.bos_id)
        # llama.cpp puts the dummy prefix before the text and again after each user-defined token.
        prefix = self.add_space_prefix
        for fragment, added_id in self._added.split(text):
            if added_id is not None:
                ids.append(added_id)
                prefix = self.add_space_prefix
                continue
            spelled = ((" " + fragment) if prefix else fragment).replace(" ", SENTENCEPIECE_SPACE)
            prefix = False
            ids.extend(merge_adjacent_pairs(self._initial_ids(spelled), self._pair_merge))
        if eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def _initial_ids(self, spelled: str) -> list[int]:
        """One id per character; a character not in the vocab as its bytes, or <unk>."""
        ids: list[int] = []
        for char in spelled:
            id = self._text_ids.get(char)
            if id is not None:
                ids.append(id)
            elif self._byte_ids:
                ids.extend(self._byte_id(value, char) for value in char.encode("utf-8"))
            elif self.unk_id is not None:
                ids.append(self.unk_id)
            else:
                raise InvalidTextError(f"the text holds U+{ord(char):04X} {char!r}, which the vocab of {self.path} "
                                       "cannot encode: it is not a piece, and there are no byte pieces nor <unk>")
        return ids

    def _byte_id(self, value: int, char: str) -> int:
        id = self._byte_ids.get(value)
        if id is not None:
            return id
        if self.unk_id is not None:
            return self.unk_id
        raise InvalidTextError(f"the text holds U+{ord(char):04X} {char!r}, which the vocab of {self.path} "
                               f"cannot encode: it has no byte piece <0x{value:02X}> and no <unk>")

    def _pair_merge(self, left: int, right: int) -> PairMerge | None:
        """(priority, id) of the joined piece if it is a normal or user-defined piece, else None."""
        if self.token_types[left] not in _MERGEABLE or self.token_types[right] not in _MERGEABLE:
            return None  # byte pieces and <unk> stand alone, as in SentencePiece
        merged = self._text_ids.get(self.tokens[left] + self.tokens[right])
        if merged is None:
            return None
        return self._priorities[merged], merged

    # ---- decoding and the per-token facts -----------------------------------------------------
    def _compute_piece_bytes(self, id: int) -> bytes:
        kind = self.token_types[id]
        if kind in _SILENT or id in (self.bos_id, self.eos_id):
            return b""
        if kind == TokenType.BYTE:
            value = parse_byte_piece(self.tokens[id])
            assert value is not None  # checked in _find_byte_pieces
            return bytes([value])
        return self.tokens[id].replace(SENTENCEPIECE_SPACE, " ").encode("utf-8")

    def decode(self, ids: list[int]) -> str:
        """The text; like SentencePiece, without the dummy-prefix space the first piece carries."""
        return self.join_pieces(ids, drop_first_space=self.add_space_prefix)

    def piece_bytes(self, id: int) -> bytes:
        return self._bytes[self.check_id(id)]

    def is_byte_piece(self, id: int) -> bool:
        return self.token_types[self.check_id(id)] == TokenType.BYTE

    def id_to_piece(self, id: int) -> str:
        return self.tokens[self.check_id(id)]

    def piece_to_id(self, piece: str) -> int:
        id = self._ids.get(piece)
        if id is None:
            raise KeyError(f"piece {piece!r} is not in the vocab of {self.path}")
        return id



__all__ = ["SPMTokenizer"]
