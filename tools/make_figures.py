#!/usr/bin/env python3
"""Draw the figures of docs/ from the engine's real tensors on the default model.

    python tools/make_figures.py                  # models/kjv -> docs/figures/*.png
    python tools/make_figures.py --model ../shared/refs/stories260K.bin --tokenizer ../shared/refs/tok512.bin

Figures (each named in the chapter that shows it):
- rope-frequencies.png (chapter 10): the rotary table `LlamaTransformer.freqs_cis` the engine built,
  as the angle of every (position, frequency pair), plus cos of a few pairs along the positions;
- attention-scores.png (chapter 14): one head of layer 0 on a real prompt: the scores before the
  mask and softmax (recomputed here from the recorded rotated queries and keys, exactly as stage 13
  does), with the causal mask applied, and the probabilities the engine recorded after softmax;
- bf16-bit-layout.png (chapter 07): one real float32 number of the engine (a weight of a float32
  checkpoint, else a value of the rotary table) as float32, bfloat16 (rounded by the engine's own
  `float32_to_bf16_bits`) and float16 bits, coloured by sign, exponent and mantissa.

The tensors come from `InferenceContext.recorder`: when it is a dict, Forward stores every stage's
result under names such as `layers.0.xq_rope` and `layers.0.scores`. matplotlib is a docs-only
tool (`pip install -e ".[docs]"`); the engine never imports it. The PNGs carry no timestamp, so
running the script twice gives the same files.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "docs" / "figures"
DEFAULT_MODEL = REPO / "models" / "kjv"
# Long enough for the attention heatmap to show the causal pattern (the debug run uses a shorter one).
FIGURE_PROMPT = "In the beginning God created the heaven and the earth. And the earth was without form"
LAYER, HEAD = 0, 0
PNG_METADATA = {"Software": None}  # no matplotlib version or date in the file: reproducible bytes


def load(model_path: Path, tokenizer_path: Path | None):
    from llamanuts.model import LlamaTransformer
    from llamanuts.model.loader import load_model

    loaded = load_model(model_path, tokenizer_path)
    return loaded, LlamaTransformer(loaded.args, loaded.weights, "bf16")


def record_prompt(loaded, model, prompt: str) -> tuple[dict[str, np.ndarray], list[str], str]:
    """Run one forward pass over BOS + prompt with the recorder on; returns (tensors, pieces, text)."""
    from llamanuts.inference import encode_text_prompt
    from llamanuts.model import tokens_tensor

    tokens = encode_text_prompt(loaded.tokenizer, prompt)[: min(48, loaded.args.max_seq_len)]  # a readable heatmap
    context = model.NewInferenceContext(len(tokens))
    context.recorder = {}
    model.Forward(context, tokens_tensor(tokens), 0)
    pieces = [loaded.tokenizer.id_to_piece(t).strip() or "·" for t in tokens]
    pieces = ["<s>" if t == loaded.tokenizer.bos_id else p for t, p in zip(tokens, pieces)]
    return context.recorder, pieces, loaded.tokenizer.decode(tokens[1:])


# ---- chapter 10 -------------------------------------------------------------------------------------
def rope_figure(model, out: Path) -> None:
    import matplotlib.pyplot as plt

    table = model.prepareFreqsCis(model.args.max_seq_len).numpy()  # [max_seq_len, head_dim/2] complex64, as the engine builds it
    angles = np.mod(np.angle(table), 2 * math.pi)
    positions = min(table.shape[0], 128)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [1.2, 1]})
    image = left.imshow(angles[:positions].T, aspect="auto", origin="lower", cmap="twilight", interpolation="nearest")
    left.set_xlabel("position m")
    left.set_ylabel("frequency pair i")
    left.set_title(f"angle of freqs_cis[m, i] = m·θ_i (mod 2π)\nshape {list(table.shape)}, first {positions} positions")
    fig.colorbar(image, ax=left, label="radians")
    pairs = sorted({0, 1, 2, table.shape[1] // 4, table.shape[1] - 1})
    m = np.arange(positions)
    for i in pairs:
        right.plot(m, table[:positions, i].real, label=f"pair {i}")
    right.set_xlabel("position m")
    right.set_ylabel("cos(m·θ_i), the real part")
    right.set_title("fast pairs turn every few positions, slow ones barely move")
    right.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110, metadata=PNG_METADATA)
    plt.close(fig)


# ---- chapter 14 -------------------------------------------------------------------------------------
def attention_figure(recorded: dict[str, np.ndarray], pieces: list[str], text: str, n_rep: int, out: Path) -> None:
    import matplotlib.pyplot as plt

    xq = recorded[f"layers.{LAYER}.xq_rope"]  # [n, n_heads, head_dim]
    xk = recorded[f"layers.{LAYER}.xk_rope"]  # [n, n_kv_heads, head_dim]
    probabilities = recorded[f"layers.{LAYER}.scores"][HEAD]  # [n, n], after mask and softmax
    head_dim = xq.shape[-1]
    # Stage 13 before the softmax: q·kᵀ/√head_dim, with this query head's key/value head (GQA).
    scores = xq[:, HEAD, :] @ xk[:, HEAD // n_rep, :].T / math.sqrt(head_dim)
    masked = np.where(np.triu(np.ones_like(scores, dtype=bool), k=1), -np.inf, scores)

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.6))
    n = len(pieces)
    panels = [
        (scores, "scores = q·kᵀ / √head_dim", "coolwarm"),
        (np.ma.masked_invalid(masked), "+ causal mask (−∞ above the diagonal, grey)", "coolwarm"),
        (probabilities, "softmax: each row sums to 1 (recorded by the engine)", "viridis"),
    ]
    for ax, (data, title, cmap) in zip(axes, panels):
        colours = plt.get_cmap(cmap).copy()
        colours.set_bad("#cccccc")
        image = ax.imshow(data, cmap=colours, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(n), pieces, rotation=90, fontsize=7)
        ax.set_yticks(range(n), pieces, fontsize=7)
        ax.set_xlabel("key position (attended to)")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    axes[0].set_ylabel("query position")
    fig.suptitle(f"layer {LAYER}, head {HEAD}, {n} tokens: <s> + {text!r}", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110, metadata=PNG_METADATA)
    plt.close(fig)


# ---- chapter 07 -------------------------------------------------------------------------------------
COLOURS = {"sign": "#e4572e", "exponent": "#29a0b1", "mantissa": "#a0c15a", "dropped": "#dddddd"}


def real_float32(loaded, model) -> tuple[np.float32, str]:
    """A real float32 number of the engine that bf16 cannot hold exactly, and where it comes from.

    A float32 checkpoint (llama2.c) gives its first weight; a bf16 checkpoint's weights are bf16
    already, so the number is taken from the rotary table the engine computed in float32.
    """
    from llamanuts.ml import DT_F32

    table = loaded.weights.tok_embeddings
    if table.dtype is DT_F32:
        return np.float32(table.data.reshape(-1)[0]), "tok_embeddings.weight[0, 0], a float32 weight"
    cis = model.freqs_cis.numpy()
    for position in range(1, cis.shape[0]):
        value = np.float32(cis[position, 1].real)
        if int(np.array([value]).view(np.uint32)[0]) & 0xFFFF:
            return value, f"freqs_cis[{position}, 1].real = cos({position}·θ_1), computed in float32"
    raise RuntimeError("no float32 value with low bits set in the rotary table")


def bf16_figure(loaded, model, out: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from llamanuts.ml import float32_to_bf16_bits

    value, source = real_float32(loaded, model)
    f32_bits = int(np.array([value], dtype=np.float32).view(np.uint32)[0])
    bf16_bits = int(float32_to_bf16_bits(np.array([value], dtype=np.float32))[0])  # the engine's rounding
    f16_bits = int(np.array([value], dtype=np.float16).view(np.uint16)[0])
    rows = [
        ("float32", f32_bits, 32, 8, float(value)),
        ("bfloat16", bf16_bits, 16, 8, float(np.array([bf16_bits << 16], dtype=np.uint32).view(np.float32)[0])),
        ("float16", f16_bits, 16, 5, float(np.array([f16_bits], dtype=np.uint16).view(np.float16)[0])),
    ]
    fig, ax = plt.subplots(figsize=(13, 3.6))
    for row, (name, bits, width, exponent, shown) in enumerate(rows):
        y = len(rows) - 1 - row
        for k in range(width):
            bit = (bits >> (width - 1 - k)) & 1
            kind = "sign" if k == 0 else "exponent" if k <= exponent else "mantissa"
            ax.add_patch(Rectangle((k, y), 0.95, 0.8, color=COLOURS[kind]))
            ax.text(k + 0.47, y + 0.4, str(bit), ha="center", va="center", fontsize=9)
        if name == "bfloat16":
            for k in range(16, 32):
                ax.add_patch(Rectangle((k, y), 0.95, 0.8, color=COLOURS["dropped"]))
            ax.text(24, y + 0.4, "16 bits dropped (rounded, to nearest even)", ha="center", va="center", fontsize=8)
        ax.text(-0.6, y + 0.4, f"{name}\n0x{bits:0{width // 4}X}", ha="right", va="center", fontsize=9)
        ax.text(32.6, y + 0.4, f"= {shown:.9g}", ha="left", va="center", fontsize=9)
    for kind in ("sign", "exponent", "mantissa"):
        ax.add_patch(Rectangle((0, 0), 0, 0, color=COLOURS[kind], label=kind))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, frameon=False)
    ax.set_xlim(-6, 40)
    ax.set_ylim(-0.3, len(rows))
    ax.axis("off")
    ax.set_title(f"{source}: bfloat16 keeps the top half of float32", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110, metadata=PNG_METADATA)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model directory or llama2.c .bin (default: models/kjv)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer file (for a llama2.c .bin)")
    parser.add_argument("--out", type=Path, default=FIGURES, help="output folder (default: docs/figures)")
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    args.out.mkdir(parents=True, exist_ok=True)
    loaded, model = load(args.model, args.tokenizer)
    recorded, pieces, text = record_prompt(loaded, model, FIGURE_PROMPT)
    rope_figure(model, args.out / "rope-frequencies.png")
    attention_figure(recorded, pieces, text, loaded.args.n_rep, args.out / "attention-scores.png")
    bf16_figure(loaded, model, args.out / "bf16-bit-layout.png")
    for name in ("rope-frequencies.png", "attention-scores.png", "bf16-bit-layout.png"):
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
