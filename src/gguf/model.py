"""A `llama` GGUF -> ModelArgs + ModelWeights: llama.cpp's key and tensor names mapped to Meta's.

The hyperparameters are the `llama.*` metadata keys (llama.cpp's converter writes them from the
Hugging Face config); each is checked for its type and range here, by name, so a wrong value
never reaches Forward. The tensors are renamed to Meta's names and handed to the same
`weights_from_state_dict` the `.pth` loader uses, after their shapes are checked against the
hyperparameters in GGUF's own terms (the message names the GGUF tensor and its GGUF dims).

RoPE layout: Hugging Face stores q/k rows so that RoPE rotates the pairs (i, i + head_dim/2);
llama.cpp's converter permutes them back to Meta's order, where RoPE rotates the adjacent pairs
(2i, 2i+1), which is what ggml's "normal" RoPE mode for `llama` does. So a `llama` GGUF's wq and wk
are already in the layout our applyRotaryEmbeddings expects: nothing is permuted here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..common.saferepr import short_repr
from ..common.errors import ModelArgsError, ModelFileError
from ..common.logger import GLogger
from ..ml import DT_F32, Tensor, format_dims
from ..model.loader import expected_shapes, weights_from_state_dict
from ..model.modelargs import ModelArgs, RopeScaling
from ..model.weights import ModelWeights
from .reader import GGUFFile, Progress, read_gguf

SUPPORTED_ARCHITECTURES = ("llama",)
ARCHITECTURE_KEY = "general.architecture"
TOKENS_KEY = "tokenizer.ggml.tokens"
ROPE_FREQS = "rope_freqs.weight"
# Bounds that no real model reaches but that keep a corrupt value from sizing a huge allocation
# (the KV cache and the RoPE table are max_seq_len long).
MAX_CONTEXT_LENGTH = 2**20
TENSORS_PER_LAYER = 9

# GGUF name -> Meta name, outside the blocks and inside "blk.N." / "layers.N.".
_GLOBAL_NAMES = {
    "token_embd.weight": "tok_embeddings.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "output.weight",
}
_LAYER_NAMES = {
    "attn_norm.weight": "attention_norm.weight",
    "attn_q.weight": "attention.wq.weight",
    "attn_k.weight": "attention.wk.weight",
    "attn_v.weight": "attention.wv.weight",
    "attn_output.weight": "attention.wo.weight",
    "ffn_norm.weight": "ffn_norm.weight",
    "ffn_gate.weight": "feed_forward.w1.weight",
    "ffn_down.weight": "feed_forward.w2.weight",
    "ffn_up.weight": "feed_forward.w3.weight",
}
_GLOBAL_GGUF = {meta: gguf for gguf, meta in _GLOBAL_NAMES.items()}
_LAYER_GGUF = {meta: gguf for gguf, meta in _LAYER_NAMES.items()}
_BLOCK = re.compile(r"blk\.(0|[1-9][0-9]*)\.(.+)")
_LAYER = re.compile(r"layers\.(0|[1-9][0-9]*)\.(.+)")


def load_gguf_model(path: str | Path, progress: Progress | None = None) -> tuple[ModelArgs, ModelWeights, GGUFFile]:
    """Read a GGUF file and map it: its ModelArgs, its ModelWeights (views over the file), the parsed file."""
    gguf = read_gguf(path, progress)
    args = model_args_from_gguf(gguf)
    weights = weights_from_gguf(gguf, args)
    return args, weights, gguf


# ---- tensor names -------------------------------------------------------------------------------
def meta_name(gguf_name: str) -> str | None:
    """`blk.3.attn_q.weight` -> `layers.3.attention.wq.weight`; None for a name we do not map."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    match = _BLOCK.fullmatch(gguf_name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
    return None


def gguf_name(meta: str) -> str:
    """The inverse of meta_name: `layers.3.attention.wq.weight` -> `blk.3.attn_q.weight`."""
    if meta in _GLOBAL_GGUF:
        return _GLOBAL_GGUF[meta]
    match = _LAYER.fullmatch(meta)
    if match and match.group(2) in _LAYER_GGUF:
        return f"blk.{match.group(1)}.{_LAYER_GGUF[match.group(2)]}"
    raise KeyError(meta)


# ---- metadata -> ModelArgs ------------------------------------------------------------------------
def check_architecture(gguf: GGUFFile) -> str:
    arch = gguf.metadata.get(ARCHITECTURE_KEY)
    if arch is None:
        raise ModelArgsError(gguf.path, f"required metadata key {ARCHITECTURE_KEY!r} is missing")
    if not isinstance(arch, str):
        raise ModelArgsError(gguf.path, f"metadata key {ARCHITECTURE_KEY!r} must be a string, got {_describe(arch)}")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelArgsError(
            gguf.path,
            f"{ARCHITECTURE_KEY} is {short_repr(arch)}: only {', '.join(repr(a) for a in SUPPORTED_ARCHITECTURES)} "
            f"models are supported (Llama 2/3, SmolLM, Mistral 7B and other Llama-shaped models converted "
            f"with llama.cpp)",
        )
    return arch


