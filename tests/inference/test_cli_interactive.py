"""cmd/llama_infer in interactive mode, driven through a pseudo-terminal (see terminal.py).

The child sees a terminal on stdin/stdout/stderr, so it shows the banner, the menu and the chat,
and streams the generation; the test answers the prompts like a user would. A signal is sent only
once the screen shows the prompt it is meant for, or once the program reports (through a test
checkpoint) that it is in the middle of an answer: never after a guessed sleep.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from .terminal import FIXTURE_MODELS, SHARED_REFS, STORIES, TOK512, Checkpoints, Terminal, chat_model, cli

LITERAL_MARKUP = re.compile(r"\[/?(dim|bold|yellow|red|green|cyan)[^\]]*\]")
STATS = r"finish reason: [\w ]+, prompt tokens: (\d+) \((\d+) from the cache\), generated tokens: (\d+)"


def stories_flags() -> list[str]:
    if not (STORIES.exists() and TOK512.exists()):
        pytest.skip(f"stories260K.bin / tok512.bin not found in {SHARED_REFS}")
    return ["--model", str(STORIES), "--tokenizer", str(TOK512)]


@pytest.fixture
def stories_terminal(tmp_path: Path):
    terminal = Terminal(cli(*stories_flags(), "--max-tokens", "24"), home=tmp_path)
    yield terminal
    terminal.close()


@pytest.fixture
def chat_terminal(tmp_path: Path):
    """A chat on a tiny random-weight model with room for several turns, 4 tokens per answer."""
    terminal = Terminal(cli("-m", str(chat_model(tmp_path)), "--chat", "-n", "4"), home=tmp_path)
    yield terminal
    terminal.close()


def assert_clean(t: Terminal) -> None:
    assert "Traceback" not in t.output
    assert not LITERAL_MARKUP.search(t.output), LITERAL_MARKUP.search(t.output)


# ---- the menu --------------------------------------------------------------------------------------
def test_menu_metadata_predefined_and_completion_prompts(stories_terminal: Terminal) -> None:
    t = stories_terminal
    at = t.expect(r"Llama Nuts and Bolts")
    at = t.expect(r"loaded llama2c model", at)
    at = t.expect(r"0\. show the model metadata", at)
    at = t.expect(r"1\. text: 'Once upon a time'", at)
    at = t.expect(r"(\d+)\. completion: type a text for the model to continue", at)
    at = t.expect(r"\d+\. chat \(a base model, never trained to chat", at)
    at = t.expect(r"choose \(q to quit\): ", at)

    t.send("0\n")
    at = t.expect(r"Hyperparameters", at)
    at = t.expect(r"n_kv_heads\s*│?\s*4", at)
    at = t.expect(r"layers\.4\.feed_forward\.w3\.weight", at)
    at = t.expect(r"260,032", at)
    at = t.expect(r"choose", at)

    t.send("1\n")  # the first predefined prompt: "Once upon a time"
    at = t.expect(r"Once upon a time, there was a little girl", at)
    at = t.expect(r"finish reason: max tokens reached, prompt tokens: 5, generated tokens: 24", at)
    at = t.expect(r"choose", at)

    completion = re.findall(r"(\d+)\. completion:", t.output)[-1]
    t.send(f"{completion}\n")
    at = t.expect(r"prompt \(empty: start from BOS\): ", at)
    t.send("Lily and Ben\n")
    at = t.expect(r"finish reason: \w[\w ]*, prompt tokens: \d+, generated tokens: \d+, time to first token: [\d.]+ s", at)
    at = t.expect(r"choose", at)

    t.send("q\n")
    assert t.wait() == 0
    assert_clean(t)


def test_ctrl_c_at_the_menu_prompt_exits_130_cleanly(stories_terminal: Terminal) -> None:
    t = stories_terminal
    t.expect(r"choose \(q to quit\): ")
    t.signal(signal.SIGINT)
    assert t.wait() == 130
    assert "Traceback" not in t.output


def test_ctrl_d_at_the_menu_exits_0_and_leaves_the_shell_prompt_on_a_new_line(stories_terminal: Terminal) -> None:
    t = stories_terminal
    t.expect(r"choose \(q to quit\): ")
    t.send("\x04")  # Ctrl-D on an empty line: end of input
    assert t.wait() == 0
    assert t.output.endswith("choose (q to quit): \n")
    assert "Traceback" not in t.output


def test_bad_choice_says_so_and_shows_the_menu_again(stories_terminal: Terminal) -> None:
    t = stories_terminal
    at = t.expect(r"choose")
    t.send("42\n")
    at = t.expect(r"no such choice: '42'", at)
    t.expect(r"choose", at)
    t.send("q\n")
    assert t.wait() == 0


def test_chat_from_the_menu_warns_on_a_base_model_and_menu_goes_back(tmp_path: Path) -> None:
    t = Terminal(cli("--model", str(FIXTURE_MODELS / "tiny-gqa"), "--max-tokens", "4"), home=tmp_path)
    try:
        at = t.expect(r"loaded meta model")
        at = t.expect(r"choose", at)
        number = re.findall(r"(\d+)\. chat \(a base model", t.output)
        t.send(f"{number[-1]}\n")
        at = t.expect(r"warning: .*tiny-gqa looks like a base model .* never trained to chat", at)
        at = t.expect(r"user> ", at)
        t.send("Hello there\n")
        at = t.expect(r"assistant: ", at)
        at = t.expect(STATS, at)
        at = t.expect(r"user> ", at)
        t.send("/menu\n")
        at = t.expect(r"choose", at)
        t.send("q\n")
        assert t.wait() == 0
        assert_clean(t)
    finally:
        t.close()


# ---- the chat --------------------------------------------------------------------------------------
def test_two_turn_conversation_reuses_the_cache_and_keeps_the_history(tmp_path: Path) -> None:
    t = Terminal(cli("-m", str(chat_model(tmp_path)), "--chat", "-n", "4", "-sys", "Be brief."), home=tmp_path)
    try:
        at = t.expect(r"chat \(llama2 template, context 512 tokens\)")
        at = t.expect(r"system: Be brief\.", at)
        at = t.expect(r"user> ", at)
        t.send("Hello there\n")
        at = t.expect(r"assistant: ", at)
        end = t.expect(STATS, at)
        first = re.search(STATS, t.output[at:end])
        at = t.expect(r"user> ", end)
        t.send("And then?\n")
        end = t.expect(STATS, at)
        second = re.search(STATS, t.output[at:end])
        at = end
        assert first is not None and second is not None
        prompt1, cached1, generated1 = map(int, first.groups())
        prompt2, cached2, _ = map(int, second.groups())
        assert cached1 == 0 and generated1 == 4
        # turn 2 renders turn 1 again: at least all of turn 1's prompt comes from the cache
        assert prompt1 <= cached2 < prompt2
        at = t.expect(r"user> ", at)
        t.send("/history\n")
        at = t.expect(r"system: Be brief\.\s+user: Hello there\s+assistant: .*\s+user: And then\?\s+assistant: ", at)
        at = t.expect(r"user> ", at)
        t.send("/stats\n")
        at = t.expect(r"2 turn\(s\); \d+ tokens in the KV cache of 512", at)
        at = t.expect(r"user> ", at)
        t.send("\x04")
        assert t.wait() == 0
        assert t.output.endswith("user> \n")
        assert_clean(t)
    finally:
        t.close()


def test_ctrl_c_mid_answer_returns_to_the_prompt_and_a_second_question_is_answered(tmp_path: Path) -> None:
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    t = Terminal(cli("-m", str(chat_model(tmp_path)), "--chat", "-n", "6"), home=tmp_path, env=checkpoints.env(pause="answer#1"))
    try:
        at = t.expect(r"user> ")
        t.send("Tell me a long story\n")
        checkpoints.wait_for("answer", process=t.process)  # its first text is on screen; it waits there
        t.signal(signal.SIGINT)
        at = t.expect(r"finish reason: interrupted", at)
        at = t.expect(r"answer stopped; what was printed stays in the conversation", at)
        at = t.expect(r"user> ", at)
        t.send("And now?\n")
        end = t.expect(STATS, at)
        second = re.search(STATS, t.output[at:end])
        at = end
        assert second is not None and int(second.group(2)) > 0  # the model stayed loaded, the cache reused
        at = t.expect(r"user> ", at)
        t.send("/history\n")
        at = t.expect(r"user: Tell me a long story\s+assistant: .*\[stopped\]\s+user: And now\?", at)
        at = t.expect(r"user> ", at)
        t.send("/quit\n")
        assert t.wait() == 0
        assert_clean(t)
    finally:
        t.close()


def test_ctrl_c_on_a_typed_line_discards_it_and_at_an_empty_prompt_exits_130(chat_terminal: Terminal) -> None:
    t = chat_terminal
    at = t.expect(r"user> ")
    t.send("never sent")
    at = t.expect(r"never sent", at)  # echoed: readline has it in its buffer
    t.signal(signal.SIGINT)
    at = t.expect(r"user> ", at)
    t.send("/history\n")
    at = t.expect(r"no turns yet", at)
    at = t.expect(r"user> ", at)
    t.signal(signal.SIGINT)
    assert t.wait() == 130
    assert "Traceback" not in t.output


def test_sigterm_at_the_prompt_exits_143(chat_terminal: Terminal) -> None:
    t = chat_terminal
    t.expect(r"user> ")
    t.signal(signal.SIGTERM)
    assert t.wait() == 143
    assert "Traceback" not in t.output


def test_readline_edits_the_line_and_recalls_history(chat_terminal: Terminal, tmp_path: Path) -> None:
    t = chat_terminal
    at = t.expect(r"user> ")
    t.send("/sytem Be brief.")
    t.send("\x1b[D" * 13 + "s\r")  # Left x13 puts the cursor after "/sy"; insert the missing "s"
    at = t.expect(r"system prompt set: Be brief\.", at)
    at = t.expect(r"user> ", at)
    t.send("\x1b[A")  # Up: the line before comes back, to be edited
    t.send("\x7f" * 6 + "kind.\r")  # Backspace over "brief." and type the new end
    at = t.expect(r"system prompt set: Be kind\.", at)
    at = t.expect(r"user> ", at)
    t.send("/quit\r")
    assert t.wait() == 0
    history = (tmp_path / ".llamanuts_history").read_text(encoding="utf-8")
    assert "/system Be brief." in history and "/system Be kind." in history


def test_slash_commands_help_reset_system_drop_and_unknown(chat_terminal: Terminal) -> None:
    t = chat_terminal
    at = t.expect(r"user> ")
    t.send("/help\n")
    for command in ("/help", "/reset", "/system TEXT", "/drop", "/history", "/stats", "/quit"):
        at = t.expect(re.escape(command), at)
    at = t.expect(r"user> ", at)
    t.send("Hi\n")
    at = t.expect(STATS, at)
    at = t.expect(r"user> ", at)
    t.send("/drop\n")
    at = t.expect(r"dropped 1 turn; 0 left", at)
    at = t.expect(r"user> ", at)
    t.send("Hi again\n")
    at = t.expect(STATS, at)
    t.send("/reset\n")
    at = t.expect(r"conversation reset \(the system prompt stays\)", at)
    t.send("/system\n")
    at = t.expect(r"system prompt removed", at)
    t.send("/frobnicate\n")
    at = t.expect(r"unknown command /frobnicate: /help lists the commands", at)
    t.send("/menu\n")
    at = t.expect(r"there is no menu to go back to", at)
    t.send("/quit\n")
    assert t.wait() == 0
    assert_clean(t)


def test_context_full_is_said_and_dropping_the_oldest_turns_makes_room(tmp_path: Path) -> None:
    """-c 64: the tiny model's Llama 2 layout fills 64 positions in a few turns; the CLI says so
    before generating and offers to drop the oldest turns, never cutting the dialog silently."""
    t = Terminal(cli("-m", str(chat_model(tmp_path)), "--chat", "-n", "4", "-c", "64"), home=tmp_path)
    try:
        at = t.expect(r"user> ")
        for _ in range(6):
            t.send("Tell me more\n")
            at = t.expect(r"(finish reason: [^\n]*|context full: [^\n]*)\n", at)
            if "context full" in t.output[at - 300 : at]:
                break
            at = t.expect(r"user> ", at)
        else:
            raise AssertionError("the context never filled up")
        assert re.search(r"context full: the conversation \(\d+ earlier turns? and the new message\) takes \d+ tokens, plus 4 kept for the answer, more than the context size of 64 tokens", t.output)
        at = t.expect(r"d: drop the oldest turns to make room, r: reset the conversation, Enter: cancel\? ", at)
        t.send("d\n")
        at = t.expect(r"dropped the \d+ oldest turns?", at)
        at = t.expect(STATS, at)
        at = t.expect(r"user> ", at)
        t.send("/quit\n")
        assert t.wait() == 0
        assert_clean(t)
    finally:
        t.close()


def test_manual_chat_on_a_meta_model_with_a_system_prompt_from_the_flags(tmp_path: Path) -> None:
    """--system with no --prompt on a terminal starts the chat at once, with that system prompt."""
    t = Terminal(cli("--model", str(FIXTURE_MODELS / "tiny-mha"), "-sys", "Answer briefly.", "-n", "4"), home=tmp_path)
    try:
        at = t.expect(r"system: Answer briefly\.")
        at = t.expect(r"user> ", at)
        t.send("Hello\n")
        at = t.expect(r"assistant: ", at)
        at = t.expect(STATS, at)
        t.send("/quit\n")
        assert t.wait() == 0
        assert_clean(t)
    finally:
        t.close()


def test_ctrl_c_during_a_menu_completion_returns_to_the_menu(tmp_path: Path) -> None:
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    t = Terminal(cli(*stories_flags(), "--dtype", "f32"), home=tmp_path, env=checkpoints.env(pause="answer#1"))
    try:
        at = t.expect(r"2\. text: \(empty prompt")
        at = t.expect(r"choose", at)
        t.send("2\n")
        checkpoints.wait_for("answer", process=t.process)
        t.signal(signal.SIGINT)
        at = t.expect(r"finish reason: interrupted", at)
        at = t.expect(r"choose", at)  # the model stays loaded: the menu again
        t.send("1\n")
        at = t.expect(r"finish reason: [\w ]+, prompt tokens: 5,", at)
        t.send("q\n")
        assert t.wait() == 0
        assert "Traceback" not in t.output
    finally:
        t.close()
