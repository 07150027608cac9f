"""A streaming UTF-8 decoder: token bytes in, text that is safe to print out.

A token does not always end on a character boundary. With byte-fallback vocabularies (Llama 2,
llama2.c) an emoji such as "😀" (F0 9F 98 80) arrives as four tokens `<0xF0>` `<0x9F>` `<0x98>`
`<0x80>`, and a tiktoken (Llama 3) token may hold the first two bytes of a CJK character. Printing
each token's bytes as soon as it comes would print broken characters, so the decoder keeps the
bytes of an incomplete character waiting until the character is whole.

Invalid input never raises: each maximal invalid subsequence becomes one U+FFFD, the same rule as
Python's `bytes.decode("utf-8", errors="replace")` (and the Unicode standard's recommended
practice), so `feed` over any split of a byte string prints exactly what a whole-string decode
would. `finish()` turns a dangling incomplete character into U+FFFD.
"""

from __future__ import annotations

from dataclasses import dataclass

REPLACEMENT_CHARACTER = "\ufffd"

# The valid range of the byte right after a lead byte. Tighter than 80..BF for four lead bytes,
# because UTF-8 forbids overlong forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
_SECOND_BYTE_RANGE: dict[int, tuple[int, int]] = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}
_CONTINUATION = (0x80, 0xBF)


def sequence_length(lead: int) -> int:
    """How many bytes a character starting with `lead` has; 0 if `lead` cannot start one."""
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0  # a continuation byte, an overlong lead (C0, C1) or F5..FF


def _fits(lead: int, index: int, byte: int) -> bool:
    """Whether `byte` may stand at position `index` (1, 2 or 3) of a character led by `lead`."""
    low, high = _SECOND_BYTE_RANGE.get(lead, _CONTINUATION) if index == 1 else _CONTINUATION
    return low <= byte <= high


@dataclass
class DecodedChunk:
    """What one `feed` gives back: the text to print now and the bytes still waiting."""

    text: str
    waiting_bytes: bytes


class StreamingUTF8Decoder:
    """Feed bytes in any pieces; get back only whole characters."""

    def __init__(self) -> None:
        self._pending = bytearray()  # the start of an incomplete but so far valid character

    @property
    def waiting_bytes(self) -> bytes:
        return bytes(self._pending)

    def feed(self, data: bytes) -> DecodedChunk:
        out: list[str] = []
        for byte in data:
            self._push(byte, out)
        return DecodedChunk("".join(out), self.waiting_bytes)

    def finish(self) -> str:
        """End of stream: a dangling incomplete character becomes one U+FFFD (never raw bytes)."""
        if not self._pending:
            return ""
        self._pending.clear()
        return REPLACEMENT_CHARACTER

    def reset(self) -> None:
        self._pending.clear()

    # ---- the state machine -------------------------------------------------------------------
    def _push(self, byte: int, out: list[str]) -> None:
        pending = self._pending
        if pending:
            lead = pending[0]
            if _fits(lead, len(pending), byte):
                pending.append(byte)
                if len(pending) == sequence_length(lead):
                    out.append(pending.decode("utf-8"))
                    pending.clear()
                return
            # The character broke off: its valid prefix is one invalid subsequence, and `byte`
            # starts afresh (it may well be the lead of the next character).
            out.append(REPLACEMENT_CHARACTER)
            pending.clear()
        length = sequence_length(byte)
        if length == 1:
            out.append(chr(byte))
        elif length == 0:
            out.append(REPLACEMENT_CHARACTER)
        else:
            pending.append(byte)


__all__ = ["DecodedChunk", "REPLACEMENT_CHARACTER", "StreamingUTF8Decoder", "sequence_length"]
