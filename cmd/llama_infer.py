"""llama_infer: run a Llama model, interactively (a menu, a chat) or from a script. Run from the repo root.

Interactive (no --prompt/--file, stdin is a terminal): a welcome banner, the model loads with a
progress bar, then a menu: 0 prints the model metadata, then predefined prompts that suit the
model, then completion (the model continues your text) and chat (a conversation with history and
slash commands; offered with a warning for base models, which were never trained to chat). With
--chat or --system the chat starts at once. Lines are edited with the standard readline (arrow
keys, history). Ctrl-C stops an answer and returns to the prompt; at an empty prompt it exits (130);
Ctrl-D exits (0).

    python -m cmd.llama_infer                                  # the default model, models/kjv
    python -m cmd.llama_infer -m /path/to/llama-2-7b-chat --chat -sys "Answer briefly."

Scriptable (--prompt or --file given, or stdin is not a terminal): standard output receives exactly
the generated text and a final newline; the banner, progress and the statistics line (finish
reason, token counts, time to first token, tokens/s) go to stderr. With --chat and no --prompt,
each line of stdin is one user turn of one conversation, and each answer is printed on stdout
followed by a newline (blank lines are skipped).

    python -m cmd.llama_infer -p "In the beginning" -n 40
    python -m cmd.llama_infer -m ../shared/refs/stories260K.bin --tokenizer ../shared/refs/tok512.bin -p "" -n 200
    printf 'What is the capital of France?\\nAnd of Italy?\\n' | python -m cmd.llama_infer -m llama-2-7b-chat --chat
    python -m cmd.llama_infer -p "Blessed are the" --temp 0.8 --top-p 0.9 --min-p 0.05 -s 42
    python -m cmd.llama_infer -p "Blessed are the" --debug --debug-log /tmp/debug.log
"""

from __future__ import annotations

if __name__ == "__main__":  # first of all: from here on, Ctrl-C and SIGTERM end the program cleanly
    from cmd import interrupts as _interrupts

    _interrupts.install("llama_infer")

import argparse
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence, TextIO

from cmd import common, interrupts
from cmd.common import DEFAULT_MODEL, EXIT_OK, EXIT_OUTPUT, EXIT_USAGE, REPO_ROOT, InputProblem

if TYPE_CHECKING:  # for the annotations only; the real imports wait, see below
    from llamanuts.inference import Conversation, GeneratedPart, InferenceEngine
    from llamanuts.model.loader import LoadedModel

EXIT_INTERRUPTED, EXIT_TERMINATED = interrupts.EXIT_INTERRUPTED, interrupts.EXIT_TERMINATED
MAX_PROMPT_BYTES = 16 * 2**20  # a prompt file or stdin: 16 MiB, far beyond any context size
CHAT_PROMPT = "user> "
SLASH_COMMANDS = {
    "/help": "this list",
    "/reset": "forget the conversation (the system prompt stays)",
    "/system TEXT": "set the system prompt (/system alone removes it); the history stays",
    "/drop [N]": "forget the N oldest turns (default 1), e.g. when the context is full",
    "/history": "show the conversation so far",
    "/stats": "the conversation's size and the last answer's statistics",
    "/menu": "back to the menu",
    "/quit": "exit (also /exit, or Ctrl-D)",
}

# Heavy imports (numba, the model) wait until the flags are known good: `--help` and a bad flag
# answer at once.

EPILOG = f"""\
Flags follow llama.cpp's llama-cli where they can: -m, -p, -f, -n (--n-predict), -s, -t, -c,
--temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n, -sys. Abbreviations of long
flags are not accepted. Sampling is greedy at the default --temp 0: then --top-k, --top-p, --min-p
and --seed have no effect (a warning says so); --repeat-penalty applies in greedy decoding too.

Exit codes: 0 done; 2 a bad flag, no model, a bad file, invalid UTF-8 input, an unwritable debug
log or a full context in a scripted chat (a message, no traceback unless --verbose); 130
interrupted with Ctrl-C, 143 terminated (SIGTERM); what was generated stays printed.
{common.INPUT_EPILOG}
{common.OUTPUT_EPILOG}
In a scripted chat, an answer that itself holds newlines spans several lines of output."""


