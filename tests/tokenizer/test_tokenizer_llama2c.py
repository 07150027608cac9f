"""Llama2cTokenizer: reading tokenizer.bin, run.c's encode/decode, and agreement with sentencepiece.

The `sentencepiece` package on the matching .model file is the independent reference for the ids:
llama2c-tokenizer.bin is llama2.c's export of llama2-tokenizer.model, tok512.bin of tok512.model
(SOURCES.md checked all pieces and scores equal).
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Callable

import pytest

from llamanuts.common import TokenizerError
from llamanuts.tokenizer import Llama2cTokenizer, Tokenizer
from tokenizer_testdata import (
    AIDREAMS_TOK512_BIN,
    BYTE_PIECES,
    CONTROL_PIECES,
    VARIED_TEXTS,
    llama2c_bytes,
    llama2c_records,
    load_ref,
)

WriteFile = Callable[[bytes], Path]


@pytest.fixture
def write_file(tmp_path: Path) -> WriteFile:
    def write(data: bytes) -> Path:
        path = tmp_path / "tokenizer.bin"
        path.write_bytes(data)
        return path

    return write


def tiny_tokenizer(write_file: WriteFile, merges: list[tuple[float, bytes]]) -> Llama2cTokenizer:
    return Llama2cTokenizer(write_file(llama2c_bytes(llama2c_records(merges))))


# ---- reading the real files ------------------------------------------------------------------
def test_llama2c_bin_reads_32000_records(llama2c_bin: Tokenizer) -> None:
    assert isinstance(llama2c_bin, Llama2cTokenizer)
    assert llama2c_bin.kind == "llama2c"
    assert llama2c_bin.vocab_size == 32000
    assert llama2c_bin.vocab.max_token_length == 27  # SOURCES.md


def test_control_tokens_are_stored_wrapped_in_newlines(llama2c_bin: Tokenizer) -> None:
    assert [llama2c_bin.id_to_piece(i) for i in (0, 1, 2)] == ["<unk>", "\n<s>\n", "\n</s>\n"]


def test_control_ids_special_tokens_and_stop_ids(llama2c_bin: Tokenizer) -> None:
    assert (llama2c_bin.unk_id, llama2c_bin.bos_id, llama2c_bin.eos_id) == (0, 1, 2)
    assert llama2c_bin.special_tokens == {"<unk>": 0, "<s>": 1, "</s>": 2}
    assert llama2c_bin.stop_ids == frozenset({2})


def test_tok512_bin_reads_512_records(tok512_bin: Tokenizer) -> None:
    assert tok512_bin.vocab_size == 512


def test_aidreams_tok512_bin_reads_512_records() -> None:
    tokenizer = load_ref(AIDREAMS_TOK512_BIN)
    assert (tokenizer.kind, tokenizer.vocab_size) == ("llama2c", 512)


# ---- agreement with sentencepiece --------------------------------------------------------------
@pytest.mark.parametrize("text", VARIED_TEXTS)
def test_llama2c_bin_encodes_like_sentencepiece(llama2c_bin: Tokenizer, llama2_sp: Tokenizer, text: str) -> None:
    assert llama2c_bin.encode(text, bos=True, eos=True) == llama2_sp.encode(text, bos=True, eos=True)


def _without_space_runs_or_edges(text: str) -> bool:
    return "  " not in text and text.strip(" ") == text


@pytest.mark.parametrize("text", [t for t in VARIED_TEXTS if _without_space_runs_or_edges(t)])
def test_tok512_bin_encodes_like_sentencepiece(tok512_bin: Tokenizer, tok512_sp: Tokenizer, text: str) -> None:
    assert tok512_bin.encode(text, bos=True) == tok512_sp.encode(text, bos=True)


@pytest.mark.parametrize("text", [t for t in VARIED_TEXTS if not _without_space_runs_or_edges(t)])
def test_tok512_bin_keeps_the_spaces_that_tok512_model_collapses(
    tok512_bin: Tokenizer, tok512_sp: Tokenizer, text: str
) -> None:
    # Known divergence, not a bug in run.c's algorithm: tok512.model's normalizer_spec has
    # remove_extra_whitespaces = true, so sentencepiece collapses space runs and trims the ends
    # before encoding. tokenizer.bin stores no normalizer, so run.c (and we) keep every space.
    # llama2-tokenizer.model has remove_extra_whitespaces = false, so the Llama 2 pair agrees.
    collapsed = " ".join(text.split(" ")).strip(" ")
    while "  " in collapsed:
        collapsed = collapsed.replace("  ", " ")
    assert tok512_bin.encode(text) != tok512_sp.encode(text)
    assert tok512_bin.encode(collapsed) == tok512_sp.encode(text)


def test_literal_space_marker_in_text_diverges_from_sentencepiece(
    llama2c_bin: Tokenizer, llama2_sp: Tokenizer
) -> None:
    # Known divergence: sentencepiece writes spaces as "▁" (U+2581) internally, so a "▁" typed in
    # the text is indistinguishable from a space and becomes part of "▁" pieces. tokenizer.bin
    # stores spaces as " ", so for run.c "▁" is just a character missing from the vocab and
    # falls back to its three UTF-8 bytes. Found by fuzzing ~4M random strings against
    # sentencepiece; no other difference showed up on the Llama 2 pair.
    assert llama2_sp.encode("a ▁b") == llama2_sp.encode("a  b")
    pieces = [llama2c_bin.id_to_piece(i) for i in llama2c_bin.encode("▁")]
    assert pieces == [" ", "<0xE2>", "<0x96>", "<0x81>"]


def test_control_token_text_in_the_input_stays_text(llama2c_bin: Tokenizer, llama2_sp: Tokenizer) -> None:
    # run.c merges by string lookup, so "<unk>" or "<0x41>" typed by a user could in principle
    # merge into the control/byte piece with that text; on the Llama 2 vocab it does not.
    for text in ["<unk>", "<s>", "</s>", "<0x41>"]:
        ids = llama2c_bin.encode(text)
        assert ids == llama2_sp.encode(text)
        assert not any(llama2c_bin.is_byte_piece(i) or i in (0, 1, 2) for i in ids)


# ---- run.c's encoding rules on a tiny vocab ------------------------------------------------------
def test_empty_text_gets_no_dummy_prefix(write_file: WriteFile) -> None:
    tokenizer = tiny_tokenizer(write_file, [(-1.0, b" ")])
    assert tokenizer.encode("") == []
    assert tokenizer.encode("", bos=True, eos=True) == [1, 2]


def test_nonempty_text_starts_with_the_space_piece(write_file: WriteFile) -> None:
    tokenizer = tiny_tokenizer(write_file, [(-1.0, b" "), (-2.0, b"a")])
    space, a = 259, 260
    assert tokenizer.encode("a", bos=True, eos=True) == [1, space, a, 2]


def test_unknown_character_falls_back_to_byte_ids(write_file: WriteFile) -> None:
    tokenizer = tiny_tokenizer(write_file, [(-1.0, b" ")])
    # "é" is C3 A9 in UTF-8; run.c encodes byte b as id b + 3.
    assert tokenizer.encode("é") == [259, 0xC3 + 3, 0xA9 + 3]


def test_highest_scoring_pair_merges_first(write_file: WriteFile) -> None:
    # "abc": both "ab" and "bc" are in the vocab; "bc" scores higher, so a + bc, and "abc" is not
    # reachable from "a" + "bc" because it is not in the vocab.
    merges = [(0.0, b" "), (0.0, b"a"), (0.0, b"b"), (0.0, b"c"), (-5.0, b"ab"), (-1.0, b"bc")]
    tokenizer = tiny_tokenizer(write_file, merges)
    assert [tokenizer.id_to_piece(i) for i in tokenizer.encode("abc")] == [" ", "a", "bc"]


def test_equal_scores_merge_the_leftmost_pair(write_file: WriteFile) -> None:
    merges = [(0.0, b" "), (0.0, b"a"), (-1.0, b"aa")]
    tokenizer = tiny_tokenizer(write_file, merges)
    assert [tokenizer.id_to_piece(i) for i in tokenizer.encode("aaa")] == [" ", "aa", "a"]


def test_merges_repeat_until_no_pair_is_in_the_vocab(write_file: WriteFile) -> None:
    merges = [(0.0, b" "), (0.0, b"a"), (0.0, b"b"), (-3.0, b" a"), (-1.0, b"ab"), (-2.0, b" ab")]
    tokenizer = tiny_tokenizer(write_file, merges)
    assert [tokenizer.id_to_piece(i) for i in tokenizer.encode("ab")] == [" ab"]


# ---- run.c's decoding rules ---------------------------------------------------------------------
def test_decode_drops_the_leading_space_only_after_bos(llama2c_bin: Tokenizer) -> None:
    ids = llama2c_bin.encode("Hello world")
    assert llama2c_bin.decode([1] + ids) == "Hello world"
    assert llama2c_bin.decode(ids) == " Hello world"


def test_decode_turns_byte_pieces_into_raw_bytes(llama2c_bin: Tokenizer) -> None:
    assert llama2c_bin.decode(llama2c_bin.encode("👋🌍", bos=True)) == "👋🌍"


def test_piece_bytes_of_byte_piece_is_one_raw_byte(llama2c_bin: Tokenizer) -> None:
    f0 = llama2c_bin.piece_to_id("<0xF0>")
    assert f0 == 0xF0 + 3
    assert llama2c_bin.is_byte_piece(f0)
    assert llama2c_bin.piece_bytes(f0) == b"\xf0"


def test_piece_bytes_of_control_tokens_is_empty(llama2c_bin: Tokenizer) -> None:
    assert [llama2c_bin.piece_bytes(i) for i in (0, 1, 2)] == [b"", b"", b""]


def test_piece_bytes_of_text_piece_is_its_stored_bytes(llama2c_bin: Tokenizer) -> None:
    assert llama2c_bin.piece_bytes(llama2c_bin.piece_to_id(" the")) == b" the"


def test_piece_to_id_rejects_an_unknown_piece(llama2c_bin: Tokenizer) -> None:
    with pytest.raises(KeyError, match="not in the vocab"):
        llama2c_bin.piece_to_id("definitely-not-a-piece")


# ---- corrupt files -------------------------------------------------------------------------------
def test_file_shorter_than_the_header_is_rejected(write_file: WriteFile) -> None:
    with pytest.raises(TokenizerError, match="too short"):
        Llama2cTokenizer(write_file(b"\x07\x00"))


@pytest.mark.parametrize("max_token_length", [0, -3, 1_000_000])
def test_implausible_max_token_length_is_rejected(write_file: WriteFile, max_token_length: int) -> None:
    data = llama2c_bytes(llama2c_records([]), max_token_length=7)
    data = max_token_length.to_bytes(4, "little", signed=True) + data[4:]
    with pytest.raises(TokenizerError, match=f"max_token_length header is {max_token_length}"):
        Llama2cTokenizer(write_file(data))


def test_file_cut_inside_a_record_header_names_the_token(write_file: WriteFile) -> None:
    data = llama2c_bytes(llama2c_records([(0.0, b" ")]))
    with pytest.raises(TokenizerError, match=r"truncated: token 259 .* needs an 8-byte"):
        Llama2cTokenizer(write_file(data[:-3]))


def test_file_cut_inside_a_piece_names_the_token(write_file: WriteFile) -> None:
    data = llama2c_bytes(llama2c_records([(0.0, b"hello")]))
    with pytest.raises(TokenizerError, match=r"truncated: token 259 .* says 5 bytes but only 2 remain"):
        Llama2cTokenizer(write_file(data[:-3]))


def test_piece_longer_than_max_token_length_is_rejected(write_file: WriteFile) -> None:
    data = llama2c_bytes(llama2c_records([(0.0, b"too long")]), max_token_length=6)
    with pytest.raises(TokenizerError, match=r"token 259 .* has length 8, expected 1 .. max_token_length \(6\)"):
        Llama2cTokenizer(write_file(data))


def test_non_finite_score_is_rejected(write_file: WriteFile) -> None:
    data = llama2c_bytes(llama2c_records([(float("nan"), b"x")]))
    with pytest.raises(TokenizerError, match="token 259 .* non-finite score"):
        Llama2cTokenizer(write_file(data))


def test_duplicate_piece_is_rejected(write_file: WriteFile) -> None:
    data = llama2c_bytes(llama2c_records([(0.0, b"x"), (-1.0, b"x")]))
    with pytest.raises(TokenizerError, match="token 260 repeats the piece b'x' of token 259"):
        Llama2cTokenizer(write_file(data))


def test_vocab_size_from_the_model_header_must_match(write_file: WriteFile) -> None:
    # A file cut exactly between records still parses; only the model's vocab_size catches it.
    path = write_file(llama2c_bytes(llama2c_records([(0.0, b" ")])))
    with pytest.raises(TokenizerError, match="holds 260 tokens but the model's vocab_size is 512"):
        Llama2cTokenizer(path, vocab_size=512)


def test_file_without_bos_and_eos_records_is_rejected(write_file: WriteFile) -> None:
    with pytest.raises(TokenizerError, match="holds only 2 tokens"):
        Llama2cTokenizer(write_file(llama2c_bytes([(0.0, CONTROL_PIECES[0]), (0.0, BYTE_PIECES[0])])))


def test_errors_name_the_file(write_file: WriteFile) -> None:
    path = write_file(b"\x07\x00")
    with pytest.raises(TokenizerError) as info:
        Llama2cTokenizer(path)
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_missing_byte_piece_is_reported_when_needed(write_file: WriteFile) -> None:
    records = [(0.0, piece) for piece in CONTROL_PIECES] + [(0.0, b" "), (0.0, b"a")]
    tokenizer = Llama2cTokenizer(write_file(llama2c_bytes(records)))
    assert tokenizer.encode("a") == [3, 4]
    with pytest.raises(TokenizerError, match="no byte-fallback piece <0xC3>"):
        tokenizer.encode("é")
