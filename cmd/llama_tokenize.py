"""llama_tokenize: show how a text splits into tokens, id and piece side by side. Run from the repo root.

    python -m cmd.llama_tokenize "In the beginning"                  # the default model's tokenizer
    python -m cmd.llama_tokenize --tokenizer ../shared/refs/llama2-tokenizer.model --bos "Hello world"
    python -m cmd.llama_tokenize --tokenizer ../shared/refs/llama3-tokenizer.model --json "café 👋"
    python -m cmd.llama_tokenize -m models/kjv -f models/kjv/validation.txt --count
    echo "Blessed are the meek" | python -m cmd.llama_tokenize --count

The text is TEXT, -p TEXT, the content of -f FILE, or else standard input (exactly as given: a
file's or stdin's final newline is tokenized too). The tokenizer is --tokenizer FILE, or the one of
the model directory -m (default models/kjv); its kind (SentencePiece model, llama2.c
tokenizer.bin, Llama 3 tiktoken ranks) is detected from the file's content. Pieces are shown with
spaces as "▁", control characters escaped ("\\n") and raw bytes as "<0xF0>", so every token is
visible.

--json prints exactly `{"ids": [...], "pieces": [...]}` on stdout, where each piece is the
tokenizer's own spelling of the token (what `piece_to_id` accepts); --count prints only the number
of tokens.
"""

from __future__ import annotations

if __name__ == "__main__":  # first of all: from here on, Ctrl-C and SIGTERM end the program cleanly
    from cmd import interrupts as _interrupts

    _interrupts.install("llama_tokenize")

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from cmd import common
from cmd.common import InputProblem

if TYPE_CHECKING:
    from llamanuts.tokenizer import Tokenizer

EXIT_OK, EXIT_USAGE, EXIT_OUTPUT = common.EXIT_OK, common.EXIT_USAGE, common.EXIT_OUTPUT
VISIBLE_SPACE = "\u2581"  # "▁"
# Control characters spelled the way a reader expects them; others become \xNN.
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class TokenRow:
    """One token as shown: its position, id, visible piece, and what kind of token it is."""

    index: int
    id: int
    piece: str
    visible: str
    is_byte: bool
    is_special: bool


def build_parser() -> argparse.ArgumentParser:
    parser = common.Parser(
        prog="python -m cmd.llama_tokenize",
        description="Show how a text splits into tokens: id and piece side by side.",
        epilog=f"Exit codes: 0 done; 2 a bad flag, a bad or missing tokenizer file, invalid UTF-8 text.\n"
        f"{common.INPUT_EPILOG}\n{common.OUTPUT_EPILOG}\n{common.SIGNAL_EPILOG}",
    )
    common.add_model_flags(
        parser, tokenizer_help="a SentencePiece .model, a llama2.c tokenizer.bin or a Llama 3 tiktoken ranks file "
        "(default: the model directory's tokenizer.model)",
    )
    parser.add_argument("-p", "--prompt", default=None, help="the text to tokenize (instead of TEXT)")
    parser.add_argument("-f", "--file", type=Path, default=None, help="tokenize this UTF-8 file's content")
    parser.add_argument("--bos", action="store_true", help="prepend the BOS token")
    parser.add_argument("--eos", action="store_true", help="append the EOS token")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help='print {"ids": [...], "pieces": [...]} for scripts')
    output.add_argument("--count", action="store_true", help="print only the number of tokens")
    parser.add_argument("text", metavar="TEXT", nargs="?", default=None,
                        help="the text to tokenize (use -- before a TEXT that starts with -); without TEXT, -p or -f, standard input")
    return parser


