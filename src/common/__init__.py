"""Shared by every layer: logging, errors, memory mapping."""

from .errors import (
    DebugLogInUseError,
    DTypeError,
    InsufficientMemoryError,
    LlamaError,
    ModelArgsError,
    ModelFileError,
    SequenceLengthError,
    ShapeError,
    TokenizerError,
    UnsafeModelError,
)
from .logger import GLogger, Logger, debug_log_writable, format_shape

__all__ = [
    "DebugLogInUseError",
    "DTypeError",
    "InsufficientMemoryError",
    "GLogger",
    "LlamaError",
    "Logger",
    "ModelArgsError",
    "ModelFileError",
    "SequenceLengthError",
    "ShapeError",
    "TokenizerError",
    "UnsafeModelError",
    "debug_log_writable",
    "format_shape",
]
