"""Byte-level BPE, written out: GPT-2's byte alphabet, a pre-tokenizer regex, merges by rank.

This is the tokenizer of GGUF files whose `tokenizer.ggml.model` is "gpt2" (SmolLM2, Llama 3,
Qwen 2 and many more). Encoding a text takes three steps:

1. Pre-tokenize: regular expressions cut the text into words ("pre-tokens"); merges never cross
   a word boundary. Which expressions a vocab was trained with is named by the GGUF key
   `tokenizer.ggml.pre`; `PRE_TOKENIZERS` holds the ones llama.cpp defines under those names.
2. Write each word's UTF-8 bytes as characters of GPT-2's byte alphabet (`bytes_to_unicode`): each
   of the 256 byte values stands for one printable character, so that the vocab and the merges can
   be stored as text. A space is "Ġ" (U+0120), a newline "Ċ" (U+010A).
3. Start from one symbol per byte and merge the adjacent pair with the lowest rank (its line in
   the merges list) until no adjacent pair is in the list (pair_merge.py does this in O(n log n)).

Control tokens (BOS, EOS, chat markers) never come out of step 3: merges that would build one are
dropped when the vocab is read, so a user typing "<|im_end|>" gets ordinary tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import regex

from ..common.errors import TokenizerError
from .added_tokens import AddedTokenSplitter
from .pair_merge import PairMerge, merge_adjacent_pairs
from .tokenizer import InvalidTextError, Tokenizer, TokenType, check_text, token_ids_by_text

# GPT-2's pre-tokenizer: contractions, letters with an optional leading space, numbers likewise,
# other symbols likewise, then whitespace (a run before a word leaves its last space to the word).
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# Llama 3's: case-insensitive contractions, a letter run with one leading non-letter, numbers of
# up to three digits, symbols with trailing newlines, newline runs, whitespace.
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen 2's: Llama 3's with every digit on its own.
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SINGLE_DIGITS = r"\p{N}"


@dataclass(frozen=True)
class PreTokenizer:
    """A sequence of regexes; each one cuts every piece so far into its matches and the gaps
    between them (llama.cpp's `unicode_regex_split`, Hugging Face's `Split(..., "isolated")`).

    `ignore_merges`: a word that is itself a vocab entry is that token, without merging (Llama 3's
    rule, which is also what tiktoken does).
    """

    name: str
    patterns: tuple[str, ...]
    ignore_merges: bool = False

    def split(self, text: str) -> list[str]:
        pieces = [text]
        for compiled in _compiled(self.patterns):
            pieces = [part for piece in pieces for part in _isolate(compiled, piece)]
        return pieces


@lru_cache(maxsize=None)
def _compiled(patterns: tuple[str, ...]) -> tuple[regex.Pattern[str], ...]:
    return tuple(regex.compile(p) for p in patterns)


def _isolate(compiled: regex.Pattern[str], text: str) -> list[str]:
    parts: list[str] = []
    position = 0
    for match in compiled.finditer(text):
        start, end = match.span()
        if start > position:
            parts.append(text[position:start])
        if end > start:
            parts.append(text[start:end])
        position = end
    if position < len(text):
        parts.append(text[position:])
    return parts


def _pre_tokenizers() -> dict[str, PreTokenizer]:
    """The `tokenizer.ggml.pre` names we know, with llama.cpp's regexes for them (llama-vocab.cpp)."""
    gpt2 = (GPT2_PATTERN,)
    digits_then_gpt2 = (SINGLE_DIGITS, GPT2_PATTERN)
    # llama.cpp's fallback for files that name no pre-tokenizer: punctuation runs on their own,
    # then GPT-2's words, then numbers, cut into groups of three digits.
    default = (r"[\p{P}\$\+<=>\^~\|]+", GPT2_PATTERN, r"\p{N}+", r"[0-9][0-9][0-9]")
    table: dict[str, PreTokenizer] = {"default": PreTokenizer("default", default)}
    for name in ("gpt-2", "gpt2"):
        table[name] = PreTokenizer(name, gpt2)
    for name in ("smollm", "starcoder", "refact", "codeshell"):
        table[name] = PreTokenizer(name, digits_then_gpt2)
    for name in ("llama3", "llama-v3", "llama-bpe"):
        table[name] = PreTokenizer(name, (LLAMA3_PATTERN,), ignore_merges=True)
    for name in ("qwen2", "deepseek-r1-qwen"):
        table[name] = PreTokenizer(name, (QWEN2_PATTERN,))
    return table


PRE_TOKENIZERS: dict[str, PreTokenizer] = _pre_tokenizers()