# ---- flags ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = common.Parser(
        prog="python -m cmd.llama_infer",
        description="Run a Llama model: an interactive menu and chat, or scriptable with --prompt / --file / stdin.",
        epilog=EPILOG,
    )
    model = parser.add_argument_group("model")
    common.add_model_flags(model)
    common.add_compute_flags(model, ctx_help="KV cache size in tokens, the most a conversation can hold (default: the model's max_seq_len)")
    prompt = parser.add_argument_group("prompt")
    prompt.add_argument("-p", "--prompt", default=None, help='text to complete ("" starts from BOS alone); without it and with stdin piped, the prompt is read from stdin')
    prompt.add_argument("-f", "--file", type=Path, default=None, help="read the prompt from this UTF-8 file")
    prompt.add_argument("--chat", action="store_true", help="chat with the model's template (Llama 2 [INST] or Llama 3 headers); with stdin piped, one user turn per line")
    prompt.add_argument("-sys", "--system", default=None, help="system prompt (implies --chat)")
    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("-n", "--max-tokens", "--n-predict", dest="max_tokens", type=int, default=None, metavar="N",
                          help="stop after N generated tokens per answer; -1: no limit (default: until a stop token or the context is full)")
    sampling.add_argument("--temp", "--temperature", dest="temperature", type=float, default=0.0, metavar="T", help="0 is greedy (default: 0)")
    sampling.add_argument("--top-k", type=int, default=None, metavar="K", help="keep the K most likely tokens (default: 0, off)")
    sampling.add_argument("--top-p", type=float, default=None, metavar="P", help="nucleus sampling threshold (default: 1, off)")
    sampling.add_argument("--min-p", type=float, default=None, metavar="P", help="keep tokens at least P times as likely as the most likely one (default: 0, off)")
    sampling.add_argument("--repeat-penalty", type=float, default=None, metavar="X", help="divide (multiply, if negative) the logits of recent tokens by X (default: 1, off)")
    sampling.add_argument("--repeat-last-n", type=int, default=None, metavar="N", help="how many recent tokens the repeat penalty looks at; 0 none, -1 the whole context (default: 64)")
    sampling.add_argument("-s", "--seed", type=int, default=None, help="random seed for sampling; -1 or none: a fresh one, printed in the statistics")
    debug = parser.add_argument_group("diagnostics")
    debug.add_argument("--debug", action="store_true", help="write the stage-by-stage trace to the debug log")
    debug.add_argument("--debug-log", default="debug.log", help="debug log path (default: debug.log)")
    debug.add_argument("--trace-values", action="store_true", help="follow each tensor in the debug log with a summary of its last row (first values, mean, std) and log the top next tokens (implies --debug)")
    debug.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    return parser


SAMPLING_DEFAULTS = {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0, "repeat_last_n": 64}
GREEDY_IGNORES = (("top_k", "--top-k"), ("top_p", "--top-p"), ("min_p", "--min-p"), ("seed", "--seed"))


def check_flags(parser: argparse.ArgumentParser, flags: argparse.Namespace) -> list[str]:
    """Range checks argparse's types cannot express (a usage error, exit 2); fills in the sampling
    defaults and returns the warnings for flags that will have no effect."""
    if flags.trace_values:
        flags.debug = True  # the values are written to the debug log
    common.check_compute_flags(parser, flags)
    if flags.max_tokens is not None and flags.max_tokens < -1:
        parser.error(f"--max-tokens must be >= 0, or -1 for no limit, got {flags.max_tokens}")
    if flags.max_tokens == -1:
        flags.max_tokens = None
    if not flags.temperature >= 0:
        parser.error(f"--temperature must be >= 0, got {flags.temperature}")
    if flags.top_p is not None and not 0 < flags.top_p <= 1:
        parser.error(f"--top-p must be in (0, 1], got {flags.top_p}")
    if flags.top_k is not None and flags.top_k < 0:
        parser.error(f"--top-k must be >= 0, got {flags.top_k}")
    if flags.min_p is not None and not 0 <= flags.min_p <= 1:
        parser.error(f"--min-p must be in [0, 1], got {flags.min_p}")
    if flags.repeat_penalty is not None and not flags.repeat_penalty > 0:
        parser.error(f"--repeat-penalty must be > 0, got {flags.repeat_penalty}")
    if flags.repeat_last_n is not None and flags.repeat_last_n < -1:
        parser.error(f"--repeat-last-n must be >= -1, got {flags.repeat_last_n}")
    if flags.seed is not None and flags.seed < -1:
        parser.error(f"--seed must be >= 0, or -1 for a fresh one, got {flags.seed}")
    if flags.prompt is not None and flags.file is not None:
        parser.error("give the prompt with --prompt or --file, not both")
    warnings = []
    if flags.temperature == 0:
        for name, flag in GREEDY_IGNORES:
            if getattr(flags, name) is not None and not (name == "seed" and flags.seed == -1):
                warnings.append(f"{flag} has no effect at temperature 0 (greedy decoding); set --temp above 0 to sample")
    if flags.seed == -1:
        flags.seed = None
    for name, value in SAMPLING_DEFAULTS.items():
        if getattr(flags, name) is None:
            setattr(flags, name, value)
    return warnings


