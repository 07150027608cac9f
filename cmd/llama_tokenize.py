"""llama_tokenize: show how a text splits into tokens, id and piece side by side. Run from the repo root.

    python -m cmd.llama_tokenize --tokenizer ../shared/refs/llama2-tokenizer.model --bos "Hello world"
    python -m cmd.llama_tokenize --tokenizer ../shared/refs/llama3-tokenizer.model --json "café 👋"

The tokenizer kind (SentencePiece model, llama2.c tokenizer.bin, Llama 3 tiktoken ranks) is
detected from the file's content. Pieces are shown with spaces as "▁", control characters escaped
("\\n") and raw bytes as "<0xF0>", so every token is visible.

--json prints exactly `{"ids": [...], "pieces": [...]}` on stdout, where each piece is the
tokenizer's own spelling of the token (what `piece_to_id` accepts).

Exit codes: 0 done; 2 a bad flag or a bad/missing tokenizer file (a message on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from llamanuts.common.errors import LlamaError
from llamanuts.tokenizer import Tokenizer, load_tokenizer

EXIT_OK, EXIT_USAGE = 0, 2
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
    parser = argparse.ArgumentParser(
        prog="python -m cmd.llama_tokenize",
        description="Show how TEXT splits into tokens: id and piece side by side.",
    )
    parser.add_argument("--tokenizer", type=Path, required=True,
                        help="a SentencePiece .model, a llama2.c tokenizer.bin or a Llama 3 tiktoken ranks file")
    parser.add_argument("--bos", action="store_true", help="prepend the BOS token")
    parser.add_argument("--eos", action="store_true", help="append the EOS token")
    parser.add_argument("--json", action="store_true", help='print {"ids": [...], "pieces": [...]} for scripts')
    parser.add_argument("text", metavar="TEXT", help="the text to tokenize (use -- before a TEXT that starts with -)")
    return parser


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
    stderr = Console(stderr=True, highlight=False)
    try:
        tokenizer = load_tokenizer(flags.tokenizer)
        ids = tokenizer.encode(flags.text, bos=flags.bos, eos=flags.eos)
        rows = token_rows(tokenizer, ids)
        if flags.json:
            print(json.dumps({"ids": ids, "pieces": [row.piece for row in rows]}))
        else:
            stdout = Console(highlight=False)
            summary = f"{len(rows)} tokens · {tokenizer.kind} · vocab {tokenizer.vocab_size} · {tokenizer.path}"
            stdout.print(Text(summary), soft_wrap=True)
            stdout.print(render_table(tokenizer, rows))
    except LlamaError as exc:
        # soft_wrap: one line however long, so the message can be grepped and copied whole.
        stderr.print(Text(f"{type(exc).__name__}: {exc}", style="bold red"), soft_wrap=True)
        return EXIT_USAGE
    except BrokenPipeError:
        # stdout closed early (`| head`): nothing more to say, and nowhere to say it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