def model_args_from_gguf(gguf: GGUFFile) -> ModelArgs:
    """The `llama.*` keys -> ModelArgs, every value checked (type, finite, range) and named on failure."""
    arch = check_architecture(gguf)
    keys = _Keys(gguf, arch)
    dim = keys.positive_int("embedding_length")
    n_layers = keys.positive_int("block_count")
    n_heads = keys.positive_int("attention.head_count")
    n_kv_heads = keys.positive_int("attention.head_count_kv", default=n_heads)
    hidden_dim = keys.positive_int("feed_forward_length")
    max_seq_len = keys.positive_int("context_length", maximum=MAX_CONTEXT_LENGTH)
    # an epsilon of 1 or more drowns the mean square it is added to: every norm would print ~0
    norm_eps = keys.positive_float("attention.layer_norm_rms_epsilon", below=1.0)
    rope_theta = keys.positive_float("rope.freq_base", default=10000.0)
    experts = keys.optional_int("expert_count", minimum=0)
    if experts:
        raise ModelArgsError(
            gguf.path, f"{keys.key('expert_count')} = {experts}: mixture-of-experts models (Mixtral) are not supported"
        )
    # A layer is 9 tensors: a block_count the file cannot back fails here, before any per-layer table.
    if n_layers * TENSORS_PER_LAYER > len(gguf.tensor_infos):
        raise ModelArgsError(
            gguf.path,
            f"{keys.key('block_count')} = {n_layers}, but the file holds only {len(gguf.tensor_infos)} tensors "
            f"(each layer has {TENSORS_PER_LAYER})",
        )
    if n_heads % n_kv_heads:
        raise ModelArgsError(
            gguf.path, f"{keys.key('attention.head_count')} = {n_heads} is not a multiple of "
            f"{keys.key('attention.head_count_kv')} = {n_kv_heads}",
        )
    head_dim = _head_dim(keys, dim, n_heads)
    vocab_size = _vocab_size(gguf, keys)
    rope_scaling = _rope_scaling(gguf, keys, head_dim)
    extra = {
        key: value for key, value in gguf.metadata.items()
        if key.startswith(f"{arch}.") and key not in keys.used and isinstance(value, (str, int, float, bool))
    }
    return ModelArgs(
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        vocab_size=vocab_size,
        hidden_dim=hidden_dim,  # stored in the file, not derived from multiple_of
        norm_eps=norm_eps,
        rope_theta=rope_theta,
        max_seq_len=max_seq_len,
        head_dim=head_dim,
        rope_scaling=rope_scaling,
        extra=extra,
    )


def _head_dim(keys: "_Keys", dim: int, n_heads: int) -> int:
    """attention.key_length when the file gives it (it may differ from dim / n_heads, as in Mistral
    NeMo), else dim / n_heads; rope.dimension_count, when given, must agree (llama rotates whole heads)."""
    key_length = keys.optional_int("attention.key_length")
    value_length = keys.optional_int("attention.value_length")
    if key_length is None:
        if dim % n_heads:
            raise ModelArgsError(
                keys.path, f"{keys.key('embedding_length')} = {dim} is not divisible by "
                f"{keys.key('attention.head_count')} = {n_heads} (and {keys.key('attention.key_length')} is not given)",
            )
        head_dim = dim // n_heads
        source = f"{keys.key('embedding_length')} / {keys.key('attention.head_count')}"
    else:
        head_dim, source = key_length, keys.key("attention.key_length")
    if value_length is not None and value_length != head_dim:
        raise ModelArgsError(
            keys.path, f"{keys.key('attention.value_length')} = {value_length} differs from the head size "
            f"{head_dim} ({source}): separate key and value sizes are not supported",
        )
    rope_dims = keys.optional_int("rope.dimension_count")
    if rope_dims is not None and rope_dims != head_dim:
        raise ModelArgsError(
            keys.path, f"{keys.key('rope.dimension_count')} = {rope_dims} differs from the head size {head_dim} "
            f"({source}): RoPE on part of a head is not supported",
        )
    if head_dim % 2:
        raise ModelArgsError(keys.path, f"the head size {head_dim} ({source}) must be even for RoPE")
    return head_dim