class ExitProgram(Exception):
    """Leave the program with this exit status (Ctrl-C at an empty prompt, Ctrl-D, /quit, SIGTERM)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


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
    request: Request | None  # None: typed by the user
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


def trained_to_chat(loaded: LoadedModel) -> bool:
    """A chat template in the model's files (GGUF / Hugging Face metadata), or a chat/instruct
    model by its name; base models (KJV, the stories models, Llama 2 base) were never trained on a
    chat layout."""
    if getattr(loaded, "chat_template", None):
        return True
    return model_family(loaded) in ("llama3-instruct", "llama2-chat")


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


COMPLETION_LABEL = "completion: type a text for the model to continue"
CHAT_LABEL = "chat: a conversation, with history and /commands"
BASE_CHAT_LABEL = "chat (a base model, never trained to chat: expect it to continue your text rather than answer)"


def menu_entries(loaded: LoadedModel) -> list[MenuEntry]:
    entries = []
    for request in predefined_requests(model_family(loaded)):
        kind = "chat" if request.chat else "text"
        shown = request.label or repr(request.text)
        if request.system:
            shown += f" (system: {request.system!r})"
        entries.append(MenuEntry(f"{kind}: {shown}", request, request.chat))
    entries.append(MenuEntry(COMPLETION_LABEL, None, chat=False))
    entries.append(MenuEntry(CHAT_LABEL if trained_to_chat(loaded) else BASE_CHAT_LABEL, None, chat=True))
    return entries


# ---- the UI ----------------------------------------------------------------------------------------
class UI:
    """Everything the user sees besides the generated text, on stderr through GLogger's console.
    Text from users or files is always passed as rich Text, never as markup."""

    def __init__(self, console) -> None:  # type: ignore[no-untyped-def]
        self.console = console

    @property
    def live(self) -> bool:
        return bool(self.console.is_terminal)

    def banner(self, model_path: Path, dtype: str) -> None:
        from rich.panel import Panel
        from rich.text import Text

        body = Text.assemble(("Llama Nuts and Bolts", "bold"), ", in Python\n", f"model: {model_path}\ncompute dtype: {dtype}")
        self.console.print(Panel.fit(body, title="llama_infer", border_style="cyan"))

    def loading(self, loader: Callable[[Callable[[int, int, str], None]], LoadedModel]) -> LoadedModel:
        """Run `loader(progress)` with a progress bar on a terminal, a plain line otherwise."""
        if not self.live:
            return loader(lambda done, total, name: common.checkpoint("load"))
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("loading [cyan]{task.fields[name]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=self.console, transient=True) as bar:
            task = bar.add_task("load", total=None, name="model files")

            def progress(done: int, total: int, name: str) -> None:
                bar.update(task, completed=done, total=total, name=name)
                common.checkpoint("load")

            return loader(progress)

    def summary(self, loaded: LoadedModel, seconds: float, dtype: str, threads: int) -> None:
        from rich.text import Text

        from llamanuts.model.metadata import model_metadata

        meta = model_metadata(loaded)
        a = loaded.args
        line = Text.assemble(
            "loaded ", (loaded.format, "bold"),
            f" model in {seconds:.2f} s: {meta.parameter_count:,} parameters "
            f"({meta.total_bytes / 2**20:.1f} MiB), {a.n_layers} layers, dim {a.dim}, {a.n_heads} heads "
            f"({a.n_kv_heads} kv), vocab {a.vocab_size}, max_seq_len {a.max_seq_len}; weights {meta.weight_types_text}; "
            f"tokenizer {loaded.tokenizer.kind}; compute {dtype}, {threads} thread(s)",
        )
        self.console.print(line, highlight=False, soft_wrap=True)

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
            self.say(f"  {f.role}: {f.path} ({f.size_bytes:,} bytes)")

    def say(self, text: str, style: str = "") -> None:
        from rich.text import Text

        self.console.print(Text(text, style=style), highlight=False, soft_wrap=True)

    def labelled(self, label: str, text: str, label_style: str = "dim", end: str = "\n") -> None:
        """`label` in its style, then `text` as it is (user text: no markup, ever)."""
        from rich.text import Text

        self.console.print(Text.assemble((label, label_style), text), highlight=False, soft_wrap=True, end=end)
        self.console.file.flush()

    def stats(self, line: str, interrupted: bool) -> None:
        # soft_wrap: one line whatever the width, so a script can grep it from stderr.
        self.say(line, "yellow" if interrupted else "dim")

    def warning(self, message: str) -> None:
        self.say(f"warning: {message}", "yellow")
        from llamanuts.common.logger import GLogger

        GLogger.DebugPrintf("WARNING: %s", message)

    def error(self, message: str) -> None:
        """A user-facing error: red on a terminal, never wrapped, also in the debug log when it is on."""
        self.say(message, "bold red")
        from llamanuts.common.logger import GLogger

        try:
            GLogger.DebugPrintf("ERROR: %s", message)
        except OSError:  # the debug log itself may be what failed
            pass


# ---- streaming the generated text ------------------------------------------------------------------
class StdoutError(Exception):
    """Writing the generated text failed (a closed pipe, a full disk): `error` is the OSError."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


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
        try:
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
        except OSError as exc:
            raise StdoutError(exc) from exc

    def _erase_waiting(self) -> None:
        if self._shown_waiting:
            n = self._shown_waiting
            self.out.write("\b" * n + " " * n + "\b" * n)
            self._shown_waiting = 0

    def end(self) -> None:
        try:
            self._erase_waiting()
            self.out.write("\n")
            self.out.flush()
        except OSError as exc:
            raise StdoutError(exc) from exc


