"""TiktokenTokenizer: Meta's Llama 3 ranks file, its special tokens, and ranks-file validation.

Reference values are Meta's published Llama 3 tokenizer test cases (and SOURCES.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llamanuts.common import TokenizerError
from llamanuts.tokenizer import TiktokenTokenizer, Tokenizer
from llamanuts.tokenizer.tiktoken_tokenizer import llama3_special_token_names
from tokenizer_testdata import byte_level_tokens, ranks_bytes, ranks_line


def write_ranks(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "tokenizer.model"
    path.write_bytes(data)
    return path


# ---- Meta's published facts ------------------------------------------------------------------------
def test_llama3_model_loads_as_tiktoken(llama3: Tokenizer) -> None:
    assert isinstance(llama3, TiktokenTokenizer)
    assert llama3.kind == "tiktoken"
    assert llama3.vocab_size == 128256  # 128000 ranks + 256 special tokens


def test_encodes_test_sentence_with_bos_and_eos(llama3: Tokenizer) -> None:
    ids = llama3.encode("This is a test sentence.", bos=True, eos=True)
    assert ids == [128000, 2028, 374, 264, 1296, 11914, 13, 128001]


def test_decode_spells_special_tokens_by_name(llama3: Tokenizer) -> None:
    ids = [128000, 2028, 374, 264, 1296, 11914, 13, 128001]
    assert llama3.decode(ids) == "<|begin_of_text|>This is a test sentence.<|end_of_text|>"


def test_encodes_ultimate_question_prompt(llama3: Tokenizer) -> None:
    text = "the answer to the ultimate question of life, the universe, and everything is "
    expected = [1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]
    assert llama3.encode(text) == expected


# ---- special tokens ----------------------------------------------------------------------------------
def test_control_ids_and_no_unk(llama3: Tokenizer) -> None:
    assert (llama3.bos_id, llama3.eos_id, llama3.unk_id) == (128000, 128001, None)


def test_generation_stops_on_end_of_text_and_eot(llama3: Tokenizer) -> None:
    assert llama3.stop_ids == frozenset({128001, 128009})


@pytest.mark.parametrize(
    ("name", "id"),
    [
        ("<|begin_of_text|>", 128000),
        ("<|end_of_text|>", 128001),
        ("<|reserved_special_token_0|>", 128002),
        ("<|reserved_special_token_3|>", 128005),
        ("<|start_header_id|>", 128006),
        ("<|end_header_id|>", 128007),
        ("<|reserved_special_token_4|>", 128008),
        ("<|eot_id|>", 128009),
        ("<|reserved_special_token_5|>", 128010),
        ("<|reserved_special_token_250|>", 128255),
    ],
)
def test_special_token_ids(llama3: Tokenizer, name: str, id: int) -> None:
    assert llama3.special_tokens[name] == id
    assert llama3.piece_to_id(name) == id
    assert llama3.id_to_piece(id) == name


def test_there_are_256_distinct_special_tokens() -> None:
    names = llama3_special_token_names()
    assert len(names) == len(set(names)) == 256


def test_plain_encode_treats_special_names_as_text(llama3: Tokenizer) -> None:
    # A user typing "<|eot_id|>" must not end the turn: no special id may appear.
    ids = llama3.encode("Hi <|eot_id|><|begin_of_text|>")
    assert not set(ids) & set(llama3.special_tokens.values())
    assert llama3.decode(ids) == "Hi <|eot_id|><|begin_of_text|>"


def test_encode_with_specials_maps_special_names(llama3: Tokenizer) -> None:
    assert isinstance(llama3, TiktokenTokenizer)
    ids = llama3.encode_with_specials("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>")
    assert ids[0] == 128006 and ids[-1] == 128009
    assert ids == [128006] + llama3.encode("user") + [128007] + llama3.encode("\n\nHi") + [128009]


def test_piece_bytes_of_special_tokens_is_empty(llama3: Tokenizer) -> None:
    assert llama3.piece_bytes(128000) == b""
    assert llama3.piece_bytes(128009) == b""


def test_no_space_is_stripped_after_bos(llama3: Tokenizer) -> None:
    # There is no dummy prefix, so a leading space after BOS is real text.
    ids = llama3.encode(" indented", bos=True)
    assert not llama3.strip_leading_space_after_bos
    assert llama3.output_bytes(ids[0], ids[1]) == llama3.piece_bytes(ids[1])


# ---- pieces ------------------------------------------------------------------------------------------
def test_piece_bytes_are_the_raw_token_bytes(llama3: Tokenizer) -> None:
    assert llama3.piece_bytes(2028) == b"This"
    assert llama3.piece_bytes(220) == b" "


def test_partial_utf8_tokens_show_bytes_as_hex_pieces(llama3: Tokenizer) -> None:
    ids = llama3.encode("👋")
    pieces = [llama3.id_to_piece(i) for i in ids]
    assert "".join(pieces) == "<0xF0><0x9F><0x91><0x8B>"
    assert b"".join(llama3.piece_bytes(i) for i in ids) == "👋".encode("utf-8")


def test_single_high_byte_tokens_are_byte_pieces(llama3: Tokenizer) -> None:
    high = llama3.piece_to_id("<0xF0>")
    assert llama3.piece_bytes(high) == b"\xf0"
    assert llama3.is_byte_piece(high)
    assert not llama3.is_byte_piece(llama3.piece_to_id("A"))


def test_piece_to_id_inverts_id_to_piece_for_every_id(llama3: Tokenizer) -> None:
    mismatched = [i for i in range(llama3.vocab_size) if llama3.piece_to_id(llama3.id_to_piece(i)) != i]
    assert mismatched == []


def test_piece_to_id_rejects_an_unknown_piece(llama3: Tokenizer) -> None:
    with pytest.raises(KeyError, match="not in the vocab"):
        llama3.piece_to_id("definitely-not-a-single-token")


# ---- the ranks file, on tiny synthetic files -------------------------------------------------------
def test_tiny_ranks_file_encodes_with_its_merges(tmp_path: Path) -> None:
    tokenizer = TiktokenTokenizer(write_ranks(tmp_path, ranks_bytes(byte_level_tokens([b"ab", b"abc"]))))
    assert tokenizer.vocab_size == 258 + 256
    assert tokenizer.encode("abc") == [257]
    assert tokenizer.bos_id == 258


def test_blank_lines_and_crlf_are_accepted(tmp_path: Path) -> None:
    data = ranks_bytes(byte_level_tokens([])).replace(b"\n", b"\r\n") + b"\n\n"
    assert TiktokenTokenizer(write_ranks(tmp_path, data)).vocab_size == 256 + 256


def test_rank_gap_names_the_line(tmp_path: Path) -> None:
    data = ranks_line(b"a", 0) + ranks_line(b"b", 2)
    with pytest.raises(TokenizerError, match="line 2: rank 2 breaks the sequence; expected 1"):
        TiktokenTokenizer(write_ranks(tmp_path, data))


def test_ranks_must_start_at_zero(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="line 1: rank 1 breaks the sequence; expected 0"):
        TiktokenTokenizer(write_ranks(tmp_path, ranks_line(b"a", 1)))


def test_malformed_line_names_the_line(tmp_path: Path) -> None:
    data = ranks_line(b"a", 0) + b"YQ== 1 extra\n"
    with pytest.raises(TokenizerError, match=r"line 2: expected '<base64 token> <rank>'"):
        TiktokenTokenizer(write_ranks(tmp_path, data))


def test_bad_base64_names_the_line(tmp_path: Path) -> None:
    data = ranks_line(b"a", 0) + ranks_line(b"b", 1) + b"YWJ 2\n"
    with pytest.raises(TokenizerError, match="line 3: bad base64 token"):
        TiktokenTokenizer(write_ranks(tmp_path, data))


def test_repeated_token_names_the_line(tmp_path: Path) -> None:
    data = ranks_line(b"a", 0) + ranks_line(b"a", 1)
    with pytest.raises(TokenizerError, match="line 2: token b'a' already has rank 0"):
        TiktokenTokenizer(write_ranks(tmp_path, data))


def test_empty_ranks_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="holds no tokens"):
        TiktokenTokenizer(write_ranks(tmp_path, b"\n"))


def test_missing_single_byte_rank_is_rejected(tmp_path: Path) -> None:
    tokens = [token for token in byte_level_tokens([b"ab"]) if token != b"\xff"]
    with pytest.raises(TokenizerError, match="no rank for the single byte\\(s\\) 0xFF; byte-level BPE needs all 256"):
        TiktokenTokenizer(write_ranks(tmp_path, ranks_bytes(tokens)))