def pre_tokenizer_named(path: str | Path, name: str) -> PreTokenizer:
    found = PRE_TOKENIZERS.get(name)
    if found is None:
        raise TokenizerError(path, f"tokenizer.ggml.pre is {name!r}, a pre-tokenizer we do not know; "
                                   f"supported: {', '.join(sorted(PRE_TOKENIZERS))}")
    return found


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte alphabet: byte value -> the one character that stands for it.

    The printable Latin-1 bytes ("!".."~", "¡".."¬", "®".."ÿ") stand for themselves; the other 68
    (controls, space, DEL, the non-breaking space, the soft hyphen) get the characters from U+0100
    on, in byte order. So every byte string is a string of visible characters.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {value: chr(value) for value in printable}
    substitute = 0
    for value in range(256):
        if value not in table:
            table[value] = chr(256 + substitute)
            substitute += 1
    return dict(sorted(table.items()))


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {char: value for value, char in bytes_to_unicode().items()}


# Bytes read as Latin-1 are the code points 0..255; this maps those to GPT-2's alphabet in one
# str.translate call.
_LATIN1_TO_ALPHABET = {value: char for value, char in bytes_to_unicode().items()}

# Words up to this many bytes have their tokens cached (most words of a text repeat); the cache
# is emptied when it reaches _CACHE_ENTRIES, so its memory stays bounded.
_CACHE_WORD_BYTES = 64
_CACHE_ENTRIES = 50_000