# ---- running ---------------------------------------------------------------------------------------
@dataclass
class Session:
    loaded: LoadedModel
    engine: InferenceEngine
    ui: UI
    warmed_up: bool = False
    reader: common.LineReader | None = None


def first_part_with_spinner(session: Session, parts: Iterator[GeneratedPart]) -> GeneratedPart | None:
    """The first Forward compiles the Numba kernels when their cache is cold: say so while it runs."""
    if session.warmed_up or not session.ui.live:
        session.warmed_up = True
        return next(parts, None)
    with session.ui.console.status("warming up kernels (compiling on the first run only)...", spinner="dots"):
        first = next(parts, None)
    session.warmed_up = True
    return first


@dataclass
class Streamed:
    """How one generation ended: by itself, or stopped by a signal (its number)."""

    signal: int | None = None

    @property
    def interrupted(self) -> bool:
        return self.signal is not None


def stream(session: Session, parts: Iterator[GeneratedPart], sink: TextSink, before_text: Callable[[], None] | None = None) -> Streamed:
    """Stream `parts` into `sink`, then the statistics line. Ctrl-C (or SIGTERM) stops it: the text
    so far stays printed and the statistics say "interrupted"."""
    engine = session.engine
    result = Streamed()
    common.checkpoint("generate")
    with interrupts.cancellable():
        try:
            part = first_part_with_spinner(session, parts)
            interrupts.check()
            if before_text is not None:
                before_text()
            announced = False
            while part is not None:
                sink.write(part.text, part.waiting_bytes)
                if not announced and sink.wrote_any:
                    announced = True
                    common.checkpoint("answer")
                part = next(parts, None)
                interrupts.check()  # a signal deferred while Numba compiled, or swallowed by ctypes
        except KeyboardInterrupt:
            result.signal = interrupts.acknowledge()
            parts.close()
            sink.write(engine.FlushText())
    sink.end()
    stats = engine.stats
    line = stats.summary()
    if stats.seed is not None:
        line += f", seed: {stats.seed}"
    session.ui.stats(line, result.interrupted)
    return result


