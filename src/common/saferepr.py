"""short_repr: a repr for error messages that costs at most `limit` characters of work.

Error messages quote what a file contained, and a file can contain anything: a list that holds
itself twice at every one of 40 levels has a 2^40-character repr, a list nested 100,000 deep makes
`repr` recurse past Python's limit. `f"{value!r:.80}"` cuts the text only after all of it was built.
This function walks the value itself, stops at `max_depth` levels, and stops as soon as `limit`
characters are written, so the work is bounded by the limit, not by the value.

Only plain data is spelled out (str, bytes, int, float, bool, None, tuple, list, dict). Any other object
shows as `<TypeName>`, unless its class declares `bounded_repr = True` (its own repr is short and
cannot recurse, like the pickle VM's allow-listed globals).
"""

from __future__ import annotations

from typing import Any

DEFAULT_LIMIT = 80
DEFAULT_DEPTH = 3
# A huge int from a file (LONG1 holds up to 255 bytes, arithmetic on them more) is named by size:
# Python refuses to format ints above 4300 digits, and nobody reads 600 digits in a message.
_MAX_INT_BITS = 128
_BRACKETS = {tuple: ("(", ")"), list: ("[", "]"), dict: ("{", "}")}


def short_repr(value: Any, limit: int = DEFAULT_LIMIT, max_depth: int = DEFAULT_DEPTH) -> str:
    """At most `limit` characters (ending in '...' when cut) describing `value`."""
    writer = _Writer(limit)
    writer.value(value, max_depth)
    return writer.text()


class _Writer:
    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 4)
        self.parts: list[str] = []
        self.room = self.limit + 1  # one character beyond the limit says "it was cut"

    def emit(self, text: str) -> bool:
        """Write `text` (cut to the room left); False once the room is used up."""
        if self.room <= 0:
            return False
        self.parts.append(text[: self.room])
        self.room -= len(text)
        return self.room > 0

    def value(self, value: Any, depth: int) -> bool:
        kind = type(value)
        if kind is str or kind is bytes:
            # Slice first: repr of a 1 GB string would copy it all.
            return self.emit(repr(value[: self.room + 2]))
        if kind is int:
            if value.bit_length() > _MAX_INT_BITS:
                return self.emit(f"<int of {value.bit_length()} bits>")
            return self.emit(repr(value))
        if value is None or kind is bool or kind is float:
            return self.emit(repr(value))
        if kind in _BRACKETS:
            return self.container(value, depth)
        if getattr(kind, "bounded_repr", False):
            return self.emit(repr(value))
        return self.emit(f"<{kind.__name__}>")

    def container(self, value: Any, depth: int) -> bool:
        opening, closing = _BRACKETS[type(value)]
        if depth <= 0:
            return self.emit(f"{opening}...{closing}" if value else opening + closing)
        if not self.emit(opening):
            return False
        items = value.items() if isinstance(value, dict) else value
        for index, item in enumerate(items):
            if index and not self.emit(", "):
                return False
            if isinstance(value, dict):
                key, item = item
                if not (self.value(key, depth - 1) and self.emit(": ")):
                    return False
            if not self.value(item, depth - 1):
                return False
        if type(value) is tuple and len(value) == 1 and not self.emit(","):
            return False
        return self.emit(closing)

    def text(self) -> str:
        text = "".join(self.parts)
        if len(text) > self.limit:
            return text[: self.limit - 3] + "..."
        return text


__all__ = ["DEFAULT_LIMIT", "short_repr"]
