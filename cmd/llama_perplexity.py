"""llama_perplexity: how well a model predicts a text (tokens, mean NLL, perplexity, tokens/s).

    python -m cmd.llama_perplexity --model models/kjv --text models/kjv/validation.txt
    python -m cmd.llama_perplexity --model ../shared/refs/stories260K.bin --tokenizer ../shared/refs/tok512.bin \\
        --text story.txt --chunks 4 --json

The protocol is in src/inference/perplexity.py. Results go to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO_ROOT / "models" / "kjv"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cmd.llama_perplexity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a Meta model directory or a llama2.c .bin")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer file (required for a llama2.c .bin)")
    parser.add_argument("--text", type=Path, required=True, help="a UTF-8 text file")
    parser.add_argument("--dtype", choices=["bf16", "f32"], default="f32", help="compute dtype (default: f32)")
    parser.add_argument("--ctx", type=int, default=None, help="tokens per chunk (default: max_seq_len - 1)")
    parser.add_argument("--chunks", type=int, default=None, help="only the first N chunks")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from rich.console import Console
    from rich.progress import Progress

    from llamanuts.common import LlamaError
    from llamanuts.inference.perplexity import perplexity
    from llamanuts.ml import SetThreads
    from llamanuts.model import LlamaTransformer
    from llamanuts.model.loader import load_model

    console = Console(stderr=True)
    try:
        if args.threads:
            SetThreads(args.threads)
        try:
            text = args.text.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LlamaError(f"{args.text}: cannot read the text: {exc}") from None
        loaded = load_model(args.model, tokenizer_path=args.tokenizer)
        model = LlamaTransformer(loaded.args, loaded.weights, args.dtype)
        stream = loaded.tokenizer.encode(text)
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("scoring chunks", total=None)
            result = perplexity(
                model, stream, loaded.tokenizer.bos_id, args.ctx, args.chunks,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except LlamaError as exc:
        console.print(f"[bold red]{type(exc).__name__}: {exc}[/bold red]")
        return 2
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130
    report = {
        "model": str(args.model),
        "text": str(args.text),
        "dtype": args.dtype,
        "chunks": result.chunks,
        "ctx": result.ctx,
        "tokens": result.tokens,
        "mean_nll": result.mean_nll,
        "perplexity": result.perplexity,
        "tokens_per_second": round(result.tokens_per_second, 1),
    }
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>18}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
