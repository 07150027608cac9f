"""Pieces of cmd/llama_infer tested in-process: the text sink and the menu's choice of prompts."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from .cli_module import load_cli

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cli():
    return load_cli("llama_infer")


def test_sink_writes_text_only_when_not_a_terminal(cli) -> None:
    out = io.StringIO()
    sink = cli.TextSink(out, show_waiting=False, strip_leading_space=False)
    sink.write("", b"\xf0\x9f")
    sink.write("😀 ok")
    sink.end()
    assert out.getvalue() == "😀 ok\n"


def test_sink_shows_waiting_bytes_dimmed_then_erases_them(cli) -> None:
    out = io.StringIO()
    sink = cli.TextSink(out, show_waiting=True, strip_leading_space=False)
    sink.write("a", b"\xf0")
    marker = "‹f0›"
    assert out.getvalue() == f"a\x1b[2m{marker}\x1b[0m"
    sink.write("😀")
    n = len(marker)
    assert out.getvalue() == f"a\x1b[2m{marker}\x1b[0m" + "\b" * n + " " * n + "\b" * n + "😀"


def test_sink_drops_the_leading_space_of_a_chat_answer(cli) -> None:
    out = io.StringIO()
    sink = cli.TextSink(out, show_waiting=False, strip_leading_space=True)
    sink.write("")
    sink.write(" Paris")
    sink.write(" is")
    assert out.getvalue() == "Paris is"


@dataclass
class FakeLoaded:
    path: Path
    format: str
    kind: str
    chat_template: str | None = None

    @property
    def tokenizer(self):
        return SimpleNamespace(kind=self.kind)


@pytest.mark.parametrize(
    "loaded, family, first_prompt, chat",
    [
        (FakeLoaded(Path("models/kjv"), "meta", "sentencepiece"), "kjv", "In the beginning", False),
        (FakeLoaded(Path("stories260K.bin"), "llama2c", "llama2c"), "stories", "Once upon a time", False),
        (FakeLoaded(Path("Meta-Llama-3-8B-Instruct"), "meta", "tiktoken"), "llama3-instruct", "How to go from Beijing to NY?", True),
        (FakeLoaded(Path("llama-2-7b-chat"), "meta", "sentencepiece"), "llama2-chat", "What is the capital of France?", True),
        (FakeLoaded(Path("llama-2-7b"), "meta", "sentencepiece"), "base", "The capital of France is", False),
    ],
)
def test_predefined_prompts_suit_the_model(cli, loaded, family: str, first_prompt: str, chat: bool) -> None:
    assert cli.model_family(loaded) == family
    requests = cli.predefined_requests(family)
    assert requests[0].text == first_prompt and requests[0].chat is chat
    if family in ("kjv", "stories", "base"):
        assert not any(r.chat for r in requests)  # chat prompts only for chat/instruct models
    entries = cli.menu_entries(loaded)
    assert entries[-2].label == cli.COMPLETION_LABEL and not entries[-2].chat
    assert entries[-1].chat
    # chat is offered plainly to chat models, with a warning to base models
    assert entries[-1].label == (cli.CHAT_LABEL if chat else cli.BASE_CHAT_LABEL)
    assert cli.trained_to_chat(loaded) is chat


def test_a_chat_template_in_the_files_makes_a_model_a_chat_model(cli) -> None:
    """A LoadedModel may carry the template of its GGUF / Hugging Face files; then chat is plain."""
    loaded = FakeLoaded(Path("SmolLM2-135M"), "gguf", "gpt2")
    assert not cli.trained_to_chat(loaded)
    loaded.chat_template = "{% for message in messages %}...{% endfor %}"
    assert cli.trained_to_chat(loaded)
    assert cli.menu_entries(loaded)[-1].label == cli.CHAT_LABEL


def test_llama3_instruct_prompt_has_the_emoji_system_prompt(cli) -> None:
    first = cli.predefined_requests("llama3-instruct")[0]
    assert first.system == "Always answer with emojis"


def test_kjv_prompts(cli) -> None:
    assert [r.text for r in cli.predefined_requests("kjv")] == ["In the beginning", "And the LORD said unto Moses", "Blessed are the"]


def test_no_model_message_for_the_default_path(cli) -> None:
    message = cli.no_model_message(cli.DEFAULT_MODEL, default=True)
    assert "default model directory" in message and str(cli.DEFAULT_MODEL) in message
    assert "train_default_model" in message and "consolidated.00.pth" in message and "llama.meta.com" in message


def test_default_model_is_models_kjv_beside_cmd(cli) -> None:
    assert cli.DEFAULT_MODEL == REPO_ROOT / "models" / "kjv"
