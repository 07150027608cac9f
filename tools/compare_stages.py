#!/usr/bin/env python3
"""Run one prompt through two configurations and compare them stage by stage, layer by layer.

    python -m tools.compare_stages --a dtype=bf16 --b dtype=f32                  # the default model
    python -m tools.compare_stages --model ../shared/refs/stories260K.bin --tokenizer ../shared/refs/tok512.bin \\
        --a dtype=f32 --b reference                                               # our engine vs PyTorch
    python -m tools.compare_stages --a model=smollm2,dtype=f32 --b model=/path/to/hf-dir,dtype=f32 --plot q.png

A configuration is `key=value` pairs separated by commas:
- `model=PATH` (a Meta directory, a llama2.c .bin with `tokenizer=PATH`, a .gguf, `smollm2`, or any
  folder `load_model` reads), default `--model`;
- `dtype=bf16|f32|auto`, the compute mode (auto: the weights' own precision, as the CLI's `--dtype`);
- `reference` instead of our engine: tools/reference_llama.py, the PyTorch reference (Meta
  directories and llama2.c files), in its `dtype` mode;
- `quantize=Q8_0|Q4_0|Q4_1`: every matrix (the seven of each layer, the embedding table and the
  output) rounded to that block type and back, by gguf-py's `quantize` and `dequantize` (llama.cpp's
  own Python), then computed in float32: the weights a quantized file would hold, so the
  differences are what the rounding of the weights alone does (the norm weights stay as they are,
  as llama.cpp keeps them in float32).

Both run ONE forward pass over BOS + the prompt, tokenized by configuration A's tokenizer, with
`InferenceContext.recorder` on (the reference records the same names). For every recorded stage
(`embedding`, `layers.N.xq`, ..., `logits`) the table gives, B taken as the reference:

    max |a-b|      the largest difference of one number
    rel. error     ||a-b|| / ||b||, over the whole tensor
    cosine         a·b / (||a|| ||b||): 1 when the two point the same way

and the last line the next token each side predicts, with its probability. `--plot` draws the
relative error per layer for the residual stream and a few stages (PNG or SVG by the suffix).

When one side's weights pair RoPE features as halves (Hugging Face) and the other as adjacent pairs
(Meta, GGUF), their xq and xk before the rotation hold the same numbers in another order; those
are put in the interleaved order first (`ModelWeights.rope_pairing`), and from the rotation on the
two layouts are the same.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "kjv"
DEFAULT_PROMPT = "In the beginning"

# Recorded name -> the debug.log stage it belongs to.
STAGE_OF = {
    "embedding": 4,
    "freqs_cis": 4,
    "attention_norm": 6,
    "xq": 8,
    "xk": 8,
    "xv": 8,
    "xq_rope": 10,
    "xk_rope": 10,
    "scores": 13,
    "attention": 14,
    "attention_wo": 14,
    "h": 15,
    "ffn_norm": 16,
    "ffn_w1_silu": 17,
    "ffn_w3": 17,
    "ffn_hidden": 17,
    "ffn_out": 17,
    "out": 18,
    "norm": 19,
    "logits": 19,
}
SKIPPED = {"mask"}  # the same -inf table on both sides, by construction
QUANTIZE_TYPES = ("Q8_0", "Q4_0", "Q4_1")
PLOTTED = ("attention_norm", "xq_rope", "scores", "attention_wo", "h", "ffn_out", "out")


@dataclass
class Config:
    text: str
    model: Path
    tokenizer: Path | None
    dtype: str = "auto"
    reference: bool = False
    quantize: str | None = None

    @property
    def label(self) -> str:
        return self.text


def parse_config(text: str, model: Path, tokenizer: Path | None) -> Config:
    config = Config(text, model, tokenizer)
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item == "reference":
            config.reference = True
            continue
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise SystemExit(f"compare_stages: {item!r} in {text!r} is not key=value (model=, tokenizer=, dtype=) or 'reference'")
        if key == "model":
            config.model = Path(value)
        elif key == "tokenizer":
            config.tokenizer = Path(value)
        elif key == "quantize":
            if value not in QUANTIZE_TYPES:
                raise SystemExit(f"compare_stages: quantize must be one of {', '.join(QUANTIZE_TYPES)}, got {value!r}")
            config.quantize = value
        elif key == "dtype":
            if value not in ("auto", "bf16", "f32"):
                raise SystemExit(f"compare_stages: dtype must be auto, bf16 or f32, got {value!r}")
            config.dtype = value
        else:
            raise SystemExit(f"compare_stages: unknown key {key!r} in {text!r} (model, tokenizer, dtype, quantize)")
    return config


@dataclass
class Run:
    """One configuration's recorded stages, in the order Forward wrote them."""

    config: Config
    stages: dict[str, np.ndarray]
    mode: str
    head_dim: int
    rope_pairing: str = "interleaved"
    tokenizer: object | None = None
    notes: list[str] = field(default_factory=list)


