#!/usr/bin/env python3
"""Byte-level BPE step by step on a real vocabulary: the pre-tokens, GPT-2's byte alphabet, every
merge with its rank, and the ids, checked against our tokenizer.

    python -m tools.bpe_steps                                   # SmolLM2's vocab, "What is the capital of France?"
    python -m tools.bpe_steps --text "In 2024, Paris had 2,102,650 people."

The vocab and the merges are read from the GGUF file's metadata (`tokenizer.ggml.tokens`,
`tokenizer.ggml.merges`, `tokenizer.ggml.pre`). The merging is done here in the plainest way, the
way the BPE papers describe it: look at every adjacent pair, join the one whose merge has the
lowest rank (its line in the merges list), repeat until no pair can join. That is quadratic, and
src/tokenizer/bpe_tokenizer.py does the same in O(n log n) (src/tokenizer/pair_merge.py); the last
line says whether the two give the same ids. Chapter 06a quotes this output and the docs check
reruns it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_TEXT = "What is the capital of France?"


def merge_by_hand(symbols: list[str], ranks: dict[tuple[str, str], int]) -> tuple[list[str], list[str]]:
    """Join the lowest-ranked adjacent pair until none is in the merges list; (result, the steps)."""
    steps: list[str] = []
    while True:
        best = None
        for i in range(len(symbols) - 1):
            rank = ranks.get((symbols[i], symbols[i + 1]))
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, i)
        if best is None:
            return symbols, steps
        rank, i = best
        steps.append(f"rank {rank:>5}: {symbols[i]} + {symbols[i + 1]}")
        symbols = symbols[:i] + [symbols[i] + symbols[i + 1]] + symbols[i + 2 :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bpe_steps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("smollm2"), help="a GGUF file with a gpt2 vocab, or smollm2 (default)")
    parser.add_argument("--text", default=DEFAULT_TEXT, help=f"the text (default: {DEFAULT_TEXT!r})")
    args = parser.parse_args(argv)

    from llamanuts.gguf import read_gguf
    from llamanuts.model.loader import resolve_model_alias
    from llamanuts.tokenizer.bpe_tokenizer import PRE_TOKENIZERS, bytes_to_unicode
    from llamanuts.tokenizer.gguf_vocab import tokenizer_from_gguf

    path = args.model if args.model.exists() else resolve_model_alias(str(args.model))
    gguf = read_gguf(path)
    meta = gguf.metadata
    tokens: list[str] = meta["tokenizer.ggml.tokens"]
    ids = {t: i for i, t in enumerate(tokens)}
    ranks = {tuple(line.split(" ", 1)): rank for rank, line in enumerate(meta["tokenizer.ggml.merges"])}
    alphabet = bytes_to_unicode()
    pre = PRE_TOKENIZERS[meta["tokenizer.ggml.pre"]]

    print(f"{path.name}: {len(tokens)} tokens, {len(ranks)} merges, pre-tokenizer {pre.name!r}")
    print("GPT-2's byte alphabet: " + ", ".join(f"0x{b:02x} -> {alphabet[b]!r}" for b in (0x20, 0x0A, 0x21, 0x41, 0xC3, 0xA9)))
    words = pre.split(args.text)
    print(f"text {args.text!r}")
    print(f"pre-tokens ({len(words)}): {words}")
    all_ids: list[int] = []
    for word in words:
        spelled = [alphabet[b] for b in word.encode("utf-8")]
        merged, steps = merge_by_hand(spelled, ranks)
        word_ids = [ids[s] for s in merged]
        all_ids += word_ids
        print(f"{word!r}: bytes as symbols {spelled}")
        for step in steps:
            print(f"    {step}")
        print(f"    -> {merged} = ids {word_ids}")
    print(f"ids: {all_ids}")
    ours = tokenizer_from_gguf(meta, path).encode(args.text)
    print(f"src/tokenizer/bpe_tokenizer.py encodes the same ids: {'yes' if ours == all_ids else f'NO, it gives {ours}'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
