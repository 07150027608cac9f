"""A Hugging Face model directory's tokenizer: `tokenizer.json`, run by the `tokenizers` package.

`tokenizer.json` describes a whole pipeline (normalizer, pre-tokenizer, model, post-processor,
decoder, added tokens) in a format that is best read by its own library, so encoding is left to
`tokenizers`. This class adds what the rest of the project needs, read from the files beside it:

    tokenizer_config.json     bos_token / eos_token / unk_token, add_bos_token, chat_template
    special_tokens_map.json   bos_token / eos_token / unk_token, when the config has none
    generation_config.json    eos_token_id (an int or a list: every one ends generation), bos_token_id
    chat_template.jinja       the chat template, when saved on its own (it wins over the config's)

Control (special) tokens are never produced from text: encoding runs with the library's
`encode_special_tokens` on, so "<|im_end|>" typed by a user is split like any other text.
Non-special added tokens (e.g. "<think>") are still matched whole, as Hugging Face does.

`piece_bytes` needs the exact bytes a token prints, which depends on the decoder: byte-level
(GPT-2's alphabet) or SentencePiece-style ("▁" for spaces, "<0xXX>" byte fallback). The decoder
is read from tokenizer.json; one we cannot account for exactly is an error, not a guess.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

from ..common.saferepr import short_repr
from ..common.errors import TokenizerError
from ..common.files import read_text_file
from .bpe_tokenizer import unicode_to_bytes
from .tokenizer import Tokenizer, check_text, parse_byte_piece

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"
GENERATION_CONFIG = "generation_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
# Bound what a file can make us read: the largest real tokenizer.json files are tens of MB.
MAX_JSON_BYTES = 512 * 1024 * 1024

_T = TypeVar("_T")


def _in_library(path: str | Path, call: Callable[[], _T]) -> _T:
    """`call()`, a call into `tokenizers`, with a Rust panic turned into a TokenizerError.

    A panic in the library (a post-processor naming a token its map lacks, found by the fuzz
    suite) surfaces as pyo3's PanicException, a BaseException that `except Exception` lets through
    to a traceback. It has no importable class, so it is told by its name.
    """
    try:
        return call()
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise TokenizerError(path, f"the tokenizers package failed on it ({type(exc).__name__}: {str(exc)[:200]})") from None


@dataclass
class DecoderRules:
    """How tokenizer.json's decoder turns one token into bytes."""

    byte_level: bool = False  # ByteLevel: characters of GPT-2's alphabet stand for bytes
    byte_fallback: bool = False  # ByteFallback: "<0xXX>" is one raw byte
    replacements: list[tuple[str, str]] = field(default_factory=list)  # Replace / Metaspace: "▁" -> " "
    strips_leading_space: bool = False  # Strip(" ", 1) / Metaspace: the dummy prefix is dropped


_SUPPORTED_DECODERS = "ByteLevel, Metaspace, Replace (of a string), ByteFallback, Fuse, Strip, and Sequence of them"


def read_decoder_rules(path: str | Path, decoder: Mapping[str, Any] | None) -> DecoderRules:
    rules = DecoderRules()
    if decoder is not None:
        _add_decoder(path, decoder, rules)
    return rules


def _add_decoder(path: str | Path, decoder: Mapping[str, Any], rules: DecoderRules) -> None:
    kind = decoder.get("type")
    if kind == "Sequence":
        for step in decoder.get("decoders") or []:
            _add_decoder(path, step, rules)
    elif kind == "ByteLevel":
        rules.byte_level = True
    elif kind == "ByteFallback":
        rules.byte_fallback = True
    elif kind == "Fuse":
        pass  # joins the strings of consecutive tokens: no change to any token's bytes
    elif kind == "Replace":
        pattern = decoder.get("pattern") or {}
        if "String" not in pattern:
            raise TokenizerError(path, f"the decoder replaces a regex ({pattern}), which we do not support")
        rules.replacements.append((str(pattern["String"]), str(decoder.get("content", ""))))
    elif kind == "Strip":
        if decoder.get("content") == " " and int(decoder.get("start", 0)) >= 1 and int(decoder.get("stop", 0)) == 0:
            rules.strips_leading_space = True
        else:
            raise TokenizerError(path, f"the decoder strips {decoder}, which we do not support (only one leading space)")
    elif kind == "Metaspace":
        replacement = str(decoder.get("replacement", "\u2581"))
        rules.replacements.append((replacement, " "))
        scheme = decoder.get("prepend_scheme", "always" if decoder.get("add_prefix_space", True) else "never")
        rules.strips_leading_space = scheme != "never"
    else:
        raise TokenizerError(path, f"tokenizer.json's decoder {short_repr(kind)} is not supported; supported: {_SUPPORTED_DECODERS}")


