"""A Hugging Face model directory: which files it holds, and the chat template.

    config.json                    the hyperparameters (config.py)
    model.safetensors              the weights, or shards listed by model.safetensors.index.json
    tokenizer.json                 the tokenizer (the `tokenizers` package reads it)
    tokenizer_config.json          special tokens, and often the chat template
    chat_template.jinja            the chat template, in newer saves (transformers 5)
    generation_config.json         the ids that end a reply (eos_token_id), sampling defaults

A directory is recognised as Hugging Face's by config.json plus weights in safetensors.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..common.errors import ModelFileError
from ..common.files import read_text_file
from .checkpoint import INDEX_FILE, SINGLE_FILE, find_safetensors_files
from .config import CONFIG_FILE
from .jsonfile import read_json_file

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
GENERATION_CONFIG_FILE = "generation_config.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
MAX_TOKENIZER_CONFIG_BYTES = 16 << 20  # special tokens of a large vocabulary, and a template
MAX_CHAT_TEMPLATE_BYTES = 1 << 20  # the longest published templates are about 10 KB


def is_hf_directory(path: str | Path) -> bool:
    """config.json and model.safetensors (or its shard index) side by side. Entries of those names
    count even when they are not regular files (a FIFO, a device, a dangling link): reading them
    then says what they are, where a Meta-directory message would mislead."""
    path = Path(path)
    return os.path.lexists(path / CONFIG_FILE) and (
        os.path.lexists(path / SINGLE_FILE) or os.path.lexists(path / INDEX_FILE)
    )


def hf_directory_files(directory: str | Path) -> dict[str, Path]:
    """Role -> file for the files the engine reads ("config", "weights" or "index" + "weights i/n",
    "tokenizer", ...), those present only: the metadata table shows them with their sizes."""
    directory = Path(directory)
    files = {"config": directory / CONFIG_FILE}
    index, weights = find_safetensors_files(directory)
    if index is None:
        files["weights"] = weights[0]
    else:
        files["index"] = index
        files.update({f"weights {i}/{len(weights)}": p for i, p in enumerate(weights, start=1)})
    for role, name in (
        ("tokenizer", TOKENIZER_FILE),
        ("tokenizer_config", TOKENIZER_CONFIG_FILE),
        ("chat_template", CHAT_TEMPLATE_FILE),
        ("generation_config", GENERATION_CONFIG_FILE),
    ):
        if (directory / name).is_file():
            files[role] = directory / name
    return files


def read_chat_template(directory: str | Path) -> str | None:
    """The chat template: chat_template.jinja if present (transformers 5 saves it there and prefers it),
    else tokenizer_config.json's "chat_template" (a string, or a list of named templates of which the
    one named "default" is used, as transformers does). None when the model has none (a base model)."""
    directory = Path(directory)
    jinja = directory / CHAT_TEMPLATE_FILE
    # lexists, not is_file: a FIFO or a dangling link of that name is an error saying what it is.
    if os.path.lexists(jinja):
        return read_text_file(jinja, MAX_CHAT_TEMPLATE_BYTES, ModelFileError, "chat template")
    config_path = directory / TOKENIZER_CONFIG_FILE
    if not os.path.lexists(config_path):
        return None
    template = read_json_file(config_path, MAX_TOKENIZER_CONFIG_BYTES, "tokenizer_config.json").get("chat_template")
    if template is None or isinstance(template, str):
        if template is not None and len(template) > MAX_CHAT_TEMPLATE_BYTES:
            raise ModelFileError(config_path, f"'chat_template' is {len(template):,} characters, more than the limit of {MAX_CHAT_TEMPLATE_BYTES:,}")
        return template
    if isinstance(template, list) and all(isinstance(t, dict) for t in template):
        named = {t.get("name"): t.get("template") for t in template}
        if isinstance(named.get("default"), str):
            return named["default"]
        raise ModelFileError(config_path, f"'chat_template' lists templates {sorted(map(str, named))} but none named 'default' with a template string")
    raise ModelFileError(config_path, f"'chat_template' must be a string or a list of named templates, got {type(template).__name__}")


__all__ = [
    "CHAT_TEMPLATE_FILE",
    "GENERATION_CONFIG_FILE",
    "TOKENIZER_CONFIG_FILE",
    "TOKENIZER_FILE",
    "hf_directory_files",
    "is_hf_directory",
    "read_chat_template",
]
