"""load_tokenizer: the kind comes from the file's content, never from its name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llamanuts.common import TokenizerError
from llamanuts.tokenizer import NOT_RECOGNISED, load_tokenizer
from tokenizer_testdata import (
    AIDREAMS_TOK512_BIN,
    LLAMA2_MODEL,
    LLAMA2C_BIN,
    LLAMA3_MODEL,
    TOK512_BIN,
    TOK512_MODEL,
    byte_level_tokens,
    llama2c_bytes,
    llama2c_records,
    ranks_bytes,
    ref_path,
)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (LLAMA2_MODEL, "sentencepiece"),
        (TOK512_MODEL, "sentencepiece"),
        (LLAMA2C_BIN, "llama2c"),
        (TOK512_BIN, "llama2c"),
        (AIDREAMS_TOK512_BIN, "llama2c"),
        (LLAMA3_MODEL, "tiktoken"),
    ],
)
def test_real_files_are_recognised(name: str, kind: str) -> None:
    assert load_tokenizer(ref_path(name)).kind == kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [(TOK512_MODEL, "sentencepiece"), (TOK512_BIN, "llama2c"), (LLAMA3_MODEL, "tiktoken")],
)
def test_misleading_file_name_does_not_matter(tmp_path: Path, name: str, kind: str) -> None:
    # Every kind copied (to a temp dir only) under a name that suggests another kind.
    decoy = tmp_path / ("tokenizer.bin" if kind != "llama2c" else "tokenizer.model")
    shutil.copyfile(ref_path(name), decoy)
    assert load_tokenizer(decoy).kind == kind


def test_synthetic_llama2c_file_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "vocab.dat"
    path.write_bytes(llama2c_bytes(llama2c_records([(0.0, b" ")])))
    assert load_tokenizer(path).kind == "llama2c"


def test_synthetic_ranks_file_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "vocab.dat"
    path.write_bytes(ranks_bytes(byte_level_tokens([])))
    assert load_tokenizer(path).kind == "tiktoken"


def test_llama2c_vocab_size_is_checked_when_given(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(llama2c_bytes(llama2c_records([(0.0, b" ")])))
    with pytest.raises(TokenizerError, match="vocab_size is 32000"):
        load_tokenizer(path, llama2c_vocab_size=32000)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "tokenizer.model"
    with pytest.raises(TokenizerError, match="tokenizer file not found") as info:
        load_tokenizer(path)
    assert str(path) in str(info.value)


def test_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="is a directory"):
        load_tokenizer(tmp_path)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, I am a text file\n", b"\x00" * 64, b'{"dim": 4096}', bytes(range(256))],
    ids=["empty", "text", "zeros", "json", "binary"],
)
def test_unrecognised_content_is_rejected_with_the_expected_message(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(content)
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(path)
    assert str(info.value) == f"{path}: {NOT_RECOGNISED}"


def test_llama2c_model_checkpoint_is_not_taken_for_a_tokenizer() -> None:
    # A llama2.c model .bin starts with int32 dim (64 here), a plausible max_token_length, so
    # the loader must look further than the header.
    with pytest.raises(TokenizerError, match="not a recognised tokenizer"):
        load_tokenizer(ref_path("stories260K.bin"))


def test_truncated_llama2c_file_reports_the_corruption(tmp_path: Path) -> None:
    data = ref_path(TOK512_BIN).read_bytes()
    path = tmp_path / "tokenizer.bin"
    path.write_bytes(data[:3000])
    with pytest.raises(TokenizerError, match=r"truncated: token \d+ at byte \d+"):
        load_tokenizer(path)


def test_truncated_sentencepiece_model_reports_a_parse_failure(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(ref_path(TOK512_MODEL).read_bytes()[:2000])
    with pytest.raises(TokenizerError, match="not a valid SentencePiece model"):
        load_tokenizer(path)


def test_corrupt_ranks_file_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(ranks_bytes(byte_level_tokens([])) + b"not base64!! 256\n")
    with pytest.raises(TokenizerError, match="line 257: expected '<base64 token> <rank>'"):
        load_tokenizer(path)