def _resolve_model(path: Path) -> Path:
    if path.exists():
        return path
    from llamanuts.model.loader import resolve_model_alias

    return resolve_model_alias(str(path)) or path


def load_tokens(config: Config, prompt: str) -> tuple[list[int], object]:
    from llamanuts.inference import encode_text_prompt
    from llamanuts.model.loader import load_model

    loaded = load_model(_resolve_model(config.model), config.tokenizer)
    return encode_text_prompt(loaded.tokenizer, prompt), loaded.tokenizer


def run_engine(config: Config, tokens: list[int]) -> Run:
    from llamanuts.ml import DT_BF16
    from llamanuts.model import LlamaTransformer, tokens_tensor
    from llamanuts.model.loader import load_model

    loaded = load_model(_resolve_model(config.model), config.tokenizer)
    mode = config.dtype
    if mode == "auto":
        mode = "f32" if config.quantize else "bf16" if loaded.weights.tok_embeddings.dtype is DT_BF16 else "f32"
    weights = quantized_weights(loaded.weights, config.quantize) if config.quantize else loaded.weights
    model = LlamaTransformer(loaded.args, weights, mode)
    context = model.NewInferenceContext(len(tokens))
    context.recorder = {}
    model.Forward(context, tokens_tensor(tokens), 0)
    pairing = getattr(loaded.weights, "rope_pairing", "interleaved")
    return Run(config, context.recorder, mode, loaded.args.head_dim, pairing, loaded.tokenizer)


def quantized_weights(weights, kind: str):  # type: ignore[no-untyped-def]
    """The model's matrices rounded to `kind` blocks and back (gguf-py), as float32 tensors."""
    from dataclasses import replace

    import gguf
    from llamanuts.ml import DT_F32, Tensor

    qtype = gguf.GGMLQuantizationType[kind]

    def roundtrip(t):  # type: ignore[no-untyped-def]
        values = np.ascontiguousarray(t.numpy(), dtype=np.float32)
        back = gguf.quants.dequantize(gguf.quants.quantize(values, qtype), qtype).astype(np.float32)
        return Tensor.wrap(back.reshape(values.shape), DT_F32)

    layers = [
        replace(lw, wq=roundtrip(lw.wq), wk=roundtrip(lw.wk), wv=roundtrip(lw.wv), wo=roundtrip(lw.wo),
                w1=roundtrip(lw.w1), w2=roundtrip(lw.w2), w3=roundtrip(lw.w3))
        for lw in weights.layers
    ]
    tok = roundtrip(weights.tok_embeddings)
    output = tok if weights.shared_classifier else roundtrip(weights.output)
    return replace(weights, tok_embeddings=tok, layers=layers, output=output)


