"""A chat template is a program from a model file: its render is bounded in steps, time and memory.

Issue 13: jinja2's sandbox stops a template from touching Python internals, but not from looping
for hours without writing anything, nor from building gigabytes out of small values. Each test
below is a hostile template that, before the bounds, hung (10^10 loop iterations), ran for
minutes, or allocated gigabytes; now each ends in a LlamaError naming the template's origin.
No test here measures time: the deadline is tested on a clock the test moves.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from llamanuts.common.errors import LlamaError
from llamanuts.inference import prompt
from llamanuts.inference.prompt import (
    MAX_RENDER_STEPS,
    MAX_TEMPLATE_CHARS,
    MAX_WORDWRAP_CHARS,
    RENDER_STEPS_PER_MESSAGE,
    ChatMessage,
    JinjaChatTemplate,
)

HI = [ChatMessage("user", "hi")]
ORIGIN = "the chat template of /models/hostile.gguf"


def render(source: str, dialog: list[ChatMessage] = HI) -> str:
    return JinjaChatTemplate(source, origin=ORIGIN).RenderText(dialog)


@pytest.mark.parametrize(
    "source",
    [
        # the example: 10^10 iterations, no output
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        # a macro that calls itself twice per level: 2^60 calls, no loop at all
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        # a recursive loop whose inner iterables come from loop(...), not from a for tag
        "{% for x in range(100000) recursive %}{% if loop.depth < 3 %}{{ loop(range(100000)) }}{% endif %}{% endfor %}",
        # a loop over a long string, and one whose filter keeps every item out
        "{% for c in 'x' * 16000000 %}{% endfor %}",
        "{% for i in range(100000) if i < 0 %}{% endfor %}{% for i in range(100000) if i < 0 %}{% endfor %}",
    ],
)
def test_a_template_that_runs_without_end_is_stopped_by_its_step_budget(source: str) -> None:
    with pytest.raises(LlamaError, match=rf"^{ORIGIN} did not finish within 101,000 loop iterations and calls"):
        render(source)


def test_the_step_budget_grows_with_the_dialog() -> None:
    # 150,000 iterations: over the budget of a 1-message dialog, within that of a 60-message one.
    source = "{% for i in range(50000) %}{% endfor %}" * 3
    with pytest.raises(LlamaError, match="did not finish within"):
        render(source)
    long_dialog = [ChatMessage("user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(59)]
    assert MAX_RENDER_STEPS + RENDER_STEPS_PER_MESSAGE * len(long_dialog) > 150_000
    assert render(source, long_dialog) == ""


def test_real_templates_use_a_few_steps_per_message() -> None:
    # The ChatML template SmolLM2 ships (as in its GGUF), over a 2001-message dialog.
    chatml = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
        "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    dialog = [ChatMessage("user" if i % 2 == 0 else "assistant", f"message {i}") for i in range(2001)]
    template = JinjaChatTemplate(chatml)
    assert template.RenderText(dialog).count("<|im_start|>") == 2003
    used = MAX_RENDER_STEPS + RENDER_STEPS_PER_MESSAGE * len(dialog) - template._template().environment.steps_left
    assert used <= 10 * len(dialog)


def test_a_render_past_its_deadline_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each reading of the clock moves it one second on: the 11th step is past the 10 s deadline.
    clock = SimpleNamespace(now=0.0)

    def tick() -> float:
        clock.now += 1.0
        return clock.now

    monkeypatch.setattr(prompt, "_render_clock", tick)
    with pytest.raises(LlamaError, match=rf"^{ORIGIN} did not finish within .* or 10 seconds"):
        render("{% for i in range(20) %}{{ i }}{% endfor %}")
    assert clock.now == pytest.approx(12.0)  # the start, then ten steps in time, then the one too late


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """The memory cap lowered to 64 MiB: the same mechanism, filled eight times faster."""
    monkeypatch.setattr(prompt, "MAX_RENDER_MEMORY", 64 << 20)
    return 64 << 20


def test_the_memory_cap_is_half_a_gibibyte() -> None:
    # far above a real render (under 1 MiB) and the largest output allowed (16M characters)
    assert prompt.MAX_RENDER_MEMORY == 512 << 20
    with pytest.raises(LlamaError, match=rf"^{ORIGIN} needed more than 512.0 MiB of memory"):
        render("{{ 'x' | center(2000000000) }}")


@pytest.mark.parametrize(
    "source",
    [
        # a macro that doubles a 16M-character string 8 times: 4 GiB from 511 calls
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% else %}{{ 'x' * 16000000 }}{% endif %}{% endmacro %}{{ f(8) }}",
        # widths: a 1 GB string from a few bytes of template
        "{{ '%1000000000d' % 1 }}",
        "{{ '{:>1000000000}'.format(1) }}",
        "{{ 'x' | center(2000000000) }}",
    ],
)
def test_a_template_that_builds_huge_values_is_stopped_by_the_memory_cap(source: str, small_cap: int) -> None:
    with pytest.raises(LlamaError, match=rf"^{ORIGIN} needed more than 64.0 MiB of memory"):
        render(source)


@pytest.mark.parametrize(
    "source",
    [
        # a namespace that accumulates 16M characters per iteration (nothing is written until the end)
        "{% set ns = namespace(x='') %}{% for i in range(100) %}{% set ns.x = ns.x ~ ('x' * 16000000) %}{% endfor %}"
        "{{ ns.x | length }}",
        "{% set ns = namespace(x='x' * 9000000) %}{% set ns.x = ns.x + ns.x %}",
        "{% set ns = namespace(x=[0] * 9000000) %}{% set ns.x = ns.x + ns.x %}",
    ],
)
def test_a_value_longer_than_a_whole_rendering_is_refused_when_built(source: str) -> None:
    with pytest.raises(LlamaError, match=rf"^{ORIGIN} tried something the sandbox forbids: a chat template may not build a"):
        render(source)
    assert render("{{ 'ab' ~ 1 ~ none }}{{ 'c' + 'd' }}{{ [1] + [2] }}") == "ab1Nonecd[1, 2]"


def test_nothing_is_computed_while_compiling(small_cap: int) -> None:
    # jinja2 folds constant expressions when it compiles a template; a 2 GB constant built there
    # was outside every bound (and was then written into the generated Python source).
    template = JinjaChatTemplate("{{ 'x' | center(2000000000) }}", origin=ORIGIN)
    template._template()  # compiles without allocating it
    with pytest.raises(LlamaError, match="needed more than"):
        template.RenderText(HI)


def test_the_memory_cap_is_lifted_after_the_render(small_cap: int) -> None:
    import resource

    before = resource.getrlimit(resource.RLIMIT_AS)
    with pytest.raises(LlamaError):
        render("{{ 'x' | center(200000000) }}")
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert len(bytearray(2 * small_cap)) == 2 * small_cap  # more than the cap, allowed again


def test_wordwrap_of_a_huge_word_is_refused() -> None:
    # textwrap is quadratic in a word's length: a million characters take minutes in one call.
    with pytest.raises(LlamaError, match=rf"may wordwrap at most {MAX_WORDWRAP_CHARS} characters"):
        render("{{ ('x' * 1000000) | wordwrap(1) }}")
    assert render("{{ 'a b c' | wordwrap(1) }}") == "a\nb\nc"


def test_an_overlong_template_is_refused_before_parsing() -> None:
    with pytest.raises(LlamaError, match=rf"^{ORIGIN} is 1,048,577 characters long, more than the 1,048,576"):
        render("x" * (MAX_TEMPLATE_CHARS + 1))


@pytest.mark.parametrize("source", ["{{ " + "(" * 100_000 + "1" + ")" * 100_000 + " }}", "{{ " + "[" * 90 + "]" * 90 + " }}"])
def test_nesting_too_deep_to_compile_is_a_clear_error(source: str) -> None:
    with pytest.raises(LlamaError, match=rf"^{ORIGIN} cannot be compiled: RecursionError"):
        render(source)


def test_a_template_from_a_tokenizer_is_named_by_its_file() -> None:
    tokenizer = SimpleNamespace(
        path="/models/hostile.gguf", kind="bpe", chat_template="{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}",
        special_tokens={}, bos_id=None, eos_id=None, unk_id=None,
    )
    with pytest.raises(LlamaError, match=r"^the chat template of /models/hostile.gguf did not finish"):
        JinjaChatTemplate.from_tokenizer(tokenizer).Render(HI)

