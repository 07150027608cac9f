"""load_model: a model directory (Meta) or a `.bin` file (llama2.c) -> LoadedModel.

Whatever the format, the result is the same: ModelArgs, ModelWeights under Meta's names, and a
tokenizer, so the transformer never knows where its weights came from. Before returning, every
tensor's shape is checked against the hyperparameters, because a mismatch found here can name the
tensor and the rule it breaks, while one found in Forward is only a ShapeError inside a matmul.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from ..common.errors import ModelFileError
from ..common.files import describe_path
from ..common.saferepr import short_repr
from ..common.logger import GLogger
from ..ml import Tensor, format_dims
from ..torch.checkpoint import find_consolidated_checkpoint, load_torch_checkpoint
from .llama2c import load_llama2c_model
from .modelargs import ModelArgs
from .params import load_params, model_args_from_params
from .weights import LayerWeights, ModelWeights

Progress = Callable[[int, int, str], None]

FORMAT_META = "meta"
FORMAT_LLAMA2C = "llama2c"

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
    format: str  # "meta" | "llama2c"
    path: Path
    files: dict[str, Path] = field(default_factory=dict)  # role ("checkpoint", "params", ...) -> file


def load_model(
    path: str | Path, tokenizer_path: str | Path | None = None, progress: Progress | None = None
) -> LoadedModel:
    """A directory (or a consolidated.00.pth in one) is Meta's format; a `.bin` file is llama2.c's.

    `progress(done, total, name)` is called as tensors are mapped (for the CLI's progress bar).
    """
    path = Path(path)
    problem = describe_path(path)
    if problem == "not found":
        raise ModelFileError(path, "model path not found; expected a Meta model directory or a llama2.c .bin file")
    if problem is not None and problem != "is a directory":
        raise ModelFileError(path, f"model path {problem}; expected a Meta model directory or a llama2.c .bin file")
    if path.is_dir():
        return load_meta_model(path, tokenizer_path, progress)
    if path.suffix == ".pth":
        return load_meta_model(path.parent, tokenizer_path, progress)
    if path.suffix == ".bin":
        return load_llama2c(path, tokenizer_path, progress)
    raise ModelFileError(
        path, "unrecognised model path: expected a Meta model directory (consolidated.00.pth, params.json, "
        "tokenizer.model) or a llama2.c .bin file"
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
    args: ModelArgs, named: Iterable[tuple[str, Tensor]], path: str | Path, source: str = "params.json"
) -> None:
    expected = expected_shapes(args)
    for name, tensor in named:
        shape, rule = expected[name]
        if tensor.shape != shape:
            raise ModelFileError(
                path,
                f"tensor {name!r} has shape {format_dims(tensor.shape)} but {source} implies {rule} = "
                f"{format_dims(shape)} (dim {args.dim}, n_heads {args.n_heads}, n_kv_heads {args.n_kv_heads}, "
                f"head_dim {args.head_dim}, hidden_dim {args.hidden_dim}, vocab_size {args.vocab_size})",
            )


def weights_from_state_dict(tensors: dict[str, Tensor], args: ModelArgs, path: str | Path) -> ModelWeights:
    """Check names (missing / unexpected) and shapes, then arrange the tensors into ModelWeights."""
    # Before building the table of expected names (9 per layer): a params.json that says 10^8 layers
    # over a file of 20 tensors must cost nothing to refuse. Within this bound, the check below
    # names the missing tensors.
    if args.n_layers > len(tensors):
        raise ModelFileError(
            path,
            f"params.json says n_layers = {args.n_layers}, which needs {args.n_layers * len(_LAYER_TENSORS)} layer "
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
            f"{len(unexpected)} unexpected tensor(s) (does params.json's n_layers = {args.n_layers} "
            f"match the checkpoint?): {_names(unexpected)}",
        )
    check_weight_shapes(args, ((name, tensors[name]) for name in expected), path)
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
    )


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(short_repr(n, 200) for n in names[:limit])  # names come from the file
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


__all__ = [
    "FORMAT_LLAMA2C",
    "FORMAT_META",
    "IGNORED_KEYS",
    "LoadedModel",
    "MAX_PADDING_FRACTION",
    "check_weight_shapes",
    "expected_shapes",
    "fit_tokenizer",
    "load_llama2c",
    "load_meta_model",
    "load_model",
    "weights_from_state_dict",
]