def run_reference(config: Config, tokens: list[int]) -> Run:
    try:
        from tools import reference_llama
    except ImportError as exc:  # torch missing
        raise SystemExit(f"compare_stages: the reference needs PyTorch ({exc}); pip install -e \".[reference]\"") from None
    model = reference_llama.load_model(_resolve_model(config.model), max_seq_len=max(len(tokens), 1))
    mode = "f32" if config.dtype == "auto" else config.dtype
    _, stages = reference_llama.run_reference(model, tokens, 0, mode, record=True)
    return Run(config, stages, mode, model.args.head_dim, "interleaved", None, [f"PyTorch reference ({model.source})"])


def run(config: Config, tokens: list[int]) -> Run:
    return run_reference(config, tokens) if config.reference else run_engine(config, tokens)


# ---- the comparison -------------------------------------------------------------------------------
@dataclass
class Row:
    name: str
    stage: int
    layer: int | None
    max_abs: float
    rel_error: float
    cosine: float


def halves_to_interleaved(x: np.ndarray, head_dim: int) -> np.ndarray:
    """Features (i, i + head_dim/2) of each head side by side: the Hugging Face layout read as Meta's."""
    n, width = x.shape
    half = head_dim // 2
    return x.reshape(n, width // head_dim, 2, half).transpose(0, 1, 3, 2).reshape(n, width)


def compare_arrays(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(max |a-b|, ||a-b|| / ||b||, cosine of a and b), in float64; infinities where both agree are equal."""
    a = np.asarray(a).astype(np.complex128 if np.iscomplexobj(a) else np.float64).reshape(-1)
    b = np.asarray(b).astype(np.complex128 if np.iscomplexobj(b) else np.float64).reshape(-1)
    same = (a == b)  # exact equality, also for matching infinities
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0, a - b)
    if same.all():
        return 0.0, 0.0, 1.0  # identical: exactly, not up to the rounding of the norms
    finite = np.isfinite(a) & np.isfinite(b)
    a_f, b_f = np.where(finite, a, 0), np.where(finite, b, 0)
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    norm_b = float(np.linalg.norm(b_f))
    rel = float(np.linalg.norm(diff[finite] if finite.any() else diff)) / norm_b if norm_b else (0.0 if max_abs == 0 else math.inf)
    norm_a = float(np.linalg.norm(a_f))
    if norm_a == 0 and norm_b == 0:
        cosine = 1.0
    elif norm_a == 0 or norm_b == 0:
        cosine = 0.0
    else:
        cosine = float(np.real(np.vdot(b_f, a_f)) / (norm_a * norm_b))
    return max_abs, rel, cosine


def _split(name: str) -> tuple[int | None, str]:
    if name.startswith("layers."):
        _, layer, stage = name.split(".", 2)
        return int(layer), stage
    return None, name


def compare_runs(a: Run, b: Run) -> list[Row]:
    rows: list[Row] = []
    for name, left in a.stages.items():
        layer, stage = _split(name)
        if stage in SKIPPED or name not in b.stages:
            continue
        right = b.stages[name]
        if stage in ("xq", "xk") and a.rope_pairing != b.rope_pairing:
            left = halves_to_interleaved(left, a.head_dim) if a.rope_pairing == "halves" else left
            right = halves_to_interleaved(right, b.head_dim) if b.rope_pairing == "halves" else right
        if np.shape(left) != np.shape(right):
            raise SystemExit(f"compare_stages: {name} has shape {list(np.shape(left))} in A and {list(np.shape(right))} in B")
        rows.append(Row(name, STAGE_OF.get(stage, 0), layer, *compare_arrays(left, right)))
    return rows


def next_token(run_: Run, tokenizer) -> tuple[int, float, str]:  # type: ignore[no-untyped-def]
    row = np.asarray(run_.stages["logits"][-1], dtype=np.float64)
    p = np.exp(row - row.max())
    p /= p.sum()
    best = int(np.argmax(p))
    return best, float(p[best]), tokenizer.id_to_piece(best) if tokenizer is not None else "?"


def format_table(rows: list[Row], layers: set[int] | None) -> str:
    lines = [f"{'stage':>5}  {'layer':>5}  {'tensor':<14} {'max |a-b|':>11} {'rel. error':>11} {'cosine':>12}"]
    for r in rows:
        if r.layer is not None and layers is not None and r.layer not in layers:
            continue
        layer = "" if r.layer is None else str(r.layer)
        lines.append(
            f"{r.stage:>5}  {layer:>5}  {_split(r.name)[1]:<14} {r.max_abs:>11.4g} {r.rel_error:>11.4g} {r.cosine:>12.8f}"
        )
    return "\n".join(lines)


def plot(rows: list[Row], a: Run, b: Run, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [2.2, 1]})
    for stage in PLOTTED:
        series = sorted((r.layer, r.rel_error) for r in rows if r.layer is not None and _split(r.name)[1] == stage)
        if series:
            x, y = zip(*series)
            left.plot(x, np.maximum(y, 1e-12), marker="o", markersize=3, label=f"{stage} (stage {STAGE_OF[stage]:02d})")
    left.set_yscale("log")
    left.set_xlabel("layer")
    left.set_ylabel("relative error ||a−b|| / ||b||")
    left.set_title("per layer")
    left.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    left.grid(True, which="both", alpha=0.3)
    outside = [r for r in rows if r.layer is None]
    floor = min([r.rel_error for r in rows if r.rel_error > 0] or [1e-9]) / 10
    right.barh([r.name for r in outside], [max(r.rel_error, floor) for r in outside], color="#29a0b1")
    for i, r in enumerate(outside):
        if r.rel_error == 0:
            right.text(floor, i, "  0 (identical)", va="center", fontsize=8)
    right.set_xscale("log")
    right.set_xlabel("relative error")
    right.set_title("before and after the layers")
    fig.suptitle(f"A: {a.config.label} ({a.mode})   vs   B: {b.config.label} ({b.mode})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110, metadata={"Software": None} if out.suffix == ".png" else {"Date": None})
    plt.close(fig)


def _shown(path: Path | str) -> str:
    """A path as the reader typed it: relative to the repository when inside it, ~ for the home."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except (ValueError, OSError):
        return _home(str(path))


def _home(text: str) -> str:
    home = str(Path.home())
    return text.replace(home + "/", "~/") if home not in ("/", "") else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.compare_stages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", default="dtype=bf16", help="configuration A (default: dtype=bf16)")
    parser.add_argument("--b", default="dtype=f32", help="configuration B, the one A is measured against (default: dtype=f32)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model of both sides unless a side says model= (default: models/kjv)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer of both sides (for a llama2.c .bin)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"text after BOS (default: {DEFAULT_PROMPT!r})")
    parser.add_argument("--layers", default="all", help="layers in the table: all, or a list such as 0,29 (default: all)")
    parser.add_argument("--plot", type=Path, default=None, help="draw the relative error per layer into this PNG or SVG")
    args = parser.parse_args(argv)

    config_a = parse_config(args.a, args.model, args.tokenizer)
    config_b = parse_config(args.b, args.model, args.tokenizer)
    token_config = config_a if not config_a.reference else config_b
    tokens, tokenizer = load_tokens(token_config, args.prompt)
    a, b = run(config_a, tokens), run(config_b, tokens)
    rows = compare_runs(a, b)
    layers = None if args.layers == "all" else {int(x) for x in args.layers.split(",") if x.strip()}
    print(f"prompt: {args.prompt!r} as configuration A's tokenizer encodes it (with its BOS, if it adds one): {len(tokens)} tokens {tokens}")
    print(f"A: {_home(config_a.label)} ({a.mode}, {_shown(config_a.model)})")
    print(f"B: {_home(config_b.label)} ({b.mode}, {_shown(config_b.model)})")
    print(format_table(rows, layers))
    for side, r in (("A", a), ("B", b)):
        token, probability, piece = next_token(r, tokenizer)
        print(f"next token {side}: {piece!r} (id {token}), p = {probability:.4f}")
    if args.plot is not None:
        plot(rows, a, b, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
