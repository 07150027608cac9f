"""SentencePieceTokenizer on the real Llama 2 and tok512 models (shared/refs, see SOURCES.md)."""

from __future__ import annotations

import pytest

from llamanuts.tokenizer import SentencePieceTokenizer, Tokenizer


def test_llama2_model_loads_as_sentencepiece(llama2_sp: Tokenizer) -> None:
    assert isinstance(llama2_sp, SentencePieceTokenizer)
    assert llama2_sp.kind == "sentencepiece"
    assert llama2_sp.vocab_size == 32000


def test_llama2_control_ids_and_stop_ids(llama2_sp: Tokenizer) -> None:
    assert (llama2_sp.unk_id, llama2_sp.bos_id, llama2_sp.eos_id) == (0, 1, 2)
    assert llama2_sp.stop_ids == frozenset({2})


def test_llama2_special_tokens_are_the_control_pieces(llama2_sp: Tokenizer) -> None:
    assert llama2_sp.special_tokens == {"<unk>": 0, "<s>": 1, "</s>": 2}


def test_llama2_encodes_meaning_of_life_prompt(llama2_sp: Tokenizer) -> None:
    # Published: the Llama 2 example prompt's ids with BOS.
    ids = llama2_sp.encode("I believe the meaning of life is", bos=True)
    assert ids == [1, 306, 4658, 278, 6593, 310, 2834, 338]


def test_llama2_encodes_attract_bees_prompt(llama2_sp: Tokenizer) -> None:
    # Published (SOURCES.md, and llama2.c's run.c example prompt).
    ids = llama2_sp.encode("The best way to attract bees", bos=True)
    assert ids == [1, 450, 1900, 982, 304, 13978, 367, 267]


def test_tok512_encodes_once_upon_a_time(tok512_sp: Tokenizer) -> None:
    # Published (SOURCES.md): the first greedy tokens of stories260K.
    assert tok512_sp.encode("Once upon a time", bos=True) == [1, 403, 407, 261, 378]


def test_eos_is_appended_when_asked(llama2_sp: Tokenizer) -> None:
    assert llama2_sp.encode("hi", bos=True, eos=True)[-1] == 2


def test_empty_text_encodes_to_nothing_but_the_asked_controls(llama2_sp: Tokenizer) -> None:
    assert llama2_sp.encode("") == []
    assert llama2_sp.encode("", bos=True, eos=True) == [1, 2]


def test_decode_round_trips_text(llama2_sp: Tokenizer) -> None:
    text = "The best way to attract bees"
    assert llama2_sp.decode(llama2_sp.encode(text, bos=True)) == text


def test_piece_bytes_maps_the_space_marker_to_a_space(llama2_sp: Tokenizer) -> None:
    the = llama2_sp.piece_to_id("▁the")
    assert llama2_sp.id_to_piece(the) == "▁the"
    assert llama2_sp.piece_bytes(the) == b" the"


def test_piece_bytes_of_a_byte_piece_is_one_raw_byte(llama2_sp: Tokenizer) -> None:
    f0 = llama2_sp.piece_to_id("<0xF0>")
    assert llama2_sp.is_byte_piece(f0)
    assert llama2_sp.piece_bytes(f0) == b"\xf0"


def test_piece_bytes_of_control_tokens_is_empty(llama2_sp: Tokenizer) -> None:
    assert [llama2_sp.piece_bytes(i) for i in (0, 1, 2)] == [b"", b"", b""]


def test_ordinary_piece_is_not_a_byte_piece(llama2_sp: Tokenizer) -> None:
    assert not llama2_sp.is_byte_piece(llama2_sp.piece_to_id("▁the"))


def test_emoji_falls_back_to_bytes_that_rebuild_its_utf8(llama2_sp: Tokenizer) -> None:
    ids = llama2_sp.encode("👋")
    # The dummy-prefix "▁" first, then one byte piece per UTF-8 byte of U+1F44B.
    assert [llama2_sp.id_to_piece(i) for i in ids] == ["▁", "<0xF0>", "<0x9F>", "<0x91>", "<0x8B>"]
    assert all(llama2_sp.is_byte_piece(i) for i in ids[1:])
    assert b"".join(llama2_sp.piece_bytes(i) for i in ids[1:]) == "👋".encode("utf-8")


def test_first_piece_after_bos_loses_its_space_when_printed(llama2_sp: Tokenizer) -> None:
    ids = llama2_sp.encode("The", bos=True)
    assert llama2_sp.strip_leading_space_after_bos
    assert llama2_sp.piece_bytes(ids[1]) == b" The"
    assert llama2_sp.output_bytes(ids[0], ids[1]) == b"The"
    assert llama2_sp.output_bytes(None, ids[1]) == b" The"


def test_piece_to_id_rejects_an_unknown_piece(llama2_sp: Tokenizer) -> None:
    # sentencepiece itself answers the unk id here; we refuse instead of guessing.
    with pytest.raises(KeyError, match="not in the vocab"):
        llama2_sp.piece_to_id("definitely-not-a-piece")


def test_piece_to_id_accepts_the_unk_piece_itself(llama2_sp: Tokenizer) -> None:
    assert llama2_sp.piece_to_id("<unk>") == 0


@pytest.mark.parametrize("bad_id", [-1, 32000, 10**9])
def test_out_of_range_id_raises_index_error(llama2_sp: Tokenizer, bad_id: int) -> None:
    with pytest.raises(IndexError, match=r"out of range \[0, 32000\)"):
        llama2_sp.piece_bytes(bad_id)


def test_stop_check_uses_eos(llama2_sp: Tokenizer) -> None:
    assert llama2_sp.is_stop(2)
    assert not llama2_sp.is_stop(1)


def test_tok512_collapses_whitespace_in_its_normalizer(tok512_sp: Tokenizer) -> None:
    # tok512.model's normalizer_spec has remove_extra_whitespaces = true (Llama 2's has false),
    # so runs of spaces and leading/trailing spaces vanish before encoding.
    assert tok512_sp.encode("  a   b  ") == tok512_sp.encode("a b")