def load_cli_tokenizer(flags: argparse.Namespace) -> Tokenizer:
    """--tokenizer; else the model's own: a Meta directory's tokenizer.model, a Hugging Face
    directory's tokenizer.json, or the vocabulary inside a GGUF file (default: the default model)."""
    from llamanuts.tokenizer import load_tokenizer

    if flags.tokenizer is not None:
        common.check_regular_file(flags.tokenizer, "tokenizer")
        return load_tokenizer(flags.tokenizer)
    model = common.model_path(flags)
    common.check_model_path(model)
    if model.is_dir():
        from llamanuts.safetensors import is_hf_directory

        if is_hf_directory(model):
            from llamanuts.tokenizer.hf_tokenizer import load_hf_tokenizer

            return load_hf_tokenizer(model)
        return load_tokenizer(model / "tokenizer.model")
    from llamanuts.gguf import has_gguf_magic

    if model.is_file() and has_gguf_magic(model):
        from llamanuts.gguf import read_gguf
        from llamanuts.tokenizer.gguf_vocab import tokenizer_from_gguf

        return tokenizer_from_gguf(read_gguf(model).metadata, model)
    raise InputProblem(f"{model}: this model file holds no tokenizer to read alone: pass its tokenizer with --tokenizer")


def input_text(flags: argparse.Namespace) -> str:
    given = [name for name, value in (("TEXT", flags.text), ("--prompt", flags.prompt), ("--file", flags.file)) if value is not None]
    if len(given) > 1:
        raise InputProblem(f"give one text, not {' and '.join(given)}")
    if flags.file is not None:
        return common.read_text_file(flags.file, "text file")
    if flags.text is not None or flags.prompt is not None:
        return common.check_utf8_argument(flags.text if flags.text is not None else flags.prompt, "TEXT" if flags.text is not None else "--prompt") or ""
    if common.stdin_is_terminal():
        raise InputProblem("no text: give TEXT, -p TEXT or -f FILE, or pipe the text on standard input")
    return common.read_stdin_text()


def visible_piece(piece: str) -> str:
    """Spaces as "▁" and control characters escaped, so whitespace tokens can be seen and told apart."""
    out: list[str] = []
    for char in piece:
        if char == " ":
            out.append(VISIBLE_SPACE)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def token_rows(tokenizer: Tokenizer, ids: list[int]) -> list[TokenRow]:
    specials = set(tokenizer.special_tokens.values())
    rows: list[TokenRow] = []
    for index, id in enumerate(ids):
        piece = tokenizer.id_to_piece(id)
        rows.append(TokenRow(index, id, piece, visible_piece(piece), tokenizer.is_byte_piece(id), id in specials))
    return rows


def render_table(tokenizer: Tokenizer, rows: list[TokenRow]) -> Table:
    table = Table()
    table.add_column("#", justify="right", style="dim")
    table.add_column("id", justify="right")
    table.add_column("piece")
    for row in rows:
        # Text(), not a markup string: a piece such as "[/" must print as itself.
        style = "magenta" if row.is_special else "cyan" if row.is_byte else ""
        table.add_row(str(row.index), str(row.id), Text(row.visible, style=style))
    return table


def main(argv: Sequence[str] | None = None) -> int:
    flags = build_parser().parse_args(argv)  # argparse exits with 2 on a bad flag
    problem = common.stdout_problem()
    if problem is not None:
        common.print_error(f"llama_tokenize: {problem}")
        return EXIT_OUTPUT
    from rich.console import Console

    from llamanuts.common.errors import LlamaError

    stderr = Console(stderr=True, highlight=False)
    try:
        text = input_text(flags)
        tokenizer = load_cli_tokenizer(flags)
        ids = tokenizer.encode(text, bos=flags.bos, eos=flags.eos)
        if flags.count:
            print(len(ids))
        elif flags.json:
            rows = token_rows(tokenizer, ids)
            print(json.dumps({"ids": ids, "pieces": [row.piece for row in rows]}))
        else:
            rows = token_rows(tokenizer, ids)
            stdout = Console(highlight=False)
            summary = f"{len(rows)} tokens · {tokenizer.kind} · vocab {tokenizer.vocab_size} · {tokenizer.path}"
            stdout.print(Text(summary), soft_wrap=True)
            stdout.print(render_table(tokenizer, rows))
        common.flush_stdout()
    except (InputProblem, LlamaError) as exc:
        # soft_wrap: one line however long, so the message can be grepped and copied whole.
        prefix = f"{type(exc).__name__}: " if isinstance(exc, LlamaError) else ""
        stderr.print(Text(f"{prefix}{exc}", style="bold red"), soft_wrap=True)
        return EXIT_USAGE
    except OSError as exc:
        code, message = common.output_failure(exc)
        common.print_error(f"llama_tokenize: {message}")
        return code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
