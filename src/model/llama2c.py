"""llama2.c's legacy (version 0) `.bin` model file -> ModelArgs + ModelWeights, zero-copy.

The file is a header of 7 little-endian int32, then nothing but float32 weights, in the order
llama2.c's run.c reads them (every per-layer tensor stored for all layers at once):

    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
    token_embedding [vocab, dim]
    rms_att [L, dim]   wq [L, dim, dim]   wk [L, kv_dim, dim]   wv [L, kv_dim, dim]   wo [L, dim, dim]
    rms_ffn [L, dim]   w1 [L, hidden, dim]   w2 [L, dim, hidden]   w3 [L, hidden, dim]
    rms_final [dim]
    freq_cis_real [seq_len, head_dim/2]   freq_cis_imag [seq_len, head_dim/2]   (unused: RoPE is recomputed)
    wcls [vocab, dim]  -- only when vocab_size in the header is negative (classifier not shared)

One float32 view covers all the weights; each tensor is a slice of it, so nothing is copied and
nothing is read until a kernel touches it.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..common.errors import ModelArgsError, ModelFileError
from ..common.mmapfile import MmapFile
from ..ml import DT_F32, Tensor
from .modelargs import ModelArgs
from .weights import LayerWeights, ModelWeights

HEADER = struct.Struct("<7i")
FLOAT_BYTES = 4
# llama2.c's newer export versions start with this magic ("ak42" as a little-endian int32).
VERSIONED_MAGIC = 0x616B3432
LLAMA2C_NORM_EPS = 1e-5
LLAMA2C_ROPE_THETA = 10000.0


@dataclass(frozen=True)
class Llama2cHeader:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int  # always positive here; `shared_classifier` keeps the sign's meaning
    seq_len: int
    shared_classifier: bool

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    def tensor_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(run.c name, shape) in file order; the freq_cis tables are included (they take space)."""
        L, d, h, v, kv = self.n_layers, self.dim, self.hidden_dim, self.vocab_size, self.kv_dim
        half = self.head_dim // 2
        shapes = [
            ("token_embedding", (v, d)),
            ("rms_att", (L, d)),
            ("wq", (L, d, d)),
            ("wk", (L, kv, d)),
            ("wv", (L, kv, d)),
            ("wo", (L, d, d)),
            ("rms_ffn", (L, d)),
            ("w1", (L, h, d)),
            ("w2", (L, d, h)),
            ("w3", (L, h, d)),
            ("rms_final", (d,)),
            ("freq_cis_real", (self.seq_len, half)),
            ("freq_cis_imag", (self.seq_len, half)),
        ]
        if not self.shared_classifier:
            shapes.append(("wcls", (v, d)))
        return shapes

    def expected_file_size(self) -> int:
        # Python ints, never int64: seven int32 fields multiply to far more than 2^63, and a wrapped
        # product can be chosen to equal a tiny file's size.
        floats = sum(math.prod(shape) for _, shape in self.tensor_shapes())
        return HEADER.size + floats * FLOAT_BYTES


