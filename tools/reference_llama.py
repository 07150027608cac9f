"""An independent PyTorch reference of the Llama forward pass, used to prove the engine.

This module follows the semantics of Meta's reference `llama/model.py` (Llama 2) and its
Llama 3 / 3.1 successor, op by op, so that its numbers can be trusted as "what Meta's code
would print".  It is a development tool only: the engine in `src/` never imports it, and
this module never imports the engine.

Two compute modes:

* ``"f32"``:  weights widened to float32 (exact for bf16 weights), every activation float32.
* ``"bf16"``: weights in bfloat16 (as stored, or rounded to nearest-even from float32 for the
  llama2.c files), activations bfloat16 exactly as Meta's code behaves when the default
  tensor type is bfloat16.  RMSNorm, RoPE and softmax widen to float32 internally and round
  back, as Meta's code does.

Usage from the command line::

    python -m tools.reference_llama --model PATH [--greedy N] [--mode f32|bf16]

PATH is either a Meta checkpoint directory (params.json + consolidated.00.pth) or a
llama2.c legacy ``.bin`` file.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

MODES = ("f32", "bf16")

# Llama 3.1 rope scaling constants (Meta's llama3 reference, `apply_scaling`).
ROPE_SCALE_FACTOR = 8.0
ROPE_LOW_FREQ_FACTOR = 1.0
ROPE_HIGH_FREQ_FACTOR = 4.0
ROPE_OLD_CONTEXT_LEN = 8192.0


# ----------------------------------------------------------------------------- config


@dataclass
class ModelArgs:
    """Hyper-parameters, mirroring Meta's ModelArgs plus the resolved FFN hidden size."""

    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    hidden_dim: int
    multiple_of: int = 256
    ffn_dim_multiplier: Optional[float] = None
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    use_scaled_rope: bool = False
    max_seq_len: int = 2048

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def n_rep(self) -> int:
        return self.n_heads // self.n_kv_heads


def ffn_hidden_dim(dim: int, multiple_of: int, ffn_dim_multiplier: Optional[float]) -> int:
    """Meta's FeedForward sizing rule: 2/3 of 4*dim, optional multiplier, rounded up."""
    hidden = int(2 * (4 * dim) / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


# ----------------------------------------------------------------------------- model


@dataclass
class ReferenceModel:
    """Weights under Meta's key names (as loaded), plus per-mode converted copies and caches."""

    args: ModelArgs
    weights: dict[str, torch.Tensor]
    source: str = ""
    _mode_weights: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)
    _caches: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = field(
        default_factory=dict, repr=False
    )
    _freqs_cis: Optional[torch.Tensor] = field(default=None, repr=False)

    def weights_for(self, mode: str) -> dict[str, torch.Tensor]:
        """Weights converted once per mode; f32 widening of bf16 is exact."""
        check_mode(mode)
        if mode not in self._mode_weights:
            dtype = mode_dtype(mode)
            self._mode_weights[mode] = {k: v.to(dtype) for k, v in self.weights.items()}
        return self._mode_weights[mode]

    def cache_for(self, mode: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """KV cache per layer, [max_seq_len, n_kv_heads, head_dim] in the mode's dtype."""
        check_mode(mode)
        if mode not in self._caches:
            a = self.args
            shape = (a.max_seq_len, a.n_kv_heads, a.head_dim)
            dtype = mode_dtype(mode)
            self._caches[mode] = [
                (torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype))
                for _ in range(a.n_layers)
            ]
        return self._caches[mode]

    def reset_cache(self) -> None:
        self._caches.clear()

    def freqs_cis(self) -> torch.Tensor:
        """Like Meta, the table covers 2 * max_seq_len positions (complex64)."""
        if self._freqs_cis is None:
            a = self.args
            self._freqs_cis = precompute_freqs_cis(
                a.head_dim, a.max_seq_len * 2, a.rope_theta, a.use_scaled_rope
            )
        return self._freqs_cis


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def mode_dtype(mode: str) -> torch.dtype:
    return torch.float32 if mode == "f32" else torch.bfloat16


# ----------------------------------------------------------------------------- rope