class BPETokenizer(Tokenizer):
    """A byte-level BPE vocab (tokens in GPT-2's alphabet, ranked merges, a named pre-tokenizer)."""

    kind: ClassVar[str] = "bpe"

    def __init__(
        self,
        path: str | Path,
        tokens: Sequence[str],
        token_types: Sequence[int],
        merges: Sequence[str],
        pre_tokenizer: PreTokenizer,
        bos_id: int | None,
        eos_id: int | None,
        unk_id: int | None = None,
        extra_stop_ids: Sequence[int] = (),
        add_bos: bool = False,
        chat_template: str | None = None,
    ) -> None:
        """`tokens` and `token_types` by id (same length, checked by the caller); `merges` as
        "left right" strings, best first. Raises TokenizerError for a vocab that cannot work."""
        self.tokens: tuple[str, ...] = tuple(tokens)
        self.token_types: tuple[int, ...] = tuple(int(t) for t in token_types)
        self.pre_tokenizer = pre_tokenizer
        self.strip_leading_space_after_bos = False  # no dummy prefix in byte-level BPE
        self.add_bos = add_bos
        self.chat_template = chat_template
        self._ids = token_ids_by_text(path, self.tokens)
        self._text_ids = {text: id for text, id in self._ids.items() if self.token_types[id] == TokenType.NORMAL}
        self._byte_ids = self._find_byte_ids(path)
        self._merges = self._read_merges(path, merges)
        self._vocab_count = len(self.tokens)
        self._bytes = [self._compute_piece_bytes(id) for id in range(len(self.tokens))]
        self._added = AddedTokenSplitter(
            {text: id for text, id in self._ids.items() if self.token_types[id] == TokenType.USER_DEFINED}
        )
        self._cache: dict[str, tuple[int, ...]] = {}
        specials = {
            text: id
            for text, id in self._ids.items()
            if self.token_types[id] in (TokenType.CONTROL, TokenType.UNKNOWN)
        }
        for id in (bos_id, eos_id, unk_id):
            if id is not None:
                specials.setdefault(self.tokens[id], id)
        stops = {id for id in (eos_id, *extra_stop_ids) if id is not None}
        super().__init__(path, len(self.tokens), bos_id, eos_id, unk_id, frozenset(stops), specials)

    # ---- reading the vocab --------------------------------------------------------------------
    def _find_byte_ids(self, path: str | Path) -> list[int | None]:
        """The id of each byte's one-character token (None if missing): every word starts there.

        Real vocabularies can lack a few: SmolLM2's has no token for bytes that never occur in
        UTF-8 (0xC0, 0xC1, 0xF5..0xFF), for the lead bytes of the unassigned planes 4..11 (0xF1,
        0xF2), nor for six ASCII control characters. Text holding one cannot be encoded, which
        `encode_word` reports (llama.cpp and Hugging Face silently drop such bytes).
        """
        ids = [self._text_ids.get(char) for char in bytes_to_unicode().values()]
        if all(id is None for id in ids):
            raise TokenizerError(path, "the vocab has none of the 256 one-byte tokens of GPT-2's alphabet; "
                                       "is it byte-level BPE?")
        return ids

    def _read_merges(self, path: str | Path, merges: Sequence[str]) -> dict[int, PairMerge]:
        """(left id * vocab size + right id) -> (rank, merged id), for the merges that build text.

        A merge is "left right": split at the first space after the first character (a vocab in
        GPT-2's alphabet has no spaces, but that is llama.cpp's rule). Its parts and their join
        must be vocab entries. A merge that would build a control or user-defined token is
        dropped, so those never come from text; a repeated pair keeps its first (best) rank.
        """
        table: dict[int, PairMerge] = {}
        count = len(self.tokens)
        for rank, merge in enumerate(merges):
            split = merge.find(" ", 1)
            if split < 0:
                raise TokenizerError(path, f"merge {rank} ({merge!r}) is not two tokens separated by a space")
            left, right = merge[:split], merge[split + 1 :]
            ids = [self._ids.get(text) for text in (left, right, left + right)]
            for text, id in zip((left, right, left + right), ids, strict=True):
                if id is None:
                    raise TokenizerError(path, f"merge {rank} ({merge!r}) needs the token {text!r}, "
                                               "which is not in the vocab")
            left_id, right_id, merged_id = ids
            assert left_id is not None and right_id is not None and merged_id is not None
            if self.token_types[merged_id] != TokenType.NORMAL:
                continue
            table.setdefault(left_id * count + right_id, (rank, merged_id))
        return table

    # ---- encoding -----------------------------------------------------------------------------
    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        check_text(text)
        ids: list[int] = []
        if bos and self.bos_id is not None:
            ids.append(self.bos_id)
        for fragment, added_id in self._added.split(text):
            if added_id is not None:
                ids.append(added_id)
                continue
            for word in self.pre_tokenizer.split(fragment):
                ids.extend(self.encode_word(word))
        if eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def encode_word(self, word: str) -> tuple[int, ...]:
        """The tokens of one pre-token: its bytes in GPT-2's alphabet, merged by rank."""
        spelled = word.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_ALPHABET)
        cached = self._cache.get(spelled)
        if cached is not None:
            return cached
        whole = self._text_ids.get(spelled) if self.pre_tokenizer.ignore_merges else None
        if whole is not None:
            ids: tuple[int, ...] = (whole,)
        else:
            start = [self._byte_id(value, word) for value in word.encode("utf-8")]
            ids = tuple(merge_adjacent_pairs(start, self._pair_merge))
        if len(spelled) <= _CACHE_WORD_BYTES:
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.clear()
            self._cache[spelled] = ids
        return ids

    def _byte_id(self, value: int, word: str) -> int:
        id = self._byte_ids[value]
        if id is None:
            char = next(c for c in word if value in c.encode("utf-8"))
            raise InvalidTextError(f"the text holds U+{ord(char):04X} {char!r}, which the vocab of {self.path} "
                                   f"cannot encode: it has no token for the byte 0x{value:02X}")
        return id

    def _pair_merge(self, left: int, right: int) -> PairMerge | None:
        return self._merges.get(left * self._vocab_count + right)

    # ---- decoding and the per-token facts -----------------------------------------------------
    def _compute_piece_bytes(self, id: int) -> bytes:
        token, kind = self.tokens[id], self.token_types[id]
        if kind in (TokenType.CONTROL, TokenType.UNKNOWN, TokenType.UNUSED):
            return b""
        if kind == TokenType.USER_DEFINED:
            return token.encode("utf-8")  # added tokens are stored as the text itself
        table = unicode_to_bytes()
        if all(char in table for char in token):
            return bytes(table[char] for char in token)
        return token.encode("utf-8")  # not in GPT-2's alphabet: no merge builds it; print as stored

    def decode(self, ids: list[int]) -> str:
        return b"".join(self.piece_bytes(id) for id in ids).decode("utf-8", errors="replace")

    def piece_bytes(self, id: int) -> bytes:
        return self._bytes[self.check_id(id)]

    def is_byte_piece(self, id: int) -> bool:
        """True for the single-byte tokens that are not text on their own (bytes 0x80 .. 0xFF)."""
        data = self.piece_bytes(id)
        return len(data) == 1 and data[0] >= 0x80 and self.token_types[id] == TokenType.NORMAL

    def id_to_piece(self, id: int) -> str:
        """The vocab entry as stored: GPT-2's alphabet for text ("Ġthe"), control tokens as is."""
        return self.tokens[self.check_id(id)]

    def piece_to_id(self, piece: str) -> int:
        id = self._ids.get(piece)
        if id is None:
            raise KeyError(f"piece {piece!r} is not in the vocab of {self.path}")
        return id



__all__ = [
    "BPETokenizer",
    "GPT2_PATTERN",
    "LLAMA3_PATTERN",
    "PRE_TOKENIZERS",
    "PreTokenizer",
    "QWEN2_PATTERN",
    "bytes_to_unicode",
    "pre_tokenizer_named",
    "unicode_to_bytes",
]
