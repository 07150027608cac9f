"""Hostile tokenizer files (issue 13, items 9 and 11): one corrupt byte, or a path that is no file.

Each must end in a TokenizerError that names the file; before, a corrupt SentencePiece model
escaped as UnicodeDecodeError, and /dev/zero or a FIFO was read (or waited on) forever.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tokenizer_testdata import TOK512_MODEL, ref_path

from llamanuts.common.errors import TokenizerError
from llamanuts.tokenizer import MAX_TOKENIZER_BYTES, Llama2cTokenizer, SentencePieceTokenizer, TiktokenTokenizer, load_tokenizer


def _corrupt(tmp_path: Path, data: bytes, offset: int, value: int) -> Path:
    changed = bytearray(data)
    changed[offset] = value
    path = tmp_path / "tokenizer.model"
    path.write_bytes(bytes(changed))
    return path


def test_corrupt_byte_piece_is_a_tokenizer_error(tmp_path: Path) -> None:
    # "<0x2A>" -> "<0x2A\xf9": sentencepiece refuses the piece, and its own message quoting the
    # piece is not UTF-8 (this used to escape as a UnicodeDecodeError).
    data = ref_path(TOK512_MODEL).read_bytes()
    offset = data.index(b"<0x2A>") + 5
    path = _corrupt(tmp_path, data, offset, 0xF9)
    with pytest.raises(TokenizerError, match=r"tokenizer.model: not a valid SentencePiece model: .*byte piece <0x2A"):
        load_tokenizer(path)


def test_piece_that_is_not_utf8_is_a_tokenizer_error(tmp_path: Path) -> None:
    # "▁the" with its last byte made 0xE4 (a UTF-8 lead byte with nothing after it): sentencepiece
    # loads it, and used to fail at the first id_to_piece / decode touching it.
    data = ref_path(TOK512_MODEL).read_bytes()
    offset = data.index("▁the".encode()) + len("▁the".encode()) - 1
    path = _corrupt(tmp_path, data, offset, 0xE4)
    with pytest.raises(TokenizerError, match=r"piece 265 is not valid UTF-8 .*the file is corrupt"):
        load_tokenizer(path)


def test_sentencepiece_by_path_reads_only_regular_files() -> None:
    with pytest.raises(TokenizerError, match="SentencePiece model is a character device"):
        SentencePieceTokenizer("/dev/zero")


def test_dev_zero_is_refused_without_reading() -> None:
    with pytest.raises(TokenizerError, match="/dev/zero: tokenizer file is a character device, not a regular file"):
        load_tokenizer("/dev/zero")


def test_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "tokenizer.model"
    os.mkfifo(fifo)
    with pytest.raises(TokenizerError, match=r"tokenizer file is a named pipe \(FIFO\)"):
        load_tokenizer(fifo)


def test_dangling_symlink_is_named(tmp_path: Path) -> None:
    link = tmp_path / "tokenizer.model"
    link.symlink_to(tmp_path / "elsewhere.model")
    with pytest.raises(TokenizerError, match="tokenizer file is a dangling symbolic link"):
        load_tokenizer(link)


def test_oversized_file_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    with open(path, "wb") as file:
        file.truncate(MAX_TOKENIZER_BYTES + 1)  # sparse: no disk used, nothing read
    with pytest.raises(TokenizerError, match=f"is {MAX_TOKENIZER_BYTES + 1} bytes, more than the limit"):
        load_tokenizer(path)


# TiktokenTokenizer and Llama2cTokenizer constructed from a path read it with the same bounds as
# load_tokenizer (before, Path.read_bytes() read /dev/zero until memory ran out, and waited on a FIFO).
_BY_PATH = [(TiktokenTokenizer, "tiktoken ranks file"), (Llama2cTokenizer, "llama2.c tokenizer file")]


@pytest.mark.parametrize(("kind", "what"), _BY_PATH)
def test_a_tokenizer_by_path_refuses_dev_zero(kind: type, what: str) -> None:
    with pytest.raises(TokenizerError, match=f"/dev/zero: {what} is a character device, not a regular file"):
        kind("/dev/zero")


@pytest.mark.parametrize(("kind", "what"), _BY_PATH)
def test_a_tokenizer_by_path_refuses_a_fifo_without_waiting(tmp_path: Path, kind: type, what: str) -> None:
    fifo = tmp_path / "tokenizer"
    os.mkfifo(fifo)
    with pytest.raises(TokenizerError, match=rf"{what} is a named pipe \(FIFO\)"):
        kind(fifo)


@pytest.mark.parametrize(("kind", "what"), _BY_PATH)
def test_a_tokenizer_by_path_refuses_an_oversized_file_before_reading(tmp_path: Path, kind: type, what: str) -> None:
    path = tmp_path / "tokenizer"
    with open(path, "wb") as file:
        file.truncate(MAX_TOKENIZER_BYTES + 1)  # sparse
    with pytest.raises(TokenizerError, match=f"{what} is {MAX_TOKENIZER_BYTES + 1} bytes, more than the limit"):
        kind(path)
