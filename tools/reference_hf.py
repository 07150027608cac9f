"""transformers as the independent reference: every stage of its float32 forward pass, under our names.

A development tool (the engine never imports it; it never imports the engine outside `main`). It
runs a Llama-family model with transformers, either

- a GGUF file: ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)``,
  which dequantizes every tensor with the `gguf` package (llama.cpp's reference block formats), or
- a Hugging Face directory (config.json + safetensors), widened to float32,

in eager attention (the plain matmul-softmax-matmul, which also returns the attention weights), and
captures with forward hooks the tensor of every stage that `InferenceContext.recorder` records:

    embedding
    layers.N.attention_norm  xq xk xv  xq_rope xk_rope  scores  attention  attention_wo  h
    layers.N.ffn_norm  ffn_w1_silu  ffn_w3  ffn_hidden  ffn_out  out
    norm  logits

(batch dimension dropped; `xq_rope`/`xk_rope` are [n, heads, head_dim], `scores` [heads, n, T]).

The Q/K row order. Hugging Face's attention rotates the feature pairs (i, i + head_dim/2) of each
head (its `rotate_half`); Meta's checkpoints, llama.cpp's GGUF files and our engine pair (2i, 2i+1).
transformers' GGUF loader permutes the Q/K rows of a `llama` GGUF into its own order when it reads
the file, so its q_proj/k_proj outputs are our xq/xk with the features of every head reordered.
The reference's tensors are put back into the interleaved order here (`halves_to_interleaved`),
never the engine's: after RoPE always (our applyRotaryEmbeddings returns the interleaved order for
either layout), before RoPE when the engine's weights are interleaved (a GGUF; `qk_rows`).

After RoPE. transformers rotates q and k inside LlamaAttention.forward, between the projections
and the attention function, where no module boundary is. The hook on the attention module
recomputes that step from the captured projections with transformers' own `apply_rotary_pos_emb`
and the (cos, sin) the model passed to the module, which is the same computation on the same
inputs, so the values are the ones the model used.

    python -m tools.reference_hf --model smollm2 --chat --prompt "What is the capital of France?"

prints, per stage, the largest difference between our engine (f32) and transformers relative to
the stage's largest magnitude, and the layer where it is worst (`--layers` prints every layer).
"""

from __future__ import annotations

import argparse
import copy
import inspect
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

# Before torch loads libgomp, which reads the policy once: the engine's numba workers (the same
# OpenMP runtime) must sleep when idle, not spin beside torch (src/ml/__init__.py says why).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

INTERLEAVED = "interleaved"  # pair i = (x[2i], x[2i+1]): Meta, GGUF, our engine after RoPE
HALVES = "halves"  # pair i = (x[i], x[i + head_dim/2]): Hugging Face

LAYER_STAGES = (
    "attention_norm", "xq", "xk", "xv", "xq_rope", "xk_rope", "scores", "attention", "attention_wo", "h",
    "ffn_norm", "ffn_w1_silu", "ffn_w3", "ffn_hidden", "ffn_out", "out",
)
MODEL_STAGES = ("embedding", "norm", "logits")


# ---- loading ------------------------------------------------------------------------------------------
def load_reference_model(path: str | Path) -> Any:
    """A transformers LlamaForCausalLM in float32 and eager attention, from a .gguf file or a directory."""
    from transformers import AutoModelForCausalLM

    path = Path(path)
    options: dict[str, Any] = {"dtype": torch.float32, "attn_implementation": "eager"}
    if path.is_file() and path.suffix.lower() == ".gguf":
        options["gguf_file"] = path.name
        path = path.parent
    model = AutoModelForCausalLM.from_pretrained(str(path), **options)
    model.eval()
    return model


def load_reference_tokenizer(path: str | Path) -> Any:
    """transformers' tokenizer for the same file or directory (built from the GGUF's metadata for a .gguf)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".gguf":
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return AutoTokenizer.from_pretrained(str(path))


def chat_prompt_ids(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """transformers' own chat prompt: apply_chat_template(..., add_generation_prompt=True, tokenize=True)."""
    ids = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True, return_dict=False)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return [int(i) for i in ids]


