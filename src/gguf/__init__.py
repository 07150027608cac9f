"""Reading llama.cpp's GGUF files without llama.cpp: header, metadata, tensor infos, tensors over mmap.

`reader.py` parses and checks the file (any architecture); `model.py` maps a `llama` file's keys and
tensor names to ModelArgs and ModelWeights. `model` is not imported here: it builds on
src/model/loader.py, which imports this package lazily.
"""

from .ggmltypes import GGML_TYPES, SUPPORTED_TYPE_NAMES, GGMLType, ggml_type
from .reader import (
    DEFAULT_ALIGNMENT,
    GGUF_MAGIC,
    SUPPORTED_VERSIONS,
    GGUFFile,
    GGUFTensorInfo,
    GGUFValueType,
    has_gguf_magic,
    read_gguf,
)

__all__ = [
    "DEFAULT_ALIGNMENT",
    "GGML_TYPES",
    "GGMLType",
    "GGUFFile",
    "GGUFTensorInfo",
    "GGUFValueType",
    "GGUF_MAGIC",
    "SUPPORTED_TYPE_NAMES",
    "SUPPORTED_VERSIONS",
    "ggml_type",
    "has_gguf_magic",
    "read_gguf",
]