class HFTokenizer(Tokenizer):
    """tokenizer.json through `tokenizers`, with the ids and flags of the config files beside it."""

    kind: ClassVar[str] = "huggingface"

    def __init__(
        self,
        path: str | Path,
        config: Mapping[str, Any] | None = None,
        generation_config: Mapping[str, Any] | None = None,
        chat_template: str | None = None,
    ) -> None:
        """`path` is tokenizer.json; `config` is tokenizer_config.json merged over
        special_tokens_map.json (see `load_hf_tokenizer`), `generation_config` its own file."""
        import tokenizers  # the engine only needs it for Hugging Face directories

        config = dict(config or {})
        generation_config = dict(generation_config or {})
        text = _read_text(path)
        spec = _parse_json(path, text)
        try:
            self._tokenizer = _in_library(path, lambda: tokenizers.Tokenizer.from_str(text))
        except Exception as exc:  # the library reports any problem as a plain Exception
            if isinstance(exc, TokenizerError):
                raise
            raise TokenizerError(path, f"not a tokenizer.json the tokenizers package can read: {exc}") from exc
        # Special tokens typed in text are encoded as text, never as their ids.
        self._tokenizer.encode_special_tokens = True
        self.rules = read_decoder_rules(path, spec.get("decoder"))
        self.strip_leading_space_after_bos = self.rules.strips_leading_space
        self.chat_template = (
            chat_template if chat_template is not None else _config_chat_template(Path(path).parent / TOKENIZER_CONFIG, config)
        )
        # The file the template came from, for the messages of a template that fails to render.
        self.chat_template_path = Path(path).parent / (CHAT_TEMPLATE_FILE if chat_template is not None else TOKENIZER_CONFIG)

        added = self._tokenizer.get_added_tokens_decoder()
        self._special_ids = {id for id, token in added.items() if token.special}
        self._added_text = {id: token.content for id, token in added.items() if not token.special}
        size = max([self._tokenizer.get_vocab_size(with_added_tokens=False) - 1, *added.keys()]) + 1
        # Errors name the file that said it (the configs sit beside tokenizer.json).
        self._config_path = Path(path).parent / TOKENIZER_CONFIG
        generation_path = Path(path).parent / GENERATION_CONFIG
        bos_id = self._config_token_id(config, "bos_token", size)
        if bos_id is None:
            generation_bos = _generation_ids(generation_path, generation_config, "bos_token_id", size)
            bos_id = generation_bos[0] if generation_bos else None
        eos_ids = _generation_ids(generation_path, generation_config, "eos_token_id", size)
        eos_id = self._config_token_id(config, "eos_token", size)
        if eos_id is None and eos_ids:
            eos_id = eos_ids[0]
        unk_id = self._config_token_id(config, "unk_token", size)
        if unk_id is None:
            unk_id = self._model_unk_id(spec)
        stops = {id for id in [eos_id, *eos_ids] if id is not None}
        specials = {added[id].content: id for id in self._special_ids}
        super().__init__(path, size, bos_id, eos_id, unk_id, frozenset(stops), specials)
        self.add_bos = _in_library(path, lambda: _add_bos(config, self._tokenizer, bos_id))
        self._bytes: dict[int, bytes] = {}

    # ---- reading the configuration ------------------------------------------------------------
    def _config_token_id(self, config: Mapping[str, Any], key: str, size: int) -> int | None:
        """The id of tokenizer_config's `key` ("<s>" or {"content": "<s>", ...}); None if unset."""
        value = config.get(key)
        if value is None:
            return None
        content = value.get("content") if isinstance(value, Mapping) else value
        if not isinstance(content, str):
            raise TokenizerError(self._config_path, f"{key} should be a token string, got {short_repr(value)}")
        id = self._tokenizer.token_to_id(content)
        if id is None or not 0 <= id < size:
            raise TokenizerError(self._config_path, f"{key} {short_repr(content)} is not a token of {TOKENIZER_JSON}")
        return int(id)

    def _model_unk_id(self, spec: Mapping[str, Any]) -> int | None:
        unk = (spec.get("model") or {}).get("unk_token")
        if not isinstance(unk, str):
            return None
        id = self._tokenizer.token_to_id(unk)
        return None if id is None else int(id)

    # ---- Tokenizer ----------------------------------------------------------------------------
    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        check_text(text)
        ids = list(_in_library(self.path, lambda: self._tokenizer.encode(text, add_special_tokens=False).ids))
        if bos and self.bos_id is not None:
            ids.insert(0, self.bos_id)
        if eos and self.eos_id is not None:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: list[int]) -> str:
        """The text, control tokens left out; the dummy-prefix space of the first piece dropped
        when the decoder does that (as Hugging Face's decode does)."""
        return self.join_pieces(ids, drop_first_space=self.rules.strips_leading_space)

    def id_to_piece(self, id: int) -> str:
        piece = self._tokenizer.id_to_token(self.check_id(id))
        return "" if piece is None else str(piece)

    def piece_to_id(self, piece: str) -> int:
        id = self._tokenizer.token_to_id(piece)
        if id is None:
            raise KeyError(f"piece {piece!r} is not in the vocab of {self.path}")
        return int(id)

    def piece_bytes(self, id: int) -> bytes:
        cached = self._bytes.get(id)
        if cached is None:
            cached = self._compute_piece_bytes(self.check_id(id))
            self._bytes[id] = cached
        return cached

    def _compute_piece_bytes(self, id: int) -> bytes:
        if id in self._special_ids:
            return b""
        if id in self._added_text:
            return self._added_text[id].encode("utf-8")  # added tokens are stored as their text
        piece = self._tokenizer.id_to_token(id)
        if piece is None:
            return b""  # an id no token has (a hole in the vocab)
        if self.rules.byte_fallback:
            value = parse_byte_piece(piece)
            if value is not None:
                return bytes([value])
        if self.rules.byte_level:
            table = unicode_to_bytes()
            if all(char in table for char in piece):
                return bytes(table[char] for char in piece)
        for old, new in self.rules.replacements:
            piece = piece.replace(old, new)
        return piece.encode("utf-8")

    def is_byte_piece(self, id: int) -> bool:
        """A "<0xXX>" byte-fallback piece, or a byte-level token that is one byte 0x80 .. 0xFF."""
        self.check_id(id)
        if id in self._special_ids or id in self._added_text:
            return False
        piece = self._tokenizer.id_to_token(id)
        if piece is None:
            return False
        if self.rules.byte_fallback and parse_byte_piece(piece) is not None:
            return True
        data = self.piece_bytes(id)
        return self.rules.byte_level and len(data) == 1 and data[0] >= 0x80