# ---- the Q/K order ---------------------------------------------------------------------------------------
def halves_to_interleaved(x: np.ndarray, head_dim: int) -> np.ndarray:
    """Each head's features from Hugging Face's order (i, i + half) into Meta's (2i, 2i+1), on the last
    axis (head_dim, or heads * head_dim): feature i -> 2i and i + half -> 2i + 1."""
    lead, width = x.shape[:-1], x.shape[-1]
    if width % head_dim or head_dim % 2:
        raise ValueError(f"a last axis of {width} is not whole heads of an even head_dim {head_dim}")
    heads = x.reshape(*lead, width // head_dim, 2, head_dim // 2)
    return np.ascontiguousarray(np.swapaxes(heads, -1, -2)).reshape(x.shape)


# ---- capturing the stages ---------------------------------------------------------------------------------
def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).numpy().copy()


class StageCapture:
    """Forward hooks on a transformers Llama that fill `stages` (our names) during one forward call.

    `qk_rows`: the Q/K order of the ENGINE's weights, so the pre-RoPE xq/xk are given in the same
    order ("interleaved" for a GGUF, "halves" for a Hugging Face directory); after RoPE the
    reference is always put in the interleaved order, as our RoPE returns it.
    """

    def __init__(self, model: Any, qk_rows: str = INTERLEAVED) -> None:
        if qk_rows not in (INTERLEAVED, HALVES):
            raise ValueError(f"qk_rows must be {INTERLEAVED!r} or {HALVES!r}, got {qk_rows!r}")
        self.model = model
        self.qk_rows = qk_rows
        config = model.config
        self.n_heads = int(config.num_attention_heads)
        self.n_kv_heads = int(config.num_key_value_heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.n_heads)
        self.stages: dict[str, np.ndarray] = {}
        self._raw: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    # -- hooks
    def _put(self, name: str, t: torch.Tensor) -> None:
        self.stages[name] = _array(t[0])

    def _output(self, name: str):  # type: ignore[no-untyped-def]
        def hook(module: Any, args: Any, output: Any) -> None:
            self._put(name, _first(output))

        return hook

    def _input(self, name: str):  # type: ignore[no-untyped-def]
        def hook(module: Any, args: Any) -> None:
            self._put(name, args[0])

        return hook

    def _projection(self, layer: int, which: str):  # type: ignore[no-untyped-def]
        def hook(module: Any, args: Any, output: torch.Tensor) -> None:
            self._raw[f"{layer}.{which}"] = output.detach()
            value = _array(output[0])
            if which in ("xq", "xk") and self.qk_rows == INTERLEAVED:
                value = halves_to_interleaved(value, self.head_dim)
            self.stages[f"layers.{layer}.{which}"] = value

        return hook

    def _attention(self, layer: int):  # type: ignore[no-untyped-def]
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        def hook(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
            cos, sin = kwargs["position_embeddings"]
            q, k = self._raw.pop(f"{layer}.xq"), self._raw.pop(f"{layer}.xk")
            n = q.shape[1]
            q = q.view(1, n, self.n_heads, self.head_dim).transpose(1, 2)
            k = k.view(1, n, self.n_kv_heads, self.head_dim).transpose(1, 2)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)  # what LlamaAttention.forward does next
            for name, t in (("xq_rope", q), ("xk_rope", k)):
                self.stages[f"layers.{layer}.{name}"] = halves_to_interleaved(_array(t[0].transpose(0, 1)), self.head_dim)
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is not None:  # eager attention returns the softmax probabilities
                self._put(f"layers.{layer}.scores", weights)

        return hook

    def __enter__(self) -> "StageCapture":
        inner = self.model.model
        add = self._handles.append
        add(inner.embed_tokens.register_forward_hook(self._output("embedding")))
        for i, block in enumerate(inner.layers):
            p = f"layers.{i}."
            attn, mlp = block.self_attn, block.mlp
            add(block.input_layernorm.register_forward_hook(self._output(p + "attention_norm")))
            add(attn.q_proj.register_forward_hook(self._projection(i, "xq")))
            add(attn.k_proj.register_forward_hook(self._projection(i, "xk")))
            add(attn.v_proj.register_forward_hook(self._projection(i, "xv")))
            add(attn.register_forward_hook(self._attention(i), with_kwargs=True))
            add(attn.o_proj.register_forward_pre_hook(self._input(p + "attention")))
            add(attn.o_proj.register_forward_hook(self._output(p + "attention_wo")))
            add(block.post_attention_layernorm.register_forward_pre_hook(self._input(p + "h")))
            add(block.post_attention_layernorm.register_forward_hook(self._output(p + "ffn_norm")))
            add(mlp.act_fn.register_forward_hook(self._output(p + "ffn_w1_silu")))
            add(mlp.up_proj.register_forward_hook(self._output(p + "ffn_w3")))
            add(mlp.down_proj.register_forward_pre_hook(self._input(p + "ffn_hidden")))
            add(mlp.register_forward_hook(self._output(p + "ffn_out")))
            add(block.register_forward_hook(self._output(p + "out")))
        add(inner.norm.register_forward_hook(self._output("norm")))
        add(self.model.lm_head.register_forward_hook(self._output("logits")))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._raw.clear()