def read_llama2c_header(file: MmapFile) -> Llama2cHeader:
    """Parse and validate the 7 int32; sizes that cannot describe a model are ModelArgsError."""
    if file.size < HEADER.size:
        raise ModelFileError(
            file.path, f"too short for a llama2.c model: {file.size} bytes, the header alone is {HEADER.size}"
        )
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = HEADER.unpack_from(file.buffer, 0)
    if dim == VERSIONED_MAGIC:
        raise ModelFileError(
            file.path,
            "this is a versioned llama2.c export (magic 'ak42'); only the legacy version-0 .bin "
            "(export.py --version 0, or the original stories*.bin files) is supported",
        )
    fields = {"dim": dim, "hidden_dim": hidden_dim, "n_layers": n_layers, "n_heads": n_heads,
              "n_kv_heads": n_kv_heads, "seq_len": seq_len}
    for key, value in fields.items():
        if value <= 0:
            raise ModelArgsError(file.path, f"llama2.c header: {key} = {value} must be positive")
    if vocab_size == 0:
        raise ModelArgsError(file.path, "llama2.c header: vocab_size = 0")
    if dim % n_heads:
        raise ModelArgsError(file.path, f"llama2.c header: dim {dim} is not divisible by n_heads {n_heads}")
    if n_heads % n_kv_heads:
        raise ModelArgsError(
            file.path, f"llama2.c header: n_heads {n_heads} is not a multiple of n_kv_heads {n_kv_heads}"
        )
    if (dim // n_heads) % 2:
        raise ModelArgsError(file.path, f"llama2.c header: head_dim {dim // n_heads} must be even for RoPE")
    return Llama2cHeader(dim, hidden_dim, n_layers, n_heads, n_kv_heads, abs(vocab_size), seq_len, vocab_size > 0)


def model_args_from_header(header: Llama2cHeader) -> ModelArgs:
    return ModelArgs(
        dim=header.dim,
        n_layers=header.n_layers,
        n_heads=header.n_heads,
        n_kv_heads=header.n_kv_heads,
        vocab_size=header.vocab_size,
        hidden_dim=header.hidden_dim,  # stored in the header, not derived from multiple_of
        norm_eps=LLAMA2C_NORM_EPS,
        rope_theta=LLAMA2C_ROPE_THETA,
        max_seq_len=header.seq_len,
    )


def load_llama2c_model(path: str | Path) -> tuple[ModelArgs, ModelWeights]:
    """Map a llama2.c `.bin`; every tensor is a view over the file (F32)."""
    file = MmapFile(path)
    header = read_llama2c_header(file)
    expected = header.expected_file_size()
    if file.size != expected:
        shorter = "shorter" if file.size < expected else "longer"
        raise ModelFileError(
            file.path,
            f"file is {shorter} than its header promises: expected {expected} bytes "
            f"(28-byte header + float32 weights for dim {header.dim}, hidden {header.hidden_dim}, "
            f"{header.n_layers} layers, vocab {header.vocab_size}, seq_len {header.seq_len}"
            f"{'' if header.shared_classifier else ', separate classifier'}), got {file.size} bytes",
        )
    floats = file.array(np.float32, HEADER.size, (expected - HEADER.size) // FLOAT_BYTES)
    arrays = _split(floats, header.tensor_shapes())
    return model_args_from_header(header), _weights(header, arrays)


def _split(floats: np.ndarray, shapes: list[tuple[str, tuple[int, ...]]]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for name, shape in shapes:
        count = math.prod(shape)
        arrays[name] = floats[offset : offset + count].reshape(shape)
        offset += count
    return arrays


def _weights(header: Llama2cHeader, arrays: dict[str, np.ndarray]) -> ModelWeights:
    def tensor(data: np.ndarray, name: str) -> Tensor:
        return Tensor(data.shape, DT_F32, data, name)

    layers = []
    for i in range(header.n_layers):
        p = f"layers.{i}."
        layers.append(
            LayerWeights(
                attention_norm=tensor(arrays["rms_att"][i], p + "attention_norm.weight"),
                wq=tensor(arrays["wq"][i], p + "attention.wq.weight"),
                wk=tensor(arrays["wk"][i], p + "attention.wk.weight"),
                wv=tensor(arrays["wv"][i], p + "attention.wv.weight"),
                wo=tensor(arrays["wo"][i], p + "attention.wo.weight"),
                ffn_norm=tensor(arrays["rms_ffn"][i], p + "ffn_norm.weight"),
                w1=tensor(arrays["w1"][i], p + "feed_forward.w1.weight"),
                w2=tensor(arrays["w2"][i], p + "feed_forward.w2.weight"),
                w3=tensor(arrays["w3"][i], p + "feed_forward.w3.weight"),
            )
        )
    embeddings = tensor(arrays["token_embedding"], "tok_embeddings.weight")
    # Shared classifier: the very same Tensor object, so ModelWeights.shared_classifier sees it.
    output = embeddings if header.shared_classifier else tensor(arrays["wcls"], "output.weight")
    return ModelWeights(
        tok_embeddings=embeddings,
        layers=layers,
        norm=tensor(arrays["rms_final"], "norm.weight"),
        output=output,
    )


__all__ = ["HEADER", "Llama2cHeader", "load_llama2c_model", "model_args_from_header", "read_llama2c_header"]
