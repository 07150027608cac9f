#!/usr/bin/env python3
"""Train, evaluate and export llamanuts' default model: a small Llama 2 on the King James Bible.

Nobody may redistribute Meta's weights, so the project ships its own tiny Llama 2. It is
stored exactly like Meta's Llama 2 release (``consolidated.00.pth`` with Meta's key names in
bf16, ``params.json``, a sentencepiece ``tokenizer.model``) so that it walks the very same
loading path in the engine as the real thing.

One seeded command does everything::

    python tools/train_default_model.py --out models/kjv

1. corpus: the KJV text from the Debian packages ``bible-kjv`` / ``bible-kjv-text``;
2. split: 1 John .. Revelation are held out for validation and never trained on;
3. tokenizer: sentencepiece BPE with Llama 2's conventions;
4. model: Llama 2 written out below following the semantics of Meta's ``llama/model.py``;
5. export: Meta's checkpoint layout, bf16;
6. evaluation: held-out NLL / perplexity computed on the *exported* bf16 weights widened to
   float32, plus greedy and sampled generations; results go to ``eval.json`` and ``README.md``.

PyTorch is a development-only tool of the project: only this script imports it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm
import torch
import torch.nn.functional as F
from torch import nn

# The held-out slice starts at this book (the bible program's abbreviation of 1 John) and
# runs to the end of Revelation: 1-3 John, Jude, Revelation, about 2% of the text.
FIRST_VALIDATION_BOOK = "1Jn"

BOS_ID = 1  # Llama 2 convention: unk=0, bos=1, eos=2, no pad

# The evaluation protocol, written verbatim into eval.json and the model card, because the
# engine's llama_perplexity tool reproduces it and a test compares the numbers.
EVAL_PROTOCOL = (
    "Encode the validation text file with the sentencepiece model as ONE token stream "
    "(sp.encode(text) of the whole file content, no BOS/EOS). Split it into consecutive "
    "non-overlapping chunks of ctx = max_seq_len - 1 tokens, dropping a final partial chunk. "
    "Prefix each chunk with BOS (id 1), run the model over BOS+chunk (max_seq_len tokens, "
    "causal attention, positions 0..max_seq_len-1), and average the negative log-likelihood "
    "(natural log, log_softmax of the float32 logits) of predicting every chunk token "
    "(ctx predictions per chunk: the logits at position i predict token i+1). "
    "Weights: the exported bf16 consolidated.00.pth widened to float32, all compute in float32. "
    "Report token count, mean NLL and perplexity = exp(mean NLL); sums are accumulated in float64. "
    "'first_8_chunks' is the same computation restricted to the first 8 chunks."
)

SAMPLE_PROMPTS = ["In the beginning", "And the LORD said unto Moses", "Blessed are the"]


# --------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------

# With -f (pretty-printing off) the bible program prints one verse per line, preceded by its
# reference, e.g. "Ge1:1 In the beginning ..." or "1Jn3:16 Hereby perceive we ...".
VERSE_RE = re.compile(r"^(?P<book>\d?[A-Za-z]+)(?P<chapter>\d+):(?P<verse>\d+) (?P<text>.+)$")


@dataclass
class Verse:
    book: str
    text: str


def extract_corpus() -> list[Verse]:
    """Return every verse of the KJV (Genesis 1:1 .. Revelation 22:21) in canonical order."""
    out = subprocess.run(
        ["bible", "-f", "-p", "/usr/lib", "Gen1:1-Rev22:21"],
        check=True, capture_output=True, text=True,
    ).stdout
    verses: list[Verse] = []
    for line in out.splitlines():
        if not line.strip():
            continue
        m = VERSE_RE.match(line)
        if m is None:
            raise ValueError(f"unexpected line from `bible`: {line!r}")
        verses.append(Verse(m["book"], m["text"].strip()))
    if len(verses) != 31102:  # the KJV has 31,102 verses; anything else means a parse bug
        raise ValueError(f"expected 31102 verses, got {len(verses)}")
    return verses


def split_corpus(verses: list[Verse]) -> tuple[list[str], list[str]]:
    """Split into (train, validation) verse texts; validation is the tail from 1 John on."""
    start = next(i for i, v in enumerate(verses) if v.book == FIRST_VALIDATION_BOOK)
    return [v.text for v in verses[:start]], [v.text for v in verses[start:]]


def lines_to_text(lines: list[str]) -> str:
    """One verse per line, newline-terminated: the on-disk format of train and validation."""
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------


def train_tokenizer(train_lines: list[str], vocab_size: int) -> bytes:
    """Train a sentencepiece BPE model following Llama 2's trainer settings; returns the
    serialized tokenizer.model.

    Sentences come from an iterator and the model goes to an in-memory writer, so that no
    scratch-file path is recorded in the model's trainer_spec: the file is byte-identical
    wherever it is built. sentencepiece has no seed for BPE; it is deterministic when it
    reads every sentence (input_sentence_size=0, no sampling or shuffling) on one thread.
    """
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(train_lines),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        byte_fallback=True,
        split_digits=True,
        # the rest mirrors the trainer_spec stored in Llama 2's tokenizer.model
        character_coverage=1.0,  # the KJV alphabet is tiny: keep every character
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        split_by_unicode_script=True,
        split_by_number=True,
        split_by_whitespace=True,
        max_sentencepiece_length=16,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


# --------------------------------------------------------------------------------------
# Model: Llama 2, following the semantics of Meta's llama/model.py
# --------------------------------------------------------------------------------------


@dataclass
class ModelArgs:
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    multiple_of: int
    norm_eps: float
    max_seq_len: int
    ffn_dim_multiplier: float | None = None
    rope_theta: float = 10000.0


def ffn_hidden_dim(args: ModelArgs) -> int:
    """Meta's rule for the SwiGLU hidden size."""
    hidden = int(2 * (4 * args.dim) / 3)
    if args.ffn_dim_multiplier is not None:
        hidden = int(args.ffn_dim_multiplier * hidden)
    return args.multiple_of * ((hidden + args.multiple_of - 1) // args.multiple_of)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def precompute_freqs_cis(head_dim: int, end: int, theta: float) -> torch.Tensor:
    """Complex rotations e^{i t f_k} for positions t < end and the head_dim/2 frequencies."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: head_dim // 2].float() / head_dim))
    t = torch.arange(end, dtype=torch.float32)
    angles = torch.outer(t, freqs)
    return torch.polar(torch.ones_like(angles), angles)  # complex64, (end, head_dim/2)


def apply_rotary_emb(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate ADJACENT pairs (x[2k], x[2k+1]) as complex numbers, exactly like Meta's code."""
    xq_ = torch.view_as_complex(xq.float().reshape(*xq.shape[:-1], -1, 2))
    xk_ = torch.view_as_complex(xk.float().reshape(*xk.shape[:-1], -1, 2))
    fc = freqs_cis.view(1, xq_.shape[1], 1, xq_.shape[-1])  # (1, seq, 1, head_dim/2)
    xq_out = torch.view_as_real(xq_ * fc).flatten(3)
    xk_out = torch.view_as_real(xk_ * fc).flatten(3)
    return xq_out.type_as(xq), xk_out.type_as(xk)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(bs, seq, n_kv, hd) -> (bs, seq, n_kv*n_rep, hd); query head h uses kv head h // n_rep."""
    if n_rep == 1:
        return x
    bs, slen, n_kv, hd = x.shape
    return x[:, :, :, None, :].expand(bs, slen, n_kv, n_rep, hd).reshape(bs, slen, n_kv * n_rep, hd)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.n_heads = args.n_heads
        self.n_kv_heads = args.n_kv_heads
        self.n_rep = args.n_heads // args.n_kv_heads
        self.head_dim = args.dim // args.n_heads
        self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)

    def forward(self, x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
        bsz, seqlen, _ = x.shape
        xq = self.wq(x).view(bsz, seqlen, self.n_heads, self.head_dim)
        xk = self.wk(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim)
        xv = self.wv(x).view(bsz, seqlen, self.n_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, freqs_cis)
        keys = repeat_kv(xk, self.n_rep)
        values = repeat_kv(xv, self.n_rep)
        # (bs, heads, seq, hd). Fused causal attention = softmax(q k^T / sqrt(hd) + mask) v,
        # the same math as Meta's explicit version, but much faster for training on a CPU.
        q, k, v = (t.transpose(1, 2) for t in (xq, keys, values))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(bsz, seqlen, -1))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, ffn_hidden_dim(args))
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), freqs_cis)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)  # untied, as in Llama 2
        # a buffer that is not persistent, so it never reaches the state_dict (no rope.freqs)
        self.register_buffer(
            "freqs_cis",
            precompute_freqs_cis(args.dim // args.n_heads, args.max_seq_len * 2, args.rope_theta),
            persistent=False,
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (float32) for every position of a full sequence starting at position 0."""
        seqlen = tokens.shape[1]
        h = self.tok_embeddings(tokens)
        freqs_cis = self.freqs_cis[:seqlen]
        for layer in self.layers:
            h = layer(h, freqs_cis)
        return self.output(self.norm(h)).float()


def init_weights(model: Transformer, seed: int) -> None:
    """GPT-2 style init: N(0, 0.02), residual output projections scaled by 1/sqrt(2 n_layers)
    so the residual stream does not grow with depth. Norm weights stay at 1."""
    g = torch.Generator().manual_seed(seed)
    resid_std = 0.02 / math.sqrt(2 * model.args.n_layers)
    for name, p in model.named_parameters():
        if p.dim() < 2:
            continue
        std = resid_std if name.endswith(("wo.weight", "w2.weight")) else 0.02
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    seed: int
    batch_size: int
    steps: int
    lr: float
    min_lr: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    autocast_bf16: bool
    log_every: int


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from lr to min_lr over the remaining steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def get_batch(
    stream: torch.Tensor, batch_size: int, ctx: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of ctx tokens, each prefixed by BOS: the same BOS+chunk shape that the
    evaluation protocol scores, so the model is trained on exactly what it is measured on."""
    starts = torch.randint(0, len(stream) - ctx + 1, (batch_size,), generator=g)
    chunks = torch.stack([stream[s : s + ctx] for s in starts.tolist()])
    bos = torch.full((batch_size, 1), BOS_ID, dtype=torch.long)
    # BOS + chunk[:-1]: by causality the logits equal those of BOS + chunk minus the last
    # position, which predicts nothing the protocol scores
    inputs = torch.cat([bos, chunks[:, :-1]], dim=1)
    return inputs, chunks


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on the RMSNorm gains)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8)


