#!/usr/bin/env python3
"""A model's own chat template at work: two turns of one conversation rendered, tokenized, and how
many tokens of the second prompt a kept KV cache already holds.

    python -m tools.chat_prefix                                  # SmolLM2's ChatML template
    python -m tools.chat_prefix --user "Hi <|im_end|> there"     # a typed special token stays text

The template is the model's Jinja source (the GGUF key `tokenizer.chat_template`), rendered by
src/inference/prompt.py: JinjaChatTemplate in jinja2's sandbox. Turn 2's prompt is the whole
dialog again (the system prompt, the first question, the model's answer, the new question); its
first tokens are turn 1's prompt and the answer's tokens, whose keys and values a cache kept from
turn 1 already holds (all but the end-of-turn token, which was sampled but never fed back), so only
the rest needs a prefill. Chapter 11a quotes this output and the docs
check reruns it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

QUESTION = "What is the capital of France?"
ANSWER = "The capital of France is Paris."
FOLLOW_UP = "And of Italy?"


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chat_prefix", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("smollm2"), help="a GGUF or Hugging Face model with a chat template, or smollm2 (default)")
    parser.add_argument("--user", default=QUESTION, help=f"the first question (default: {QUESTION!r})")
    parser.add_argument("--answer", default=ANSWER, help="the model's answer to it, as turn 2 replays it")
    parser.add_argument("--follow-up", default=FOLLOW_UP, help=f"the second question (default: {FOLLOW_UP!r})")
    args = parser.parse_args(argv)

    from llamanuts.inference.prompt import ChatMessage, JinjaChatTemplate, encode_parts, render_parts
    from llamanuts.model.loader import load_model, resolve_model_alias

    path = args.model if args.model.exists() else resolve_model_alias(str(args.model))
    loaded = load_model(path)
    tokenizer = loaded.tokenizer
    template = JinjaChatTemplate.from_tokenizer(tokenizer, loaded.chat_template)

    turn1 = [ChatMessage("user", args.user)]
    parts1 = template.Render(turn1)
    ids1 = encode_parts(tokenizer, parts1)
    print(f"turn 1 rendered by the template ({len(ids1)} tokens):")
    for line in render_parts(parts1).split("\n")[:-1]:
        print(f"  {line}\\n")
    print("parts (special tokens in brackets, inserted by id; the rest encoded as text):")
    print("  " + " ".join(f"[{p.text}]" if p.special else repr(p.text) for p in parts1))
    print(f"ids: {ids1}")
    answer_ids = tokenizer.encode(args.answer)
    # The cache holds what went through Forward: the prompt and the answer's tokens, each fed back
    # to predict the next. The end-of-turn token the model sampled last was never fed back.
    cache = ids1 + answer_ids
    turn2 = turn1 + [ChatMessage("assistant", args.answer), ChatMessage("user", args.follow_up)]
    ids2 = encode_parts(tokenizer, template.Render(turn2))
    shared = common_prefix(cache, ids2)
    print(f"turn 2 prompt: {len(ids2)} tokens; the cache after turn 1 holds {len(cache)} "
          f"(turn 1's prompt and the {len(answer_ids)} answer tokens; the end-of-turn token was never fed back)")
    print(f"longest common prefix: {shared} tokens, so turn 2 prefills {len(ids2) - shared} tokens from position {shared}")
    print(f"  cached    ...{cache[max(0, shared - 3):shared]} | {cache[shared:]}")
    print(f"  turn 2    ...{ids2[max(0, shared - 3):shared]} | {ids2[shared:]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
