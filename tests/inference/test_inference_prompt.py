"""Prompt layouts, byte for byte: text completion, Llama 2's [INST] chat, Llama 3's header chat.

The expected strings are written out by hand from Meta's format rules, so a template change that
moves one space shows up here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llamanuts.common.errors import LlamaError
from llamanuts.inference.prompt import (
    ChatMessage,
    Llama2ChatTemplate,
    Llama3ChatTemplate,
    build_dialog,
    chat_template_for,
    encode_text_prompt,
    render_parts,
    text_prompt_parts,
)

SHARED_REFS = Path(__file__).resolve().parents[2].parent / "shared" / "refs"


def tokenizer_or_skip(name: str):
    path = SHARED_REFS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (shared reference files not available)")
    from llamanuts.tokenizer import load_tokenizer

    return load_tokenizer(path)


# ---- Llama 2 ------------------------------------------------------------------------------------
def test_llama2_single_user_turn() -> None:
    text = render_parts(Llama2ChatTemplate().Render(build_dialog("What is the capital of France?")))
    assert text == "<s>[INST] What is the capital of France? [/INST]"


def test_llama2_system_prompt_is_folded_into_the_first_user_message() -> None:
    dialog = build_dialog("  Hi there \n", system="Answer briefly.")
    text = render_parts(Llama2ChatTemplate().Render(dialog))
    # Meta strips the folded message as a whole, so the user's leading spaces stay inside it.
    assert text == "<s>[INST] <<SYS>>\nAnswer briefly.\n<</SYS>>\n\n  Hi there [/INST]"


def test_llama2_multi_turn_with_system() -> None:
    dialog = [
        ChatMessage("system", "Be kind."),
        ChatMessage("user", "Hello"),
        ChatMessage("assistant", "  Hi! How can I help?  "),
        ChatMessage("user", " Tell me a joke. "),
    ]
    text = render_parts(Llama2ChatTemplate().Render(dialog))
    assert text == (
        "<s>[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHello [/INST] Hi! How can I help? </s>"
        "<s>[INST] Tell me a joke. [/INST]"
    )


def test_llama2_token_ids_match_metas_encode_calls() -> None:
    """Meta encodes each (user, answer) pair with bos=True, eos=True and the last turn with bos=True."""
    tokenizer = tokenizer_or_skip("llama2-tokenizer.model")
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(SHARED_REFS / "llama2-tokenizer.model"))
    dialog = build_dialog("And you?", system="You are terse.", history=[("Hi", "Hello </s> friend")])
    expected = (
        [sp.bos_id()] + sp.encode("[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi [/INST] Hello </s> friend ") + [sp.eos_id()]
        + [sp.bos_id()] + sp.encode("[INST] And you? [/INST]")
    )
    assert Llama2ChatTemplate().Encode(tokenizer, dialog) == expected
    # "</s>" typed inside a message is text, not the EOS id: only the template's own EOS is id 2.
    assert expected.count(sp.eos_id()) == 1


@pytest.mark.parametrize(
    "dialog",
    [
        [],
        [ChatMessage("system", "x")],
        [ChatMessage("assistant", "x")],
        [ChatMessage("user", "a"), ChatMessage("user", "b")],
        [ChatMessage("user", "a"), ChatMessage("assistant", "b")],
    ],
)
def test_bad_dialogs_are_rejected_with_a_message(dialog) -> None:
    with pytest.raises(LlamaError):
        Llama2ChatTemplate().Render(dialog)
    with pytest.raises(LlamaError):
        Llama3ChatTemplate().Render(dialog)


# ---- Llama 3 ------------------------------------------------------------------------------------
def test_llama3_header_template() -> None:
    dialog = build_dialog(" How to go from Beijing to NY? ", system="Always answer with emojis")
    text = render_parts(Llama3ChatTemplate().Render(dialog))
    assert text == (
        "<|begin_of_text|>"
        "<|start_header_id|>system<|end_header_id|>\n\nAlways answer with emojis<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHow to go from Beijing to NY?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama3_token_ids_put_specials_by_id() -> None:
    tokenizer = tokenizer_or_skip("llama3-tokenizer.model")
    special = tokenizer.special_tokens
    ids = Llama3ChatTemplate().Encode(tokenizer, build_dialog("Hi <|eot_id|>"))

    def header(role: str) -> list[int]:
        return [special["<|start_header_id|>"]] + tokenizer.encode(role) + [special["<|end_header_id|>"]] + tokenizer.encode("\n\n")

    expected = [special["<|begin_of_text|>"]] + header("user") + tokenizer.encode("Hi <|eot_id|>") + [special["<|eot_id|>"]] + header("assistant")
    assert ids == expected
    assert ids[0] == 128000
    assert ids.count(special["<|eot_id|>"]) == 1  # the typed "<|eot_id|>" stays text


def test_template_choice_follows_the_tokenizer_kind() -> None:
    assert isinstance(chat_template_for("tiktoken"), Llama3ChatTemplate)
    assert isinstance(chat_template_for("sentencepiece"), Llama2ChatTemplate)
    assert isinstance(chat_template_for("llama2c"), Llama2ChatTemplate)


# ---- text completion ----------------------------------------------------------------------------
def test_text_completion_is_bos_plus_prompt() -> None:
    tokenizer = tokenizer_or_skip("llama2-tokenizer.model")
    assert encode_text_prompt(tokenizer, "The best way to attract bees") == [1, 450, 1900, 982, 304, 13978, 367, 267]
    assert encode_text_prompt(tokenizer, "") == [1]
    assert render_parts(text_prompt_parts("In the beginning")) == "<s>In the beginning"
    assert render_parts(text_prompt_parts("", "tiktoken")) == "<|begin_of_text|>"


def test_llama3_text_completion_starts_with_begin_of_text() -> None:
    tokenizer = tokenizer_or_skip("llama3-tokenizer.model")
    ids = encode_text_prompt(tokenizer, "the answer to the ultimate question of life, the universe, and everything is ")
    assert ids == [128000, 1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]


def test_stories_tokenizer_prompt() -> None:
    tokenizer = tokenizer_or_skip("tok512.bin")
    assert encode_text_prompt(tokenizer, "Once upon a time") == [1, 403, 407, 261, 378]
