"""The tokenizer fidelity corpus (tests/fixtures/tokenizer/corpus.jsonl, made by
tools/make_tokenizer_corpus.py): prose, code, emoji, CJK, whitespace runs, numbers, mixed scripts."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "tokenizer" / "corpus.jsonl"


@lru_cache(maxsize=1)
def corpus() -> tuple[str, ...]:
    return tuple(json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines())
