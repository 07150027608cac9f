"""Llama 3's tokenizer: a tiktoken BPE ranks file plus Meta's split pattern and special tokens.

We read the ranks file ourselves (so a bad file gets an error naming its line) and hand the ranks
to `tiktoken.Encoding`, which provides the BPE merge engine.

Ranks file format: one line per token, "<base64 of the token's bytes> <rank>", ranks 0, 1, 2, ...
in order; the rank is also the token id.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import ClassVar

import tiktoken

from ..common.errors import TokenizerError
from ..common.files import read_regular_file
from .tokenizer import Tokenizer, byte_piece_text, check_text

# Meta's Llama 3 pre-tokenizer: contractions, words (with one leading non-letter), numbers of up
# to 3 digits, punctuation runs, newlines, and whitespace (leaving one space to lead the next word).
LLAMA3_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
NUM_SPECIAL_TOKENS = 256
BEGIN_OF_TEXT = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
START_HEADER_ID = "<|start_header_id|>"
END_HEADER_ID = "<|end_header_id|>"
EOT_ID = "<|eot_id|>"

# One ranks line: base64 alphabet (with padding), one space, a decimal rank.
_LINE = re.compile(rb"([A-Za-z0-9+/]+={0,2}) (\d+)")


def llama3_special_token_names() -> list[str]:
    """The 256 special tokens in id order, starting at id = number of ranks (128000 for Llama 3)."""
    names = [
        BEGIN_OF_TEXT,
        END_OF_TEXT,
        "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>",
        "<|reserved_special_token_2|>",
        "<|reserved_special_token_3|>",
        START_HEADER_ID,
        END_HEADER_ID,
        "<|reserved_special_token_4|>",
        EOT_ID,
    ]
    # The rest are reserved, numbered on from 5.
    next_reserved = 5
    while len(names) < NUM_SPECIAL_TOKENS:
        names.append(f"<|reserved_special_token_{next_reserved}|>")
        next_reserved += 1
    return names


def read_tiktoken_ranks(path: str | Path, data: bytes) -> dict[bytes, int]:
    """Parse a ranks file; raise TokenizerError naming the line of the first problem."""
    ranks: dict[bytes, int] = {}
    for line_number, line in enumerate(data.split(b"\n"), start=1):
        line = line.rstrip(b"\r")
        if not line:
            continue  # blank lines (the final newline) carry nothing
        token, rank = _parse_line(path, line, line_number)
        if rank != len(ranks):
            raise TokenizerError(path, f"line {line_number}: rank {rank} breaks the sequence; "
                                       f"expected {len(ranks)} (ranks must run 0, 1, 2, ... in order)")
        if token in ranks:
            raise TokenizerError(path, f"line {line_number}: token {token!r} already has rank {ranks[token]}")
        ranks[token] = rank
    if not ranks:
        raise TokenizerError(path, "the tiktoken ranks file holds no tokens")
    _check_all_bytes_ranked(path, ranks)
    return ranks


def _check_all_bytes_ranked(path: str | Path, ranks: dict[bytes, int]) -> None:
    """Byte-level BPE starts from single bytes, so any text is encodable only if all 256 are ranked.

    Without this a missing byte would surface as a panic inside tiktoken at encode time.
    """
    missing = [value for value in range(256) if bytes([value]) not in ranks]
    if missing:
        shown = ", ".join(f"0x{value:02X}" for value in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise TokenizerError(path, f"no rank for the single byte(s) {shown}{more}; "
                                   "byte-level BPE needs all 256")


def _parse_line(path: str | Path, line: bytes, line_number: int) -> tuple[bytes, int]:
    match = _LINE.fullmatch(line)
    if match is None:
        shown = line[:40].decode("utf-8", errors="replace")
        raise TokenizerError(path, f"line {line_number}: expected '<base64 token> <rank>', got {shown!r}")
    try:
        token = base64.b64decode(match.group(1), validate=True)
    except binascii.Error as exc:
        raise TokenizerError(path, f"line {line_number}: bad base64 token: {exc}") from exc
    if not token:
        raise TokenizerError(path, f"line {line_number}: the token is empty")
    return token, int(match.group(2))


def _readable(data: bytes) -> str:
    """Token bytes as text, with each byte that is not part of valid UTF-8 shown as "<0xXX>"."""
    parts: list[str] = []
    rest = data
    while rest:
        try:
            parts.append(rest.decode("utf-8"))
            break
        except UnicodeDecodeError as exc:
            parts.append(rest[: exc.start].decode("utf-8"))
            parts.extend(byte_piece_text(b) for b in rest[exc.start : exc.end])
            rest = rest[exc.end :]
    return "".join(parts)


class TiktokenTokenizer(Tokenizer):
    """Meta's Llama 3 `tokenizer.model` (tiktoken ranks) with its 256 special tokens."""

    kind: ClassVar[str] = "tiktoken"
    # There is no dummy prefix, so there is no extra space to drop.
    strip_leading_space_after_bos: ClassVar[bool] = False

    def __init__(self, path: str | Path, data: bytes | None = None) -> None:
        if data is None:
            from . import MAX_TOKENIZER_BYTES

            # Only a regular file of a sane size, as load_tokenizer reads (not /dev/zero, nor a FIFO)
            data = read_regular_file(path, MAX_TOKENIZER_BYTES, TokenizerError, "tiktoken ranks file")
        ranks = read_tiktoken_ranks(path, data)
        specials = {name: len(ranks) + i for i, name in enumerate(llama3_special_token_names())}
        self._encoding = tiktoken.Encoding(
            name=Path(path).name,
            pat_str=LLAMA3_SPLIT_PATTERN,
            mergeable_ranks=ranks,
            special_tokens=specials,
        )
        self._token_bytes: list[bytes] = [b""] * len(ranks)
        for token, rank in ranks.items():
            self._token_bytes[rank] = token
        self._special_names: dict[int, str] = {id: name for name, id in specials.items()}
        super().__init__(
            path=path,
            vocab_size=len(ranks) + NUM_SPECIAL_TOKENS,
            bos_id=specials[BEGIN_OF_TEXT],
            eos_id=specials[END_OF_TEXT],
            unk_id=None,
            # Base models end with <|end_of_text|>, chat models end a turn with <|eot_id|>.
            stop_ids=frozenset({specials[END_OF_TEXT], specials[EOT_ID]}),
            special_tokens=specials,
        )

    # ---- Tokenizer ----------------------------------------------------------------------------
    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Plain text: a special token's name typed by a user is encoded as ordinary text."""
        check_text(text)
        ids = self._encoding.encode(text, allowed_special=set(), disallowed_special=())
        return self._wrap(ids, bos, eos)

    def encode_with_specials(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Like `encode`, but "<|eot_id|>" and the other special names become their ids.

        For chat templates, which build their text from trusted special-token names; never pass
        user input here.
        """
        check_text(text)
        ids = self._encoding.encode(text, allowed_special="all", disallowed_special=())
        return self._wrap(ids, bos, eos)

    def _wrap(self, ids: list[int], bos: bool, eos: bool) -> list[int]:
        assert self.bos_id is not None and self.eos_id is not None
        return ([self.bos_id] if bos else []) + list(ids) + ([self.eos_id] if eos else [])

    def decode(self, ids: list[int]) -> str:
        """Text for `ids`; special tokens appear by name, as in Meta's reference."""
        for id in ids:
            self.check_id(id)
        return self._encoding.decode(list(ids), errors="replace")

    def id_to_piece(self, id: int) -> str:
        """The token's text; a special token's name; bytes that are not UTF-8 as "<0xXX>"."""
        name = self._special_names.get(self.check_id(id))
        if name is not None:
            return name
        return _readable(self._token_bytes[id])

    def piece_to_id(self, piece: str) -> int:
        id = self.special_tokens.get(piece)
        if id is not None:
            return id
        # Inverse of id_to_piece: "<0xXX>" stands for a byte, the rest is UTF-8 text.
        raw = _unreadable(piece)
        try:
            return self._encoding.encode_single_token(raw)
        except KeyError:
            raise KeyError(f"piece {piece!r} is not in the vocab of {self.path}") from None

    def piece_bytes(self, id: int) -> bytes:
        if self.check_id(id) in self._special_names:
            return b""
        return self._token_bytes[id]

    def is_byte_piece(self, id: int) -> bool:
        """True for the single-byte tokens that are not text on their own (bytes 0x80 .. 0xFF)."""
        data = self.piece_bytes(id)
        return len(data) == 1 and data[0] >= 0x80


_BYTE_PIECE = re.compile(r"<0x([0-9A-F]{2})>")


def _unreadable(piece: str) -> bytes:
    """Inverse of `_readable`: "<0xF0>" -> b"\\xf0", everything else as UTF-8."""
    out = bytearray()
    position = 0
    for match in _BYTE_PIECE.finditer(piece):
        out += piece[position : match.start()].encode("utf-8")
        out.append(int(match.group(1), 16))
        position = match.end()
    out += piece[position:].encode("utf-8")
    return bytes(out)


__all__ = [
    "BEGIN_OF_TEXT",
    "END_HEADER_ID",
    "END_OF_TEXT",
    "EOT_ID",
    "LLAMA3_SPLIT_PATTERN",
    "NUM_SPECIAL_TOKENS",
    "START_HEADER_ID",
    "TiktokenTokenizer",
    "llama3_special_token_names",
    "read_tiktoken_ranks",
]