def _vocab_size(gguf: GGUFFile, keys: "_Keys") -> int:
    """The embedding's rows, which llama.vocab_size and the token list (when present) must match."""
    counts: list[tuple[str, int]] = []
    declared = keys.optional_int("vocab_size")
    if declared is not None:
        counts.append((keys.key("vocab_size"), declared))
    tokens = gguf.metadata.get(TOKENS_KEY)
    if tokens is not None:
        if not isinstance(tokens, list):
            raise ModelArgsError(gguf.path, f"metadata key {TOKENS_KEY!r} must be an array of strings, got {_describe(tokens)}")
        counts.append((f"the length of {TOKENS_KEY}", len(tokens)))
    embedding = next((info for info in gguf.tensor_infos if info.name == "token_embd.weight"), None)
    if embedding is None:
        raise ModelFileError(gguf.path, "tensor 'token_embd.weight' (the token embeddings) is missing")
    if len(embedding.shape) != 2:
        raise ModelFileError(
            gguf.path, f"tensor 'token_embd.weight' has dims {format_dims(embedding.dims)}: expected 2 dims, "
            f"[embedding_length, vocab_size] innermost first",
        )
    counts.append(("the rows of token_embd.weight", embedding.shape[0]))
    if len({n for _, n in counts}) > 1:
        raise ModelArgsError(gguf.path, "the vocabulary sizes disagree: " + ", ".join(f"{w} = {n}" for w, n in counts))
    return counts[-1][1]


