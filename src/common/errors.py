"""The project's exceptions: each one carries a message that names what is wrong and where.

The CLI catches `LlamaError` and prints its message without a traceback, so every error a user can
provoke with a bad file, a bad flag or a bad shape must be one of these, raised with a clear text.
"""

from __future__ import annotations


class LlamaError(Exception):
    """Base class: the CLI prints `type: message` for these and exits with code 2."""


class ShapeError(LlamaError, ValueError):
    """An op got tensors whose shapes do not fit (the message names the op and both shapes)."""


class DTypeError(LlamaError, TypeError):
    """An op got a dtype it does not support, or two dtypes it will not mix."""


class ModelFileError(LlamaError):
    """A model, params or tokenizer file is missing, truncated or inconsistent."""

    def __init__(self, path: object, message: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class UnsafeModelError(ModelFileError):
    """A pickle asked for a global or an opcode outside the allow-list; nothing was executed."""


class ModelArgsError(ModelFileError):
    """params.json (or a llama2.c header) is missing a key, has a wrong type, or disagrees with the weights."""


class TokenizerError(ModelFileError):
    """A tokenizer file could not be recognised or read."""


class SequenceLengthError(LlamaError):
    """Generation would go past the model's sequence length (the KV cache size)."""


class InsufficientMemoryError(LlamaError):
    """An input asks for an allocation (KV cache, RoPE table, converted weights) larger than the
    memory the machine has free; the message says what was asked and what is possible."""


class DebugLogInUseError(LlamaError):
    """Another running process is writing the same debug log (a parallel --debug run)."""
