#!/usr/bin/env python3
"""Draw the stage diagrams of docs/ as SVG, with the shapes and the numbers of a real forward pass.

    python tools/make_diagrams.py                          # models/kjv, "In the beginning"
    python tools/make_diagrams.py --model smollm2 --chat --prompt "What is the capital of France?"
                                                           # -> docs/figures/stage-*.svg (the committed ones)

One forward pass over BOS + the prompt runs with `InferenceContext.recorder` on; every picture is
drawn from what it recorded and from the model's own ModelArgs, so the shapes printed in a diagram
are those the debug log prints, and the colours are real values (blue negative, red positive, white
zero; each picture says what its colour scale is):

    stage-04-embedding.svg    token ids pick rows of tok_embeddings: x [n, dim]
    stage-06-rmsnorm.svg      one row divided by its RMS, then multiplied by the norm weight
    stage-08-qkv.svg          x · Wqᵀ, x · Wkᵀ, x · Wvᵀ with their shapes
    stage-09-heads.svg        a row of xq cut into heads; query heads sharing a key/value head (GQA)
    stage-10-rope.svg         the rotation angle of a few pairs at each position of the prompt
    stage-11-kvcache.svg      the cache filling: the prefill, then one row per generated token
    stage-12-transposes.svg   [n, heads, head_dim] -> [heads, n, head_dim]
    stage-14-scores-values.svg  one head: weights [n, T] × values [T, head_dim] = output [n, head_dim]
    stage-15-18-residual.svg  the stream plus the attention output, plus the feed-forward output

Every picture is at most 680 px wide with text of 13 px or more, so the site shows it at its own
size (readable at a 1400 px window, where the text column is 688 px). Plain SVG written by hand:
no plotting library, no timestamp, the same bytes for the same model and prompt.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "docs" / "figures"
DEFAULT_MODEL = REPO / "models" / "kjv"
DEFAULT_PROMPT = "In the beginning"
WIDTH = 680  # px: the site's text column at a 1400 px window is 688
FONT = 14
SMALL = 13  # the smallest text of any picture
INK = "#222222"
MUTED = "#555555"
BOX = "#f3f5f8"
ACCENT = "#2a7ab8"


# ---- a tiny SVG writer ----------------------------------------------------------------------------
@dataclass
class Svg:
    height: int
    width: int = WIDTH
    parts: list[str] = field(default_factory=list)

    def rect(self, x: float, y: float, w: float, h: float, fill: str = BOX, stroke: str = "none", sw: float = 1, rx: float = 0) -> None:
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}" stroke="{stroke}" stroke-width="{sw}" rx="{rx}"/>')

    def text(self, x: float, y: float, s: str, size: int = FONT, anchor: str = "start", weight: str = "normal", fill: str = INK, mono: bool = False) -> None:
        family = ' font-family="DejaVu Sans Mono, Menlo, Consolas, monospace"' if mono else ""
        self.parts.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{max(size, SMALL)}" text-anchor="{anchor}" font-weight="{weight}" fill="{fill}"{family}>{escape(s)}</text>'
        )

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = MUTED, sw: float = 1.2, dash: str = "") -> None:
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" stroke-width="{sw}"{d}/>')

    def arrow(self, x1: float, y1: float, x2: float, y2: float, stroke: str = MUTED) -> None:
        self.parts.append(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" stroke-width="1.4" marker-end="url(#head)"/>'
        )

    def circle(self, cx: float, cy: float, r: float, fill: str = "none", stroke: str = MUTED, sw: float = 1) -> None:
        self.parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>')

    def render(self, title: str) -> str:
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" '
            f'viewBox="0 0 {self.width} {self.height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" role="img">'
            f"<title>{escape(title)}</title>"
            '<defs><marker id="head" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M 0 0 L 10 5 L 0 10 z" fill="{MUTED}"/></marker></defs>'
            f'<rect x="0" y="0" width="{self.width}" height="{self.height}" fill="white"/>'
        )
        return head + "".join(self.parts) + "</svg>\n"


def colour(value: float, scale: float) -> str:
    """Blue for negative, white for zero, red for positive; |value| >= scale is the full colour."""
    if not math.isfinite(value):
        return "#bbbbbb"
    t = max(-1.0, min(1.0, value / scale)) if scale > 0 else 0.0
    end = (0.84, 0.19, 0.15) if t > 0 else (0.13, 0.40, 0.67)
    mix = [1 + (c - 1) * abs(t) for c in end]
    return "#" + "".join(f"{int(round(255 * c)):02x}" for c in mix)


def cells(svg: Svg, x: float, y: float, values: np.ndarray, w: float, h: float, scale: float, stroke: str = "white") -> None:
    """A heatmap: values [rows, cols], each a w x h cell."""
    values = np.atleast_2d(values)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            svg.rect(x + j * w, y + i * h, w, h, colour(float(v), scale), stroke, 0.5)


def scale_of(*arrays: np.ndarray) -> float:
    """A colour scale: the 98th percentile of |values|, so one outlier does not wash the rest out."""
    flat = np.concatenate([np.abs(np.asarray(a, dtype=np.float64)).reshape(-1) for a in arrays])
    flat = flat[np.isfinite(flat)]
    return float(np.percentile(flat, 98)) if flat.size and np.percentile(flat, 98) > 0 else 1.0


def shape_text(shape) -> str:  # type: ignore[no-untyped-def]
    return "[" + " ".join(str(int(d)) for d in shape) + "]"


def fmt(v: float) -> str:
    return f"{v:+.3f}" if abs(v) >= 0.001 or v == 0 else f"{v:+.1e}"


# ---- the forward pass the pictures are drawn from -------------------------------------------------
@dataclass
class Recorded:
    args: object
    tokens: list[int]
    pieces: list[str]
    stages: dict[str, np.ndarray]
    freqs_cis: np.ndarray
    model_name: str
    generated: int = 3  # decode steps drawn in the KV cache picture


def record(model_path: Path, tokenizer_path: Path | None, prompt: str, chat: bool) -> Recorded:
    from llamanuts.inference import encode_text_prompt
    from llamanuts.ml import DT_BF16
    from llamanuts.model import LlamaTransformer, tokens_tensor
    from llamanuts.model.loader import load_model, resolve_model_alias

    if not model_path.exists():
        model_path = resolve_model_alias(str(model_path)) or model_path
    loaded = load_model(model_path, tokenizer_path)
    mode = "bf16" if loaded.weights.tok_embeddings.dtype is DT_BF16 else "f32"
    model = LlamaTransformer(loaded.args, loaded.weights, mode)
    if chat:
        from llamanuts.inference import InferenceArgs, InferenceEngine
        from llamanuts.inference.prompt import ChatMessage

        engine = InferenceEngine(model, loaded.tokenizer, InferenceArgs(max_new_tokens=1))
        tokens = engine.TokenizeChat([ChatMessage("user", prompt)])
    else:
        tokens = encode_text_prompt(loaded.tokenizer, prompt)
    context = model.NewInferenceContext(len(tokens))
    context.recorder = {}
    model.Forward(context, tokens_tensor(tokens), 0)
    pieces = [loaded.tokenizer.id_to_piece(t) for t in tokens]
    return Recorded(loaded.args, tokens, pieces, context.recorder, model.freqs_cis.numpy(), Path(str(model_path)).name)


def shown_rows(n: int, limit: int = 6) -> list[int]:
    """Which rows of n to draw: all when few, else the first and last few (a gap marks the rest)."""
    if n <= limit:
        return list(range(n))
    return list(range(limit // 2)) + list(range(n - limit // 2, n))


def footer(svg: Svg, r: Recorded, note: str) -> None:
    name = r.model_name.split(".")[0]  # SmolLM2-135M-Instruct.Q4_1.gguf -> SmolLM2-135M-Instruct
    svg.text(WIDTH / 2, svg.height - 10, f"{name}, {len(r.tokens)} tokens; {note}", SMALL, "middle", fill=MUTED)


# ---- STAGE 04 ---------------------------------------------------------------------------------------
def embedding_picture(r: Recorded) -> str:
    a = r.args
    x = r.stages["embedding"]
    rows = shown_rows(len(r.tokens))
    cols = 24
    svg = Svg(118 + 34 * len(rows) + 40)
    svg.text(10, 24, "STAGE 04: each token id picks one row of tok_embeddings", FONT + 1, weight="bold")
    top = 50
    # the table, drawn as a tall box with the chosen rows marked where they lie
    tx, tw, th = 250, 70, 34 * len(rows) + 30
    svg.rect(tx, top, tw, th, BOX, MUTED)
    svg.text(tx + tw / 2, top - 8, f"tok_embeddings {shape_text((a.vocab_size, a.dim))}", SMALL, "middle")
    scale = scale_of(x)
    for k, i in enumerate(rows):
        y = top + 10 + 34 * k
        tid = r.tokens[i]
        svg.text(12, y + 16, f"{tid:>6}", SMALL, mono=True)
        svg.text(70, y + 16, repr(r.pieces[i])[:16], SMALL, mono=True, fill=MUTED)
        ty = top + 2 + (th - 6) * tid / max(a.vocab_size - 1, 1)
        svg.rect(tx, ty, tw, 3, ACCENT)
        svg.line(200, y + 11, tx, ty + 1.5, ACCENT, 1)
        svg.line(tx + tw, ty + 1.5, 360, y + 11, ACCENT, 1)
        cells(svg, 362, y, x[i, :cols][None], 12, 22, scale)
        if k + 1 < len(rows) and rows[k + 1] != i + 1:
            svg.text(460, y + 34, "⋮", FONT, "middle")
    svg.text(362 + cols * 6, top - 8, f"x {shape_text(x.shape)} (first {cols} of {a.dim})", SMALL, "middle")
    svg.text(12, top - 8, "id", SMALL, weight="bold")
    svg.text(70, top - 8, "piece", SMALL, weight="bold")
    footer(svg, r, f"colours: the rows' real values, ±{scale:.3g} full")
    return svg.render("Stage 04: the embedding lookup")


# ---- STAGE 06 ---------------------------------------------------------------------------------------
def rmsnorm_picture(r: Recorded) -> str:
    a = r.args
    x = r.stages["embedding"][-1].astype(np.float64)
    out = r.stages["layers.0.attention_norm"][-1].astype(np.float64)
    rms = math.sqrt(float(np.mean(x * x)) + a.norm_eps)
    normalized = x / rms
    weight = np.divide(out, normalized, out=np.zeros_like(out), where=np.abs(normalized) > 1e-6)
    cols = 32
    svg = Svg(420)
    svg.text(10, 24, "STAGE 06: RMSNorm of the last token's row", FONT + 1, weight="bold")
    rows = [
        ("x", x, "the row as it enters layer 0"),
        ("x / RMS", normalized, f"RMS = √(mean(x²) + eps) = {rms:.4g}: divide (× {1 / rms:.4g})"),
        ("× weight", out, "× attn_norm weight, one number per feature"),
    ]
    y = 56
    for name, values, note in rows:
        s = scale_of(values)
        svg.text(12, y + 18, name, FONT, weight="bold")
        cells(svg, 110, y, values[:cols][None], 16, 26, s)
        svg.text(110, y + 44, f"{note}", SMALL, fill=MUTED)
        svg.text(WIDTH - 12, y + 18, f"±{s:.3g}", SMALL, "end", fill=MUTED)
        svg.text(110, y - 4, "  ".join(fmt(v) for v in values[:4]) + "  …", SMALL, mono=True)
        y += 100
    svg.text(12, y + 2, f"mean(x²) = {float(np.mean(x * x)):.4g}; the normalised row has RMS 1; first {cols} of {a.dim} features shown", SMALL, fill=MUTED)
    svg.text(12, y + 22, "each row is scaled on its own; the colour scale (right) differs per row", SMALL, fill=MUTED)
    footer(svg, r, "layer 0, attention_norm")
    return svg.render("Stage 06: RMSNorm")


# ---- STAGE 08 ---------------------------------------------------------------------------------------
def qkv_picture(r: Recorded) -> str:
    a = r.args
    n = len(r.tokens)
    q_out, kv_out = a.n_heads * a.head_dim, a.n_kv_heads * a.head_dim
    unit = 300 / max(a.dim, q_out)
    svg = Svg(360)
    svg.text(10, 24, "STAGE 08: three matrix products of the normalised x", FONT + 1, weight="bold")
    h = 40
    x_in = r.stages["layers.0.attention_norm"]
    x_buckets = np.array([c.mean(axis=1) for c in np.array_split(x_in, min(24, x_in.shape[1]), axis=1)]).T
    cells(svg, 12, 90, x_buckets, 150 / x_buckets.shape[1], h / x_buckets.shape[0], scale_of(x_buckets), "none")
    svg.rect(12, 90, 150, h, "none", MUTED)
    svg.text(12, 82, f"x {shape_text((n, a.dim))}", SMALL)
    y = 60
    for name, width, tensor in (("xq", q_out, "layers.0.xq"), ("xk", kv_out, "layers.0.xk"), ("xv", kv_out, "layers.0.xv")):
        wname = "w" + name[1]
        svg.arrow(162, 110, 200, y + h / 2)
        svg.text(206, y + h / 2 - 4, f"· {wname}ᵀ", SMALL)
        svg.text(206, y + h / 2 + 13, f"{wname} {shape_text((width, a.dim))}", SMALL, fill=MUTED)
        values = r.stages[tensor]
        buckets = np.array([chunk.mean(axis=1) for chunk in np.array_split(values, min(48, values.shape[1]), axis=1)]).T
        cells(svg, 360, y, buckets, width * unit / buckets.shape[1], h / buckets.shape[0], scale_of(buckets), "none")
        svg.rect(360, y, width * unit, h, "none", MUTED)
        svg.text(360, y - 5, f"{name} {shape_text(values.shape)}", SMALL)
        y += 95
    svg.text(12, 200, f"n = {n} tokens, dim = {a.dim}", SMALL, fill=MUTED)
    svg.text(12, 220, f"{a.n_heads} query heads × {a.head_dim}", SMALL, fill=MUTED)
    svg.text(12, 240, f"{a.n_kv_heads} key/value heads × {a.head_dim}", SMALL, fill=MUTED)
    svg.text(12, 260, "xq, xk, xv: widths to scale", SMALL, fill=MUTED)
    footer(svg, r, "layer 0; colours: column averages of the real results")
    return svg.render("Stage 08: xq, xk, xv")


# ---- STAGE 09 ---------------------------------------------------------------------------------------
HEAD_COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]


def heads_picture(r: Recorded) -> str:
    a = r.args
    rep = a.n_heads // a.n_kv_heads
    svg = Svg(345)
    svg.text(10, 24, "STAGE 09: a row cut into heads (a reshape, no copy)", FONT + 1, weight="bold")
    bar = 640 / a.n_heads
    svg.text(20, 56, f"xq row: {a.n_heads * a.head_dim} numbers", SMALL)
    for h in range(a.n_heads):
        svg.rect(20 + h * bar, 62, bar - 2, 24, HEAD_COLOURS[h % len(HEAD_COLOURS)])
        svg.text(20 + h * bar + bar / 2, 79, f"q{h}", SMALL, "middle", fill="white", weight="bold")
    svg.text(WIDTH - 20, 56, f"→ [{a.n_heads} {a.head_dim}] per token", SMALL, "end", fill=MUTED)
    kbar = 640 / a.n_kv_heads
    for g in range(a.n_kv_heads):
        svg.rect(20 + g * kbar, 168, kbar - 2, 24, "#999999")
        svg.text(20 + g * kbar + kbar / 2, 185, f"k{g} (and v{g})", SMALL, "middle", fill="white", weight="bold")
    svg.text(20, 210, f"xk row: {a.n_kv_heads * a.head_dim} numbers", SMALL)
    svg.text(WIDTH - 20, 210, f"→ [{a.n_kv_heads} {a.head_dim}] per token", SMALL, "end", fill=MUTED)
    for h in range(a.n_heads):
        g = h // rep
        svg.line(20 + h * bar + bar / 2, 88, 20 + g * kbar + kbar / 2, 166, HEAD_COLOURS[h % len(HEAD_COLOURS)], 1.3)
    svg.text(20, 240, f"head h holds features h·{a.head_dim} to h·{a.head_dim}+{a.head_dim - 1} of the row.", SMALL)
    svg.text(20, 260, f"Grouped-query attention: query head h reads key/value head h // {rep}", SMALL)
    svg.text(20, 280, f"({a.n_heads} query heads, {a.n_kv_heads} key/value heads, n_rep = {rep}); stage 11's RepeatInterleave", SMALL, fill=MUTED)
    svg.text(20, 300, "copies each key/value head n_rep times, in that order", SMALL, fill=MUTED)
    footer(svg, r, "shapes from ModelArgs")
    return svg.render("Stage 09: heads")


# ---- STAGE 10 ---------------------------------------------------------------------------------------
def rope_picture(r: Recorded) -> str:
    a = r.args
    n = len(r.tokens)
    half = a.head_dim // 2
    pairs = sorted({0, 1, half // 4, half - 1})
    svg = Svg(330)
    svg.text(10, 24, f"STAGE 10: pair i turns by θᵢ per position (positions 0 to {n - 1})", FONT + 1, weight="bold")
    radius = 62
    for k, i in enumerate(pairs):
        cx, cy = 85 + k * 170, 150
        svg.circle(cx, cy, radius, "#fafafa", "#cccccc")
        svg.line(cx - radius - 6, cy, cx + radius + 6, cy, "#dddddd")
        svg.line(cx, cy - radius - 6, cx, cy + radius + 6, "#dddddd")
        for m in range(n):
            angle = float(np.angle(r.freqs_cis[m, i]))
            ex, ey = cx + radius * math.cos(angle), cy - radius * math.sin(angle)
            shade = colour(0.25 + 0.75 * m / max(n - 1, 1), 1.0)
            svg.line(cx, cy, ex, ey, shade, 2.0)
            if m in (0, n - 1) or (n <= 8):
                svg.text(cx + (radius + 12) * math.cos(angle), cy - (radius + 12) * math.sin(angle) + 4, str(m), SMALL, "middle")
        theta = float(np.angle(r.freqs_cis[1, i])) if n > 1 else 0.0
        svg.text(cx, cy + radius + 34, f"pair {i}", FONT, "middle", weight="bold")
        svg.text(cx, cy + radius + 52, f"θ = {abs(theta):.3g} rad", SMALL, "middle", fill=MUTED)
    svg.text(12, 56, f"head_dim {a.head_dim} = {half} pairs (x[2i], x[2i+1]), each a complex number multiplied by cos(mθᵢ) + i sin(mθᵢ)", SMALL, fill=MUTED)
    footer(svg, r, f"angles from freqs_cis {shape_text(r.freqs_cis.shape)}, rope_theta {a.rope_theta:g}")
    return svg.render("Stage 10: RoPE per position")


# ---- STAGE 11 ---------------------------------------------------------------------------------------
def kvcache_picture(r: Recorded) -> str:
    a = r.args
    n = len(r.tokens)
    steps = [("prefill", n, 0)] + [(f"decode {s}", 1, n + s - 1) for s in range(1, r.generated + 1)]
    last = n + r.generated  # one empty row after the last written one
    if last + 1 <= 13:
        rows: list[int | None] = list(range(last + 1))
    else:  # a long prompt: its first and last rows, the gap marked
        rows = [0, 1, 2, None] + list(range(n - 3, last + 1))
    rows.append(-1)  # the "up to max_seq_len" row
    slots = len(rows)
    svg = Svg(140 + 22 * slots + 40)
    svg.text(10, 24, f"STAGE 11: cache_k[layer] {shape_text((a.max_seq_len, a.n_kv_heads, a.head_dim))} over the forward passes", FONT + 1, weight="bold")
    col = 150
    for k, (name, count, start) in enumerate(steps):
        x0 = 40 + k * col
        svg.text(x0 + 45, 60, name, FONT, "middle", weight="bold")
        svg.text(x0 + 45, 78, f"startPos {start}, {count} row{'s' if count > 1 else ''}", SMALL, "middle", fill=MUTED)
        for row, p in enumerate(rows):
            y = 92 + 22 * row
            if p == -1:
                svg.text(x0 + 45, y + 15, f"⋮ up to {a.max_seq_len - 1}", SMALL, "middle", fill=MUTED)
                continue
            if p is None:
                svg.text(x0 + 45, y + 15, "⋮", SMALL, "middle", fill=MUTED)
                continue
            if start <= p < start + count:
                fill = ACCENT  # written by this pass
            elif p < start:
                fill = "#a9c9e3"  # written earlier, read again
            else:
                fill = "#f3f3f3"  # still empty
            svg.rect(x0, y, 90, 19, fill, "#bbbbbb", 0.6)
            if k == 0:
                svg.text(x0 - 8, y + 14, str(p), SMALL, "end", fill=MUTED)
    y = 92 + 22 * slots + 8
    svg.rect(40, y, 14, 14, ACCENT)
    svg.text(60, y + 12, "written by this pass (SetSlice)", SMALL)
    svg.rect(300, y, 14, 14, "#a9c9e3")
    svg.text(320, y + 12, "written before, read again (Slice)", SMALL)
    footer(svg, r, "each pass reads rows 0 … startPos+count−1")
    return svg.render("Stage 11: the KV cache filling")


# ---- STAGE 12 ---------------------------------------------------------------------------------------
def transposes_picture(r: Recorded) -> str:
    a = r.args
    n = len(r.tokens)
    positions = shown_rows(n, 4)
    heads = list(range(min(a.n_heads, 3)))
    svg = Svg(360)
    svg.text(10, 24, "STAGE 12: Transpose(xq, 0, 1): positions first → heads first", FONT + 1, weight="bold")
    svg.text(20, 54, f"xq {shape_text((n, a.n_heads, a.head_dim))}: by position", SMALL, weight="bold")
    svg.text(370, 54, f"xq {shape_text((a.n_heads, n, a.head_dim))}: by head", SMALL, weight="bold")
    y = 66
    for p in positions:
        svg.text(20, y + 14, f"pos {p}", SMALL, fill=MUTED)
        for k, h in enumerate(heads):
            svg.rect(80 + k * 62, y, 58, 18, HEAD_COLOURS[h])
            svg.text(80 + k * 62 + 29, y + 14, f"q{h}·p{p}", SMALL, "middle", fill="white")
        svg.text(80 + len(heads) * 62 + 6, y + 14, "…", SMALL)
        y += 24
    y = 66
    for h in heads:
        svg.text(370, y + 14, f"head {h}", SMALL, fill=MUTED)
        for k, p in enumerate(positions):
            svg.rect(440 + k * 56, y, 52, 18, HEAD_COLOURS[h])
            svg.text(440 + k * 56 + 26, y + 14, f"p{p}", SMALL, "middle", fill="white")
        y += 24
    svg.arrow(300, 120, 360, 120)
    svg.text(20, 230, "Each small block is one head_dim vector. After the transpose, the vectors of one head", SMALL)
    svg.text(20, 250, f"are consecutive: head h is an ordinary [{n} {a.head_dim}] matrix of positions × features,", SMALL)
    svg.text(20, 270, "ready for one matrix product per head. keys and values [T heads head_dim] move the", SMALL)
    svg.text(20, 290, "same way. The data is copied, so that each tensor stays contiguous (chapter 08).", SMALL)
    footer(svg, r, "shapes of layer 0's prefill")
    return svg.render("Stage 12: transposes")


# ---- STAGE 14 ---------------------------------------------------------------------------------------
def scores_values_picture(r: Recorded) -> str:
    a = r.args
    weights = r.stages["layers.0.scores"][0]  # [n, T], head 0, after softmax
    n, t = weights.shape
    rep = a.n_heads // a.n_kv_heads
    xv = r.stages["layers.0.xv"].reshape(t, a.n_kv_heads, a.head_dim)[:, 0, :]  # head 0's key/value head
    out = r.stages["layers.0.attention"].reshape(n, a.n_heads, a.head_dim)[:, 0, :]
    cols = 16
    cell = min(18.0, (WIDTH - 130) / (t + 2 * cols))
    top = 96
    svg = Svg(int(top + cell * max(n, t) + 60))
    svg.text(10, 24, "STAGE 14: one head, scores × values = output", FONT + 1, weight="bold")
    svg.text(10, 46, f"head 0 of layer 0 (its key/value head is 0 // {rep} = 0): each output row is", SMALL, fill=MUTED)
    svg.text(10, 64, "the average of the value rows, weighted by that row of the softmax", SMALL, fill=MUTED)
    cells(svg, 20, top, weights, cell, cell, 1.0)
    svg.text(20, top - 10, f"weights {shape_text((n, t))}", SMALL)
    svg.text(20, top + cell * max(n, t) + 18, "rows sum to 1", SMALL, fill=MUTED)
    x1 = 20 + cell * t + 40
    svg.text(x1 - 18, top + cell * n / 2 + 5, "×", FONT + 4, "middle")
    vscale = scale_of(xv[:, :cols], out[:, :cols])
    cells(svg, x1, top, xv[:, :cols], cell, cell, vscale)
    svg.text(x1, top - 10, f"values {shape_text((t, a.head_dim))}", SMALL)
    x2 = x1 + cell * cols + 40
    svg.text(x2 - 18, top + cell * n / 2 + 5, "=", FONT + 4, "middle")
    cells(svg, x2, top, out[:, :cols], cell, cell, vscale)
    svg.text(x2, top - 10, f"output {shape_text((n, a.head_dim))}", SMALL)
    svg.text(x1, top + cell * max(n, t) + 18, f"first {cols} of {a.head_dim} features", SMALL, fill=MUTED)
    footer(svg, r, f"weights 0 (white) to 1 (red); values, output ±{vscale:.3g}")
    return svg.render("Stage 14: scores times values")


# ---- STAGES 15 and 18 -------------------------------------------------------------------------------
def residual_picture(r: Recorded) -> str:
    a = r.args
    x = r.stages["embedding"][-1]
    attention = r.stages["layers.0.attention_wo"][-1]
    h = r.stages["layers.0.h"][-1]
    ffn = r.stages["layers.0.ffn_out"][-1]
    out = r.stages["layers.0.out"][-1]
    cols = 32
    scale = scale_of(x[:cols], h[:cols], out[:cols], attention[:cols], ffn[:cols])
    svg = Svg(440)
    svg.text(10, 24, "STAGES 15 and 18: the residual stream, layer 0, last token", FONT + 1, weight="bold")
    rows = [
        ("x", x, "the stream entering the layer"),
        ("+ attention", attention, "STAGE 15 adds the attention output"),
        ("= h", h, ""),
        ("+ ffn", ffn, "STAGE 18 adds the feed-forward output"),
        ("= out", out, "the next layer's input"),
    ]
    y = 52
    for name, values, note in rows:
        svg.text(12, y + 17, name, FONT, weight="bold" if name.startswith("=") or name == "x" else "normal")
        cells(svg, 120, y, values[:cols][None], 14, 24, scale)
        rms = float(np.sqrt(np.mean(np.asarray(values, dtype=np.float64) ** 2)))
        svg.text(WIDTH - 12, y + 17, f"RMS {rms:.3g}", SMALL, "end", fill=MUTED)
        if note:
            svg.text(120, y + 42, note, SMALL, fill=MUTED)
        y += 72
    footer(svg, r, f"first {cols} of {a.dim} features; one colour scale, ±{scale:.3g}")
    return svg.render("Stages 15 and 18: residual additions")


PICTURES = {
    "stage-04-embedding.svg": embedding_picture,
    "stage-06-rmsnorm.svg": rmsnorm_picture,
    "stage-08-qkv.svg": qkv_picture,
    "stage-09-heads.svg": heads_picture,
    "stage-10-rope.svg": rope_picture,
    "stage-11-kvcache.svg": kvcache_picture,
    "stage-12-transposes.svg": transposes_picture,
    "stage-14-scores-values.svg": scores_values_picture,
    "stage-15-18-residual.svg": residual_picture,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model (default: models/kjv); smollm2 for the installed GGUF")
    parser.add_argument("--tokenizer", type=Path, default=None, help="tokenizer file (for a llama2.c .bin)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"the prompt (default: {DEFAULT_PROMPT!r})")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    parser.add_argument("--out", type=Path, default=FIGURES, help="output folder (default: docs/figures)")
    args = parser.parse_args(argv)

    recorded = record(args.model, args.tokenizer, args.prompt, args.chat)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw in PICTURES.items():
        path = args.out / name
        path.write_text(draw(recorded), encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
