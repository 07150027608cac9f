"""Hand-built safetensors bytes for the tests, written from the format's specification (8-byte
little-endian header length, JSON header, data section), independently of the reader under test."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

DTYPE_NAMES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64", np.dtype("i1"): "I8",
               np.dtype("<i4"): "I32", np.dtype("<i8"): "I64"}


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits by truncation (exact for values that are already bf16)."""
    return (np.ascontiguousarray(values, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def encode(header: dict[str, Any], data: bytes, pad_to: int = 8, raw_header: bytes | None = None) -> bytes:
    """Length + JSON header (space-padded so the data starts on a multiple of `pad_to`) + data."""
    text = raw_header if raw_header is not None else json.dumps(header).encode("utf-8")
    if pad_to > 1:
        text += b" " * ((-(8 + len(text))) % pad_to)
    return struct.pack("<Q", len(text)) + text + data


def tensors_bytes(
    arrays: dict[str, np.ndarray | tuple[str, np.ndarray]], metadata: dict[str, str] | None = None, pad_to: int = 8
) -> bytes:
    """Arrays laid out back to back in the given order; ("BF16", uint16 bits) for bf16."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    chunks, offset = [], 0
    for name, value in arrays.items():
        dtype, array = value if isinstance(value, tuple) else (DTYPE_NAMES[np.asarray(value).dtype], value)
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype, "shape": list(np.shape(array)), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    return encode(header, b"".join(chunks), pad_to)


def write(path: Path, arrays: dict[str, np.ndarray | tuple[str, np.ndarray]], metadata: dict[str, str] | None = None) -> Path:
    path.write_bytes(tensors_bytes(arrays, metadata))
    return path
