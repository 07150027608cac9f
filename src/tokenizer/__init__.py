"""Tokenizers: one interface (`Tokenizer`), three tokenizer files, GGUF and Hugging Face vocabs.

`load_tokenizer(path)` opens a tokenizer file by its content, never its name, because the same
name ("tokenizer.model") is used by both Llama 2 (SentencePiece) and Llama 3 (tiktoken).
A GGUF model carries its vocab as metadata: `gguf_vocab.tokenizer_from_gguf(metadata, path)`.
A Hugging Face model directory has tokenizer.json: `hf_tokenizer.load_hf_tokenizer(directory)`.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from ..common.errors import TokenizerError
from ..common.files import read_regular_file
from .llama2c_tokenizer import (
    LLAMA2C_CONTROL_PIECES,
    MAX_PLAUSIBLE_TOKEN_LENGTH,
    Llama2cTokenizer,
    read_llama2c_vocab,
)
from .bpe_tokenizer import BPETokenizer
from .gguf_vocab import tokenizer_from_gguf
from .hf_tokenizer import HFTokenizer, load_hf_tokenizer
from .sentencepiece_tokenizer import SentencePieceTokenizer
from .spm_tokenizer import SPMTokenizer
from .tiktoken_tokenizer import TiktokenTokenizer
from .tokenizer import SENTENCEPIECE_SPACE, InvalidTextError, Tokenizer, TokenType

NOT_RECOGNISED = (
    "not a recognised tokenizer: expected a SentencePiece model, a tiktoken ranks file "
    "or a llama2.c tokenizer.bin"
)

# A SentencePiece ModelProto starts with its first `pieces` entry: field 1, length-delimited
# (tag byte 0x0A), then a varint length, then the SentencePiece message, which itself starts
# with its `piece` string (again tag 0x0A). The full parse is left to sentencepiece.
_PROTOBUF_PIECES_TAG = 0x0A
# The first line of a tiktoken ranks file: base64, one space, a decimal rank.
_TIKTOKEN_FIRST_LINE = re.compile(rb"[A-Za-z0-9+/]+={0,2} \d+\r?(\n|$)")
_LLAMA2C_FIRST_RECORD = struct.Struct("<ifi")  # max_token_length, score, length
_INT32_SIZE = 4
_LLAMA2C_RECORD_HEADER_SIZE = 8  # float32 score, int32 length
# A tokenizer file is read into memory whole. The largest real ones are a few MB (Llama 3's ranks
# 2.2 MB, a 256k-piece SentencePiece model about 4 MB); 64 MiB refuses /dev/zero-like inputs early.
MAX_TOKENIZER_BYTES = 64 << 20


def load_tokenizer(path: str | Path, llama2c_vocab_size: int | None = None) -> Tokenizer:
    """Open `path` with the implementation its content calls for.

    `llama2c_vocab_size` is the vocab size from a llama2.c model header: a tokenizer.bin does not
    store its own size, so a file cut exactly at a record boundary is only caught with it.

    Raises TokenizerError for a missing or unreadable file, a file of none of the three kinds,
    or a file that is recognisably one kind but corrupt (the message then says what is wrong).
    """
    data = _read(path)
    if _looks_like_tiktoken(data):
        return TiktokenTokenizer(path, data)
    if _looks_like_llama2c(path, data):
        return Llama2cTokenizer(path, data, vocab_size=llama2c_vocab_size)
    if _looks_like_sentencepiece(data):
        return SentencePieceTokenizer(path, model_proto=data)
    raise TokenizerError(path, NOT_RECOGNISED)


def _read(path: str | Path) -> bytes:
    """The file's bytes: only a regular file (not a FIFO, a device, a directory), of a sane size."""
    return read_regular_file(path, MAX_TOKENIZER_BYTES, TokenizerError, "tokenizer file")


def _looks_like_tiktoken(data: bytes) -> bool:
    return _TIKTOKEN_FIRST_LINE.match(data) is not None


def _looks_like_llama2c(path: str | Path, data: bytes) -> bool:
    """A plausible max_token_length header, then either llama2.c's usual first three pieces
    (so a later problem is reported as a corrupt tokenizer.bin) or records that parse to EOF.

    Checking only the header would accept a llama2.c model .bin, whose first int32 is `dim`.
    """
    if len(data) < _LLAMA2C_FIRST_RECORD.size:
        return False
    max_token_length, _score, length = _LLAMA2C_FIRST_RECORD.unpack_from(data, 0)
    if not (1 <= max_token_length <= MAX_PLAUSIBLE_TOKEN_LENGTH and 1 <= length <= max_token_length):
        return False
    if _starts_with_llama2c_control_pieces(data):
        return True
    try:
        read_llama2c_vocab(path, data)
    except TokenizerError:
        return False
    return True


def _starts_with_llama2c_control_pieces(data: bytes) -> bool:
    offset = _INT32_SIZE
    for expected in LLAMA2C_CONTROL_PIECES:
        if offset + _LLAMA2C_RECORD_HEADER_SIZE > len(data):
            return False
        (length,) = struct.unpack_from("<i", data, offset + 4)
        start = offset + _LLAMA2C_RECORD_HEADER_SIZE
        if data[start : start + length] != expected:
            return False
        offset = start + length
    return True


def _looks_like_sentencepiece(data: bytes) -> bool:
    """Tag 0x0A, a varint length, then tag 0x0A again (the first piece's `piece` string)."""
    if len(data) < 3 or data[0] != _PROTOBUF_PIECES_TAG:
        return False
    position = 1
    while position < len(data) and data[position] & 0x80:  # skip the varint's continuation bytes
        position += 1
    return position + 1 < len(data) and data[position + 1] == _PROTOBUF_PIECES_TAG


__all__ = [
    "BPETokenizer",
    "HFTokenizer",
    "InvalidTextError",
    "MAX_TOKENIZER_BYTES",
    "Llama2cTokenizer",
    "NOT_RECOGNISED",
    "SENTENCEPIECE_SPACE",
    "SPMTokenizer",
    "SentencePieceTokenizer",
    "TiktokenTokenizer",
    "TokenType",
    "Tokenizer",
    "load_hf_tokenizer",
    "load_tokenizer",
    "tokenizer_from_gguf",
]

