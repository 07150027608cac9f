"""cmd/llama_infer in scriptable mode, end to end through a subprocess from the repository root.

Standard output must hold the generated text and one final newline, nothing else; everything else
(banner, progress, statistics) goes to stderr.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_REFS = REPO_ROOT.parent / "shared" / "refs"
STORIES = SHARED_REFS / "stories260K.bin"
TOK512 = SHARED_REFS / "tok512.bin"
STORIES_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "reference" / "stories260K.npz"
TINY_MODELS = REPO_ROOT / "tests" / "fixtures" / "models"
FIRST_SENTENCE = "Once upon a time, there was a little girl named Lily."


def run_cli(*flags: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cmd.llama_infer", *flags],
        cwd=REPO_ROOT,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def stories() -> list[str]:
    if not (STORIES.exists() and TOK512.exists()):
        pytest.skip(f"stories260K.bin / tok512.bin not found in {SHARED_REFS}")
    return ["--model", str(STORIES), "--tokenizer", str(TOK512)]


def expected_text(ids: list[int]) -> str:
    """What the CLI must print for `ids` generated after BOS: each piece's bytes, the first one
    without the SentencePiece leading space."""
    from llamanuts.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(TOK512)
    data = b"".join(tokenizer.piece_bytes(i) for i in ids)
    return data.removeprefix(b" ").decode("utf-8", errors="replace")


def test_greedy_story_from_bos_equals_the_reference(stories: list[str]) -> None:
    """The default dtype of this float32 file is f32, which matches the PyTorch reference token for token."""
    result = run_cli(*stories, "--prompt", "", "--temperature", "0", "--max-tokens", "200")  # the exact command
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(FIRST_SENTENCE)
    assert result.stdout.endswith("\n")
    if STORIES_FIXTURE.exists():
        ids = np.load(STORIES_FIXTURE)["f32/greedy"].tolist()
        assert result.stdout == expected_text(ids) + "\n"
    assert "finish reason: max tokens reached, prompt tokens: 1, generated tokens: 200" in result.stderr
    assert "time to first token" in result.stderr and "tokens/s" in result.stderr
    assert FIRST_SENTENCE not in result.stderr  # the text is on stdout only


def test_default_dtype_of_a_float32_llama2c_file_is_f32(stories: list[str]) -> None:
    result = run_cli(*stories, "--prompt", "", "--max-tokens", "15")
    assert result.returncode == 0, result.stderr
    assert result.stdout == FIRST_SENTENCE + "\n"
    assert "compute f32" in result.stderr


def test_bf16_tells_the_same_story_start(stories: list[str]) -> None:
    result = run_cli(*stories, "--prompt", "", "--max-tokens", "15", "--dtype", "bf16")
    assert result.returncode == 0, result.stderr
    assert result.stdout == FIRST_SENTENCE + "\n"
    assert "compute bf16" in result.stderr


def test_prompt_from_stdin_when_no_prompt_flag(stories: list[str]) -> None:
    result = run_cli(*stories, "--max-tokens", "11", stdin="Once upon a time\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(", there was a little girl named Lily.")
    assert "prompt tokens: 5" in result.stderr


def test_stops_on_bos_like_run_c(stories: list[str]) -> None:
    result = run_cli(*stories, "--prompt", "", "--dtype", "f32")
    assert result.returncode == 0, result.stderr
    assert "finish reason: end of sequence" in result.stderr
    assert "generated tokens: 346," in result.stderr  # 345 ids, then BOS (SOURCES.md)


def test_sequence_length_limit(stories: list[str]) -> None:
    result = run_cli(*stories, "--prompt", "", "--sequence-length", "8")
    assert result.returncode == 0, result.stderr
    assert "finish reason: sequence length reached, prompt tokens: 1, generated tokens: 8," in result.stderr


def test_same_seed_same_text_and_the_seed_is_reported(stories: list[str]) -> None:
    flags = [*stories, "--prompt", "Once upon a time", "--max-tokens", "30", "--temperature", "1.0", "--top-p", "0.9", "--top-k", "40"]
    first = run_cli(*flags, "--seed", "42")
    second = run_cli(*flags, "--seed", "42")
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert "seed: 42" in first.stderr
    unseeded = run_cli(*flags)
    seed = unseeded.stderr.rsplit("seed: ", 1)[1].split()[0]
    assert run_cli(*flags, "--seed", seed).stdout == unseeded.stdout


def test_debug_log_has_the_generation_stages(stories: list[str], tmp_path: Path) -> None:
    log = tmp_path / "trace.log"
    result = run_cli(*stories, "--prompt", "Once upon a time", "--max-tokens", "3", "--debug", "--debug-log", str(log))
    assert result.returncode == 0, result.stderr
    text = log.read_text(encoding="utf-8")
    for line in (
        "==== STAGE 01: TOKENIZATION ====",
        "Prompt tokens (5): [1, 403, 407, 261, 378]",
        "==== STAGE 02: CREATING THE TOKENS TENSOR ====",
        "==== STAGE 03: LOOPING THROUGH THE SEQUENCE LENGTH ====",
        "Running Forward for curPos: 5, prevPos: 0, tokens [1, 403, 407, 261, 378]",
        "Running Forward for curPos: 6, prevPos: 5, tokens [",
        "Generated token id ",
        "==== STAGE 19:",
    ):
        assert line in text, line


@pytest.mark.parametrize("name", ["tiny-mha", "tiny-llama3"])
def test_meta_format_models_text_and_chat(name: str) -> None:
    model = TINY_MODELS / name
    text = run_cli("--model", str(model), "--prompt", "The cat", "--max-tokens", "5")
    assert text.returncode == 0, text.stderr
    assert text.stdout.endswith("\n") and "generated tokens: 5" in text.stderr
    chat = run_cli("--model", str(model), "--chat", "--system", "Be brief.", "--prompt", "Hi", "--max-tokens", "4", "--dtype", "f32")
    assert chat.returncode == 0, chat.stderr
    assert "loaded meta model" in chat.stderr


def test_ctrl_c_during_generation_exits_130_and_keeps_the_text(stories: list[str], tmp_path: Path) -> None:
    # --debug slows each token down (thousands of log lines), leaving a wide window for the signal.
    process = subprocess.Popen(
        [sys.executable, "-m", "cmd.llama_infer", *stories, "--prompt", "", "--dtype", "f32", "--debug", "--debug-log", str(tmp_path / "d.log")],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        first = os.read(process.stdout.fileno(), 64)  # generation has started once text flows
        process.send_signal(signal.SIGINT)
        rest, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stdout, stderr = (first + rest).decode("utf-8"), err.decode("utf-8")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "finish reason: interrupted" in stderr
    assert stdout.startswith("Once") and stdout.endswith("\n")
    assert len(stdout) < len(expected_text(np.load(STORIES_FIXTURE)["f32/greedy"].tolist())) if STORIES_FIXTURE.exists() else True


def test_default_model_when_present() -> None:
    """Without --model the CLI runs the shipped KJV model (skipped until models/kjv exists)."""
    default = REPO_ROOT / "models" / "kjv"
    if not (default / "consolidated.00.pth").exists():
        pytest.skip(f"the default model is not at {default} yet")
    result = run_cli("--prompt", "In the beginning", "--max-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and result.stdout.endswith("\n")
    assert "loaded meta model" in result.stderr and "generated tokens:" in result.stderr


# ---- scripted conversations: one user turn per stdin line ----------------------------------------
def library_answers(model_dir: Path, questions: list[str], max_new_tokens: int) -> list[str]:
    """The same conversation through the library (llamanuts.inference.Conversation), in-process:
    what the CLI must print, one answer per line, with nothing else on stdout."""
    from llamanuts.inference import Conversation, InferenceArgs, InferenceEngine
    from llamanuts.model import LlamaTransformer
    from llamanuts.model.loader import load_model

    loaded = load_model(model_dir)
    engine = InferenceEngine(LlamaTransformer(loaded.args, loaded.weights, "bf16"), loaded.tokenizer, InferenceArgs(max_new_tokens=max_new_tokens))
    conversation = Conversation(engine)
    return ["".join(part.text for part in conversation.Ask(q)).lstrip(" ") for q in questions]


def test_two_turn_conversation_from_piped_stdin(tmp_path: Path) -> None:
    from .terminal import chat_model

    model = chat_model(tmp_path)
    result = run_cli("-m", str(model), "--chat", "-n", "4", stdin="Hello there\n\nAnd then?\n")  # a blank line is skipped
    assert result.returncode == 0, result.stderr
    expected = library_answers(model, ["Hello there", "And then?"], 4)
    assert result.stdout == "".join(answer + "\n" for answer in expected)
    stats = re.findall(r"prompt tokens: (\d+) \((\d+) from the cache\), generated tokens: (\d+)", result.stderr)
    assert len(stats) == 2
    (prompt1, cached1, _), (prompt2, cached2, _) = [tuple(map(int, s)) for s in stats]
    assert cached1 == 0 and prompt1 <= cached2 < prompt2  # turn 2 prefilled only what follows turn 1
    assert "never trained to chat" in result.stderr  # the tiny model is a base model: said once, on stderr


def test_a_scripted_chat_that_fills_the_context_stops_with_a_message_and_exit_2(tmp_path: Path) -> None:
    from .terminal import chat_model

    result = run_cli("-m", str(chat_model(tmp_path)), "--chat", "-n", "4", "-c", "64", stdin="Tell me more\n" * 8)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(r"context full: the conversation \(\d+ earlier turns? and the new message\) takes \d+ tokens, plus 4 kept for the answer, "
                     r"more than the context size of 64 tokens \(the context holds 64 tokens; --ctx-size can raise it to the model's max_seq_len 512\)", result.stderr)
    answered = result.stderr.count("from the cache)")
    assert 1 <= answered < 8 and len(result.stdout.splitlines()) >= 1


def test_chat_with_a_prompt_flag_is_one_turn(tmp_path: Path) -> None:
    from .terminal import chat_model

    model = chat_model(tmp_path)
    result = run_cli("-m", str(model), "--chat", "-p", "Hello there", "-n", "4")
    assert result.returncode == 0, result.stderr
    assert result.stdout == library_answers(model, ["Hello there"], 4)[0] + "\n"


# ---- hostile input: invalid UTF-8, files that are not files ---------------------------------------
def run_bytes(*flags: str | bytes, stdin: bytes = b"", timeout: float = 120, **kwargs) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "cmd.llama_infer", *flags], cwd=REPO_ROOT, input=stdin, capture_output=True, timeout=timeout, **kwargs)


def test_invalid_utf8_in_the_prompt_flag_is_a_usage_error_naming_the_byte(stories: list[str]) -> None:
    result = run_bytes(*stories, "-p", b"caf\xe9 au lait")
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.strip() == b"--prompt is not valid UTF-8: byte 0xe9 at offset 3 (line 1); give the text in UTF-8"
    result = run_bytes(*stories, "-sys", b"\xff", "-p", "hi")
    assert result.returncode == 2 and b"--system is not valid UTF-8: byte 0xff at offset 0" in result.stderr


def test_invalid_utf8_on_stdin_is_a_usage_error(stories: list[str]) -> None:
    result = run_bytes(*stories, stdin=b"Once upon\n\xc3\x28 a time\n")
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert b"standard input is not valid UTF-8: byte 0xc3 at offset 10 (line 2)" in result.stderr
    chat = run_bytes("-m", str(TINY_MODELS / "tiny-mha"), "--chat", "-n", "2", stdin=b"hello\nbad \xff line\n")
    assert chat.returncode == 2 and b"standard input line 2 is not valid UTF-8: byte 0xff at column 5" in chat.stderr
    assert chat.stdout.count(b"\n") == 1  # the first line was answered before the bad one was read


def test_a_prompt_file_with_invalid_utf8_names_the_line(stories: list[str], tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_bytes(b"line one\nline \x80two\n")
    result = run_bytes(*stories, "-f", str(prompt))
    assert result.returncode == 2
    assert f"{prompt}: the prompt file is not valid UTF-8: byte 0x80 at offset 14 (line 2)".encode() in result.stderr


def test_devices_and_fifos_are_refused_before_they_are_read(stories: list[str], tmp_path: Path) -> None:
    result = run_cli("--model", str(STORIES), "--tokenizer", "/dev/zero", "-p", "x", timeout=60)
    assert result.returncode == 2 and result.stderr.strip() == "/dev/zero: the tokenizer is a character device, not a regular file"
    result = run_cli(*stories, "-f", "/dev/zero", timeout=60)
    assert result.returncode == 2 and "/dev/zero: the prompt file is a character device, not a regular file" in result.stderr
    fifo = tmp_path / "prompt.fifo"
    os.mkfifo(fifo)
    result = run_cli(*stories, "-f", str(fifo), timeout=60)  # open() would wait for a writer forever
    assert result.returncode == 2 and f"{fifo}: the prompt file is a FIFO (named pipe), not a regular file" in result.stderr
    model = tmp_path / "model"
    model.mkdir()
    os.mkfifo(model / "params.json")
    result = run_cli("--model", str(model), "-p", "x", timeout=60)
    assert result.returncode == 2 and "the model's params.json is a FIFO (named pipe), not a regular file" in result.stderr


# ---- output failures ----------------------------------------------------------------------------
def test_closed_stdout_is_one_line_and_exit_1(stories: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "cmd.llama_infer", *stories, "-p", "", "-n", "5"], cwd=REPO_ROOT,
                            stderr=subprocess.PIPE, text=True, timeout=120, preexec_fn=lambda: os.close(1))
    assert result.returncode == 1
    assert result.stderr.strip() == "llama_infer: standard output is closed: nowhere to write the results (run without >&-)"


def test_a_full_disk_on_stdout_is_one_line_and_exit_1(stories: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "cmd.llama_infer", *stories, "-p", "", "-n", "5"], cwd=REPO_ROOT,
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "llama_infer: cannot write to standard output: No space left on device"


def test_a_full_disk_under_the_debug_log_is_one_line_and_exit_1(stories: list[str]) -> None:
    result = run_cli(*stories, "-p", "", "-n", "5", "--debug", "--debug-log", "/dev/full")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert "llama_infer: cannot write the debug log /dev/full: No space left on device" in result.stderr


def test_a_reader_closing_the_pipe_early_is_one_line_and_exit_141(stories: list[str], tmp_path: Path) -> None:
    """As `| head -c1`: the program waits (test checkpoint) after its first text, the reader takes one
    byte and goes away, then the program writes on into the closed pipe."""
    from .terminal import Checkpoints

    checkpoints = Checkpoints(tmp_path / "checkpoints")
    resume = tmp_path / "resume"
    env = dict(os.environ, **checkpoints.env(pause="answer#1"), LLAMANUTS_TEST_RESUME=str(resume))
    process = subprocess.Popen([sys.executable, "-m", "cmd.llama_infer", *stories, "-p", "", "-n", "50"], cwd=REPO_ROOT,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None and process.stderr is not None
        checkpoints.wait_for("answer", process=process)
        assert os.read(process.stdout.fileno(), 1)
        process.stdout.close()
        resume.touch()
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 141, err
    finally:
        if process.poll() is None:
            process.kill()
    assert "Traceback" not in err and "Exception ignored" not in err
    assert err.strip().splitlines()[-1] == "llama_infer: standard output was closed by the reader (broken pipe): stopped"


# ---- signals -------------------------------------------------------------------------------------
def test_sigterm_during_generation_exits_143_and_keeps_the_text(stories: list[str], tmp_path: Path) -> None:
    from .terminal import Checkpoints

    checkpoints = Checkpoints(tmp_path / "checkpoints")
    env = dict(os.environ, **checkpoints.env(pause="answer#1"))
    process = subprocess.Popen([sys.executable, "-m", "cmd.llama_infer", *stories, "-p", ""], cwd=REPO_ROOT,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        checkpoints.wait_for("answer", process=process)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert b"Traceback" not in err and b"finish reason: interrupted" in err
    assert out.startswith(b"Once") and out.endswith(b"\n")
