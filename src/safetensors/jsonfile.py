"""Small JSON files and headers, read with bounds: a size limit before reading, UTF-8, no duplicate keys.

Hugging Face directories hold several JSON files (config.json, the shard index, tokenizer_config.json,
generation_config.json) and every safetensors file starts with a JSON header. Python's parser is safe
(it builds only dicts, lists, strings and numbers), but it reads whatever it is given: only a regular
file is read (a FIFO would block, /dev/zero never ends), its size is checked first so a corrupt file
cannot make us read gigabytes, and nesting too deep for the parser is reported as such instead of a
RecursionError. Messages quote what the file holds only through short_repr, bounded in size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..common.errors import ModelFileError
from ..common.files import read_regular_file
from ..common.saferepr import short_repr


def _no_duplicate_keys(path: str | Path, what: str):  # type: ignore[no-untyped-def]
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                # json.loads would keep the last one silently: two values for one name is a broken file
                raise ModelFileError(path, f"{what}: key {short_repr(key)} appears twice")
            result[key] = value
        return result

    return hook


def parse_json_object(raw: bytes, path: str | Path, what: str) -> dict[str, Any]:
    """`raw` (UTF-8 JSON text) -> a dict; anything else is a ModelFileError naming `path` and `what`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(path, f"{what} is not UTF-8 text (byte {exc.start} is invalid)") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicate_keys(path, what))
    except RecursionError:
        raise ModelFileError(path, f"{what} is nested too deeply to be a valid header or config") from None
    except json.JSONDecodeError as exc:
        raise ModelFileError(path, f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ModelFileError(path, f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ModelFileError(path, f"{what} must be a JSON object, got a {type(value).__name__}")
    return value


def read_json_file(path: str | Path, max_bytes: int, what: str) -> dict[str, Any]:
    """Read a JSON object from the regular file `path`, refusing one larger than `max_bytes` before
    reading it; a missing file, a FIFO, a device or a dangling link is a ModelFileError saying so."""
    path = Path(path)
    return parse_json_object(read_regular_file(path, max_bytes, ModelFileError, what), path, what)


__all__ = ["parse_json_object", "read_json_file"]