def load_hf_tokenizer(directory: str | Path) -> HFTokenizer:
    """The tokenizer of a Hugging Face model directory (tokenizer.json and the configs beside it)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise TokenizerError(directory, "not a directory (expected a Hugging Face model directory)")
    tokenizer_json = folder / TOKENIZER_JSON
    if not _present(tokenizer_json):
        raise TokenizerError(folder, f"has no {TOKENIZER_JSON}")
    config: dict[str, Any] = {}
    for name in (SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG):  # the config wins where both say
        file = folder / name
        if _present(file):
            config.update(_read_json(file))
    generation_file = folder / GENERATION_CONFIG
    generation = _read_json(generation_file) if _present(generation_file) else {}
    template_file = folder / CHAT_TEMPLATE_FILE
    template = _read_text(template_file) if _present(template_file) else None
    return HFTokenizer(tokenizer_json, config, generation, template)


# ---- helpers ---------------------------------------------------------------------------------
def _read_text(path: Path | str) -> str:
    """A regular file of at most MAX_JSON_BYTES, as UTF-8 text (a FIFO or /dev/zero is refused)."""
    return read_text_file(path, MAX_JSON_BYTES, TokenizerError, f"{Path(path).name} file")


def _present(path: Path) -> bool:
    """Whether the directory holds an entry of this name: a FIFO, a device or a dangling link is
    there too (and then reading it says what it is), where `is_file()` would pass it over silently."""
    return os.path.lexists(path)


def _read_json(path: Path | str) -> dict[str, Any]:
    return _parse_json(path, _read_text(path))


def _parse_json(path: Path | str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TokenizerError(path, f"is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise TokenizerError(path, f"should hold a JSON object, got {type(value).__name__}")
    return value


def _generation_ids(path: str | Path, generation: Mapping[str, Any], key: str, size: int) -> list[int]:
    """generation_config's `key` as a list of ids (it may be one int or a list of them)."""
    value = generation.get(key)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < size:
            raise TokenizerError(path, f"{key} {short_repr(value)} is not a token id of the vocab (0 .. {size - 1})")
    return [int(v) for v in values]


def _config_chat_template(path: str | Path, config: Mapping[str, Any]) -> str | None:
    """tokenizer_config's chat_template: a string, or a list of {"name", "template"} (the "default")."""
    value = config.get("chat_template")
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, Mapping)}
        chosen = named.get("default", next(iter(named.values()), None))
        if isinstance(chosen, str):
            return chosen
    raise TokenizerError(path, "chat_template should be a string or a list of named templates")


def _add_bos(config: Mapping[str, Any], tokenizer: Any, bos_id: int | None) -> bool:
    """Whether prompts start with BOS: tokenizer_config's add_bos_token if it says, else whether
    tokenizer.json's post-processor puts BOS in front of a single text."""
    flag = config.get("add_bos_token")
    if isinstance(flag, bool):
        return flag
    if bos_id is None:
        return False
    return list(tokenizer.encode("", add_special_tokens=True).ids[:1]) == [bos_id]


__all__ = ["DecoderRules", "HFTokenizer", "load_hf_tokenizer", "read_decoder_rules"]