def train(
    model: Transformer,
    train_stream: torch.Tensor,
    val_stream: torch.Tensor,
    cfg: TrainConfig,
    log: "Logger",
) -> dict:
    """Train in place; returns a summary (final train loss, wall time, ...)."""
    ctx = model.args.max_seq_len - 1
    g = torch.Generator().manual_seed(cfg.seed + 1)
    opt = make_optimizer(model, cfg)
    model.train()
    t0 = time.time()
    recent: list[float] = []
    history: list[dict] = []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        inputs, targets = get_batch(train_stream, cfg.batch_size, ctx, g)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.autocast_bf16):
            logits = model(inputs)
        # inputs are BOS + chunk[:-1]; position i predicts chunk[i]
        loss = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        recent.append(loss.item())
        recent = recent[-cfg.log_every :]
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            elapsed = time.time() - t0
            tok_s = (step + 1) * cfg.batch_size * ctx / elapsed
            entry = {"step": step + 1, "train_loss": sum(recent) / len(recent),
                     "lr": lr_at(step, cfg), "elapsed_s": round(elapsed, 1)}
            # monitoring only: a few held-out chunks, never used to pick anything automatically
            if (step + 1) % (cfg.log_every * 10) == 0 or step + 1 == cfg.steps:
                entry["val_loss_8"] = evaluate(model, val_stream, n_chunks=8)["mean_nll"]
                model.train()
            history.append(entry)
            log(f"step {step + 1}/{cfg.steps} loss {entry['train_loss']:.4f} "
                f"lr {entry['lr']:.2e} {tok_s:.0f} tok/s {elapsed / 60:.1f} min"
                + (f" val8 {entry['val_loss_8']:.4f}" if "val_loss_8" in entry else ""))
    return {
        "wall_time_s": time.time() - t0,
        "final_train_loss": sum(recent) / len(recent),
        "final_train_loss_window_steps": len(recent),
        "tokens_seen": cfg.steps * cfg.batch_size * ctx,
        "history": history,
    }