def exit_code_for(result: Streamed) -> int | None:
    if result.signal is None:
        return None
    return interrupts.exit_code(result.signal)


def generate_text(session: Session, request: Request, out: TextIO, show_waiting: bool, echo_prompt: bool = False) -> Streamed:
    """One text completion. With `echo_prompt` the prompt is shown (on the UI side) once the first
    token is there, so the warm-up spinner never shares a line with it."""
    engine = session.engine
    tokens = engine.TokenizeText(request.text)
    sink = TextSink(out, show_waiting, strip_leading_space=False)
    echo = (lambda: show_completion_prompt(session.ui, request.text)) if echo_prompt else None
    return stream(session, engine.Generate(tokens), sink, before_text=echo)


def show_completion_prompt(ui: UI, text: str) -> None:
    if text:
        # Completion continues the prompt: show it, then the generated text right after it.
        ui.labelled("", text, end="")


def load(flags: argparse.Namespace, ui: UI, model_path: Path) -> LoadedModel:
    from llamanuts.model.loader import load_model

    return ui.loading(lambda progress: load_model(model_path, flags.tokenizer, progress=progress))


def make_session(flags: argparse.Namespace, ui: UI, model_path: Path) -> Session:
    import numpy  # noqa: F401 - the heavy imports start here

    common.checkpoint("imports")
    from llamanuts.inference import InferenceArgs, InferenceEngine
    from llamanuts.ml import GetThreads, SetThreads
    from llamanuts.model.llamatransformer import LlamaTransformer

    if flags.threads is not None:
        SetThreads(flags.threads)
    started = time.perf_counter()
    loaded = load(flags, ui, model_path)
    if flags.verify:
        common.verify_model(loaded)
    dtype = common.resolve_dtype(flags.dtype, loaded)
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
        min_p=flags.min_p,
        repeat_penalty=flags.repeat_penalty,
        repeat_last_n=flags.repeat_last_n,
    )
    return Session(loaded, InferenceEngine(model, loaded.tokenizer, args), ui)


def warn_if_not_a_chat_model(session: Session) -> None:
    if not trained_to_chat(session.loaded):
        session.ui.warning(
            f"{session.loaded.path} looks like a base model (no chat template in its files, and its name says "
            f"neither chat nor instruct): it was never trained to chat, so expect it to continue the text rather "
            f"than answer. The {session.engine.chat_template.name} chat layout is used."
        )


def context_full_hint(session: Session) -> str:
    limit = session.engine.sequence_length
    most = session.loaded.args.max_seq_len
    more = f"; --ctx-size can raise it to the model's max_seq_len {most}" if limit < most else ""
    return f" (the context holds {limit} tokens{more})"


# ---- scriptable ------------------------------------------------------------------------------------
def run_scriptable(flags: argparse.Namespace, ui: UI, model_path: Path, prompt: str | None) -> int:
    if ui.live:  # a person is watching stderr; a log file gets no box drawing
        ui.banner(model_path, flags.dtype)
    session = make_session(flags, ui, model_path)
    chat = flags.chat or flags.system is not None
    if not chat:
        assert prompt is not None  # main read it from stdin when no flag gave it
        result = generate_text(session, Request(prompt), sys.stdout, show_waiting=False)
        return exit_code_for(result) or EXIT_OK
    warn_if_not_a_chat_model(session)
    from llamanuts.inference import Conversation

    conversation = Conversation(session.engine, system=flags.system)
    lines: Iterator[str] = iter([prompt]) if prompt is not None else common.stdin_lines(MAX_PROMPT_BYTES)
    for line in lines:
        if not line.strip():
            continue
        result = chat_turn(session, conversation, line, sys.stdout, show_waiting=False)
        code = exit_code_for(result)
        if code is not None:
            return code
    return EXIT_OK


