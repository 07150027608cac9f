"""Helpers shared by the tokenizer tests: where the real files are, and builders of tiny files.

The real files live in `shared/refs` beside the repository root (see its SOURCES.md); they are
never copied into the repo, so a fresh clone skips the tests that need them.
Synthetic tokenizer.bin / ranks files are built in memory, so the format and error tests run
everywhere.
"""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest

from llamanuts.tokenizer import Tokenizer, load_tokenizer

SHARED_REFS = Path(__file__).resolve().parents[2] / ".." / "shared" / "refs"

LLAMA2_MODEL = "llama2-tokenizer.model"
LLAMA2C_BIN = "llama2c-tokenizer.bin"
TOK512_MODEL = "tok512.model"
TOK512_BIN = "tok512.bin"
AIDREAMS_TOK512_BIN = "aidreams260K-tok512.bin"
LLAMA3_MODEL = "llama3-tokenizer.model"


def ref_path(name: str) -> Path:
    """Path of a shared reference file, or skip the test when it is absent."""
    path = SHARED_REFS / name
    if not path.is_file():
        pytest.skip(f"reference tokenizer {name} not found at {SHARED_REFS.resolve()} "
                    "(shared/refs beside the repo root is not part of a fresh clone)")
    return path


_loaded: dict[str, Tokenizer] = {}


def load_ref(name: str) -> Tokenizer:
    """Load (once per session) a real tokenizer file, skipping when it is absent."""
    path = ref_path(name)
    if name not in _loaded:
        _loaded[name] = load_tokenizer(path)
    return _loaded[name]


# ---- synthetic llama2.c tokenizer.bin ------------------------------------------------------------
CONTROL_PIECES = [b"<unk>", b"\n<s>\n", b"\n</s>\n"]
BYTE_PIECES = [f"<0x{b:02X}>".encode() for b in range(256)]


def llama2c_bytes(records: list[tuple[float, bytes]], max_token_length: int | None = None) -> bytes:
    """A tokenizer.bin image: int32 max_token_length, then (f32 score, i32 length, bytes) records."""
    if max_token_length is None:
        max_token_length = max(len(piece) for _, piece in records)
    out = bytearray(struct.pack("<i", max_token_length))
    for score, piece in records:
        out += struct.pack("<fi", score, len(piece)) + piece
    return bytes(out)


def llama2c_records(merges: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """llama2.c's usual layout: control pieces, the 256 byte pieces, then `merges` in id order."""
    return [(0.0, p) for p in CONTROL_PIECES] + [(0.0, p) for p in BYTE_PIECES] + merges


# ---- synthetic tiktoken ranks file ---------------------------------------------------------------
def ranks_line(token: bytes, rank: int) -> bytes:
    return base64.b64encode(token) + b" " + str(rank).encode() + b"\n"


def ranks_bytes(tokens: list[bytes]) -> bytes:
    """A ranks file giving `tokens` ranks 0, 1, 2, ... in order."""
    return b"".join(ranks_line(token, rank) for rank, token in enumerate(tokens))


def byte_level_tokens(extra: list[bytes]) -> list[bytes]:
    """The 256 single bytes (every BPE ranks file needs them) followed by `extra` merges."""
    return [bytes([b]) for b in range(256)] + extra


# ---- texts shared by several tests ---------------------------------------------------------------
# Spaces, multiple spaces, leading/trailing spaces, newlines, digits, punctuation, accents, CJK,
# emoji and a mix: the set the llama2.c encoder must agree with sentencepiece on.
VARIED_TEXTS: list[str] = [
    "Hello world",
    "hello  world",
    "three   spaces   here",
    "  leading spaces",
    "trailing spaces  ",
    " ",
    "line one\nline two",
    "para\n\nbreak\n",
    "\ttab\tseparated",
    "windows\r\nline",
    "1234567890",
    "pi is 3.14159, e is 2.71828",
    "Hello, world! What's up? (a) [b] {c} <d> \"quoted\" x=1+2*3; ok...",
    "café naïve",
    "Ünïcödé ñ façade",
    "你好世界",
    "👋🌍",
    "mixed: café 你好 👋 123!",
    "The quick brown fox jumps over the lazy dog.",
]
