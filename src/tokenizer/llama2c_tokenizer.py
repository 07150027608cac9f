"""llama2.c's `tokenizer.bin`, read and run here without any library.

File layout (little-endian), as written by llama2.c's `tokenizer.py export`:

    int32 max_token_length
    then, for every token id in order:
        float32 score     (the merge priority; higher merges first)
        int32   length    (bytes in the piece, 1 .. max_token_length)
        bytes   piece     (UTF-8 text with spaces as " ", byte fallbacks spelled "<0xXX>")

The file does not store the vocab size (the model header does), so we read records until EOF and
expose the count. BOS and EOS are stored as "\\n<s>\\n" and "\\n</s>\\n"; run.c hard-codes them
as ids 1 and 2.

Encoding is run.c's algorithm: a dummy-prefix space, one piece per UTF-8 character (byte
fallback when a character is not in the vocab), then repeatedly merge the adjacent pair whose
concatenation is in the vocab with the highest score.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..common.saferepr import short_repr
from ..common.errors import TokenizerError
from ..common.files import read_regular_file
from .pair_merge import PairMerge, merge_adjacent_pairs, score_priorities
from .tokenizer import Tokenizer, check_text, parse_byte_piece

_INT32 = struct.Struct("<i")
_RECORD_HEADER = struct.Struct("<fi")  # score, length
# run.c's fixed ids: `if (bos) tokens[...] = 1`, `if (eos) tokens[...] = 2`, and 0 is <unk>.
_UNK_ID, _BOS_ID, _EOS_ID = 0, 1, 2
# Names in the file for the control tokens, and how the rest of the project calls them.
_CONTROL_NAMES: dict[bytes, str] = {b"<unk>": "<unk>", b"\n<s>\n": "<s>", b"\n</s>\n": "</s>"}
# What ids 0, 1, 2 hold in every tokenizer.bin llama2.c exports.
LLAMA2C_CONTROL_PIECES: tuple[bytes, ...] = tuple(_CONTROL_NAMES)
# A generous bound: real files use 7 (tok512) .. 27 (Llama 2). Anything far beyond is not a
# tokenizer.bin, and checking it lets the loader reject other files quickly.
MAX_PLAUSIBLE_TOKEN_LENGTH = 1024


@dataclass(frozen=True)
class Llama2cVocab:
    """What a tokenizer.bin holds: the pieces (raw bytes) and their merge scores, by id."""

    max_token_length: int
    pieces: tuple[bytes, ...]
    scores: tuple[float, ...]


def read_llama2c_vocab(path: str | Path, data: bytes, expected_size: int | None = None) -> Llama2cVocab:
    """Parse tokenizer.bin `data`; raise TokenizerError naming the first thing that is wrong."""
    if len(data) < _INT32.size:
        raise TokenizerError(path, f"too short for a llama2.c tokenizer.bin: {len(data)} bytes, "
                                   "the max_token_length header alone needs 4")
    (max_token_length,) = _INT32.unpack_from(data, 0)
    if not 1 <= max_token_length <= MAX_PLAUSIBLE_TOKEN_LENGTH:
        raise TokenizerError(path, f"max_token_length header is {max_token_length}, "
                                   f"expected 1 .. {MAX_PLAUSIBLE_TOKEN_LENGTH}")
    pieces: list[bytes] = []
    scores: list[float] = []
    offset = _INT32.size
    while offset < len(data):
        score, piece, offset = _read_record(path, data, offset, len(pieces), max_token_length)
        scores.append(score)
        pieces.append(piece)
    _check_vocab(path, pieces, expected_size)
    return Llama2cVocab(max_token_length, tuple(pieces), tuple(scores))


def _read_record(path: str | Path, data: bytes, offset: int, id: int,
                 max_token_length: int) -> tuple[float, bytes, int]:
    """One (score, length, bytes) record at `offset`; returns it and the next offset."""
    if offset + _RECORD_HEADER.size > len(data):
        raise TokenizerError(path, f"truncated: token {id} at byte {offset} needs an 8-byte "
                                   f"(score, length) header but only {len(data) - offset} bytes remain")
    score, length = _RECORD_HEADER.unpack_from(data, offset)
    if not math.isfinite(score):
        raise TokenizerError(path, f"token {id} at byte {offset} has a non-finite score {score}")
    if not 1 <= length <= max_token_length:
        raise TokenizerError(path, f"token {id} at byte {offset} has length {length}, "
                                   f"expected 1 .. max_token_length ({max_token_length})")
    start = offset + _RECORD_HEADER.size
    end = start + length
    if end > len(data):
        raise TokenizerError(path, f"truncated: token {id} at byte {offset} says {length} bytes "
                                   f"but only {len(data) - start} remain")
    return score, data[start:end], end


def _check_vocab(path: str | Path, pieces: list[bytes], expected_size: int | None) -> None:
    if expected_size is not None and len(pieces) != expected_size:
        raise TokenizerError(path, f"holds {len(pieces)} tokens but the model's vocab_size is {expected_size}")
    if len(pieces) <= _EOS_ID:
        raise TokenizerError(path, f"holds only {len(pieces)} tokens; run.c needs at least <unk>, BOS and EOS")
    seen: dict[bytes, int] = {}
    for id, piece in enumerate(pieces):
        if piece in seen:
            # run.c looks pieces up by binary search, so a duplicate would make encoding ambiguous.
            raise TokenizerError(path, f"token {id} repeats the piece {short_repr(piece)} of token {seen[piece]}")
        seen[piece] = id


class Llama2cTokenizer(Tokenizer):
    """A llama2.c `tokenizer.bin`, encoded and decoded with run.c's rules."""

    kind: ClassVar[str] = "llama2c"
    strip_leading_space_after_bos: ClassVar[bool] = True

    def __init__(self, path: str | Path, data: bytes | None = None, vocab_size: int | None = None) -> None:
        """Read `path` (or the already-read `data`); `vocab_size`, if given, must match the file."""
        if data is None:
            from . import MAX_TOKENIZER_BYTES

            # Only a regular file of a sane size, as load_tokenizer reads (not /dev/zero, nor a FIFO)
            data = read_regular_file(path, MAX_TOKENIZER_BYTES, TokenizerError, "llama2.c tokenizer file")
        self.vocab = read_llama2c_vocab(path, data, vocab_size)
        self._ids: dict[bytes, int] = {piece: id for id, piece in enumerate(self.vocab.pieces)}
        self._priorities: list[int] = score_priorities(self.vocab.scores)
        self._control_ids = self._find_control_ids()
        super().__init__(
            path=path,
            vocab_size=len(self.vocab.pieces),
            bos_id=_BOS_ID,
            eos_id=_EOS_ID,
            unk_id=_UNK_ID if self.vocab.pieces[_UNK_ID] == b"<unk>" else None,
            stop_ids=frozenset({_EOS_ID}),
            special_tokens={name: id for id, name in self._control_ids.items()},
        )
        self._byte_values: dict[int, int] = self._find_byte_pieces()
        # run.c computes a byte's id as byte + 3; looking it up gives the same ids on every
        # llama2.c export and stays right for a file whose byte pieces sit elsewhere.
        self._byte_ids: dict[int, int] = {value: id for id, value in self._byte_values.items()}

    def _find_control_ids(self) -> dict[int, str]:
        """ids 0..2 whose stored text is a control token, mapped to their usual name."""
        found: dict[int, str] = {}
        for id in (_UNK_ID, _BOS_ID, _EOS_ID):
            name = _CONTROL_NAMES.get(self.vocab.pieces[id])
            if name is not None:
                found[id] = name
        return found

    def _find_byte_pieces(self) -> dict[int, int]:
        """id -> byte value for every "<0xXX>" piece (run.c decodes those as one raw byte)."""
        found: dict[int, int] = {}
        for id, piece in enumerate(self.vocab.pieces):
            value = parse_byte_piece(piece.decode("utf-8", errors="replace"))
            if value is not None:
                found[id] = value
        return found

    # ---- encoding (run.c's `encode`) --------------------------------------------------------
    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        check_text(text)
        ids = self._merge(self._initial_ids(text))
        if bos:
            ids.insert(0, _BOS_ID)
        if eos:
            ids.append(_EOS_ID)
        return ids

    def _initial_ids(self, text: str) -> list[int]:
        """The dummy-prefix space, then one id per character, or its bytes when not in the vocab."""
        if not text:
            return []
        # SentencePiece adds a "▁" before the text; run.c does the same with the id of " ".
        ids = [self._lookup(b" ")]
        for char in text:
            encoded = char.encode("utf-8")
            id = self._ids.get(encoded)
            if id is not None:
                ids.append(id)
            else:
                ids.extend(self._byte_id(byte) for byte in encoded)
        return ids

    def _byte_id(self, value: int) -> int:
        id = self._byte_ids.get(value)
        if id is None:
            raise TokenizerError(self.path, f"the vocab has no byte-fallback piece <0x{value:02X}>, "
                                            "which encoding needs")
        return id

    def _lookup(self, piece: bytes) -> int:
        id = self._ids.get(piece)
        if id is None:
            raise TokenizerError(self.path, f"the vocab has no piece {short_repr(piece)}, which encoding needs")
        return id

    def _merge(self, ids: list[int]) -> list[int]:
        """Merge the best-scoring adjacent pair until no pair's concatenation is in the vocab.

        run.c runs this loop with BOS already at the front; we add BOS afterwards, which gives the
        same ids because no vocab piece starts with BOS's text "\\n<s>\\n".
        Ties go to the leftmost pair (run.c only replaces the best on a strictly higher score).
        run.c rescans every pair after each merge, which is quadratic in the prompt length; the
        shared loop in pair_merge.py keeps the pairs in a heap instead and gives the same ids.
        """
        return merge_adjacent_pairs(ids, self._pair_merge)

    def _pair_merge(self, left: int, right: int) -> PairMerge | None:
        """(priority, id) of the concatenated pieces, or None if that text is not in the vocab.

        The priority is the place of the piece's score in descending order (`score_priorities`),
        because the shared loop merges the lowest priority first.
        """
        merged = self._ids.get(self.vocab.pieces[left] + self.vocab.pieces[right])
        if merged is None:
            return None
        return self._priorities[merged], merged

    # ---- decoding (run.c's `decode`) --------------------------------------------------------
    def decode(self, ids: list[int]) -> str:
        out = bytearray()
        prev: int | None = None
        for id in ids:
            out += self.output_bytes(prev, self.check_id(id))
            prev = id
        return out.decode("utf-8", errors="replace")

    def piece_bytes(self, id: int) -> bytes:
        self.check_id(id)
        if id in self._control_ids:
            return b""
        value = self._byte_values.get(id)
        if value is not None:
            return bytes([value])
        return self.vocab.pieces[id]

    def is_byte_piece(self, id: int) -> bool:
        return self.check_id(id) in self._byte_values

    def id_to_piece(self, id: int) -> str:
        """The stored text, e.g. " the", "<0x0A>", "\\n<s>\\n"."""
        return self.vocab.pieces[self.check_id(id)].decode("utf-8", errors="replace")

    def piece_to_id(self, piece: str) -> int:
        """The id of a stored piece; the usual names "<s>", "</s>", "<unk>" are accepted too."""
        id = self._ids.get(piece.encode("utf-8"), self.special_tokens.get(piece))
        if id is None:
            raise KeyError(f"piece {short_repr(piece)} is not in the vocab of {self.path}")
        return id

    def score(self, id: int) -> float:
        """The merge score of `id` (higher merges first)."""
        return self.vocab.scores[self.check_id(id)]


__all__ = [
    "LLAMA2C_CONTROL_PIECES",
    "Llama2cTokenizer",
    "Llama2cVocab",
    "MAX_PLAUSIBLE_TOKEN_LENGTH",
    "read_llama2c_vocab",
]