@torch.inference_mode()
def capture_stages(
    model: Any, ids: Sequence[int], qk_rows: str = INTERLEAVED, cache: Any = None
) -> tuple[dict[str, np.ndarray], Any]:
    """One forward call of `ids` (after the positions in `cache`, if any): the stages, and the cache
    to continue from (transformers' DynamicCache), so a decode step can be captured too."""
    with StageCapture(model, qk_rows) as capture:
        out = model(torch.tensor([list(ids)]), use_cache=True, **_cache_argument(model, cache))
    cache_field = "cache" if "cache" in getattr(out, "__dataclass_fields__", {}) else "past_key_values"
    return capture.stages, getattr(out, cache_field)


def _cache_argument(model: Any, cache: Any) -> dict[str, Any]:
    # transformers 5 renames forward's `past_key_values` to `cache` (the old name warns until 5.40)
    if cache is None:
        return {}
    return {"cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values": cache}


# ---- generation and perplexity ------------------------------------------------------------------------------
@torch.inference_mode()
def greedy(model: Any, ids: Sequence[int], n: int) -> tuple[list[int], list[float]]:
    """transformers' `generate(do_sample=False)` for exactly `n` new tokens (no stop token), and for each
    token the gap between the two largest logits relative to the largest magnitude (how close a tie was)."""
    config = copy.deepcopy(model.generation_config)
    # No stop token (not min_new_tokens, which would forbid EOS and change the argmax): n tokens exactly.
    config.eos_token_id = None
    config.pad_token_id = 0
    config.do_sample, config.temperature, config.top_k, config.top_p = False, None, None, None
    config.max_new_tokens, config.output_scores, config.return_dict_in_generate = n, True, True
    # generate() fills the fields a passed config leaves at None from model.generation_config (so
    # eos_token_id = None alone still stops at EOS): the model's own config is swapped for the call.
    saved, model.generation_config = model.generation_config, config
    try:
        out = model.generate(torch.tensor([list(ids)]), generation_config=config)
    finally:
        model.generation_config = saved
    tokens = [int(t) for t in out.sequences[0, len(ids):]]
    if len(tokens) != n:
        raise RuntimeError(f"generate stopped after {len(tokens)} of {n} tokens: a stop condition is still set")
    gaps = []
    for scores in out.scores:
        top2 = torch.topk(scores[0].float(), 2).values
        gaps.append(float((top2[0] - top2[1]) / scores[0].abs().max()))
    return tokens, gaps


@dataclass
class ReferencePerplexity:
    chunks: int
    ctx: int
    tokens: int
    mean_nll: float

    @property
    def perplexity(self) -> float:
        return math.exp(self.mean_nll)


@torch.inference_mode()
def reference_perplexity(model: Any, stream: Sequence[int], bos_id: int, ctx: int, max_chunks: int | None = None) -> ReferencePerplexity:
    """llama_perplexity's protocol, written again with torch: consecutive chunks of `ctx` tokens (the last
    partial one dropped), BOS before each, one forward call per chunk, the mean over every chunk token of
    -log p(token | BOS and the chunk before it) in float64."""
    count = len(stream) // ctx
    if max_chunks is not None:
        count = min(count, max_chunks)
    if count < 1:
        raise ValueError(f"{len(stream)} tokens make no chunk of {ctx}")
    total = 0.0
    for c in range(count):
        chunk = torch.tensor(list(stream[c * ctx : (c + 1) * ctx]))
        inputs = torch.cat([torch.tensor([bos_id]), chunk])[None]
        logits = model(inputs, use_cache=False).logits[0, :-1].double()
        total += float(-torch.log_softmax(logits, -1).gather(1, chunk[:, None]).sum())
    return ReferencePerplexity(count, ctx, count * ctx, total / (count * ctx))