# --------------------------------------------------------------------------------------
# Export (Meta's layout) and evaluation
# --------------------------------------------------------------------------------------


def export_checkpoint(model: Transformer, out_dir: Path) -> Path:
    """consolidated.00.pth: a plain OrderedDict of Meta's key names -> bf16 tensors, each a
    fresh contiguous tensor with its own storage (nothing tied, nothing shared)."""
    state = OrderedDict()
    for name, tensor in model.state_dict().items():
        state[name] = tensor.detach().to(torch.bfloat16).contiguous().clone()
    path = out_dir / "consolidated.00.pth"
    torch.save(state, path)
    return path


def write_params(args: ModelArgs, out_dir: Path) -> dict:
    """params.json in Meta's style; vocab_size -1 as Llama 2 ships (taken from the tokenizer)."""
    params = {
        "dim": args.dim,
        "multiple_of": args.multiple_of,
        "n_heads": args.n_heads,
        "n_kv_heads": args.n_kv_heads,
        "n_layers": args.n_layers,
        "norm_eps": args.norm_eps,
        "vocab_size": -1,
        "max_seq_len": args.max_seq_len,
        "rope_theta": args.rope_theta,
    }
    (out_dir / "params.json").write_text(json.dumps(params, indent=2) + "\n")
    return params