def chat_turn(session: Session, conversation: Conversation, text: str, out: TextIO, show_waiting: bool,
              before_text: Callable[[], None] | None = None) -> Streamed:
    """One user turn: the answer streams to `out`, then its statistics (with the cache count)."""
    from llamanuts.inference import ContextFullError

    try:
        parts = conversation.Ask(text)
    except ContextFullError as exc:
        raise ContextFullExit(str(exc) + context_full_hint(session)) from None
    sink = TextSink(out, show_waiting, strip_leading_space=True)
    return stream(session, parts, sink, before_text=before_text)


class ContextFullExit(Exception):
    """A scripted chat cannot go on: the context is full (exit 2)."""


# ---- interactive -----------------------------------------------------------------------------------
def read_prompt(session: Session, prompt: str, style: str = "1") -> str:
    """A line typed at `prompt`. Ctrl-C on a typed line discards it and asks again (as a shell does);
    Ctrl-C at an empty prompt exits with 130, Ctrl-D with 0, SIGTERM with 143."""
    assert session.reader is not None
    while True:
        try:
            line = session.reader.read(prompt, style)
        except KeyboardInterrupt as exc:
            interrupts.acknowledge()
            session.ui.console.print()  # leave the ^C line
            if isinstance(exc, interrupts.Terminated):
                raise ExitProgram(EXIT_TERMINATED) from None
            if interrupts.line_at_signal():
                continue
            raise ExitProgram(EXIT_INTERRUPTED) from None
        except UnicodeDecodeError:
            session.ui.warning("that line is not valid UTF-8: type it again")
            continue
        if line is None:  # Ctrl-D: leave the shell prompt on a line of its own
            session.ui.console.print()
            raise ExitProgram(EXIT_OK)
        return line


def run_interactive(flags: argparse.Namespace, ui: UI, model_path: Path) -> int:
    ui.banner(model_path, flags.dtype)
    session = make_session(flags, ui, model_path)
    session.reader = common.LineReader(commands=[c.split()[0] for c in SLASH_COMMANDS])
    interrupts.add_cleanup(session.reader.save)
    try:
        if flags.chat or flags.system is not None:
            chat_repl(session, flags.system, from_menu=False)
            return EXIT_OK
        return menu_loop(session, flags)
    finally:
        session.reader.save()


def menu_loop(session: Session, flags: argparse.Namespace) -> int:
    ui = session.ui
    entries = menu_entries(session.loaded)
    while True:
        show_menu(ui, entries)
        choice = read_prompt(session, "choose (q to quit): ").strip()
        if choice.lower() in ("q", "quit", "exit", "/quit", "/exit"):
            return EXIT_OK
        if choice == "0":
            ui.metadata(session.loaded)
            continue
        if not choice.isdigit() or not 1 <= int(choice) <= len(entries):
            ui.say(f"no such choice: {choice!r}", "yellow")
            continue
        entry = entries[int(choice) - 1]
        if entry.chat:
            first = entry.request
            chat_repl(session, first.system if first else flags.system, first=first.text if first else None, from_menu=True)
            continue
        if entry.request is not None:
            request = entry.request
        else:
            request = Request(read_prompt(session, "prompt (empty: start from BOS): "))
        result = generate_text(session, request, sys.stdout, show_waiting=True, echo_prompt=True)
        if result.signal is not None and result.signal != signal.SIGINT:
            raise ExitProgram(interrupts.exit_code(result.signal))


def show_menu(ui: UI, entries: Sequence[MenuEntry]) -> None:
    ui.console.print()
    ui.labelled("0", ". show the model metadata (hyperparameters and tensors)", "bold")
    for number, entry in enumerate(entries, start=1):
        ui.labelled(str(number), f". {entry.label}", "bold")


def chat_repl(session: Session, system: str | None, first: str | None = None, from_menu: bool = False) -> None:
    """The chat: each line is a user turn of one conversation, /commands act on it. Returns to the
    menu with /menu; exits the program with /quit, Ctrl-D, or Ctrl-C at an empty prompt."""
    from llamanuts.inference import Conversation

    ui = session.ui
    warn_if_not_a_chat_model(session)
    conversation = Conversation(session.engine, system=system)
    ui.say(
        f"chat ({session.engine.chat_template.name} template, context {session.engine.sequence_length} tokens): "
        "/help lists the commands; Ctrl-C stops an answer, Ctrl-D or /quit exits",
        "dim",
    )
    if system:
        ui.labelled("system: ", system)
    if first is not None:
        ui.labelled(CHAT_PROMPT, first, "bold")
        interactive_turn(session, conversation, first)
    while True:
        line = read_prompt(session, CHAT_PROMPT)
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            if slash_command(session, conversation, text, from_menu):
                return
            continue
        interactive_turn(session, conversation, line)


