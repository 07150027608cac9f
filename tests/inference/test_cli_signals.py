"""Ctrl-C (SIGINT) and SIGTERM at every moment of a run end with 130 / 143 and no traceback
(cmd/interrupts.py). Each test waits for the program to report, through a test checkpoint, that it
is in the phase under test (and to wait there) before it sends the signal: no guessed sleeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from .cli_module import load_cli
from .terminal import FIXTURE_MODELS, REPO_ROOT, SHARED_REFS, STORIES, TOK512, Checkpoints

TINY = FIXTURE_MODELS / "tiny-gqa"


def start(tmp_path: Path, *flags: str, pause: str | None = None, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, Checkpoints]:
    checkpoints = Checkpoints(tmp_path / "checkpoints")
    env = dict(os.environ, **checkpoints.env(pause=pause), **(extra_env or {}))
    process = subprocess.Popen([sys.executable, "-m", "cmd.llama_infer", *flags], cwd=REPO_ROOT, env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return process, checkpoints


def finish(process: subprocess.Popen, timeout: float = 90) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def assert_no_traceback(err: str) -> None:
    assert "Traceback" not in err and "Exception ignored" not in err, err


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_a_signal_during_the_imports_exits_cleanly(tmp_path: Path, signum: int, code: int, word: str) -> None:
    process, checkpoints = start(tmp_path, "-m", str(TINY), "-p", "hi", "-n", "2", pause="imports")
    checkpoints.wait_for("imports", process=process)  # numpy is in, the model code not yet
    process.send_signal(signum)
    returncode, out, err = finish(process)
    assert returncode == code, err
    assert err.endswith(f"llama_infer: {word}\n") and out == ""
    assert_no_traceback(err)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_model_loads_exits_cleanly(tmp_path: Path, signum: int, code: int) -> None:
    process, checkpoints = start(tmp_path, "-m", str(TINY), "-p", "hi", "-n", "2", pause="load#1")
    checkpoints.wait_for("load", process=process)  # the first tensor is mapped, the rest not yet
    process.send_signal(signum)
    returncode, _, err = finish(process)
    assert returncode == code, err
    assert "loaded" not in err
    assert_no_traceback(err)


@pytest.mark.parametrize("after", [0.0, 0.3])
def test_ctrl_c_while_the_kernels_compile_exits_130_without_a_traceback(tmp_path: Path, after: float) -> None:
    """A cold Numba cache: the first Forward compiles every kernel for seconds, and LLVM calls back
    into Python through ctypes, which would swallow a KeyboardInterrupt and leave the compiler
    half-way ("no compiled object yet"). The signal lands somewhere in that compilation (`after`
    only spreads where; a cold compile takes over a second even on a fast idle CPU, so 0.3 s is
    still inside it, while 1.5 s was past the end of the run on CI), and whatever the moment the run
    must end with 130, never a traceback, and never run on to exit 0."""
    process, checkpoints = start(tmp_path, "-m", str(TINY), "-p", "hi", "-n", "3", "--dtype", "f32",
                                 extra_env={"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")})
    checkpoints.wait_for("generate", process=process)
    time.sleep(after)  # not a synchronisation: every landing point must give the same result
    process.send_signal(signal.SIGINT)
    returncode, _, err = finish(process, timeout=180)
    assert returncode == 130, err
    assert "finish reason: interrupted" in err  # stopped, after the compilation, as an interrupted generation
    assert_no_traceback(err)


def test_ctrl_c_twice_while_the_kernels_compile_exits_at_once(tmp_path: Path) -> None:
    process, checkpoints = start(tmp_path, "-m", str(TINY), "-p", "hi", "-n", "3", "--dtype", "f32",
                                 extra_env={"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")})
    checkpoints.wait_for("generate", process=process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    returncode, _, err = finish(process, timeout=180)
    assert returncode == 130, err
    assert_no_traceback(err)


def test_ctrl_c_during_generation_exits_130_and_keeps_the_text(tmp_path: Path) -> None:
    if not (STORIES.exists() and TOK512.exists()):
        pytest.skip(f"stories260K.bin / tok512.bin not found in {SHARED_REFS}")
    process, checkpoints = start(tmp_path, "--model", str(STORIES), "--tokenizer", str(TOK512), "-p", "", pause="answer#1")
    checkpoints.wait_for("answer", process=process)
    process.send_signal(signal.SIGINT)
    returncode, out, err = finish(process)
    assert returncode == 130, err
    assert "finish reason: interrupted" in err and out.startswith("Once") and out.endswith("\n")
    assert_no_traceback(err)


# ---- the rules, in-process (the handler is called directly; pytest keeps its own handlers) -------
@pytest.fixture
def interrupts():
    module = load_cli("interrupts")
    yield module
    module._state.pending = None
    module._state.depth = 0


def frame_in(module_name: str) -> SimpleNamespace:
    """A stand-in for the frame Python hands a signal handler: in `module_name`, called from here."""
    return SimpleNamespace(f_globals={"__name__": module_name}, f_back=sys._getframe())


def test_a_signal_inside_a_cancellable_section_raises_keyboard_interrupt(interrupts) -> None:
    with interrupts.cancellable():
        with pytest.raises(KeyboardInterrupt):
            interrupts._handle(signal.SIGINT, sys._getframe())
    assert interrupts.acknowledge() == signal.SIGINT
    with interrupts.cancellable():
        with pytest.raises(interrupts.Terminated):
            interrupts._handle(signal.SIGTERM, sys._getframe())
    assert interrupts.acknowledge() == signal.SIGTERM


def test_a_signal_inside_numbas_compiler_is_deferred_to_the_next_check(interrupts, capfd) -> None:
    with interrupts.cancellable():
        interrupts._handle(signal.SIGINT, frame_in("numba.core.compiler"))  # must not raise there
        assert "stopping once the kernels are compiled" in capfd.readouterr().err
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    interrupts.acknowledge()
    interrupts.check()  # acknowledged: nothing left to raise


def test_an_interrupt_swallowed_by_a_ctypes_callback_is_raised_again_by_check(interrupts) -> None:
    with interrupts.cancellable():
        try:
            interrupts._handle(signal.SIGINT, frame_in("llama_infer"))
        except KeyboardInterrupt:
            pass  # what ctypes does with an exception raised in a callback
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()
    interrupts.acknowledge()
