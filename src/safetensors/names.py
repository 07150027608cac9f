"""Hugging Face's tensor names -> Meta's, the names ModelWeights and the chapters use.

    model.embed_tokens.weight                          tok_embeddings.weight
    model.layers.N.input_layernorm.weight              layers.N.attention_norm.weight
    model.layers.N.self_attn.{q,k,v,o}_proj.weight     layers.N.attention.w{q,k,v,o}.weight
    model.layers.N.post_attention_layernorm.weight     layers.N.ffn_norm.weight
    model.layers.N.mlp.gate_proj.weight                layers.N.feed_forward.w1.weight
    model.layers.N.mlp.down_proj.weight                layers.N.feed_forward.w2.weight
    model.layers.N.mlp.up_proj.weight                  layers.N.feed_forward.w3.weight
    model.norm.weight                                  norm.weight
    lm_head.weight                                     output.weight (absent when tie_word_embeddings)

Only names change: the tensors are the same views. (q_proj and k_proj also differ from Meta's wq
and wk in the order of their rows, which the RoPE stage accounts for: see src/model/rope.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

from ..common.errors import ModelFileError
from ..common.logger import GLogger
from ..ml import Tensor
from ..model.modelargs import ModelArgs

LAYER_NAMES = {
    # Hugging Face's name inside "model.layers.N." -> Meta's inside "layers.N."
    "input_layernorm.weight": "attention_norm.weight",
    "self_attn.q_proj.weight": "attention.wq.weight",
    "self_attn.k_proj.weight": "attention.wk.weight",
    "self_attn.v_proj.weight": "attention.wv.weight",
    "self_attn.o_proj.weight": "attention.wo.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "feed_forward.w1.weight",
    "mlp.down_proj.weight": "feed_forward.w2.weight",
    "mlp.up_proj.weight": "feed_forward.w3.weight",
}
GLOBAL_NAMES = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "output.weight",
}
_META_LAYER_NAMES = {meta: hf for hf, meta in LAYER_NAMES.items()}
_META_GLOBAL_NAMES = {meta: hf for hf, meta in GLOBAL_NAMES.items()}
_HF_LAYER = re.compile(r"model\.layers\.(0|[1-9]\d*)\.(.+)")
_META_LAYER = re.compile(r"layers\.(\d+)\.(.+)")
# Older conversions saved RoPE's inverse frequencies as a buffer; Forward recomputes them.
_IGNORED = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")


def meta_name(hf_name: str) -> str | None:
    """Meta's name for a Hugging Face tensor name, or None if it is not a Llama weight."""
    if hf_name in GLOBAL_NAMES:
        return GLOBAL_NAMES[hf_name]
    match = _HF_LAYER.fullmatch(hf_name)
    if match and match.group(2) in LAYER_NAMES:
        return f"layers.{match.group(1)}.{LAYER_NAMES[match.group(2)]}"
    return None


def hf_name(meta: str) -> str:
    """The Hugging Face name of a Meta name (for messages that must name what is in the file)."""
    if meta in _META_GLOBAL_NAMES:
        return _META_GLOBAL_NAMES[meta]
    match = _META_LAYER.fullmatch(meta)
    if match and match.group(2) in _META_LAYER_NAMES:
        return f"model.layers.{match.group(1)}.{_META_LAYER_NAMES[match.group(2)]}"
    return meta


def meta_state_dict(tensors: dict[str, Tensor], args: ModelArgs, tied: bool, path: str | Path) -> dict[str, Tensor]:
    """Rename every tensor to Meta's name; unknown, missing and surplus tensors are errors naming
    the Hugging Face names. With `tied` (tie_word_embeddings), the classifier is the embedding table
    and an lm_head.weight in the file is not used, as transformers ties it to embed_tokens."""
    unknown = [name for name in tensors if meta_name(name) is None and not _IGNORED.fullmatch(name)]
    if unknown:
        raise ModelFileError(
            path, f"{len(unknown)} tensor(s) that a LlamaForCausalLM does not have: {_names(unknown)}"
        )
    renamed = {meta_name(name): t for name, t in tensors.items() if not _IGNORED.fullmatch(name)}
    if tied and renamed.pop("output.weight", None) is not None:
        GLogger.DebugPrintf("%s: tie_word_embeddings is true, so lm_head.weight is not used: the classifier is embed_tokens", path)
    surplus = sorted(
        (name for name in renamed if (m := _META_LAYER.fullmatch(name)) and int(m.group(1)) >= args.n_layers),
        key=_layer_order,
    )
    if surplus:
        raise ModelFileError(
            path,
            f"{len(surplus)} tensor(s) of layers beyond num_hidden_layers = {args.n_layers} in config.json: "
            f"{_names([hf_name(n) for n in surplus])}",
        )
    expected = [f"layers.{i}.{meta}" for i in range(args.n_layers) for meta in LAYER_NAMES.values()]
    expected += ["tok_embeddings.weight", "norm.weight"] + ([] if tied else ["output.weight"])
    missing = [hf_name(name) for name in expected if name not in renamed]
    if missing:
        hint = "" if tied or "output.weight" in renamed else " (config.json's tie_word_embeddings is false, so lm_head.weight is needed)"
        raise ModelFileError(
            path, f"{len(missing)} tensor(s) missing for a {args.n_layers}-layer LlamaForCausalLM{hint}: {_names(missing)}"
        )
    return renamed  # type: ignore[return-value]


def _layer_order(name: str) -> tuple[int, str]:
    match = _META_LAYER.fullmatch(name)
    return (int(match.group(1)), match.group(2)) if match else (-1, name)


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


__all__ = ["GLOBAL_NAMES", "LAYER_NAMES", "hf_name", "meta_name", "meta_state_dict"]