def load_exported(out_dir: Path, vocab_size: int) -> Transformer:
    """Rebuild the model from the shipped files only, bf16 weights widened to float32."""
    params = json.loads((out_dir / "params.json").read_text())
    args = ModelArgs(
        dim=params["dim"], n_layers=params["n_layers"], n_heads=params["n_heads"],
        n_kv_heads=params["n_kv_heads"], vocab_size=vocab_size,
        multiple_of=params["multiple_of"], norm_eps=params["norm_eps"],
        max_seq_len=params["max_seq_len"], rope_theta=params.get("rope_theta", 10000.0),
    )
    state = torch.load(out_dir / "consolidated.00.pth", map_location="cpu", weights_only=True)
    assert all(t.dtype == torch.bfloat16 for t in state.values())
    model = Transformer(args)
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    model.eval()
    return model


@torch.no_grad()
def evaluate(model: Transformer, stream: torch.Tensor, n_chunks: int | None = None) -> dict:
    """The evaluation protocol (see EVAL_PROTOCOL) over the first n_chunks (all if None)."""
    model.eval()
    ctx = model.args.max_seq_len - 1
    total_chunks = len(stream) // ctx
    n = total_chunks if n_chunks is None else min(n_chunks, total_chunks)
    total_nll = 0.0  # python float = float64
    batch = 8
    for first in range(0, n, batch):
        idx = range(first, min(first + batch, n))
        chunks = torch.stack([stream[i * ctx : (i + 1) * ctx] for i in idx])
        bos = torch.full((len(idx), 1), BOS_ID, dtype=torch.long)
        logits = model(torch.cat([bos, chunks], dim=1))[:, :-1]  # drop the last prediction
        logp = torch.log_softmax(logits.float(), dim=-1)
        nll = -logp.gather(-1, chunks.unsqueeze(-1)).squeeze(-1)
        total_nll += float(nll.double().sum())
    n_tok = n * ctx
    mean = total_nll / n_tok
    return {"n_chunks": n, "n_tokens": n_tok, "total_nll": total_nll,
            "mean_nll": mean, "perplexity": math.exp(mean)}


