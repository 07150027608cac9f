"""User-defined tokens: vocab entries that are matched whole in the text before any merging.

Some vocabularies add tokens after training (GGUF token type 4, USER_DEFINED; Hugging Face's
non-special added tokens), such as "<think>". Merging would never build them, so both llama.cpp
and Hugging Face cut them out of the text first and encode the pieces in between as usual. Control
tokens are NOT matched here: text a user typed never becomes a control token.

Where two of them could match at the same place the longer wins, and the leftmost match comes
first (Hugging Face's rule; llama.cpp matches the longest token everywhere first, which differs
only when two user-defined tokens overlap in the text).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping


class AddedTokenSplitter:
    """Cuts text into (text, None) runs and (token text, id) matches of user-defined tokens."""

    def __init__(self, tokens: Mapping[str, int]) -> None:
        self.tokens: dict[str, int] = {text: id for text, id in tokens.items() if text}
        # Longest first: at one position the regex takes the first alternative that matches.
        alternatives = sorted(self.tokens, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def split(self, text: str) -> Iterator[tuple[str, int | None]]:
        if self._pattern is None:
            if text:
                yield text, None
            return
        position = 0
        for match in self._pattern.finditer(text):
            if match.start() > position:
                yield text[position : match.start()], None
            yield match.group(), self.tokens[match.group()]
            position = match.end()
        if position < len(text):
            yield text[position:], None


__all__ = ["AddedTokenSplitter"]
