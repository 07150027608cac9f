"""load_model: a model directory (Meta's or Hugging Face's), a `.bin` file (llama2.c) or a `.gguf`
file (llama.cpp) -> LoadedModel.

Whatever the format, the result is the same: ModelArgs, ModelWeights under Meta's names, and a
tokenizer, so the transformer never knows where its weights came from. Before returning, every
tensor's shape is checked against the hyperparameters, because a mismatch found here can name the
tensor and the rule it breaks, while one found in Forward is only a ShapeError inside a matmul.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from ..common.aliases import MODEL_ALIASES, resolve_model_alias
from ..common.errors import ModelFileError
from ..common.files import describe_path
from ..common.saferepr import short_repr
from ..common.logger import GLogger
from ..ml import Tensor, format_dims
from ..safetensors import (
    CONFIG_FILE,
    hf_directory_files,
    hf_name,
    is_hf_directory,
    load_hf_config,
    load_safetensors_checkpoint,
    meta_state_dict,
    model_args_from_hf_config,
    read_chat_template,
    tie_word_embeddings,
)
from ..torch.checkpoint import find_consolidated_checkpoint, load_torch_checkpoint
from .llama2c import load_llama2c_model
from .modelargs import ModelArgs
from .params import load_params, model_args_from_params
from .rope import ROPE_HALVES, ROPE_INTERLEAVED
from .weights import LayerWeights, ModelWeights

Progress = Callable[[int, int, str], None]

FORMAT_META = "meta"
FORMAT_LLAMA2C = "llama2c"
FORMAT_GGUF = "gguf"
FORMAT_HF = "huggingface"

CHECKPOINT_FILE = "consolidated.00.pth"
PARAMS_FILE = "params.json"
TOKENIZER_FILE = "tokenizer.model"
META_DOWNLOAD_HINT = (
    "a Meta model directory holds consolidated.00.pth, params.json and tokenizer.model exactly as "
    "Meta's download provides them (llama.meta.com / the llama-models repo)"
)

# Keys in Meta's checkpoints that hold no weight we use: Llama 2 saves its RoPE table, which
# Forward recomputes from rope_theta.
IGNORED_KEYS = frozenset({"rope.freqs"})

_LAYER_TENSORS = {
    # ModelWeights field -> Meta's name inside "layers.{i}."
    "wq": "attention.wq.weight",
    "wk": "attention.wk.weight",
    "wv": "attention.wv.weight",
    "wo": "attention.wo.weight",
    "w1": "feed_forward.w1.weight",
    "w2": "feed_forward.w2.weight",
    "w3": "feed_forward.w3.weight",
    "attention_norm": "attention_norm.weight",
    "ffn_norm": "ffn_norm.weight",
}


@dataclass
class LoadedModel:
    args: ModelArgs
    weights: ModelWeights
    tokenizer: Any  # a llamanuts.tokenizer.Tokenizer (vocab_size, bos_id, eos_id, encode, decode)
    format: str  # "meta" | "llama2c" | "gguf" | "huggingface"
    path: Path
    files: dict[str, Path] = field(default_factory=dict)  # role ("checkpoint", "params", ...) -> file
    # The model's own chat template (a Jinja string), when its files carry one (GGUF's
    # tokenizer.chat_template; Hugging Face's chat_template.jinja or tokenizer_config.json).
    chat_template: str | None = None
    # Everything the file said about itself, as plain Python (a GGUF's metadata keys), for the
    # tokenizer and the CLI to read; empty for formats without such metadata.
    source_metadata: dict[str, Any] = field(default_factory=dict)


def load_model(
    path: str | Path, tokenizer_path: str | Path | None = None, progress: Progress | None = None
) -> LoadedModel:
    """A directory with consolidated.00.pth (or that file) is Meta's format; a directory with
    config.json and model.safetensors (or its shard index), or such a file, is Hugging Face's; a
    `.bin` file is llama2.c's; a file that starts with the magic "GGUF" (or is named `.gguf`) is
    llama.cpp's.

    `progress(done, total, name)` is called as tensors are mapped (for the CLI's progress bar).
    """
    path = Path(path)
    expected_what = "expected a Meta or Hugging Face model directory, a llama2.c .bin file or a .gguf file"
    problem = describe_path(path)
    if problem == "not found":
        raise ModelFileError(path, f"model path not found; {expected_what}")
    if problem is not None and problem != "is a directory":
        raise ModelFileError(path, f"model path {problem}; {expected_what}")
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    if path.is_dir():
        # lexists: a config.json that is a FIFO, a device or a dangling link is Hugging Face's too,
        # and reading it says what it is (is_file would send it to the Meta loader's "not found").
        if not os.path.lexists(path / CHECKPOINT_FILE) and os.path.lexists(path / CONFIG_FILE):
            if not is_hf_directory(path):
                raise ModelFileError(
                    path, "has config.json (a Hugging Face directory?) but neither model.safetensors nor "
                    "model.safetensors.index.json: only safetensors weights can be read (not pytorch_model.bin)"
                )
            if tokenizer_path is not None:
                raise ModelFileError(
                    tokenizer_path, "a Hugging Face directory brings its own tokenizer.json; a separate tokenizer file is not used"
                )
            return load_hf_model(path, progress)
        return load_meta_model(path, tokenizer_path, progress)
    if path.suffix.lower() == ".gguf" or _has_gguf_magic(path):
        return load_gguf(path, tokenizer_path, progress)
    if path.suffix == ".pth":
        return load_meta_model(path.parent, tokenizer_path, progress)
    if path.suffix == ".bin":
        return load_llama2c(path, tokenizer_path, progress)
    raise ModelFileError(
        path, "unrecognised model path: expected a Meta model directory (consolidated.00.pth, params.json, "
        "tokenizer.model), a Hugging Face directory (config.json, model.safetensors, tokenizer.json), a llama2.c "
        ".bin file or a .gguf file"
    )


def load_meta_model(
    directory: str | Path, tokenizer_path: str | Path | None = None, progress: Progress | None = None
) -> LoadedModel:
    directory = Path(directory)
    files = {
        "checkpoint": directory / CHECKPOINT_FILE,
        "params": directory / PARAMS_FILE,
        "tokenizer": Path(tokenizer_path) if tokenizer_path is not None else directory / TOKENIZER_FILE,
    }
    for role, file in files.items():
        problem = describe_path(file)
        if problem == "not found":
            raise ModelFileError(file, f"{role} file not found: expected {file.name} at {file}; {META_DOWNLOAD_HINT}")
        if problem is not None:
            raise ModelFileError(file, f"{role} file {problem}")
    find_consolidated_checkpoint(directory)  # refuses multi-file checkpoints with a clear message
    params = load_params(files["params"])
    tokenizer = _load_tokenizer(files["tokenizer"])
    args = model_args_from_params(params, files["params"], tokenizer.vocab_size)
    GLogger.DebugPrintf("Meta model %s: %s", directory, args)
    tensors = load_torch_checkpoint(files["checkpoint"], progress, skip=IGNORED_KEYS)
    weights = weights_from_state_dict(tensors, args, files["checkpoint"])
    args, weights = fit_tokenizer(tokenizer, args, weights, files["tokenizer"])
    return LoadedModel(args, weights, tokenizer, FORMAT_META, directory, files)


def load_llama2c(
    path: str | Path, tokenizer_path: str | Path | None, progress: Progress | None = None
) -> LoadedModel:
    path = Path(path)
    if tokenizer_path is None:
        raise ModelFileError(
            path,
            "a llama2.c .bin model needs a tokenizer: pass its tokenizer file "
            "(tokenizer.bin or tokenizer.model, e.g. tok512.bin for stories260K)",
        )
    tokenizer_path = Path(tokenizer_path)
    args, weights = load_llama2c_model(path)
    GLogger.DebugPrintf("llama2.c model %s: %s", path, args)
    named = list(weights.named_tensors())
    for done, (name, _tensor) in enumerate(named, start=1):
        if progress is not None:
            progress(done, len(named), name)
    check_weight_shapes(args, named, path, "the llama2.c header")
    tokenizer = _load_tokenizer(tokenizer_path, llama2c_vocab_size=args.vocab_size)
    args, weights = fit_tokenizer(tokenizer, args, weights, tokenizer_path)
    return LoadedModel(args, weights, tokenizer, FORMAT_LLAMA2C, path, {"model": path, "tokenizer": tokenizer_path})


def load_gguf(
    path: str | Path, tokenizer_path: str | Path | None = None, progress: Progress | None = None
) -> LoadedModel:
    """A llama.cpp GGUF file: hyperparameters, weights (views over the file, quantized blocks as they
    are stored) and, unless `tokenizer_path` overrides it, the tokenizer from the file's own metadata."""
    from ..gguf.model import load_gguf_model

    path = Path(path)
    args, weights, gguf = load_gguf_model(path, progress)
    GLogger.DebugPrintf("GGUF model %s: %s", path, args)
    files = {"model": path}
    if tokenizer_path is not None:
        files["tokenizer"] = Path(tokenizer_path)
        tokenizer = _load_tokenizer(files["tokenizer"])
    else:
        tokenizer = _gguf_tokenizer(gguf.metadata, path)
    args, weights = fit_tokenizer(tokenizer, args, weights, files.get("tokenizer", path))
    template = gguf.metadata.get("tokenizer.chat_template")
    return LoadedModel(
        args, weights, tokenizer, FORMAT_GGUF, path, files,
        chat_template=template if isinstance(template, str) else None,
        source_metadata=gguf.metadata,
    )


def _gguf_tokenizer(metadata: dict[str, Any], path: Path) -> Any:
    try:
        from ..tokenizer.gguf_vocab import tokenizer_from_gguf
    except ImportError as exc:
        # Only the module's absence is "not available yet"; an error inside it must surface as is.
        if exc.name != f"{__package__.rsplit('.', 1)[0]}.tokenizer.gguf_vocab":
            raise
        raise ModelFileError(
            path,
            "the GGUF tokenizer (llamanuts.tokenizer.gguf_vocab) is not available yet: the weights loaded, but "
            "the vocabulary inside the file cannot be read; pass a tokenizer file with --tokenizer",
        ) from None
    return tokenizer_from_gguf(metadata, path)


def _has_gguf_magic(path: Path) -> bool:
    from ..gguf.reader import has_gguf_magic

    return has_gguf_magic(path)


def load_hf_model(directory: str | Path, progress: Progress | None = None) -> LoadedModel:
    """A Hugging Face LlamaForCausalLM directory: config.json, safetensors weights (mapped, not
    copied), tokenizer.json and the chat template. Config and weights are checked before the tokenizer."""
    directory = Path(directory)
    files = hf_directory_files(directory)
    config = load_hf_config(files["config"])
    args = model_args_from_hf_config(config, files["config"])
    tied = tie_word_embeddings(config, files["config"])
    GLogger.DebugPrintf("Hugging Face model %s: %s", directory, args)
    checkpoint = load_safetensors_checkpoint(directory, progress)
    weights_path = checkpoint.index or checkpoint.files[0]
    tensors = meta_state_dict(checkpoint.tensors, args, tied, weights_path)
    weights = weights_from_state_dict(
        tensors, args, weights_path, source="config.json", display=hf_name, rope_pairing=ROPE_HALVES
    )
    GLogger.DebugPrintf(
        "RoPE layout: Hugging Face's q_proj/k_proj rows pair features i and i+%d (its rotate_half), where Meta's "
        "pair 2i and 2i+1; the weights stay as stored and applyRotaryEmbeddings pairs them the Hugging Face way",
        args.head_dim // 2,
    )
    chat_template = read_chat_template(directory)
    tokenizer = _load_hf_tokenizer(directory)
    args, weights = fit_tokenizer(tokenizer, args, weights, files.get("tokenizer", directory))
    return LoadedModel(args, weights, tokenizer, FORMAT_HF, directory, files, chat_template=chat_template)


def _load_hf_tokenizer(directory: Path) -> Any:
    # Imported here: the weights and config path stays usable (and testable) without the tokenizer.
    try:
        from ..tokenizer.hf_tokenizer import load_hf_tokenizer
    except ImportError as exc:
        if exc.name and not exc.name.endswith("hf_tokenizer"):
            raise ModelFileError(directory, f"the Hugging Face tokenizer needs the {exc.name!r} package ({exc})") from None
        raise ModelFileError(directory, "the Hugging Face tokenizer is not available yet") from None
    return load_hf_tokenizer(directory)


def _load_tokenizer(path: Path, **options: Any) -> Any:
    # Imported here, not at the top: the weight loaders above stay usable (and testable) alone.
    from ..tokenizer import load_tokenizer

    return load_tokenizer(path, **options)


# A model may have more embedding rows than its tokenizer has tokens when the rows were padded for
# alignment (Qwen2: 151936 rows for 151646 tokens, Phi-3: 32064 for 32011). At most this fraction
# of the rows may be such padding; more than that, the tokenizer belongs to another model.
MAX_PADDING_FRACTION = 1 / 16


def fit_tokenizer(
    tokenizer: Any, args: ModelArgs, weights: ModelWeights, path: Path
) -> tuple[ModelArgs, ModelWeights]:
    """Check the tokenizer against the embedding; cut padding rows so every id is decodable.

    A tokenizer with more tokens than the model has rows is refused: its extra ids have no
    embedding. A model with a few more rows than the tokenizer has tokens is accepted, and its
    classifier and embedding are cut (views, no copy) to the tokenizer's size: the padding rows
    were never trained as outputs, no prompt can reach them as inputs, and a model that generated
    one would produce an id that no tokenizer can decode (generation would die on it). So the
    choice is made once here, and sampling and perplexity only ever see decodable ids.
    """
    tokens, rows = tokenizer.vocab_size, args.vocab_size
    if tokens > rows:
        raise ModelFileError(
            path,
            f"the tokenizer has {tokens} tokens but the model's embedding has only {rows} rows: "
            f"this tokenizer does not belong to this model",
        )
    if tokens == rows:
        return args, weights
    if rows - tokens > rows * MAX_PADDING_FRACTION:
        raise ModelFileError(
            path,
            f"the tokenizer has {tokens} tokens but the model's embedding has {rows} rows: more than "
            f"1/{round(1 / MAX_PADDING_FRACTION)} of the rows would be padding, so this tokenizer does not belong "
            f"to this model",
        )
    GLogger.DebugPrintf(
        "The model has %d embedding rows, the tokenizer %d tokens: the %d padding rows are cut from the classifier",
        rows, tokens, rows - tokens,
    )
    embeddings = _first_rows(weights.tok_embeddings, tokens)
    output = embeddings if weights.shared_classifier else _first_rows(weights.output, tokens)
    return replace(args, vocab_size=tokens), replace(weights, tok_embeddings=embeddings, output=output)


def _first_rows(tensor: Tensor, rows: int) -> Tensor:
    """A view of the first `rows` rows (quantized storage is also one row of blocks per row)."""
    return Tensor((rows, *tensor.shape[1:]), tensor.dtype, tensor.data[:rows], tensor.name)


# ---- state dict -> ModelWeights -----------------------------------------------------------------
def expected_shapes(args: ModelArgs) -> dict[str, tuple[tuple[int, ...], str]]:
    """Meta name -> (shape, the rule in words) for every weight the model needs."""
    d, hd, hidden, vocab = args.dim, args.head_dim, args.hidden_dim, args.vocab_size
    q_rows, kv_rows = args.n_heads * hd, args.n_kv_heads * hd
    shapes: dict[str, tuple[tuple[int, ...], str]] = {
        "tok_embeddings.weight": ((vocab, d), "[vocab_size, dim]"),
        "norm.weight": ((d,), "[dim]"),
        "output.weight": ((vocab, d), "[vocab_size, dim]"),
    }
    for i in range(args.n_layers):
        p = f"layers.{i}."
        shapes[p + "attention.wq.weight"] = ((q_rows, d), "[n_heads*head_dim, dim]")
        shapes[p + "attention.wk.weight"] = ((kv_rows, d), "[n_kv_heads*head_dim, dim]")
        shapes[p + "attention.wv.weight"] = ((kv_rows, d), "[n_kv_heads*head_dim, dim]")
        shapes[p + "attention.wo.weight"] = ((d, q_rows), "[dim, n_heads*head_dim]")
        shapes[p + "feed_forward.w1.weight"] = ((hidden, d), "[hidden_dim, dim]")
        shapes[p + "feed_forward.w2.weight"] = ((d, hidden), "[dim, hidden_dim]")
        shapes[p + "feed_forward.w3.weight"] = ((hidden, d), "[hidden_dim, dim]")
        shapes[p + "attention_norm.weight"] = ((d,), "[dim]")
        shapes[p + "ffn_norm.weight"] = ((d,), "[dim]")
    return shapes


def check_weight_shapes(
    args: ModelArgs,
    named: Iterable[tuple[str, Tensor]],
    path: str | Path,
    source: str = "params.json",
    display: Callable[[str], str] | None = None,
) -> None:
    """Every tensor's shape against the rule for its (Meta) name; `display` turns a Meta name into the
    name the file uses, for the message."""
    expected = expected_shapes(args)
    for name, tensor in named:
        shape, rule = expected[name]
        if tensor.shape != shape:
            shown = name if display is None else display(name)
            raise ModelFileError(
                path,
                f"tensor {shown!r} has shape {format_dims(tensor.shape)} but {source} implies {rule} = "
                f"{format_dims(shape)} (dim {args.dim}, n_heads {args.n_heads}, n_kv_heads {args.n_kv_heads}, "
                f"head_dim {args.head_dim}, hidden_dim {args.hidden_dim}, vocab_size {args.vocab_size})",
            )


def weights_from_state_dict(
    tensors: dict[str, Tensor],
    args: ModelArgs,
    path: str | Path,
    source: str = "params.json",
    display: Callable[[str], str] | None = None,
    rope_pairing: str = ROPE_INTERLEAVED,
) -> ModelWeights:
    """Check names (missing / unexpected) and shapes, then arrange the tensors (under Meta's names)
    into ModelWeights. `source` and `display` word the messages for the file's own format;
    `rope_pairing` is how the file's wq/wk rows pair RoPE's features (see rope.py)."""
    # Before building the table of expected names (9 per layer): a params.json that says 10^8 layers
    # over a file of 20 tensors must cost nothing to refuse. Within this bound, the check below
    # names the missing tensors.
    if args.n_layers > len(tensors):
        raise ModelFileError(
            path,
            f"{source} says n_layers = {args.n_layers}, which needs {args.n_layers * len(_LAYER_TENSORS)} layer "
            f"tensors ({len(_LAYER_TENSORS)} per layer), but the checkpoint holds only {len(tensors)} tensors",
        )
    expected = expected_shapes(args)
    # Without output.weight the classifier is the embedding table (tied weights, as in the small
    # Llama 3.2 models); ModelWeights then holds one tensor for both.
    shared_classifier = "output.weight" not in tensors and "tok_embeddings.weight" in tensors
    if shared_classifier:
        del expected["output.weight"]
    missing = [name for name in expected if name not in tensors]
    if missing:
        raise ModelFileError(
            path, f"{len(missing)} tensor(s) missing for a {args.n_layers}-layer model: {_names(missing)}"
        )
    unexpected = [name for name in tensors if name not in expected and name not in IGNORED_KEYS]
    if unexpected:
        raise ModelFileError(
            path,
            f"{len(unexpected)} unexpected tensor(s) (does {source}'s n_layers = {args.n_layers} "
            f"match the checkpoint?): {_names(unexpected)}",
        )
    check_weight_shapes(args, ((name, tensors[name]) for name in expected), path, source, display)
    GLogger.DebugPrintf(
        "Mapped %d tensors into ModelWeights (%d layers, shared classifier: %s)",
        len(expected), args.n_layers, shared_classifier,
    )
    layers = [
        LayerWeights(**{field_name: tensors[f"layers.{i}.{meta}"] for field_name, meta in _LAYER_TENSORS.items()})
        for i in range(args.n_layers)
    ]
    return ModelWeights(
        tok_embeddings=tensors["tok_embeddings.weight"],
        layers=layers,
        norm=tensors["norm.weight"],
        output=tensors["tok_embeddings.weight"] if shared_classifier else tensors["output.weight"],
        rope_pairing=rope_pairing,
    )


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(short_repr(n, 200) for n in names[:limit])  # names come from the file
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


__all__ = [
    "FORMAT_GGUF",
    "FORMAT_HF",
    "FORMAT_LLAMA2C",
    "FORMAT_META",
    "IGNORED_KEYS",
    "LoadedModel",
    "MAX_PADDING_FRACTION",
    "MODEL_ALIASES",
    "check_weight_shapes",
    "expected_shapes",
    "fit_tokenizer",
    "load_gguf",
    "load_hf_model",
    "load_llama2c",
    "load_meta_model",
    "load_model",
    "resolve_model_alias",
    "weights_from_state_dict",
]
