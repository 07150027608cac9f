"""The tokenizer a GGUF file describes in its metadata: `tokenizer_from_gguf(metadata, path)`.

A GGUF has no tokenizer file; llama.cpp's converters store the vocab as metadata keys:

    tokenizer.ggml.model          "gpt2" (byte-level BPE) or "llama" (SentencePiece-style)
    tokenizer.ggml.pre            the pre-tokenizer's name ("smollm", "llama-bpe", ...; BPE only)
    tokenizer.ggml.tokens         the vocab entries, by id
    tokenizer.ggml.scores         merge scores, by id ("llama")
    tokenizer.ggml.token_type     1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    tokenizer.ggml.merges         "left right", best first ("gpt2")
    tokenizer.ggml.bos_token_id, .eos_token_id, .unknown_token_id, .padding_token_id,
    tokenizer.ggml.eot_token_id, .eom_token_id      (end of turn / of message, when present)
    tokenizer.ggml.add_bos_token, .add_eos_token, .add_space_prefix
    tokenizer.chat_template       the model's Jinja chat template

`metadata` is every key of the file as plain values (str, int, float, bool; numeric arrays as 1-D
numpy arrays; string arrays as list[str]), as the GGUF reader hands them. Everything is checked
before use: lengths agree, ids lie inside the vocab, flags are booleans; a problem is a
TokenizerError naming the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..common.saferepr import short_repr
from ..common.errors import TokenizerError
from .bpe_tokenizer import BPETokenizer, pre_tokenizer_named
from .spm_tokenizer import SPMTokenizer
from .tokenizer import Tokenizer, TokenType, parse_byte_piece

PREFIX = "tokenizer.ggml."
SUPPORTED_MODELS = {"gpt2": "byte-level BPE", "llama": "SentencePiece-style"}
# The pre-tokenizer llama.cpp falls back to when a BPE file names none.
DEFAULT_PRE = "default"
# llama.cpp's Llama 3 names: BOS is added to prompts unless the file says otherwise.
_LLAMA3_PRE = ("llama3", "llama-v3", "llama-bpe")


def tokenizer_from_gguf(metadata: Mapping[str, Any], path: str | Path) -> Tokenizer:
    """Build the tokenizer `metadata` (a GGUF file's keys) describes; `path` names it in errors."""
    keys = _Keys(metadata, path)
    model = keys.string("model")
    if model == "gpt2":
        return _bpe_tokenizer(keys)
    if model == "llama":
        return _spm_tokenizer(keys)
    supported = ", ".join(f"{name!r} ({what})" for name, what in SUPPORTED_MODELS.items())
    raise TokenizerError(path, f"{PREFIX}model is {short_repr(model)}, a tokenizer we do not support; supported: {supported}")


def _bpe_tokenizer(keys: _Keys) -> BPETokenizer:
    tokens = keys.strings("tokens")
    count = len(tokens)
    types = keys.token_types(count)
    merges = keys.strings("merges")
    pre_name = keys.optional_string("pre") or DEFAULT_PRE
    pre = pre_tokenizer_named(keys.path, pre_name)
    add_bos = keys.flag("add_bos_token")
    return BPETokenizer(
        keys.path,
        tokens,
        types,
        merges,
        pre,
        bos_id=keys.token_id("bos_token_id", tokens),
        eos_id=keys.token_id("eos_token_id", tokens),
        unk_id=keys.token_id("unknown_token_id", tokens),
        extra_stop_ids=keys.end_of_turn_ids(tokens),
        add_bos=add_bos if add_bos is not None else pre_name in _LLAMA3_PRE,
        chat_template=keys.chat_template(),
    )


def _spm_tokenizer(keys: _Keys) -> SPMTokenizer:
    tokens = keys.strings("tokens")
    count = len(tokens)
    scores = keys.scores(count)
    # llama.cpp's defaults for a SentencePiece vocab that does not name its ids: Llama 2's.
    bos_id = keys.token_id("bos_token_id", tokens, default=1)
    eos_id = keys.token_id("eos_token_id", tokens, default=2)
    unk_id = keys.token_id("unknown_token_id", tokens, default=0)
    types = keys.token_types(count, inferred_controls=(bos_id, eos_id), inferred_unknown=unk_id, byte_pieces=tokens)
    add_bos = keys.flag("add_bos_token")
    add_space_prefix = keys.flag("add_space_prefix")
    return SPMTokenizer(
        keys.path,
        tokens,
        scores,
        types,
        bos_id=bos_id,
        eos_id=eos_id,
        unk_id=unk_id,
        extra_stop_ids=keys.end_of_turn_ids(tokens),
        add_space_prefix=True if add_space_prefix is None else add_space_prefix,
        add_bos=True if add_bos is None else add_bos,
        chat_template=keys.chat_template(),
    )


class _Keys:
    """Typed, checked access to the tokenizer keys of one file's metadata."""

    def __init__(self, metadata: Mapping[str, Any], path: str | Path) -> None:
        self.metadata = metadata
        self.path = path

    def _get(self, name: str) -> Any:
        return self.metadata.get(PREFIX + name)

    def _fail(self, name: str, message: str) -> TokenizerError:
        return TokenizerError(self.path, f"{PREFIX}{name} {message}")

    def string(self, name: str) -> str:
        value = self._get(name)
        if value is None:
            raise self._fail(name, "is missing: the file does not say which tokenizer its model needs")
        if not isinstance(value, str):
            raise self._fail(name, f"should be a string, got {type(value).__name__}")
        return value

    def optional_string(self, name: str) -> str | None:
        return None if self._get(name) is None else self.string(name)

    def strings(self, name: str) -> list[str]:
        value = self._get(name)
        if value is None:
            raise self._fail(name, "is missing")
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise self._fail(name, f"should be an array of strings, got {type(value).__name__}")
        if not value:
            raise self._fail(name, "is empty")
        return list(value)

    def _numbers(self, name: str, count: int, kinds: str) -> np.ndarray | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, np.ndarray) or value.ndim != 1 or value.dtype.kind not in kinds:
            shown = f"a {value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
            wanted = "integers" if kinds == "iu" else "numbers"
            raise self._fail(name, f"should be a 1-D array of {wanted}, got {shown}")
        if len(value) != count:
            raise self._fail(name, f"has {len(value)} entries but {PREFIX}tokens has {count}")
        return value

    def scores(self, count: int) -> list[float]:
        value = self._numbers("scores", count, "fiu")
        if value is None:
            raise self._fail("scores", "is missing: a SentencePiece-style vocab merges by score")
        scores = value.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(scores))
        if bad.size:
            raise self._fail("scores", f"has a non-finite score {scores[bad[0]]} for token {int(bad[0])}")
        return scores.tolist()

    def token_types(
        self,
        count: int,
        inferred_controls: Sequence[int | None] = (),
        inferred_unknown: int | None = None,
        byte_pieces: Sequence[str] = (),
    ) -> list[int]:
        """The types by id. Old files without the key: all normal, except the named special ids
        (and, for SentencePiece, "<0xXX>" byte pieces), as the vocab would have typed them."""
        value = self._numbers("token_type", count, "iu")
        if value is None:
            types = [int(TokenType.NORMAL)] * count
            for id, text in enumerate(byte_pieces):
                if parse_byte_piece(text) is not None:
                    types[id] = TokenType.BYTE
            for id in inferred_controls:
                if id is not None:
                    types[id] = TokenType.CONTROL
            if inferred_unknown is not None:
                types[inferred_unknown] = TokenType.UNKNOWN
            return types
        known = {int(t) for t in TokenType}
        bad = [i for i, t in enumerate(value.tolist()) if t not in known]
        if bad:
            raise self._fail("token_type", f"has type {int(value[bad[0]])} for token {bad[0]}; "
                                           f"known types are {sorted(known)}")
        return [int(t) for t in value.tolist()]

    def token_id(self, name: str, tokens: Sequence[str], default: int | None = None) -> int | None:
        """A special token's id: an integer inside the vocab, naming a token with some text (an
        empty BOS would render as '' in a chat template and silently drop out of the prompt)."""
        count = len(tokens)
        value = self._get(name)
        if value is None:
            return default if default is not None and default < count and tokens[default] else None
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise self._fail(name, f"should be an integer token id, got {type(value).__name__}")
        if not 0 <= int(value) < count:
            raise self._fail(name, f"is {int(value)}, outside the vocab of {count} tokens")
        if not tokens[int(value)]:
            raise self._fail(name, f"is {int(value)}, and token {int(value)} is an empty string: it cannot be that special token")
        return int(value)

    def end_of_turn_ids(self, tokens: Sequence[str]) -> list[int]:
        """End of turn / end of message: chat models stop there as well as at EOS."""
        ids = [self.token_id("eot_token_id", tokens), self.token_id("eom_token_id", tokens)]
        return [id for id in ids if id is not None]

    def flag(self, name: str) -> bool | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, (bool, np.bool_)):
            raise self._fail(name, f"should be a boolean, got {type(value).__name__}")
        return bool(value)

    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        if value is None:
            return None
        if not isinstance(value, str):
            raise TokenizerError(self.path, f"tokenizer.chat_template should be a string, got {type(value).__name__}")
        return value


__all__ = ["SUPPORTED_MODELS", "tokenizer_from_gguf"]