def _rope_scaling(gguf: GGUFFile, keys: "_Keys", head_dim: int) -> RopeScaling | None:
    """What stretches the RoPE frequencies, as one divisor per pair, or None.

    llama.cpp's converter writes Llama 3.1's scaled RoPE not as keys but as the tensor
    `rope_freqs.weight`: [head_dim/2] float32 factors that ggml's RoPE divides each pair's
    frequency by (1 for the fast pairs, 8 for the slow ones, blended between). We honour it exactly
    as ggml does, instead of guessing Meta's four constants back from it. Linear scaling
    (`rope.scaling.type` "linear" with `rope.scaling.factor`) divides every frequency by the same
    factor, so it fits the same form. YaRN and LongRoPE are refused by name.
    """
    scaling_type = keys.optional_str("rope.scaling.type")
    factor = keys.optional_float("rope.scaling.factor")
    if factor is None:
        factor = keys.optional_float("rope.scale_linear")  # the key's name in early GGUF files
    if scaling_type not in (None, "none", "linear"):
        raise ModelArgsError(
            gguf.path, f"{keys.key('rope.scaling.type')} = {short_repr(scaling_type)} is not supported (supported: none, "
            f"linear; Llama 3.1's scaling comes as the tensor {ROPE_FREQS})",
        )
    # llama.cpp: an absent type means linear; a factor of 0 (or none) means no stretch at all.
    linear = 1.0 if scaling_type == "none" or not factor else factor
    if not (math.isfinite(linear) and linear > 0):
        raise ModelArgsError(gguf.path, f"{keys.key('rope.scaling.factor')} = {linear} must be a positive finite number")
    divisors = np.full(head_dim // 2, linear, dtype=np.float32)
    freqs = gguf.tensors.get(ROPE_FREQS)
    if freqs is not None:
        expected = (head_dim // 2,)
        if freqs.dtype is not DT_F32 or freqs.shape != expected:
            raise ModelFileError(
                gguf.path, f"tensor {ROPE_FREQS!r} is {freqs.dtype} {format_dims(freqs.shape)}, expected F32 "
                f"{format_dims(expected)} (one factor per pair of a {head_dim}-wide head)",
            )
        values = freqs.data
        if not (np.all(np.isfinite(values)) and np.all(values > 0)):
            raise ModelFileError(gguf.path, f"tensor {ROPE_FREQS!r} must hold positive finite factors")
        divisors = divisors * values
    if np.all(divisors == 1.0):
        return None
    GLogger.DebugPrintf(
        "GGUF RoPE scaling: per-pair divisors %g..%g (linear factor %g, %s)",
        float(divisors.min()), float(divisors.max()), linear, ROPE_FREQS if freqs is not None else f"no {ROPE_FREQS}",
    )
    return RopeScaling(freq_factors=tuple(float(d) for d in divisors))


# ---- tensors -> ModelWeights --------------------------------------------------------------------------
def weights_from_gguf(gguf: GGUFFile, args: ModelArgs) -> ModelWeights:
    """Rename every tensor to Meta's name, check names and shapes in GGUF terms, build ModelWeights."""
    renamed: dict[str, Tensor] = {}
    unknown: list[str] = []
    for name, tensor in gguf.tensors.items():
        if name == ROPE_FREQS:
            continue  # read into ModelArgs.rope_scaling
        meta = meta_name(name)
        if meta is None:
            unknown.append(name)
            continue
        match = _LAYER.fullmatch(meta)
        if match and int(match.group(1)) >= args.n_layers:
            raise ModelFileError(
                gguf.path, f"tensor {name!r} belongs to block {match.group(1)}, but llama.block_count is {args.n_layers}"
            )
        renamed[meta] = tensor
    if unknown:
        raise ModelFileError(
            gguf.path,
            f"{len(unknown)} tensor(s) that a llama model does not have: {_names(unknown)} (a llama GGUF holds "
            f"token_embd, output_norm, output (optional), rope_freqs (optional) and blk.N.{{"
            f"{', '.join(n.removesuffix('.weight') for n in _LAYER_NAMES)}}}.weight)",
        )
    expected = expected_shapes(args)
    if "output.weight" not in renamed:
        del expected["output.weight"]  # no classifier: it is the embedding table (tied weights)
    missing = [gguf_name(meta) for meta in expected if meta not in renamed]
    if missing:
        raise ModelFileError(gguf.path, f"{len(missing)} tensor(s) missing for a {args.n_layers}-layer model: {_names(missing)}")
    for meta, (shape, rule) in expected.items():
        tensor = renamed[meta]
        if tensor.shape != shape:
            raise ModelFileError(
                gguf.path,
                f"tensor {gguf_name(meta)!r} has dims {format_dims(tensor.shape[::-1])} (innermost first), i.e. "
                f"shape {format_dims(tensor.shape)}, but the llama.* metadata implies {rule} = {format_dims(shape)} "
                f"(dim {args.dim}, n_heads {args.n_heads}, n_kv_heads {args.n_kv_heads}, head_dim {args.head_dim}, "
                f"hidden_dim {args.hidden_dim}, vocab_size {args.vocab_size})",
            )
    return weights_from_state_dict(renamed, args, gguf.path, source="the GGUF metadata")


# ---- checked access to the llama.* keys ---------------------------------------------------------------
class _Keys:
    """Reads `<arch>.<name>` keys with a type and range check; remembers which ones it read."""

    def __init__(self, gguf: GGUFFile, arch: str) -> None:
        self.path = gguf.path
        self.metadata = gguf.metadata
        self.arch = arch
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.arch}.{name}"

    def _get(self, name: str, required: bool) -> Any:
        key = self.key(name)
        self.used.add(key)
        if key not in self.metadata:
            if required:
                raise ModelArgsError(self.path, f"required metadata key {key!r} is missing")
            return None
        return self.metadata[key]

    def optional_int(self, name: str, minimum: int = 1, maximum: int | None = None) -> int | None:
        value = self._get(name, required=False)
        return None if value is None else self._check_int(name, value, minimum, maximum)

    def positive_int(self, name: str, default: int | None = None, maximum: int | None = None) -> int:
        value = self._get(name, required=default is None)
        return default if value is None else self._check_int(name, value, 1, maximum)

    def _check_int(self, name: str, value: Any, minimum: int, maximum: int | None) -> int:
        if not _is_int(value):
            raise ModelArgsError(self.path, f"metadata key {self.key(name)!r} must be an integer, got {_describe(value)}")
        if value < minimum:
            raise ModelArgsError(self.path, f"metadata key {self.key(name)!r} = {value} must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ModelArgsError(self.path, f"metadata key {self.key(name)!r} = {value} is larger than {maximum}")
        return int(value)

    def optional_float(self, name: str) -> float | None:
        value = self._get(name, required=False)
        if value is None:
            return None
        if not (isinstance(value, float) or _is_int(value)):
            raise ModelArgsError(self.path, f"metadata key {self.key(name)!r} must be a number, got {_describe(value)}")
        return float(value)

    def positive_float(self, name: str, default: float | None = None, below: float = math.inf) -> float:
        """A finite number in (0, below)."""
        value = self.optional_float(name)
        if value is None:
            if default is None:
                raise ModelArgsError(self.path, f"required metadata key {self.key(name)!r} is missing")
            return default
        if not (math.isfinite(value) and 0 < value < below):
            limit = "" if below == math.inf else f" below {below:g}"
            raise ModelArgsError(self.path, f"metadata key {self.key(name)!r} = {value} must be a positive finite number{limit}")
        return value

    def optional_str(self, name: str) -> str | None:
        value = self._get(name, required=False)
        if value is not None and not isinstance(value, str):
            raise ModelArgsError(self.path, f"metadata key {self.key(name)!r} must be a string, got {_describe(value)}")
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of {value.size} {value.dtype}"
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    return f"{short_repr(value)} ({type(value).__name__})"


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


__all__ = [
    "ROPE_FREQS",
    "SUPPORTED_ARCHITECTURES",
    "check_architecture",
    "gguf_name",
    "load_gguf_model",
    "meta_name",
    "model_args_from_gguf",
    "weights_from_gguf",
]
