"""llama_perplexity: how well a model predicts a text (tokens, mean NLL, perplexity +/- its error, tokens/s).

    python -m cmd.llama_perplexity -f models/kjv/validation.txt                # the default model
    python -m cmd.llama_perplexity -m ../shared/refs/stories260K.bin --tokenizer ../shared/refs/tok512.bin \\
        -f story.txt --chunks 4 --json

The protocol is in src/inference/perplexity.py: the text as one token stream, cut into chunks, BOS
before each, every chunk token scored. Results go to stdout, ending with llama.cpp's
`PPL = x +/- y` line (the error is the standard error of the mean NLL carried to the perplexity);
progress goes to stderr: a bar with the running perplexity on a terminal, llama.cpp's
`[1]37.1,[2]36.8,...` otherwise.
"""

from __future__ import annotations

if __name__ == "__main__":  # first of all: from here on, Ctrl-C and SIGTERM end the program cleanly
    from cmd import interrupts as _interrupts

    _interrupts.install("llama_perplexity")

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from cmd import common, interrupts
from cmd.common import InputProblem


def build_parser() -> argparse.ArgumentParser:
    parser = common.Parser(
        prog="python -m cmd.llama_perplexity",
        description=__doc__.split("\n\n")[0],
        epilog=f"Exit codes: 0 done; 2 a bad flag, no model, a bad file, a text shorter than one chunk.\n"
        f"{common.INPUT_EPILOG}\n{common.OUTPUT_EPILOG}\n{common.SIGNAL_EPILOG}",
    )
    common.add_model_flags(parser)
    parser.add_argument("-f", "--text", "--file", dest="text", type=Path, required=True, help="the UTF-8 text file to score")
    common.add_compute_flags(parser, ctx_help="context size in tokens: BOS and N-1 scored tokens per chunk (default: the model's max_seq_len)")
    parser.add_argument("--ctx", type=int, default=None, metavar="N", help="scored tokens per chunk, the same as --ctx-size N+1")
    parser.add_argument("--chunks", type=int, default=None, metavar="N", help="only the first N chunks")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def check_flags(parser: argparse.ArgumentParser, flags: argparse.Namespace) -> None:
    common.check_compute_flags(parser, flags)
    if flags.ctx is not None and flags.sequence_length is not None:
        parser.error("give --ctx-size or --ctx, not both")
    if flags.sequence_length is not None:
        if flags.sequence_length < 2:
            parser.error(f"--ctx-size must be >= 2 (BOS and one scored token), got {flags.sequence_length}")
        flags.ctx = flags.sequence_length - 1
    if flags.ctx is not None and flags.ctx < 1:
        parser.error(f"--ctx must be >= 1, got {flags.ctx}")
    if flags.chunks is not None and flags.chunks < 1:
        parser.error(f"--chunks must be >= 1, got {flags.chunks}")


class RunningPerplexity:
    """Progress on stderr: a rich bar with the running perplexity on a terminal, else llama.cpp's
    `[1]37.12,[2]36.80,...` on one line, so a log shows the run is alive."""

    def __init__(self, console) -> None:  # type: ignore[no-untyped-def]
        self.console = console
        self.bar = None
        self.task = None

    def __enter__(self) -> "RunningPerplexity":
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("scoring chunks"), BarColumn(), MofNCompleteColumn(), TextColumn("ppl {task.fields[ppl]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("score", total=None, ppl="-")
        return self

    def __call__(self, done: int, total: int, ppl: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total, ppl=f"{ppl:.4f}")
        else:
            self.console.file.write(f"[{done}]{ppl:.4f}," if done < total else f"[{done}]{ppl:.4f}\n")
            self.console.file.flush()

    def __exit__(self, *exc) -> None:  # type: ignore[no-untyped-def]
        if self.bar is not None:
            self.bar.__exit__(*exc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_flags(parser, args)
    problem = common.stdout_problem()
    if problem is not None:
        common.print_error(f"llama_perplexity: {problem}")
        return common.EXIT_OUTPUT
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True, highlight=False)
    try:
        model_path = common.model_path(args)
        common.check_model_path(model_path)
        if args.tokenizer is not None:
            common.check_regular_file(args.tokenizer, "tokenizer")
        text = common.read_text_file(args.text, "text")

        import numpy  # noqa: F401 - the heavy imports start here

        common.checkpoint("imports")
        from llamanuts.common import LlamaError
        from llamanuts.inference.perplexity import perplexity
        from llamanuts.ml import GetThreads, SetThreads
        from llamanuts.model import LlamaTransformer
        from llamanuts.model.loader import load_model
    except InputProblem as exc:
        console.print(Text(str(exc), style="bold red"), soft_wrap=True)
        return common.EXIT_USAGE
    try:
        if args.threads:
            SetThreads(args.threads)
        started = time.perf_counter()
        with console.status("loading the model"):
            loaded = load_model(model_path, tokenizer_path=args.tokenizer, progress=lambda *_: common.checkpoint("load"))
        if args.verify:
            common.verify_model(loaded)
        dtype = common.resolve_dtype(args.dtype, loaded)
        model = LlamaTransformer(loaded.args, loaded.weights, dtype)
        with console.status(f"tokenizing {len(text):,} characters"):
            stream = loaded.tokenizer.encode(text)
        ctx = args.ctx or loaded.args.max_seq_len - 1
        chunks = len(stream) // ctx if args.chunks is None else min(args.chunks, len(stream) // ctx)
        console.print(
            Text(f"loaded {loaded.format} model in {time.perf_counter() - started:.2f} s; compute {dtype}, {GetThreads()} thread(s); "
                 f"{len(stream):,} tokens: {chunks} chunk(s) of {ctx} (the first one also compiles the kernels on a cold cache)"),
            soft_wrap=True,
        )
        common.checkpoint("generate")
        with RunningPerplexity(console) as running:
            result = perplexity(model, stream, loaded.tokenizer.bos_id, args.ctx, args.chunks, running=running)
    except (InputProblem, LlamaError) as exc:
        prefix = f"{type(exc).__name__}: " if isinstance(exc, LlamaError) else ""
        console.print(Text(f"{prefix}{exc}", style="bold red"), soft_wrap=True)
        return common.EXIT_USAGE
    except KeyboardInterrupt:  # only reached if a caller made this cancellable
        return interrupts.exit_code(interrupts.acknowledge())
    report = {
        "model": str(model_path),
        "text": str(args.text),
        "dtype": dtype,
        "chunks": result.chunks,
        "ctx": result.ctx,
        "tokens": result.tokens,
        "mean_nll": result.mean_nll,
        "perplexity": result.perplexity,
        "perplexity_stderr": result.perplexity_stderr,
        "tokens_per_second": round(result.tokens_per_second, 1),
    }
    try:
        if args.json:
            print(json.dumps(report))
        else:
            for key, value in report.items():
                print(f"{key:>18}: {value}")
            print(f"PPL = {result.perplexity:.4f} +/- {result.perplexity_stderr:.5f}")
        common.flush_stdout()
    except OSError as exc:
        code, message = common.output_failure(exc)
        common.print_error(f"llama_perplexity: {message}")
        return code
    return common.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