@torch.no_grad()
def generate(
    model: Transformer, sp: spm.SentencePieceProcessor, prompt: str, max_new_tokens: int,
    temperature: float, top_p: float, g: torch.Generator | None,
) -> tuple[list[int], str]:
    """Greedy (temperature 0) or temperature + top-p sampling as in Meta's generation.py.
    No KV cache: the full sequence is recomputed every step, which is fine for samples."""
    tokens = [BOS_ID] + sp.encode(prompt)
    n_prompt = len(tokens)
    for _ in range(max_new_tokens):
        window = tokens[-model.args.max_seq_len :]
        logits = model(torch.tensor([window]))[0, -1]
        if temperature <= 0:
            nxt = int(torch.argmax(logits))
        else:
            probs = torch.softmax(logits / temperature, dim=-1)
            p_sorted, idx = torch.sort(probs, descending=True)
            cum = torch.cumsum(p_sorted, dim=-1)
            p_sorted[cum - p_sorted > top_p] = 0.0
            p_sorted /= p_sorted.sum()
            nxt = int(idx[torch.multinomial(p_sorted, 1, generator=g)])
        if nxt == sp.eos_id():
            break
        tokens.append(nxt)
    new = tokens[n_prompt:]
    return new, sp.decode(tokens[1:])


def word_coverage(texts: list[str], vocab: set[str]) -> float:
    """Fraction of generated words (letter runs) that occur in the corpus."""
    words = [w for t in texts for w in re.findall(r"[A-Za-z]+", t)]
    return sum(w in vocab for w in words) / max(1, len(words))


# --------------------------------------------------------------------------------------
# Model card
# --------------------------------------------------------------------------------------


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), for the model card."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def human_size(n: int) -> str:
    return f"{n / 1e6:.2f} MB ({n:,} bytes)"