def apply_scaling(freqs: torch.Tensor) -> torch.Tensor:
    """Llama 3.1 frequency scaling: keep high frequencies, divide low ones by 8, blend between.

    Computed element-wise in float32 in the same operation order as Meta's per-element loop,
    so the results are bit-identical to it.
    """
    low_freq_wavelen = ROPE_OLD_CONTEXT_LEN / ROPE_LOW_FREQ_FACTOR
    high_freq_wavelen = ROPE_OLD_CONTEXT_LEN / ROPE_HIGH_FREQ_FACTOR
    wavelen = 2 * math.pi / freqs
    smooth = (ROPE_OLD_CONTEXT_LEN / wavelen - ROPE_LOW_FREQ_FACTOR) / (
        ROPE_HIGH_FREQ_FACTOR - ROPE_LOW_FREQ_FACTOR
    )
    blended = (1 - smooth) * freqs / ROPE_SCALE_FACTOR + smooth * freqs
    scaled = torch.where(wavelen > low_freq_wavelen, freqs / ROPE_SCALE_FACTOR, blended)
    return torch.where(wavelen < high_freq_wavelen, freqs, scaled)


def precompute_freqs_cis(
    head_dim: int, end: int, theta: float = 10000.0, use_scaled_rope: bool = False
) -> torch.Tensor:
    """polar(1, outer(t, 1/theta^(2i/d))) as complex64 [end, head_dim/2]."""
    freqs = 1.0 / (theta ** (torch.arange(0, head_dim, 2)[: (head_dim // 2)].float() / head_dim))
    if use_scaled_rope:
        freqs = apply_scaling(freqs)
    t = torch.arange(end, dtype=torch.float32)
    freqs = torch.outer(t, freqs)
    return torch.polar(torch.ones_like(freqs), freqs)


def apply_rotary_emb(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Rotate ADJACENT pairs (x[2i], x[2i+1]) as complex numbers; x is [bs, n, heads, hd]."""
    x_c = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    # freqs_cis [n, hd/2] broadcasts over batch and heads.
    rotated = x_c * freqs_cis.view(1, x_c.shape[1], 1, x_c.shape[-1])
    return torch.view_as_real(rotated).flatten(3).type_as(x)


# ----------------------------------------------------------------------------- blocks


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Normalise in float32, round back to x's dtype, THEN multiply by the weight (Meta order)."""
    xf = x.float()
    normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return normed.type_as(x) * weight


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[bs, seq, n_kv, hd] -> [bs, seq, n_kv*n_rep, hd]; query head h reads kv head h // n_rep."""
    if n_rep == 1:
        return x
    return torch.repeat_interleave(x, n_rep, dim=2)


def causal_mask(n: int, start_pos: int, dtype: torch.dtype) -> Optional[torch.Tensor]:
    """[n, start_pos+n]: zeros for cached positions, -inf strictly above the new diagonal."""
    if n <= 1:
        return None  # Meta skips the mask for single-token decode
    mask = torch.full((n, n), float("-inf"))
    mask = torch.triu(mask, diagonal=1)
    return torch.hstack([torch.zeros((n, start_pos)), mask]).to(dtype)


class _Recorder:
    """Collects named stages as float32 numpy arrays (batch dimension dropped)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.stages: dict[str, np.ndarray] = {}

    def put(self, name: str, t: torch.Tensor) -> None:
        if not self.enabled:
            return
        t = t.detach()
        if t.is_complex():
            self.stages[name] = t.to(torch.complex64).numpy().copy()
        else:
            # bf16 -> f32 widening is exact, so bf16 values are preserved bit for bit.
            self.stages[name] = t.float().numpy().copy()


def attention_block(
    x: torch.Tensor,
    w: dict[str, torch.Tensor],
    prefix: str,
    args: ModelArgs,
    start_pos: int,
    freqs_cis: torch.Tensor,
    mask: Optional[torch.Tensor],
    cache: tuple[torch.Tensor, torch.Tensor],
    rec: _Recorder,
) -> torch.Tensor:
    """Meta's Attention.forward for batch 1; x is the normed input [1, n, dim]."""
    bsz, n, _ = x.shape
    hd = args.head_dim
    xq = F.linear(x, w[f"{prefix}.attention.wq.weight"])
    xk = F.linear(x, w[f"{prefix}.attention.wk.weight"])
    xv = F.linear(x, w[f"{prefix}.attention.wv.weight"])
    rec.put(f"{prefix}.xq", xq[0])
    rec.put(f"{prefix}.xk", xk[0])
    rec.put(f"{prefix}.xv", xv[0])

    xq = xq.view(bsz, n, args.n_heads, hd)
    xk = xk.view(bsz, n, args.n_kv_heads, hd)
    xv = xv.view(bsz, n, args.n_kv_heads, hd)
    xq = apply_rotary_emb(xq, freqs_cis)
    xk = apply_rotary_emb(xk, freqs_cis)
    rec.put(f"{prefix}.xq_rope", xq[0])
    rec.put(f"{prefix}.xk_rope", xk[0])

    cache_k, cache_v = cache
    cache_k[start_pos : start_pos + n] = xk[0]
    cache_v[start_pos : start_pos + n] = xv[0]
    keys = repeat_kv(cache_k[None, : start_pos + n], args.n_rep)
    values = repeat_kv(cache_v[None, : start_pos + n], args.n_rep)

    xq = xq.transpose(1, 2)  # [1, heads, n, hd]
    keys = keys.transpose(1, 2)
    values = values.transpose(1, 2)
    scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(hd)
    if mask is not None:
        scores = scores + mask
    scores = F.softmax(scores.float(), dim=-1).type_as(xq)
    rec.put(f"{prefix}.scores", scores[0])
    output = torch.matmul(scores, values)  # [1, heads, n, hd]
    output = output.transpose(1, 2).contiguous().view(bsz, n, -1)
    rec.put(f"{prefix}.attention", output[0])
    out = F.linear(output, w[f"{prefix}.attention.wo.weight"])
    rec.put(f"{prefix}.attention_wo", out[0])
    return out


def feed_forward_block(
    x: torch.Tensor, w: dict[str, torch.Tensor], prefix: str, rec: _Recorder
) -> torch.Tensor:
    """SwiGLU: w2(silu(w1 x) * w3 x)."""
    gate = F.silu(F.linear(x, w[f"{prefix}.feed_forward.w1.weight"]))
    up = F.linear(x, w[f"{prefix}.feed_forward.w3.weight"])
    rec.put(f"{prefix}.ffn_w1_silu", gate[0])
    rec.put(f"{prefix}.ffn_w3", up[0])
    out = F.linear(gate * up, w[f"{prefix}.feed_forward.w2.weight"])
    rec.put(f"{prefix}.ffn_out", out[0])
    return out


def transformer_block(
    h: torch.Tensor,
    layer: int,
    model: ReferenceModel,
    w: dict[str, torch.Tensor],
    start_pos: int,
    freqs_cis: torch.Tensor,
    mask: Optional[torch.Tensor],
    cache: tuple[torch.Tensor, torch.Tensor],
    rec: _Recorder,
) -> torch.Tensor:
    args = model.args
    prefix = f"layers.{layer}"
    x = rms_norm(h, w[f"{prefix}.attention_norm.weight"], args.norm_eps)
    rec.put(f"{prefix}.attention_norm", x[0])
    h = h + attention_block(x, w, prefix, args, start_pos, freqs_cis, mask, cache, rec)
    rec.put(f"{prefix}.h", h[0])
    x = rms_norm(h, w[f"{prefix}.ffn_norm.weight"], args.norm_eps)
    rec.put(f"{prefix}.ffn_norm", x[0])
    out = h + feed_forward_block(x, w, prefix, rec)
    rec.put(f"{prefix}.out", out[0])
    return out


# ----------------------------------------------------------------------------- forward


@torch.inference_mode()
def run_reference(
    model: ReferenceModel, tokens: list[int], start_pos: int, mode: str, record: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Forward `tokens` placed at positions start_pos.., using and updating the KV cache.

    Returns (logits float32 [n, vocab], stages).  Stages is empty unless `record`.
    A prefill at start_pos 0 overwrites whatever the cache held, so no reset is needed
    between independent runs as long as each starts at position 0.
    """
    check_mode(mode)
    args = model.args
    n = len(tokens)
    if n == 0:
        raise ValueError("tokens must not be empty")
    if start_pos < 0 or start_pos + n > args.max_seq_len:
        raise ValueError(
            f"positions {start_pos}..{start_pos + n - 1} outside max_seq_len {args.max_seq_len}"
        )
    w = model.weights_for(mode)
    caches = model.cache_for(mode)
    rec = _Recorder(record)

    h = F.embedding(torch.tensor([tokens], dtype=torch.long), w["tok_embeddings.weight"])
    rec.put("embedding", h[0])
    freqs_cis = model.freqs_cis()[start_pos : start_pos + n]
    rec.put("freqs_cis", freqs_cis)
    mask = causal_mask(n, start_pos, h.dtype)
    if mask is not None:
        rec.put("mask", mask)

    for layer in range(args.n_layers):
        h = transformer_block(h, layer, model, w, start_pos, freqs_cis, mask, caches[layer], rec)

    h = rms_norm(h, w["norm.weight"], args.norm_eps)
    rec.put("norm", h[0])
    logits = F.linear(h, w["output.weight"]).float()
    rec.put("logits", logits[0])
    return logits[0].numpy().copy(), rec.stages


def greedy_generate(
    model: ReferenceModel,
    n_tokens: int,
    bos_id: int = 1,
    stop_ids: Sequence[int] = (1,),
    mode: str = "f32",
) -> list[int]:
    """Greedy ids after BOS (BOS itself not returned; a stop id is not returned either).

    Like llama2.c run.c: prefill [BOS] at pos 0, then feed each argmax back one token at a
    time.  Stops when the argmax is a stop id, after n_tokens ids, or when the next token
    would have to be fed at position max_seq_len.
    """
    ids, _ = greedy_steps(model, n_tokens, bos_id, stop_ids, mode)
    return ids


def greedy_steps(
    model: ReferenceModel,
    n_tokens: int,
    bos_id: int = 1,
    stop_ids: Sequence[int] = (1,),
    mode: str = "f32",
) -> tuple[list[int], list[float]]:
    """greedy_generate plus, per returned id, the gap between the top two logits.

    A small gap warns that another implementation may legitimately pick the runner-up.
    """
    ids: list[int] = []
    margins: list[float] = []
    pending = [bos_id]
    pos = 0
    while len(ids) < n_tokens and pos < model.args.max_seq_len:
        logits, _ = run_reference(model, pending, pos, mode, record=False)
        last = logits[-1]
        next_id = int(np.argmax(last))
        if next_id in stop_ids:
            break
        ids.append(next_id)
        margins.append(float(last[next_id] - np.partition(last, -2)[-2]))
        pos += len(pending)
        pending = [next_id]
    return ids, margins


# ----------------------------------------------------------------------------- loaders


def load_model(path: str | Path, max_seq_len: Optional[int] = None) -> ReferenceModel:
    """Meta checkpoint directory, llama2.c legacy .bin file, or GGUF file, chosen by what `path` is."""
    p = Path(path)
    if p.is_dir():
        return load_meta_dir(p, max_seq_len)
    if p.suffix == ".bin":
        return load_llama2c_bin(p)
    if p.suffix == ".gguf":
        return load_gguf(p, max_seq_len)
    raise ValueError(f"{p}: expected a Meta checkpoint directory, a llama2.c .bin file or a .gguf file")


_GGUF_NAMES = {  # llama.cpp's tensor names -> Meta's (per layer after "blk.N.")
    "attn_norm": "attention_norm",
    "attn_q": "attention.wq",
    "attn_k": "attention.wk",
    "attn_v": "attention.wv",
    "attn_output": "attention.wo",
    "ffn_norm": "ffn_norm",
    "ffn_gate": "feed_forward.w1",
    "ffn_down": "feed_forward.w2",
    "ffn_up": "feed_forward.w3",
}


def load_gguf(path: str | Path, max_seq_len: Optional[int] = None) -> ReferenceModel:
    """A llama-architecture GGUF file read and dequantized by gguf-py (llama.cpp's own Python reader),
    independently of src/gguf: float32 weights under Meta's names. llama.cpp's converter stores wq and
    wk with Meta's interleaved RoPE pairs, so the reference runs them as they are."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    p = Path(path)
    reader = GGUFReader(p)

    def field(key: str, default: object = None) -> object:
        f = reader.fields.get(key)
        if f is None:
            if default is None:
                raise ValueError(f"{p}: no {key} in the GGUF metadata")
            return default
        return f.parts[f.data[0]][0]

    if bytes(reader.fields["general.architecture"].parts[reader.fields["general.architecture"].data[0]]).decode() != "llama":
        raise ValueError(f"{p}: not a llama-architecture GGUF file")
    weights: dict[str, torch.Tensor] = {}
    for t in reader.tensors:
        values = dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        values = values.reshape([int(d) for d in reversed(t.shape)])  # GGUF lists dims innermost first
        name = t.name.removesuffix(".weight")
        if name == "token_embd":
            key = "tok_embeddings"
        elif name == "output_norm":
            key = "norm"
        elif name == "output":
            key = "output"
        elif name.startswith("blk."):
            _, layer, role = name.split(".", 2)
            if role not in _GGUF_NAMES:
                continue
            key = f"layers.{int(layer)}.{_GGUF_NAMES[role]}"
        else:
            continue
        weights[f"{key}.weight"] = torch.from_numpy(np.array(values, dtype=np.float32))  # a writable copy
    weights.setdefault("output.weight", weights["tok_embeddings.weight"])  # tied classifier
    vocab, dim = weights["tok_embeddings.weight"].shape
    args = ModelArgs(
        dim=int(dim),
        n_layers=int(field("llama.block_count")),
        n_heads=int(field("llama.attention.head_count")),
        n_kv_heads=int(field("llama.attention.head_count_kv", field("llama.attention.head_count"))),
        vocab_size=int(vocab),
        hidden_dim=int(weights["layers.0.feed_forward.w1.weight"].shape[0]),
        norm_eps=float(field("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        rope_theta=float(field("llama.rope.freq_base", 10000.0)),
        max_seq_len=int(max_seq_len or min(int(field("llama.context_length", 2048)), 2048)),
    )
    _check_shapes(args, weights)
    return ReferenceModel(args=args, weights=weights, source=str(p))

def load_meta_dir(path: str | Path, max_seq_len: Optional[int] = None) -> ReferenceModel:
    """params.json + consolidated.00.pth; shapes come from the tensors, not the rule."""
    p = Path(path)
    params = json.loads((p / "params.json").read_text())
    state = torch.load(p / "consolidated.00.pth", map_location="cpu", weights_only=True)
    weights = {k: v for k, v in state.items() if _is_model_weight(k)}
    n_heads = int(params["n_heads"])
    n_kv_heads = params.get("n_kv_heads")
    vocab, dim = weights["tok_embeddings.weight"].shape
    if params.get("vocab_size", -1) not in (-1, vocab):
        raise ValueError(f"params vocab_size {params['vocab_size']} != tensor vocab {vocab}")
    if int(params["dim"]) != dim:
        raise ValueError(f"params dim {params['dim']} != tensor dim {dim}")
    args = ModelArgs(
        dim=dim,
        n_layers=int(params["n_layers"]),
        n_heads=n_heads,
        n_kv_heads=n_heads if n_kv_heads is None else int(n_kv_heads),
        vocab_size=int(vocab),
        hidden_dim=int(weights["layers.0.feed_forward.w1.weight"].shape[0]),
        multiple_of=int(params.get("multiple_of", 256)),
        ffn_dim_multiplier=params.get("ffn_dim_multiplier"),
        norm_eps=float(params.get("norm_eps", 1e-5)),
        rope_theta=float(params.get("rope_theta", 10000.0)),
        use_scaled_rope=bool(params.get("use_scaled_rope", False)),
        max_seq_len=int(max_seq_len or params.get("max_seq_len", 2048)),
    )
    _check_shapes(args, weights)
    return ReferenceModel(args=args, weights=weights, source=str(p))


def _is_model_weight(key: str) -> bool:
    # Llama 2 checkpoints also carry `rope.freqs`, which Meta's code recomputes and ignores.
    return key != "rope.freqs"


LLAMA2C_HEADER = struct.Struct("<7i")


def load_llama2c_bin(path: str | Path) -> ReferenceModel:
    """llama2.c legacy export: 7 int32 header, then float32 weights in run.c order."""
    p = Path(path)
    raw = p.read_bytes()
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = LLAMA2C_HEADER.unpack_from(raw)
    shared = vocab > 0  # negative vocab flags an unshared classifier
    vocab = abs(vocab)
    head_dim = dim // n_heads
    kv_dim = n_kv_heads * head_dim
    data = np.frombuffer(raw, dtype="<f4", offset=LLAMA2C_HEADER.size)
    reader = _FloatReader(data)

    tok = reader.take(vocab, dim)
    rms_att = reader.take(n_layers, dim)
    wq = reader.take(n_layers, dim, dim)
    wk = reader.take(n_layers, kv_dim, dim)
    wv = reader.take(n_layers, kv_dim, dim)
    wo = reader.take(n_layers, dim, dim)
    rms_ffn = reader.take(n_layers, dim)
    w1 = reader.take(n_layers, hidden, dim)
    w2 = reader.take(n_layers, dim, hidden)
    w3 = reader.take(n_layers, hidden, dim)
    rms_final = reader.take(dim)
    reader.take(seq_len, head_dim // 2)  # freq_cis_real: recomputed instead
    reader.take(seq_len, head_dim // 2)  # freq_cis_imag
    wcls = tok if shared else reader.take(vocab, dim)
    if reader.remaining() != 0:
        raise ValueError(f"{p}: {reader.remaining()} unexpected trailing floats")

    weights: dict[str, torch.Tensor] = {"tok_embeddings.weight": tok}
    for i in range(n_layers):
        pre = f"layers.{i}"
        weights[f"{pre}.attention_norm.weight"] = rms_att[i]
        weights[f"{pre}.attention.wq.weight"] = wq[i]
        weights[f"{pre}.attention.wk.weight"] = wk[i]
        weights[f"{pre}.attention.wv.weight"] = wv[i]
        weights[f"{pre}.attention.wo.weight"] = wo[i]
        weights[f"{pre}.ffn_norm.weight"] = rms_ffn[i]
        weights[f"{pre}.feed_forward.w1.weight"] = w1[i]
        weights[f"{pre}.feed_forward.w2.weight"] = w2[i]
        weights[f"{pre}.feed_forward.w3.weight"] = w3[i]
    weights["norm.weight"] = rms_final
    weights["output.weight"] = wcls
    args = ModelArgs(
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        vocab_size=vocab,
        hidden_dim=hidden,
        norm_eps=1e-5,
        rope_theta=10000.0,
        max_seq_len=seq_len,
    )
    _check_shapes(args, weights)
    return ReferenceModel(args=args, weights=weights, source=str(p))


class _FloatReader:
    """Sequential reader over the flat float32 payload of a llama2.c file."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.offset = 0

    def take(self, *shape: int) -> torch.Tensor:
        count = int(np.prod(shape))
        if self.offset + count > self.data.size:
            raise ValueError("llama2.c file is shorter than its header implies")
        chunk = self.data[self.offset : self.offset + count].reshape(shape)
        self.offset += count
        return torch.from_numpy(chunk.copy())

    def remaining(self) -> int:
        return self.data.size - self.offset


def _check_shapes(args: ModelArgs, w: dict[str, torch.Tensor]) -> None:
    """Fail loudly on a mismatched checkpoint instead of computing nonsense."""
    d, hd, hid = args.dim, args.head_dim, args.hidden_dim
    expected = {
        "tok_embeddings.weight": (args.vocab_size, d),
        "norm.weight": (d,),
        "output.weight": (args.vocab_size, d),
    }
    for i in range(args.n_layers):
        pre = f"layers.{i}"
        expected.update(
            {
                f"{pre}.attention_norm.weight": (d,),
                f"{pre}.attention.wq.weight": (args.n_heads * hd, d),
                f"{pre}.attention.wk.weight": (args.n_kv_heads * hd, d),
                f"{pre}.attention.wv.weight": (args.n_kv_heads * hd, d),
                f"{pre}.attention.wo.weight": (d, args.n_heads * hd),
                f"{pre}.ffn_norm.weight": (d,),
                f"{pre}.feed_forward.w1.weight": (hid, d),
                f"{pre}.feed_forward.w2.weight": (d, hid),
                f"{pre}.feed_forward.w3.weight": (hid, d),
            }
        )
    for key, shape in expected.items():
        if key not in w:
            raise ValueError(f"missing weight {key}")
        if tuple(w[key].shape) != shape:
            raise ValueError(f"{key}: shape {tuple(w[key].shape)}, expected {shape}")


# ----------------------------------------------------------------------------- CLI


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.reference_llama", description="PyTorch reference Llama (dev tool)"
    )
    parser.add_argument("--model", required=True, help="Meta checkpoint dir or llama2.c .bin")
    parser.add_argument("--greedy", type=int, default=32, help="max ids to generate")
    parser.add_argument("--mode", choices=MODES, default="f32")
    parser.add_argument("--bos", type=int, default=1)
    parser.add_argument("--tokenizer", help="optional sentencepiece .model to decode the ids")
    ns = parser.parse_args(argv)

    model = load_model(ns.model)
    ids = greedy_generate(model, ns.greedy, bos_id=ns.bos, stop_ids=(ns.bos,), mode=ns.mode)
    print(f"{len(ids)} ids: {ids}")
    if ns.tokenizer:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=ns.tokenizer)
        print(sp.decode(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