def interactive_turn(session: Session, conversation: Conversation, text: str) -> None:
    from llamanuts.inference import ContextFullError

    try:
        conversation.plan(text)
    except ContextFullError as exc:
        if not make_room(session, conversation, text, exc):
            return
    result = chat_turn(
        session, conversation, text, sys.stdout, show_waiting=True,
        before_text=lambda: session.ui.labelled("assistant: ", "", "bold cyan", end=""),
    )
    if result.signal is None:
        return
    if result.signal != signal.SIGINT:
        raise ExitProgram(interrupts.exit_code(result.signal))
    kept = conversation.turns and conversation.turns[-1].interrupted
    session.ui.say("answer stopped; " + ("what was printed stays in the conversation" if kept else "nothing was generated, the message is dropped"), "yellow")


def make_room(session: Session, conversation: Conversation, text: str, exc: Exception) -> bool:
    """The context is full: say so, and let the user drop the oldest turns or reset. True if it now fits."""
    from llamanuts.inference import ContextFullError

    ui = session.ui
    ui.say(str(exc) + context_full_hint(session), "yellow")
    if not conversation.turns:
        ui.say("the message alone is too long: shorten it", "yellow")
        return False
    answer = read_prompt(session, "d: drop the oldest turns to make room, r: reset the conversation, Enter: cancel? ").strip().lower()
    try:
        if answer.startswith("d"):
            dropped = conversation.fit(text)
            ui.say(f"dropped the {dropped} oldest turn{'s' if dropped != 1 else ''}", "yellow")
            return True
        if answer.startswith("r"):
            conversation.reset()
            conversation.plan(text)
            ui.say("conversation reset", "yellow")
            return True
    except ContextFullError:
        ui.say("the message alone is too long: shorten it", "yellow")
        return False
    ui.say("cancelled: the message was not sent", "yellow")
    return False


def slash_command(session: Session, conversation: Conversation, text: str, from_menu: bool) -> bool:
    """Run one /command; True to leave the chat (back to the menu)."""
    ui = session.ui
    name, _, rest = text.partition(" ")
    rest = rest.strip()
    if name in ("/quit", "/exit", "/q"):
        raise ExitProgram(EXIT_OK)
    if name == "/help":
        for command, meaning in SLASH_COMMANDS.items():
            ui.labelled(f"  {command:<14}", meaning, "bold")
        ui.say("  Ctrl-C stops an answer (at an empty prompt: exit); arrow keys edit the line, Up/Down recall earlier ones", "dim")
    elif name == "/reset":
        conversation.reset()
        ui.say("conversation reset (the system prompt stays)", "green")
    elif name == "/system":
        conversation.set_system(rest or None)
        if rest:
            ui.labelled("system prompt set: ", rest, "green")
        else:
            ui.say("system prompt removed", "green")
    elif name == "/drop":
        if rest and not rest.isdigit():
            ui.say("/drop takes a number of turns, e.g. /drop 2", "yellow")
            return False
        dropped = conversation.drop_oldest(int(rest) if rest else 1)
        ui.say(f"dropped {dropped} turn{'s' if dropped != 1 else ''}; {len(conversation.turns)} left", "green")
    elif name == "/history":
        if conversation.system:
            ui.labelled("system: ", conversation.system)
        for turn in conversation.turns:
            ui.labelled("user: ", turn.user, "bold")
            ui.labelled("assistant: ", turn.answer + (" [stopped]" if turn.interrupted else ""), "bold cyan")
        if not conversation.turns:
            ui.say("no turns yet", "dim")
    elif name == "/stats":
        ui.say(
            f"{len(conversation.turns)} turn(s); {len(conversation.cached_ids)} tokens in the KV cache of "
            f"{session.engine.sequence_length}; {conversation.answer_room} kept for each answer", "dim",
        )
        if conversation.turns:
            ui.say("last answer: " + conversation.stats.summary(), "dim")
    elif name == "/menu":
        if from_menu:
            return True
        ui.say("this chat was started with --chat: there is no menu to go back to (/quit exits)", "yellow")
    else:
        ui.say(f"unknown command {name}: /help lists the commands", "yellow")
    return False


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


