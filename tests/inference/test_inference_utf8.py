"""The streaming UTF-8 decoder: whole characters out, whatever the split of the bytes in.

The real Llama 2 tokenizer is used where a realistic split matters: emoji and rare CJK characters
come out of it as byte-fallback tokens (`<0xF0>` `<0x9F>` ...), one byte per token.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from llamanuts.inference.utf8 import REPLACEMENT_CHARACTER, StreamingUTF8Decoder, sequence_length

SHARED_REFS = Path(__file__).resolve().parents[2].parent / "shared" / "refs"
LLAMA2_TOKENIZER = SHARED_REFS / "llama2-tokenizer.model"

TEXTS = [
    "Hello 😀 world 🦙🔥!",
    "日本語の文章です 鬱 龘",
    "Café déjà vu, naïve Tiếng Việt ǅ",
    "mixed: 中文 émoji 👩‍👩‍👧 end",
]


@pytest.fixture(scope="module")
def llama2_tokenizer():
    if not LLAMA2_TOKENIZER.exists():
        pytest.skip(f"the Llama 2 tokenizer is not at {LLAMA2_TOKENIZER} (shared reference files absent)")
    from llamanuts.tokenizer import load_tokenizer

    return load_tokenizer(LLAMA2_TOKENIZER)


def token_bytes(tokenizer, text: str) -> list[bytes]:
    pieces = [tokenizer.piece_bytes(i) for i in tokenizer.encode(text)]
    # SentencePiece's dummy prefix: the first piece's leading space is not part of the text.
    if pieces and pieces[0].startswith(b" "):
        pieces[0] = pieces[0][1:]
    return pieces


def feed_all(chunks: list[bytes]) -> tuple[list[str], str]:
    decoder = StreamingUTF8Decoder()
    printed = [decoder.feed(chunk).text for chunk in chunks]
    return printed, decoder.finish()


@pytest.mark.parametrize("text", TEXTS)
def test_token_stream_prints_the_original_text(llama2_tokenizer, text: str) -> None:
    chunks = token_bytes(llama2_tokenizer, text)
    assert b"".join(chunks) == text.encode("utf-8")
    printed, tail = feed_all(chunks)
    assert "".join(printed) + tail == text
    assert tail == ""
    assert REPLACEMENT_CHARACTER not in "".join(printed)


@pytest.mark.parametrize("text", TEXTS)
def test_every_token_boundary_prints_whole_characters_once(llama2_tokenizer, text: str) -> None:
    """Cut the stream after every token: what is printed is exactly the complete characters so far,
    each once, and the rest waits; a cut inside a character ends with one U+FFFD."""
    chunks = token_bytes(llama2_tokenizer, text)
    decoder = StreamingUTF8Decoder()
    printed = ""
    cuts_inside_a_character = 0
    for index, chunk in enumerate(chunks):
        result = decoder.feed(chunk)
        printed += result.text
        so_far = b"".join(chunks[: index + 1])
        assert printed.encode("utf-8") + result.waiting_bytes == so_far
        assert text.startswith(printed)  # whole characters only, none printed twice
        if result.waiting_bytes:
            cuts_inside_a_character += 1
            assert len(result.waiting_bytes) < sequence_length(result.waiting_bytes[0])
            cut = StreamingUTF8Decoder()
            cut_text = "".join(cut.feed(c).text for c in chunks[: index + 1]) + cut.finish()
            assert cut_text == printed + REPLACEMENT_CHARACTER
            assert cut_text == so_far.decode("utf-8", errors="replace")
    assert decoder.finish() == ""
    assert printed == text
    if any(ord(c) > 0xFFFF for c in text):  # emoji: byte fallback is certain to split them
        assert cuts_inside_a_character > 0


def test_emoji_arrives_as_byte_fallback_tokens(llama2_tokenizer) -> None:
    chunks = token_bytes(llama2_tokenizer, "😀")
    assert [len(c) for c in chunks if c.strip()] == [1, 1, 1, 1]
    decoder = StreamingUTF8Decoder()
    results = [decoder.feed(c) for c in chunks]
    assert [r.text for r in results][-4:] == ["", "", "", "😀"]
    assert results[-2].waiting_bytes == "😀".encode()[:3]


def test_stream_cut_mid_character_ends_with_replacement() -> None:
    decoder = StreamingUTF8Decoder()
    assert decoder.feed("ab😀".encode()[:4]).text == "ab"
    assert decoder.waiting_bytes == b"\xf0\x9f"
    assert decoder.finish() == REPLACEMENT_CHARACTER
    assert decoder.finish() == ""  # flushed once, nothing dangling any more


@pytest.mark.parametrize(
    "data",
    [b"\xff", b"\x80abc", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe4\xb8a", b"\xf0\x9f\x98Z\xe4\xb8\xad"],
)
def test_invalid_sequences_become_replacement_like_python(data: bytes) -> None:
    printed, tail = feed_all([bytes([b]) for b in data])
    assert "".join(printed) + tail == data.decode("utf-8", errors="replace")


def test_random_byte_streams_in_random_splits_match_a_whole_decode() -> None:
    rng = random.Random(1234)
    alphabet = list(b"a \x80\x9f\xa0\xbf\xc2\xc3\xe0\xe4\xed\xef\xf0\xf4\xf5\xff") + list("é中😀".encode())
    for _ in range(3000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        chunks, position = [], 0
        while position < len(data):
            size = rng.randint(1, 4)
            chunks.append(data[position : position + size])
            position += size
        printed, tail = feed_all(chunks)
        assert "".join(printed) + tail == data.decode("utf-8", errors="replace"), data