def write_model_card(out_dir: Path, info: dict) -> None:
    a, t, e = info["model"], info["training"], info["eval"]
    samples = "\n\n".join(
        f"**{s['mode']}**, prompt `{s['prompt']}`:\n\n```text\n{s['text']}\n```"
        for s in info["samples"]
    )
    files = "\n".join(f"| `{name}` | {human_size(size)} |" for name, size in info["files"].items())
    card = f"""# kjv: llamanuts' default model

A small **Llama 2** trained from scratch by the llamanuts project on the King James Bible,
stored exactly like Meta's Llama 2 release (`consolidated.00.pth` with Meta's key names in
bfloat16, Meta-style `params.json`, sentencepiece `tokenizer.model`), so that it goes through
the same loading path as Meta's weights. It is a tiny test and demo model: it writes
KJV-flavoured English and knows nothing else.

## Files

| file | size |
|---|---|
{files}

`validation.txt` is the held-out text (1 John 1:1 to Revelation 22:21, one verse per line).

## Corpus and licence

The Authorized (King James) Version of the Bible, from the Debian packages `bible-kjv` /
`bible-kjv-text` {info['corpus']['debian_version']} (`bible -f -p /usr/lib Gen1:1-Rev22:21`,
one verse per line, verse references stripped). {info['corpus']['n_verses']:,} verses,
{info['corpus']['n_chars']:,} characters.

* training: Genesis 1:1 to 2 Peter 3:18, i.e. everything before 1 John
  ({info['corpus']['train_verses']:,} verses, {info['corpus']['train_tokens']:,} tokens);
* validation (held out, never trained on, and also not used to train the tokenizer):
  1 John, 2 John, 3 John, Jude, Revelation ({info['corpus']['val_verses']:,} verses,
  {info['corpus']['val_tokens']:,} tokens, {100 * info['corpus']['val_fraction_chars']:.1f}% of
  the characters).

The KJV text is in the **public domain** in most of the world. In the **United Kingdom** the
Authorized Version is under perpetual **Crown copyright** administered by letters patent (the
"Crown patent", held by the King's Printer / Cambridge University Press); reproducing the text
there is subject to that patent. The model weights and tokenizer are released under the
project's MIT licence.

## Tokenizer

sentencepiece {spm.__version__} BPE trained on the training split only, Llama 2 conventions:
`vocab_size={info['tokenizer']['vocab_size']}`, `unk_id=0`, `bos_id=1`, `eos_id=2`,
`pad_id=-1`, `byte_fallback=True` (the 256 `<0xNN>` byte pieces), `split_digits=True`,
identity normalisation, `add_dummy_prefix=True`, `remove_extra_whitespaces=False`,
single-threaded and without sampling, hence deterministic. Newlines are not in any piece and
are encoded by byte fallback as `<0x0A>`, as in Llama 2.

## Model

Llama 2 architecture (RMSNorm, rotary embeddings over adjacent pairs with theta 10000,
grouped-query attention, SwiGLU feed-forward, no biases, untied output matrix).

| hyperparameter | value |
|---|---|
| dim | {a['dim']} |
| n_layers | {a['n_layers']} |
| n_heads | {a['n_heads']} (head_dim {a['dim'] // a['n_heads']}) |
| n_kv_heads | {a['n_kv_heads']} |
| FFN hidden (multiple_of {a['multiple_of']}) | {info['ffn_hidden']} |
| norm_eps | {a['norm_eps']} |
| vocab_size | {a['vocab_size']} (params.json says -1: take it from the tokenizer) |
| max_seq_len (training context) | {a['max_seq_len']} |
| rope_theta | {a['rope_theta']} |
| parameters | {info['n_params']:,} |

## Training

| setting | value |
|---|---|
| seed | {info['train_config']['seed']} |
| steps | {info['train_config']['steps']:,} |
| batch | {info['train_config']['batch_size']} sequences of BOS + {a['max_seq_len'] - 1} tokens (random windows of the training token stream) |
| tokens seen | {t['tokens_seen']:,} (~{t['tokens_seen'] / info['corpus']['train_tokens']:.1f} epochs) |
| optimiser | AdamW, betas (0.9, 0.95), weight decay {info['train_config']['weight_decay']} on matrices, grad clip {info['train_config']['grad_clip']} |
| schedule | linear warm-up {info['train_config']['warmup_steps']} steps to {info['train_config']['lr']}, cosine to {info['train_config']['min_lr']} |
| precision | float32 weights{', bf16 autocast for the matmuls' if info['train_config']['autocast_bf16'] else ''} |
| hardware | {info['hardware']} |
| training wall time | {t['wall_time_s'] / 60:.1f} min |
| final train loss | {t['final_train_loss']:.4f} (mean over the last {t['final_train_loss_window_steps']} steps) |

## Evaluation

On the exported bf16 weights widened to float32:

| slice | chunks | tokens | mean NLL (nats) | perplexity |
|---|---|---|---|---|
| full validation | {e['full']['n_chunks']} | {e['full']['n_tokens']:,} | {e['full']['mean_nll']:.6f} | {e['full']['perplexity']:.4f} |
| first 8 chunks | {e['first_8_chunks']['n_chunks']} | {e['first_8_chunks']['n_tokens']:,} | {e['first_8_chunks']['mean_nll']:.6f} | {e['first_8_chunks']['perplexity']:.4f} |

Exact values (all digits) are in `eval.json`. Protocol (verbatim in `eval.json`):

> {EVAL_PROTOCOL}

Share of generated words (letter runs) that occur in the corpus, over the samples below:
{100 * info['word_coverage']:.1f}%.

## Samples

Generated by the PyTorch reference model on the exported bf16 weights (widened to float32).
Greedy = argmax; sampled = temperature {info['sampling']['temperature']}, top-p
{info['sampling']['top_p']}, torch generator seed {info['sampling']['seed']};
{info['sampling']['max_new_tokens']} new tokens.

{samples}

## How to regenerate

```sh
apt-get install bible-kjv bible-kjv-text
pip install torch=={torch.__version__.split('+')[0]} sentencepiece=={spm.__version__}
python tools/train_default_model.py --out models/kjv
```

Everything (corpus extraction, split, tokenizer, training, export, evaluation, this card) is
done by that one command with seed {info['train_config']['seed']}; it was produced with
Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__},
sentencepiece {spm.__version__}. Training is seeded, but bit-exact reproduction also depends
on the CPU and the oneDNN/BLAS kernels torch picks for it.
"""
    (out_dir / "README.md").write_text(card)


