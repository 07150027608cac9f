"""A tiny GGUF writer for tests, written from the format description (ggml's docs/gguf.md), not
from our reader: it builds the bytes piece by piece, so a test can break exactly one field.

    gguf_file([("general.architecture", STRING, "llama")], [Tensor("a", (4,), F32, data)])

Values: scalars by type id; STRING takes str (or bytes, to write invalid UTF-8); ARRAY takes
`Array(element_type, items)`, where items may be Arrays again.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

# GGUF value type ids
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
SCALAR_FORMATS = {
    UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f",
    BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d",
}
# ggml type ids and (values per block, bytes per block), from ggml.h / ggml.c
F32, F16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, BF16 = 0, 1, 2, 3, 8, 12, 14, 30
Q5_0, I32, F64 = 6, 26, 28
BLOCKS = {F32: (1, 4), F16: (1, 2), Q4_0: (32, 18), Q4_1: (32, 20), Q8_0: (32, 34), Q4_K: (256, 144),
          Q6_K: (256, 210), BF16: (1, 2), Q5_0: (32, 22), I32: (1, 4), F64: (1, 8)}


@dataclass
class Array:
    element_type: int
    items: Sequence[Any]
    count: int | None = None  # to claim a different length than len(items)


@dataclass
class Tensor:
    name: str
    dims: tuple[int, ...]  # innermost first, as GGUF writes them
    type_id: int
    data: bytes
    offset: int | None = None  # None: placed after the previous tensor, padded


@dataclass
class KV:
    key: str
    type_id: int
    value: Any


def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def string(text: str | bytes, length: int | None = None) -> bytes:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return u64(len(raw) if length is None else length) + raw


def value(type_id: int, v: Any) -> bytes:
    if type_id == STRING:
        return string(v)
    if type_id == ARRAY:
        out = u32(v.element_type) + u64(len(v.items) if v.count is None else v.count)
        return out + b"".join(value(v.element_type, item) for item in v.items)
    if type_id in SCALAR_FORMATS:
        return struct.pack(SCALAR_FORMATS[type_id], v)
    raise ValueError(type_id)


def kv(key: str, type_id: int, v: Any) -> bytes:
    return string(key) + u32(type_id) + value(type_id, v)


def tensor_info(name: str, dims: Sequence[int], type_id: int, offset: int) -> bytes:
    return string(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(type_id) + u64(offset)


def nbytes(dims: Sequence[int], type_id: int) -> int:
    block_size, block_bytes = BLOCKS[type_id]
    count = 1
    for d in dims:
        count *= d
    return count // block_size * block_bytes


def pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


@dataclass
class Layout:
    """Where things ended up in a built file (for tests that cut or patch it)."""

    data_offset: int = 0
    tensor_starts: dict[str, int] = field(default_factory=dict)  # absolute
    size: int = 0


def gguf_file(
    metadata: Sequence[KV | tuple[str, int, Any]] = (),
    tensors: Sequence[Tensor] = (),
    *,
    version: int = 3,
    alignment: int = 32,
    magic: bytes = b"GGUF",
    tensor_count: int | None = None,
    kv_count: int | None = None,
    layout: Layout | None = None,
) -> bytes:
    """Header, metadata, tensor infos, padding, data (each tensor padded, except after the last)."""
    kvs = [m if isinstance(m, KV) else KV(*m) for m in metadata]
    offsets, position = [], 0
    for t in tensors:
        offset = position if t.offset is None else t.offset
        offsets.append(offset)
        position = pad(offset + len(t.data), alignment)
    head = magic + u32(version) + u64(len(tensors) if tensor_count is None else tensor_count)
    head += u64(len(kvs) if kv_count is None else kv_count)
    head += b"".join(kv(m.key, m.type_id, m.value) for m in kvs)
    head += b"".join(tensor_info(t.name, t.dims, t.type_id, o) for t, o in zip(tensors, offsets))
    data_offset = pad(len(head), alignment)
    out = bytearray(head + b"\0" * (data_offset - len(head)))
    for t, offset in zip(tensors, offsets):
        start = data_offset + offset
        if len(out) < start:
            out += b"\0" * (start - len(out))
        out[start : start + len(t.data)] = t.data
    if layout is not None:
        layout.data_offset = data_offset
        layout.tensor_starts = {t.name: data_offset + o for t, o in zip(tensors, offsets)}
        layout.size = len(out)
    return bytes(out)


def random_tensor(name: str, dims: Sequence[int], type_id: int, seed: int = 0) -> Tensor:
    """A tensor of random bytes (F32 / F16 / BF16 as random finite values)."""
    rng = np.random.default_rng(seed)
    count = int(np.prod(dims))
    if type_id == F32:
        raw = rng.standard_normal(count).astype("<f4").tobytes()
    elif type_id == F16:
        raw = rng.standard_normal(count).astype("<f2").tobytes()
    elif type_id == BF16:
        raw = (rng.standard_normal(count).astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
    else:
        raw = rng.integers(0, 256, nbytes(dims, type_id), dtype=np.uint8).tobytes()
    return Tensor(name, tuple(dims), type_id, raw)


# ---- a tiny llama -------------------------------------------------------------------------------------
@dataclass
class TinyLlama:
    dim: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    hidden: int = 96
    vocab: int = 40
    context: int = 128
    eps: float = 1e-5
    theta: float = 10000.0
    tied: bool = True
    matrix_type: int = F32  # Q4_1 etc. need dim and hidden multiples of 32
    embedding_type: int = F32

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def metadata(self) -> list[KV]:
        return [
            KV("general.architecture", STRING, "llama"),
            KV("general.name", STRING, "tiny test llama"),
            KV("llama.block_count", UINT32, self.n_layers),
            KV("llama.context_length", UINT32, self.context),
            KV("llama.embedding_length", UINT32, self.dim),
            KV("llama.feed_forward_length", UINT32, self.hidden),
            KV("llama.attention.head_count", UINT32, self.n_heads),
            KV("llama.attention.head_count_kv", UINT32, self.n_kv_heads),
            KV("llama.rope.freq_base", FLOAT32, self.theta),
            KV("llama.attention.layer_norm_rms_epsilon", FLOAT32, self.eps),
            KV("llama.vocab_size", UINT32, self.vocab),
            KV("llama.rope.dimension_count", UINT32, self.head_dim),
            KV("tokenizer.ggml.model", STRING, "llama"),
            KV("tokenizer.ggml.tokens", ARRAY, Array(STRING, [f"tok{i}" for i in range(self.vocab)])),
            KV("tokenizer.ggml.scores", ARRAY, Array(FLOAT32, [float(-i) for i in range(self.vocab)])),
            KV("tokenizer.ggml.token_type", ARRAY, Array(INT32, [1] * self.vocab)),
            KV("tokenizer.ggml.bos_token_id", UINT32, 1),
            KV("tokenizer.ggml.eos_token_id", UINT32, 2),
            KV("tokenizer.chat_template", STRING, "{% for m in messages %}{{ m['content'] }}{% endfor %}"),
        ]

    def tensors(self) -> list[Tensor]:
        d, h, v, kv_rows = self.dim, self.hidden, self.vocab, self.n_kv_heads * self.head_dim
        seed = iter(range(1000))
        out = [random_tensor("token_embd.weight", (d, v), self.embedding_type, next(seed))]
        for i in range(self.n_layers):
            p = f"blk.{i}."
            m = self.matrix_type
            out += [
                random_tensor(p + "attn_norm.weight", (d,), F32, next(seed)),
                random_tensor(p + "attn_q.weight", (d, d), m, next(seed)),
                random_tensor(p + "attn_k.weight", (d, kv_rows), m, next(seed)),
                random_tensor(p + "attn_v.weight", (d, kv_rows), m, next(seed)),
                random_tensor(p + "attn_output.weight", (d, d), m, next(seed)),
                random_tensor(p + "ffn_norm.weight", (d,), F32, next(seed)),
                random_tensor(p + "ffn_gate.weight", (d, h), m, next(seed)),
                random_tensor(p + "ffn_down.weight", (h, d), m, next(seed)),
                random_tensor(p + "ffn_up.weight", (d, h), m, next(seed)),
            ]
        out.append(random_tensor("output_norm.weight", (d,), F32, next(seed)))
        if not self.tied:
            out.append(random_tensor("output.weight", (d, v), self.embedding_type, next(seed)))
        return out

    def build(self, metadata: list[KV] | None = None, tensors: list[Tensor] | None = None, **options: Any) -> bytes:
        return gguf_file(self.metadata() if metadata is None else metadata,
                         self.tensors() if tensors is None else tensors, **options)


def replace_kv(metadata: list[KV], key: str, type_id: int | None = None, v: Any = None, *, drop: bool = False) -> list[KV]:
    """A copy of `metadata` with `key` changed (or removed)."""
    out = []
    for m in metadata:
        if m.key != key:
            out.append(m)
        elif not drop:
            out.append(KV(key, m.type_id if type_id is None else type_id, v))
    return out
