#!/usr/bin/env python3
"""Record real runs of the command-line tools as SVG "screenshots" for the README and the docs.

    python tools/capture_cli.py                   # -> docs/figures/cli-*.svg, on the default model

Each capture runs a tool in scriptable mode from the repository root, exactly as a reader would
type it, collects its standard error (the load summary, the statistics line) and standard output
(the generated text), and replays both into a `rich` Console(record=True), which saves an SVG of
a terminal window. Standard output is shown in bold so the generated text stands out from the
tool's messages on standard error. Nothing is edited by hand: rerun the script after the CLI or
the default model changes.

For development before the default model exists, `--model-args` adds arguments to the llama_infer
runs, e.g. `--model-args "--model ../shared/refs/stories260K.bin --tokenizer ../shared/refs/tok512.bin"`,
and `--tokenizer` replaces the tokenizer of the llama_tokenize capture.
"""

from __future__ import annotations

import argparse
import os
import selectors
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "docs" / "figures"
WIDTH = 110  # terminal columns of the recording


@dataclass
class Capture:
    name: str  # the SVG is docs/figures/<name>.svg
    title: str  # the window title
    argv: list[str]  # as typed, starting with "python"
    after: list[str] | None = None  # a second command, run after the first (e.g. reading the log)


def captures(model_args: list[str], tokenizer: str) -> list[Capture]:
    infer = ["python", "-m", "cmd.llama_infer", *model_args]
    return [
        Capture(
            "cli-llama-infer",
            "llama_infer: text completion",
            [*infer, "--prompt", "In the beginning", "--max-tokens", "40"],
        ),
        Capture(
            "cli-llama-infer-debug",
            "llama_infer --debug, then the stages in debug.log",
            [*infer, "--debug", "--prompt", "In the beginning", "--max-tokens", "3"],
            ["awk", "/==== STAGE/ && !seen[$4]++", "debug.log"],  # each stage's first line
        ),
        Capture(
            "cli-llama-tokenize",
            "llama_tokenize",
            ["python", "-m", "cmd.llama_tokenize", "--tokenizer", tokenizer, "--bos", "In the beginning God created"],
        ),
        Capture(
            "cli-llama-tokenize-emoji",
            "llama_tokenize: an emoji as byte-fallback tokens",
            ["python", "-m", "cmd.llama_tokenize", "--tokenizer", tokenizer, "Amen 😀"],
        ),
    ]


def run(argv: list[str], cwd: Path) -> list[tuple[str, str]]:
    """Run `argv`; return its output as (stream, text) chunks in the order they were written.

    Both pipes are read as data arrives, so the recording keeps the real interleaving: the load
    summary (stderr), then the generated text (stdout, flushed token by token), then the statistics.
    """
    real = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    env = {**os.environ, "COLUMNS": str(WIDTH), "TERM": "dumb", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(real, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    chunks: list[tuple[str, str]] = []
    with selectors.DefaultSelector() as selector:
        assert process.stdout is not None and process.stderr is not None
        selector.register(process.stdout, selectors.EVENT_READ, "stdout")
        selector.register(process.stderr, selectors.EVENT_READ, "stderr")
        open_streams = 2
        while open_streams:
            for key, _ in selector.select(timeout=900):
                data = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                if not data:
                    selector.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                text = data.decode("utf-8", errors="replace")
                if chunks and chunks[-1][0] == key.data:
                    chunks[-1] = (key.data, chunks[-1][1] + text)
                else:
                    chunks.append((key.data, text))
    if process.wait(timeout=60) != 0:
        errors = "".join(text for stream, text in chunks if stream == "stderr")
        raise RuntimeError(f"{shlex.join(argv)} failed with exit {process.returncode}:\n{errors[-2000:]}")
    return chunks


def record(capture: Capture, workdir: Path) -> str:
    """Run the capture's commands (the debug log goes to `workdir`, not to the checkout) and record them."""
    from rich.console import Console
    from rich.text import Text

    console = Console(record=True, width=WIDTH, force_terminal=True, color_system="truecolor", file=open(os.devnull, "w"))
    commands = [capture.argv] + ([capture.after] if capture.after else [])
    log = workdir / "debug.log"
    for shown in commands:
        # Shown as a reader types it; run with the log kept out of the working tree.
        actual = list(shown)
        if "--debug" in actual:
            actual += ["--debug-log", str(log)]
        actual = [str(log) if word == "debug.log" else word for word in actual]
        console.print(Text("$ ", style="bold green") + Text(shlex.join(shown), style="bold"))
        output = Text()
        for stream, text in run(actual, REPO):
            output.append_text(Text.from_ansi(text, style="bold" if stream == "stdout" else "grey62"))
        output.rstrip()
        console.print(output)
    return console.export_svg(title=capture.title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-args", default="", help="extra llama_infer arguments (development only)")
    parser.add_argument("--tokenizer", default="models/kjv/tokenizer.model", help="tokenizer for the llama_tokenize capture")
    parser.add_argument("--out", type=Path, default=FIGURES)
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    for capture in captures(shlex.split(args.model_args), args.tokenizer):
        with tempfile.TemporaryDirectory() as tmp:
            svg = record(capture, Path(tmp))
        path = args.out / f"{capture.name}.svg"
        path.write_text(svg, encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
