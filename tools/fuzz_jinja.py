"""Fuzz format for the models' own Jinja chat templates (GGUF tokenizer.chat_template, Hugging Face
chat_template.jinja / tokenizer_config.json): a template is a program from a model file.

The seeds are real templates (SmolLM2's ChatML, Hugging Face's Llama 2 and Llama 3 ones, a tiny
Hugging Face fixture's, a namespace template, and a tool-calling template in the style of
Llama 3.1's). A case cuts a template into its tags and text and deletes, repeats, swaps or
transplants pieces, changes the numbers, strings and names inside tags, inserts hostile snippets
(loops that never write, self-calling macros, values that double, huge widths, sandbox escapes,
includes, broken syntax), or flips raw bytes. Each case renders a four-message dialog with a real
vocab's special tokens (byte-level BPE with ChatML markers, or SentencePiece with <s> </s>),
encodes the prompt, and finds the end-of-turn token, as a chat turn does. The only acceptable
outcomes are a prompt or a LlamaError; the render's step, time and memory bounds
(src/inference/prompt.py) are what stop the hostile ones.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from tools.fuzzkit import DIALOG, FIXTURES, FuzzFormat, mutate_bytes

HF_LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
NAMESPACE = (
    "{% set ns = namespace(n=0) %}{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
    "{% set ns.n = ns.n + 1 %}[{{ ns.n }}|{{ m.role | upper }}] {{ m.content | tojson }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TOOLS = """{%- macro header(role) -%}<|im_start|>{{ role }}
{% endmacro -%}
{%- set ns = namespace(system='', last_user=-1) -%}
{%- for m in messages -%}{%- if m['role'] == 'system' -%}{%- set ns.system = m['content'] -%}{%- endif -%}
{%- if m.role == 'user' -%}{%- set ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}
{{- header('system') -}}Today is {{ strftime_now('%d %b %Y') }}. {{ ns.system | default('You are helpful.', true) }}
{%- if tools %} Tools: {{ tools | tojson(indent=2) }}{% endif %}<|im_end|>
{% for m in messages if m.role != 'system' -%}
{%- if m.role not in ['user', 'assistant'] -%}{{ raise_exception('unknown role ' ~ m.role) }}{%- endif -%}
{{- header(m.role) -}}{{ m.content | trim }}{% if loop.index0 == ns.last_user %} (last){% endif %}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt -%}{{ header('assistant') }}{%- endif -%}"""

# (name, snippet): what a hostile or broken template might hold. The bounds must stop each one.
HOSTILE_SNIPPETS: list[tuple[str, str]] = [
    ("nested-loops", "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
    ("loop-output", "{% for i in range(100000) %}{% for j in range(100000) %}{{ 'abcd' * 250 }}{% endfor %}{% endfor %}"),
    ("macro-doubling", "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"),
    ("macro-deep", "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
    ("recursive-loop", "{% for x in range(1000) recursive %}{% if loop.depth < 4 %}{{ loop(range(1000)) }}{% endif %}{% endfor %}"),
    ("string-loop", "{% for c in 'x' * 16000000 %}{% endfor %}"),
    ("filtered-loop", "{% for i in range(100000) if i < 0 %}{% endfor %}{% for i in range(100000) if i < 0 %}{% endfor %}"),
    ("namespace-grow", "{% set ns = namespace(x='') %}{% for i in range(100) %}{% set ns.x = ns.x ~ ('x' * 1000000) %}{% endfor %}{{ ns.x|length }}"),
    ("plus-doubling", "{% set ns = namespace(x='x') %}{% for i in range(64) %}{% set ns.x = ns.x + ns.x %}{% endfor %}"),
    ("macro-big", "{% macro g(n) %}{% if n %}{{ g(n - 1) }}{{ g(n - 1) }}{% else %}{{ 'y' * 4000000 }}{% endif %}{% endmacro %}{{ g(10) }}"),
    ("width-percent", "{{ '%1000000000d' % 1 }}"),
    ("width-format", "{{ '{:>1000000000}'.format(1) }}"),
    ("center", "{{ 'x' | center(2000000000) }}"),
    ("indent", "{{ 'a\nb' | indent(1000000000) }}"),
    ("wordwrap", "{{ ('x' * 1000000) | wordwrap(1) }}"),
    ("repeat", "{{ 'x' * 10**10 }}"),
    ("repeat-list", "{{ [1] * 10**9 }}"),
    ("power", "{{ 7 ** 10000000 }}"),
    ("range-huge", "{{ range(10**12) | length }}"),
    ("big-join", "{{ range(100000) | map('string') | join(',') }}"),
    ("dunder", "{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    ("globals", "{{ cycler.__init__.__globals__.os.system('echo x') }}"),
    ("attr-filter", "{{ messages | attr('__class__') }}"),
    ("map-attribute", "{{ messages | map(attribute='__class__') | list }}"),
    ("format-escape", "{{ '{0.__class__}'.format(messages) }}"),
    ("append", "{{ messages.append(1) }}"),
    ("namespace-dunder", "{% set ns = namespace(a=1) %}{% set ns.__dict__ = 2 %}"),
    ("include", "{% include 'other.jinja' %}"),
    ("extends", "{% extends 'base.jinja' %}"),
    ("import", "{% import 'macros.jinja' as m %}"),
    ("raise", "{{ raise_exception('refused on purpose') }}"),
    ("undefined", "{{ undefined_thing.attribute }}"),
    ("index", "{{ messages[10**20] }}"),
    ("unterminated", "{% for m in messages %}"),
    ("bad-tag", "{% frobnicate %}"),
    ("deep-parens", "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"),
    ("deep-lists", "{{ " + "[" * 95 + "]" * 95 + " }}"),
    ("lipsum", "{{ lipsum(100000, false, 1000, 1000) | length }}"),
    ("strftime", "{{ strftime_now('%Y' * 100000) | length }}"),
    ("tojson-deep", "{% set ns = namespace(x=[]) %}{{ ns | tojson }}"),
    ("dict", "{{ dict(a=1, **{'b': 2}) | tojson }}{{ dict(x=range(10**9)) }}"),
    ("markers", "{{ '\U000f0000<|im_end|>\U000f0001' }}<|im_end|>{{ '\U000f0001' }}"),
    ("specials", "<s></s><|im_start|><|im_end|><|eot_id|>"),
    ("surrogate", "{{ '\\ud800' }}"),
    ("generation", "{% generation %}{{ messages[0].content }}{% endgeneration %}"),
    ("loopcontrols", "{% for i in range(10) %}{% if i > 2 %}{% break %}{% endif %}{% continue %}{% endfor %}"),
    ("call-block", "{% macro m() %}{{ caller() }}{{ caller() }}{% endmacro %}{% call m() %}{% call m() %}x{% endcall %}{% endcall %}"),
    ("filter-block", "{% filter upper %}{{ messages | tojson }}{% endfilter %}"),
    ("self", "{{ self }}{{ self._TemplateReference__context }}"),
    ("batch", "{{ range(10) | batch(0) | list }}{{ range(10) | slice(0) | list }}"),
    ("sort-attr", "{{ messages | sort(attribute='content.__class__') }}"),
    ("groupby", "{{ messages | groupby('role') | list }}"),
]

_SEGMENT = re.compile(r"({%.*?%}|{{.*?}}|{#.*?#})", re.S)
_TOKEN = re.compile(r"\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\"|[A-Za-z_]\w*")
_NUMBERS = ["0", "-1", "1", "10**9", "2**64", "1e308", "100000", "3.5", "-0"]
_STRINGS = ["''", "'<|im_end|>'", "'{{'", "'%s'", "'x' * 10000", "'\\n'", "'<s>'", "'é🦙'"]
_NAMES = ["messages", "loop", "range", "namespace", "raise_exception", "cycler", "joiner", "lipsum", "dict", "self",
          "caller", "varargs", "kwargs", "__class__", "tools", "bos_token", "eos_token", "add_generation_prompt",
          "none", "true", "undefined", "ns", "m", "message", "content"]


def seed_templates() -> list[str]:
    from tools.fuzz_gguf import CHATML, LLAMA2_TEMPLATE

    seeds = [CHATML, LLAMA2_TEMPLATE, HF_LLAMA3, NAMESPACE, TOOLS]
    fixture = FIXTURES / "hf" / "tiny-llama32-hf" / "chat_template.jinja"
    if fixture.is_file():
        seeds.append(fixture.read_text(encoding="utf-8"))
    return seeds


def _tokenizers() -> dict[str, Any]:
    """The two vocabs of the GGUF seeds, as the GGUF loader builds them (no file needed)."""
    import numpy as np

    from llamanuts.tokenizer import tokenizer_from_gguf
    from tools.fuzz_gguf import gpt2_vocab, spm_vocab

    tokens, types, merges = gpt2_vocab()
    bpe = tokenizer_from_gguf({
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm", "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": np.asarray(types, np.int32), "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2, "tokenizer.ggml.unknown_token_id": 0,
        "tokenizer.ggml.add_bos_token": False,
    }, "bpe-vocab.gguf")
    pieces, scores, piece_types = spm_vocab()
    spm = tokenizer_from_gguf({
        "tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": pieces,
        "tokenizer.ggml.scores": np.asarray(scores, np.float32), "tokenizer.ggml.token_type": np.asarray(piece_types, np.int32),
    }, "spm-vocab.gguf")
    return {"bpe": bpe, "spm": spm}


def _prepare(work: Path) -> dict[str, Any]:
    return {"templates": seed_templates(), "tokenizers": _tokenizers()}


def mutate_template(rng: random.Random, templates: list[str]) -> tuple[str, str]:
    source = rng.choice(templates)
    kind = rng.choice(["segments", "segments", "tokens", "tokens", "snippet", "snippet", "snippet", "bytes", "snippets"])
    if kind == "bytes":
        raw, steps = mutate_bytes(rng, source.encode("utf-8"))
        return raw.decode("utf-8", errors=rng.choice(["replace", "surrogateescape"])), f"bytes {steps}"
    if kind == "snippets":
        (a, first), (b, second) = rng.choice(HOSTILE_SNIPPETS), rng.choice(HOSTILE_SNIPPETS)
        return first + source + second, f"snippets {a} + {b}"
    parts = [p for p in _SEGMENT.split(source) if p]
    index = rng.randrange(len(parts))
    if kind == "snippet":
        name, snippet = rng.choice(HOSTILE_SNIPPETS)
        parts.insert(index, snippet)
        return "".join(parts), f"snippet {name} at segment {index}"
    if kind == "segments":
        action = rng.choice(["delete", "duplicate", "swap", "transplant", "repeat"])
        if action == "delete":
            del parts[index]
        elif action == "duplicate":
            parts.insert(index, parts[index])
        elif action == "swap":
            other = rng.randrange(len(parts))
            parts[index], parts[other] = parts[other], parts[index]
        elif action == "transplant":
            donor = [p for p in _SEGMENT.split(rng.choice(templates)) if p]
            parts.insert(index, rng.choice(donor))
        else:
            parts[index] = parts[index] * rng.choice([2, 10, 1000])
        return "".join(parts), f"segment {action} {index}"
    # tokens: one number, string or name inside a tag replaced
    tags = [i for i, p in enumerate(parts) if p.startswith(("{%", "{{"))]
    if not tags:
        return source, "tokens (no tag)"
    index = rng.choice(tags)
    tokens = list(_TOKEN.finditer(parts[index]))
    if not tokens:
        return source, "tokens (empty tag)"
    token = rng.choice(tokens)
    text = token.group()
    if text[0].isdigit():
        new = rng.choice(_NUMBERS)
    elif text[0] in "'\"":
        new = rng.choice(_STRINGS)
    else:
        new = rng.choice(_NAMES)
    parts[index] = parts[index][: token.start()] + new + parts[index][token.end() :]
    return "".join(parts), f"token {text[:20]!r} -> {new!r} in segment {index}"


def _mutate(rng: random.Random, material: dict[str, Any], case: Path) -> tuple[Path, str]:
    source, description = mutate_template(rng, material["templates"])
    vocab = rng.choice(sorted(material["tokenizers"]))
    path = case / f"{vocab}.jinja"
    path.write_bytes(source.encode("utf-8", errors="surrogatepass"))
    return path, f"{vocab}: {description}"


def render_case(source: str, tokenizer: Any) -> None:
    """A chat turn with this template: render, encode, find the end of turn."""
    from llamanuts.inference.prompt import ChatMessage, JinjaChatTemplate

    template = JinjaChatTemplate.from_tokenizer(tokenizer, source)
    ids = template.Encode(tokenizer, [ChatMessage(role, content) for role, content in DIALOG])
    tokenizer.decode([i for i in ids if 0 <= i < tokenizer.vocab_size])
    template.StopIds(tokenizer)  # renders its own probe dialog


def _load(path: Path, material: dict[str, Any]) -> None:
    source = path.read_bytes().decode("utf-8", errors="surrogatepass")
    render_case(source, material["tokenizers"][path.stem])


def _warm_up(material: dict[str, Any]) -> None:
    for source in material["templates"]:
        for tokenizer in material["tokenizers"].values():
            render_case(source, tokenizer)


FORMATS = [
    FuzzFormat("jinja", "real chat templates: tags and text cut and transplanted, numbers/strings/names changed, "
               "hostile snippets (endless loops, doubling, widths, escapes), bytes", _prepare, _mutate, _load, warm_up=_warm_up),
]

__all__ = ["FORMATS", "HOSTILE_SNIPPETS", "mutate_template", "render_case", "seed_templates"]
