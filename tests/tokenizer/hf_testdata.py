"""Tiny Hugging Face tokenizer directories, built with the `tokenizers` package in the test run.

Two shapes that real models use:
- byte-level BPE (GPT-2, SmolLM2, Llama 3): ByteLevel pre-tokenizer and decoder, special tokens
  added, a ChatML chat template in tokenizer_config.json, EOS ids in generation_config.json;
- SentencePiece-style BPE with byte fallback (Llama 2's tokenizer.json): "▁" for spaces through a
  normalizer, the 256 "<0xXX>" byte pieces in the vocab, a decoder that replaces "▁", falls back
  to bytes and strips the dummy prefix, BOS put in front by the post-processor, the chat template
  in its own chat_template.jinja.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

TRAINING_TEXT = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, hello tokens; 12345 and 678",
    "byte pair encoding merges the most frequent pair of symbols",
    "In the beginning God created the heaven and the earth.",
    "def encode(self, text: str) -> list[int]:",
    "café naïve Ünïcödé 你好 👋",
] * 30

CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)


def _write(folder: Path, name: str, value: Any) -> None:
    (folder / name).write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")


def byte_level_dir(folder: Path) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING_TEXT, trainer)
    tok.add_tokens([tokenizers.AddedToken("<think>", special=False, normalized=False)])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    _write(folder, "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>",
        "chat_template": CHATML_TEMPLATE,
    })
    _write(folder, "generation_config.json", {"bos_token_id": 1, "eos_token_id": [2, 0]})
    return folder


def sentencepiece_style_dir(folder: Path) -> Path:
    tokenizers = pytest.importorskip("tokenizers")
    # Train on "▁"-marked words (as SentencePiece would see them), then assemble Llama 2's layout.
    trainer_tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    trainer_tok.pre_tokenizer = tokenizers.pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=400, show_progress=False)
    trainer_tok.train_from_iterator([t for t in TRAINING_TEXT if "你" not in t], trainer)
    spec = json.loads(trainer_tok.to_str())
    learned = sorted(spec["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab: dict[str, int] = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for value in range(256):
        vocab[f"<0x{value:02X}>"] = len(vocab)
    for text, _ in learned:
        vocab.setdefault(text, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
    model = tokenizers.models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True)
    tok = tokenizers.Tokenizer(model)
    tok.normalizer = tokenizers.normalizers.Sequence(
        [tokenizers.normalizers.Prepend("\u2581"), tokenizers.normalizers.Replace(" ", "\u2581")]
    )
    tok.decoder = tokenizers.decoders.Sequence(
        [
            tokenizers.decoders.Replace("\u2581", " "),
            tokenizers.decoders.ByteFallback(),
            tokenizers.decoders.Fuse(),
            tokenizers.decoders.Strip(" ", 1, 0),
        ]
    )
    tok.add_special_tokens(
        [tokenizers.AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")]
    )
    tok.post_processor = tokenizers.processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    _write(folder, "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": {"content": "<s>", "special": True, "__type": "AddedToken"},
        "eos_token": "</s>",
        "unk_token": "<unk>",
    })
    (folder / "chat_template.jinja").write_text(LLAMA2_TEMPLATE, encoding="utf-8")
    return folder


def transformers_tokenizer(folder: Path) -> Any:
    transformers = pytest.importorskip("transformers")
    from transformers.utils import logging

    logging.set_verbosity_error()
    return transformers.AutoTokenizer.from_pretrained(str(folder))