# --------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------


class Logger:
    def __init__(self) -> None:
        self.t0 = time.time()

    def __call__(self, msg: str) -> None:
        print(f"[{time.time() - self.t0:7.1f}s] {msg}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder, e.g. models/kjv")
    p.add_argument("--work-dir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--seed", type=int, default=1611)  # the year the KJV was first printed
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--n-layers", type=int, default=6)
    p.add_argument("--n-heads", type=int, default=8)
    p.add_argument("--n-kv-heads", type=int, default=2)
    p.add_argument("--multiple-of", type=int, default=32)
    p.add_argument("--norm-eps", type=float, default=1e-5)
    p.add_argument("--max-seq-len", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=1600)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--no-autocast-bf16", dest="autocast_bf16", action="store_false",
                   help="train the matmuls in float32 instead of bf16 autocast")
    # One thread: on a shared 2-core machine a second thread stalls every step whenever a
    # neighbour's process holds the other core (measured: >6 s/step with 2, 2.6 s with 1).
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--bench-steps", type=int, default=0,
                   help="only time this many training steps and exit (to size the model)")
    return p.parse_args(argv)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)


def main(argv: list[str] | None = None) -> None:
    opts = parse_args(argv)
    log = Logger()
    torch.set_num_threads(opts.threads)
    seed_everything(opts.seed)
    out_dir: Path = opts.out
    out_dir.mkdir(parents=True, exist_ok=True)
    work = opts.work_dir or Path(tempfile.mkdtemp(prefix="kjv_train_"))
    work.mkdir(parents=True, exist_ok=True)

    # 1. corpus and split
    verses = extract_corpus()
    train_lines, val_lines = split_corpus(verses)
    train_text, val_text = lines_to_text(train_lines), lines_to_text(val_lines)
    (work / "train.txt").write_text(train_text)
    (out_dir / "validation.txt").write_text(val_text)
    log(f"corpus: {len(verses)} verses; train {len(train_lines)}, validation {len(val_lines)}")

    # 2. tokenizer (training split only, so no validation text leaks into it either)
    (out_dir / "tokenizer.model").write_bytes(train_tokenizer(train_lines, opts.vocab_size))
    sp = spm.SentencePieceProcessor(model_file=str(out_dir / "tokenizer.model"))
    # the same one-stream encoding as the evaluation protocol: sp.encode(whole file)
    train_stream = torch.tensor(sp.encode(train_text), dtype=torch.long)
    val_stream = torch.tensor(sp.encode((out_dir / "validation.txt").read_text()), dtype=torch.long)
    log(f"tokenizer: vocab {sp.vocab_size()}; train {len(train_stream)} tokens, "
        f"validation {len(val_stream)} tokens")

    # 3. model
    args = ModelArgs(
        dim=opts.dim, n_layers=opts.n_layers, n_heads=opts.n_heads, n_kv_heads=opts.n_kv_heads,
        vocab_size=sp.vocab_size(), multiple_of=opts.multiple_of, norm_eps=opts.norm_eps,
        max_seq_len=opts.max_seq_len,
    )
    model = Transformer(args)
    init_weights(model, opts.seed)
    n_params = count_params(model)
    log(f"model: {asdict(args)} ffn_hidden {ffn_hidden_dim(args)} params {n_params:,} "
        f"(bf16 {2 * n_params / 1e6:.1f} MB)")

    cfg = TrainConfig(
        seed=opts.seed, batch_size=opts.batch_size,
        steps=opts.bench_steps or opts.steps, lr=opts.lr, min_lr=opts.min_lr,
        warmup_steps=opts.warmup_steps, weight_decay=opts.weight_decay,
        grad_clip=opts.grad_clip, autocast_bf16=opts.autocast_bf16,
        log_every=min(opts.log_every, opts.bench_steps or opts.log_every),
    )
    summary = train(model, train_stream, val_stream, cfg, log)
    if opts.bench_steps:
        log(f"bench: {summary['wall_time_s'] / opts.bench_steps:.3f} s/step")
        return

    # 4. export in Meta's layout
    export_checkpoint(model, out_dir)
    params = write_params(args, out_dir)
    del model

    # 5. evaluate the shipped bf16 weights, widened to float32
    shipped = load_exported(out_dir, sp.vocab_size())
    full = evaluate(shipped, val_stream)
    first8 = evaluate(shipped, val_stream, n_chunks=8)
    log(f"held-out: mean NLL {full['mean_nll']:.6f} ppl {full['perplexity']:.4f}; "
        f"first 8 chunks {first8['mean_nll']:.6f}")

    sampling = {"temperature": 0.8, "top_p": 0.9, "seed": opts.seed, "max_new_tokens": 60}
    g = torch.Generator().manual_seed(opts.seed)
    samples = []
    for prompt in SAMPLE_PROMPTS:
        for mode, temp in (("greedy", 0.0), ("sampled", sampling["temperature"])):
            ids, text = generate(shipped, sp, prompt, sampling["max_new_tokens"], temp,
                                 sampling["top_p"], g)
            samples.append({"mode": mode, "prompt": prompt, "token_ids": ids, "text": text})
            log(f"{mode}: {text!r}")
    corpus_words = {w for v in verses for w in re.findall(r"[A-Za-z]+", v.text)}
    coverage = word_coverage([s["text"] for s in samples], corpus_words)
    log(f"generated-word coverage: {coverage:.4f}")

    eval_record = {
        "protocol": EVAL_PROTOCOL,
        "validation_file": "validation.txt",
        "tokenizer": "tokenizer.model",
        "weights": "consolidated.00.pth (bf16, widened to float32)",
        "max_seq_len": args.max_seq_len,
        "ctx": args.max_seq_len - 1,
        "bos_id": BOS_ID,
        "stream_tokens": len(val_stream),
        "full": full,
        "first_8_chunks": first8,
        "samples": {"sampling": sampling, "generations": samples, "word_coverage": coverage},
    }
    (out_dir / "eval.json").write_text(json.dumps(eval_record, indent=2) + "\n")

    deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "bible-kjv-text"],
                         capture_output=True, text=True).stdout.strip()
    files = {name: (out_dir / name).stat().st_size for name in
             ["consolidated.00.pth", "params.json", "tokenizer.model", "validation.txt"]}
    info = {
        "model": asdict(args), "params": params, "ffn_hidden": ffn_hidden_dim(args),
        "n_params": n_params, "training": summary, "train_config": asdict(cfg),
        "eval": eval_record, "samples": samples, "sampling": sampling,
        "word_coverage": coverage, "files": files,
        "tokenizer": {"vocab_size": sp.vocab_size()},
        "hardware": f"{os.cpu_count()}-core CPU ({cpu_name()}), "
                    f"no GPU, torch.set_num_threads({opts.threads}), run under nice on a machine "
                    f"shared with other jobs (so the wall time is an upper bound)",
        "corpus": {
            "debian_version": deb, "n_verses": len(verses),
            "n_chars": len(train_text) + len(val_text),
            "train_verses": len(train_lines), "val_verses": len(val_lines),
            "train_tokens": len(train_stream), "val_tokens": len(val_stream),
            "val_fraction_chars": len(val_text) / (len(train_text) + len(val_text)),
        },
    }
    write_model_card(out_dir, info)
    (work / "training_log.json").write_text(json.dumps(summary, indent=2))
    log(f"done: {out_dir}")


if __name__ == "__main__":
    sys.exit(main())
