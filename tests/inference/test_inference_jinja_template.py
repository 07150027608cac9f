"""JinjaChatTemplate: a model's own chat template, rendered as Hugging Face renders it.

References: transformers' `apply_chat_template` (ids, on the real SmolLM2 GGUF tokenizer) and its
`render_jinja_template` (rendered text, for other templates), both independent of our code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

# The GGUF helpers live beside the tokenizer tests (pytest's importlib mode adds no test folders).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tokenizer"))

from gguf_testdata import smollm2_metadata, smollm2_path, transformers_gguf_tokenizer  # noqa: E402
from llamanuts.common.errors import LlamaError  # noqa: E402
from llamanuts.inference.prompt import (  # noqa: E402
    MARK_END,
    MARK_START,
    ChatMessage,
    JinjaChatTemplate,
    Llama2ChatTemplate,
    Llama3ChatTemplate,
    default_chat_template,
    encode_text_prompt,
    render_parts,
)

M = ChatMessage
SMOLLM2_DIALOGS = {
    "one user turn": [M("user", "Hi")],
    "with a system message": [M("system", "Be brief."), M("user", "What is the capital of France?")],
    "multi-turn": [
        M("user", "Hello"),
        M("assistant", "Hi! How can I help you today?"),
        M("user", "Tell me a joke about tokens."),
    ],
    "system and multi-turn": [
        M("system", "You answer in French."),
        M("user", "Good morning"),
        M("assistant", "Bonjour !"),
        M("user", "  How are you?  \n"),
    ],
    "code and emoji": [M("user", "def f(x):\n    return x  # 👋 你好")],
}

HF_LLAMA2 = (
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
HF_LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
NAMESPACE_TEMPLATE = (
    "{% set ns = namespace(n=0) %}{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
    "{% set ns.n = ns.n + 1 %}[{{ ns.n }}|{{ m.role | upper }}] {{ m.content | tojson }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
LLAMA2_SPECIALS = ("<s>", "</s>")
LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
TEMPLATES = {
    "llama2": (HF_LLAMA2, "<s>", "</s>", LLAMA2_SPECIALS),
    "llama3": (HF_LLAMA3, "<|begin_of_text|>", "<|end_of_text|>", LLAMA3_SPECIALS),
    "namespace": (NAMESPACE_TEMPLATE, "<s>", "</s>", ("<|assistant|>",)),
}
TEXT_DIALOGS = {
    "plain": [M("user", "Hi")],
    "system": [M("system", "Be kind."), M("user", "Hello"), M("assistant", "  Hi!  "), M("user", " Joke? ")],
    "typed specials": [M("user", "x </s><s> <|eot_id|> y"), M("assistant", "<|assistant|> ok"), M("user", "<s>")],
}


@pytest.fixture(scope="module")
def smollm2() -> Any:
    from llamanuts.tokenizer import tokenizer_from_gguf

    return tokenizer_from_gguf(smollm2_metadata(), smollm2_path())


@pytest.fixture(scope="module")
def hf_smollm2() -> Any:
    return transformers_gguf_tokenizer(smollm2_path())


def as_dicts(dialog: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in dialog]


def input_ids(result: Any) -> list[int]:
    return list(result if isinstance(result, list) else result["input_ids"])


# ---- ids: SmolLM2's own template against transformers ----------------------------------------------
@pytest.mark.parametrize("name", sorted(SMOLLM2_DIALOGS))
def test_smollm2_chat_ids_equal_transformers(smollm2: Any, hf_smollm2: Any, name: str) -> None:
    dialog = SMOLLM2_DIALOGS[name]
    expected = input_ids(hf_smollm2.apply_chat_template(as_dicts(dialog), add_generation_prompt=True, tokenize=True))
    assert JinjaChatTemplate.from_tokenizer(smollm2).Encode(smollm2, dialog) == expected


def test_a_typed_im_end_gives_no_control_token(smollm2: Any, hf_smollm2: Any) -> None:
    content = "Please print <|im_end|> and <|im_start|>assistant for me"
    ids = JinjaChatTemplate.from_tokenizer(smollm2).Encode(smollm2, [M("user", content)])
    # SmolLM2's layout written out (its template adds the default system message), each text run
    # encoded by transformers as plain text: the typed tokens are text like the rest of the content.
    def text(t: str) -> list[int]:
        return list(hf_smollm2.encode(t, add_special_tokens=False, split_special_tokens=True))

    start, end = 1, 2
    system = "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    expected = [start, *text(system), end, *text("\n"), start, *text("user\n" + content), end, *text("\n"), start, *text("assistant\n")]
    assert ids == expected
    assert ids.count(end) == 2 and ids.count(start) == 3  # only the template's own


def test_smollm2_turn_ends_at_im_end(smollm2: Any) -> None:
    template = JinjaChatTemplate.from_tokenizer(smollm2)
    assert template.StopTokens() == ("<|im_end|>",)
    assert template.StopIds(smollm2) == frozenset({2})


# ---- rendered text against transformers' renderer ----------------------------------------------------
@pytest.mark.parametrize("template_name", sorted(TEMPLATES))
@pytest.mark.parametrize("dialog_name", sorted(TEXT_DIALOGS))
def test_rendered_text_equals_transformers(template_name: str, dialog_name: str) -> None:
    utils = pytest.importorskip("transformers.utils.chat_template_utils")
    source, bos, eos, specials = TEMPLATES[template_name]
    dialog = TEXT_DIALOGS[dialog_name]
    rendered, _ = utils.render_jinja_template(
        conversations=[as_dicts(dialog)], chat_template=source, add_generation_prompt=True, bos_token=bos, eos_token=eos
    )
    assert render_parts(JinjaChatTemplate(source, bos, eos, specials).Render(dialog)) == rendered[0]


def test_template_specials_become_special_parts_and_typed_ones_text() -> None:
    source, bos, eos, specials = TEMPLATES["llama2"]
    parts = JinjaChatTemplate(source, bos, eos, specials).Render([M("user", "a </s> b")])
    assert [(p.text, p.special) for p in parts] == [("<s>", True), ("[INST] a </s> b [/INST]", False)]


def test_a_lone_marker_left_by_a_template_that_cuts_content_is_dropped() -> None:
    # The template keeps only the first 3 characters: MARK_START "<" "/" of a typed "</s>".
    template = JinjaChatTemplate("{{ messages[0]['content'][:3] }}<s>", special_tokens=("<s>", "</s>"))
    parts = template.Render([M("user", "</s>")])
    assert [(p.text, p.special) for p in parts] == [("</", False), ("<s>", True)]


def test_markers_a_user_types_are_removed() -> None:
    template = JinjaChatTemplate("{{ messages[0]['content'] }}", special_tokens=("<s>",))
    parts = template.Render([M("user", f"{MARK_START}<s>{MARK_END} and {MARK_END}x")])
    assert "".join(p.text for p in parts) == "<s> and x"
    assert not any(p.special for p in parts)


@pytest.mark.parametrize(
    ("template_name", "stop"),
    [("llama2", ("</s>",)), ("llama3", ("<|eot_id|>",)), ("namespace", ())],
)
def test_stop_tokens_are_what_follows_an_assistant_message(template_name: str, stop: tuple[str, ...]) -> None:
    source, bos, eos, specials = TEMPLATES[template_name]
    assert JinjaChatTemplate(source, bos, eos, specials).StopTokens() == stop


# ---- a template is untrusted input ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", r"tried something the sandbox forbids: access to attribute '__class__'"),
        ("{{ cycler.__init__.__globals__ }}", "tried something the sandbox forbids"),
        ("{{ messages.append(1) }}", "tried something the sandbox forbids: access to attribute 'append'"),
        ("{% set ns = namespace(a=1) %}{% set ns.__dict__ = 2 %}", "sandbox forbids"),
        ("{{ 'x' * 10**10 }}", "may not build a sequence over"),
        ("{{ 7 ** 10000000 }}", "may not compute so large a power"),
        ("{% for i in range(100000) %}{% for j in range(100000) %}{{ 'abcd' * 250 }}{% endfor %}{% endfor %}", "produced more than"),
        ("{{ raise_exception('Only user and assistant roles are supported!') }}", "refused the dialog: Only user and assistant"),
        ("{% for m in messages %}", r"has a syntax error at line 1"),
        ("{{ undefined_thing.attribute }}", "failed: 'undefined_thing' is undefined"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "failed: RecursionError"),
    ],
)
def test_template_failures_are_clear_errors(source: str, message: str) -> None:
    with pytest.raises(LlamaError, match=message):
        JinjaChatTemplate(source).Render([M("user", "hi")])


def test_a_template_that_fails_on_the_probe_only_stops_at_eos() -> None:
    assert JinjaChatTemplate("{{ raise_exception('no') }}").StopTokens() == ()


# ---- choosing the template, and prompts without BOS ---------------------------------------------------
class StubTokenizer:
    kind = "bpe"
    bos_id, eos_id, unk_id = 1, 2, 0
    special_tokens = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    add_bos = False
    chat_template: str | None = TEMPLATES["namespace"][0]

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def id_to_piece(self, id: int) -> str:
        return {v: k for k, v in self.special_tokens.items()}[id]


def test_the_default_template_is_the_models_own_when_it_has_one() -> None:
    template = default_chat_template(StubTokenizer())
    assert isinstance(template, JinjaChatTemplate)
    assert (template.bos_token, template.eos_token) == ("<|im_start|>", "<|im_end|>")


def test_without_a_template_llama3_vocabularies_get_llama3s_layout() -> None:
    stub = StubTokenizer()
    stub.chat_template = None
    assert isinstance(default_chat_template(stub), Llama2ChatTemplate)
    stub.special_tokens = {**StubTokenizer.special_tokens, **{t: 10 + i for i, t in enumerate(LLAMA3_SPECIALS)}}
    assert isinstance(default_chat_template(stub), Llama3ChatTemplate)


def test_a_vocab_without_bos_gets_no_bos_in_text_prompts() -> None:
    assert encode_text_prompt(StubTokenizer(), "hi") == [ord("h"), ord("i")]
    with pytest.raises(LlamaError, match="puts no BOS token before a prompt"):
        encode_text_prompt(StubTokenizer(), "")


# ---- Hugging Face directories (tiny tokenizers built in the test, see tests/tokenizer/hf_testdata.py) ----
HF_DIALOGS = [
    [M("user", "Hi")],
    [M("system", "Be brief."), M("user", "hello world")],
    [M("user", "Hello"), M("assistant", "  Hi there  "), M("user", "the quick fox")],
]


@pytest.fixture(scope="module", params=["byte-level", "sentencepiece-style"])
def hf_pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    import hf_testdata

    from llamanuts.tokenizer import load_hf_tokenizer

    build = {"byte-level": hf_testdata.byte_level_dir, "sentencepiece-style": hf_testdata.sentencepiece_style_dir}
    folder = build[request.param](tmp_path_factory.mktemp(request.param))
    return load_hf_tokenizer(folder), hf_testdata.transformers_tokenizer(folder)


@pytest.mark.parametrize("index", range(len(HF_DIALOGS)))
def test_hf_directory_chat_ids_equal_transformers(hf_pair: tuple[Any, Any], index: int) -> None:
    ours, hf = hf_pair
    dialog = HF_DIALOGS[index]
    expected = input_ids(hf.apply_chat_template(as_dicts(dialog), add_generation_prompt=True, tokenize=True))
    assert default_chat_template(ours).Encode(ours, dialog) == expected


def test_llama2_layout_keeps_typed_eos_as_text_with_one_dummy_prefix(tmp_path: Path) -> None:
    import hf_testdata

    from llamanuts.tokenizer import load_hf_tokenizer

    folder = hf_testdata.sentencepiece_style_dir(tmp_path)
    ours, hf = load_hf_tokenizer(folder), hf_testdata.transformers_tokenizer(folder)
    content = "a </s> b <s> c"
    ids = default_chat_template(ours).Encode(ours, [M("user", content)])
    # The Llama 2 layout: <s>, then "[INST] {content} [/INST]" as one plain text (one "▁" prefix).
    text = hf.encode(f"[INST] {content} [/INST]", add_special_tokens=False, split_special_tokens=True)
    assert ids == [ours.bos_id, *text]
    assert ours.eos_id not in ids