def check_inputs(flags: argparse.Namespace, model_path: Path) -> str | None:
    """Flags and files the user handed in, checked before any work; returns the prompt text, if any."""
    flags.system = common.check_utf8_argument(flags.system, "--system")
    prompt = common.check_utf8_argument(flags.prompt, "--prompt")
    common.check_model_path(model_path)
    if flags.tokenizer is not None:
        common.check_regular_file(flags.tokenizer, "tokenizer")
    if flags.file is not None:
        prompt = common.read_text_file(flags.file, "prompt file", MAX_PROMPT_BYTES)
        prompt = prompt[:-1] if prompt.endswith("\n") else prompt
    return prompt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    flags = parser.parse_args(argv)
    warnings = check_flags(parser, flags)
    for warning in warnings:
        common.print_error(f"warning: {warning}")
    problem = common.stdout_problem()
    if problem is not None:
        common.print_error(f"llama_infer: {problem}")
        return EXIT_OUTPUT
    try:
        model_path = common.model_path(flags)
        prompt = check_inputs(flags, model_path)
    except InputProblem as exc:
        common.print_error(str(exc))
        return EXIT_USAGE

    from llamanuts.common.errors import LlamaError
    from llamanuts.common.logger import GLogger, debug_log_writable

    ui = UI(GLogger.console)
    if flags.debug:
        problem = debug_log_writable(flags.debug_log)
        if problem is not None:
            ui.error(problem)
            return EXIT_USAGE
    if not model_path.exists():
        ui.error(no_model_message(model_path, flags.model is None))
        return EXIT_USAGE
    scriptable = prompt is not None or not common.stdin_is_terminal()
    code = EXIT_OK
    try:
        if scriptable and prompt is None and not (flags.chat or flags.system is not None):
            prompt = read_stdin_prompt()  # the whole prompt, before the model is loaded
        GLogger.Init(debug=flags.debug, debug_path=flags.debug_log, values=flags.trace_values)
        interrupts.add_cleanup(GLogger.Close)
        code = run_scriptable(flags, ui, model_path, prompt) if scriptable else run_interactive(flags, ui, model_path)
    except ExitProgram as exc:
        code = exc.code
    except KeyboardInterrupt:  # a cancellable section let it through
        code = interrupts.exit_code(interrupts.acknowledge())
        ui.say("interrupted", "yellow")
    except (InputProblem, ContextFullExit) as exc:
        ui.error(str(exc))
        code = EXIT_USAGE
    except LlamaError as exc:
        if flags.verbose:
            ui.console.print_exception()
        ui.error(f"{type(exc).__name__}: {exc}")
        code = EXIT_USAGE
    except StdoutError as exc:
        code, message = common.output_failure(exc.error)
        ui.error(f"llama_infer: {message}")
    except OSError as exc:
        if flags.verbose:
            ui.console.print_exception()
        code, message = common.output_failure(exc, debug_log=flags.debug_log if flags.debug else None, stdout=False)
        ui.error(f"llama_infer: {message}")
    finally:
        try:
            GLogger.Close()
        except OSError as exc:
            if code == EXIT_OK:
                code = EXIT_OUTPUT
                ui.error(f"llama_infer: cannot write the debug log {flags.debug_log}: {exc.strerror or exc}")
        GLogger.Init(debug=False)
    try:
        common.flush_stdout()
    except OSError as exc:
        failure, message = common.output_failure(exc)
        common.print_error(f"llama_infer: {message}")
        code = code or failure
    return code


def read_stdin_prompt() -> str:
    """The whole of stdin, minus the one newline `echo` adds."""
    text = common.read_stdin_text(MAX_PROMPT_BYTES)
    return text[:-1] if text.endswith("\n") else text


if __name__ == "__main__":
    sys.exit(main())