# ---- comparing ---------------------------------------------------------------------------------------------
@dataclass
class StageDifference:
    """max|ours - reference| over a stage, against the stage's largest magnitude max|reference|."""

    name: str
    max_abs: float
    scale: float

    @property
    def relative(self) -> float:
        return self.max_abs / self.scale if self.scale else self.max_abs

    @property
    def kind(self) -> str:
        """`layers.7.xq` -> `xq`; model-level names as they are."""
        return self.name.split(".", 2)[2] if self.name.startswith("layers.") else self.name

    @property
    def layer(self) -> int | None:
        return int(self.name.split(".")[1]) if self.name.startswith("layers.") else None


def stage_names(n_layers: int) -> list[str]:
    """Every compared stage, in the order of the forward pass."""
    names = ["embedding"]
    for i in range(n_layers):
        names += [f"layers.{i}.{s}" for s in LAYER_STAGES]
    return names + ["norm", "logits"]


def stage_differences(ours: dict[str, np.ndarray], reference: dict[str, np.ndarray], names: Iterable[str]) -> list[StageDifference]:
    """One StageDifference per name; shapes must agree (a mismatch is an error, not a large number)."""
    result = []
    for name in names:
        a, b = ours[name], reference[name]
        if a.shape != b.shape:
            raise ValueError(f"stage {name}: ours has shape {a.shape}, the reference {b.shape}")
        result.append(StageDifference(name, float(np.abs(a.astype(np.float64) - b).max()), float(np.abs(b).max())))
    return result


def worst_by_kind(differences: Iterable[StageDifference]) -> dict[str, StageDifference]:
    """For each stage kind (xq, ffn_out, ...), the layer where the relative difference is largest."""
    worst: dict[str, StageDifference] = {}
    for d in differences:
        if d.kind not in worst or d.relative > worst[d.kind].relative:
            worst[d.kind] = d
    return worst


# ---- command line ----------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.reference_hf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .gguf file, a Hugging Face directory, or the alias smollm2")
    parser.add_argument("--prompt", default="What is the capital of France?")
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    parser.add_argument("--system", default=None, help="a system message (with --chat)")
    parser.add_argument("--layers", action="store_true", help="print every layer, not only the worst one")
    parser.add_argument("--json", action="store_true", help="one JSON object with every stage's figures")
    flags = parser.parse_args(argv)

    from llamanuts.inference import InferenceArgs, InferenceEngine
    from llamanuts.inference.prompt import build_dialog
    from llamanuts.model import LlamaTransformer, tokens_tensor
    from llamanuts.model.loader import FORMAT_GGUF, load_model, resolve_model_alias

    path = Path(flags.model)
    if not path.exists():
        path = resolve_model_alias(flags.model) or path
    loaded = load_model(path)
    ours = LlamaTransformer(loaded.args, loaded.weights, "f32")
    engine = InferenceEngine(ours, loaded.tokenizer, InferenceArgs())
    if flags.chat:
        ids = engine.TokenizeChat(build_dialog(flags.prompt, flags.system))
    else:
        ids = engine.TokenizeText(flags.prompt)
    context = ours.NewInferenceContext(len(ids))
    context.recorder = {}
    ours.Forward(context, tokens_tensor(ids), 0)

    reference = load_reference_model(path)
    qk_rows = INTERLEAVED if loaded.format == FORMAT_GGUF else HALVES
    stages, _ = capture_stages(reference, ids, qk_rows)
    differences = stage_differences(context.recorder, stages, stage_names(loaded.args.n_layers))
    if flags.json:
        print(json.dumps({"prompt_tokens": len(ids), "stages": [
            {"name": d.name, "max_abs": d.max_abs, "max_ref": d.scale, "relative": d.relative} for d in differences]}))
        return 0
    print(f"{path}: {len(ids)} prompt tokens, f32; max|ours - transformers| / max|transformers| per stage")
    shown = differences if flags.layers else list(worst_by_kind(differences).values())
    for d in shown:
        where = "" if d.layer is None else f"layer {d.layer:>2}"
        label = d.name if flags.layers else d.kind
        print(f"{label:>24} {where:>9}  max abs {d.max_abs:9.3g}  max|ref| {d.scale:9.3g}  relative {d.relative:9.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
