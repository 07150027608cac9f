"""Fuzz formats for llama.cpp's GGUF files: the file's structure, and the tokenizer in its metadata.

Both start from tiny but complete llama GGUF files made here with the test suite's own GGUF writer
(tests/gguf/ggufbytes.py, written from ggml's format description): two layers of width 64, weights
in F32, Q8_0 and Q4_1 (sane block scales, so a forward pass gives finite logits), and a vocab in
the metadata with a chat template, one byte-level BPE ("gpt2": the 256 byte tokens of GPT-2's
alphabet, merges, ChatML control tokens, a user-defined token) and one SentencePiece-style
("llama": <unk> <s> </s>, 256 byte pieces, scored pieces).

`gguf` mutates the bytes knowing where every field is (a walk over the seed records each count,
type, length and offset): header counts, value types, scalar values, string and array lengths,
array element types, nested arrays, whole entries deleted or repeated, tensor dims, ggml types
and offsets, metadata values retyped, general.alignment, tensors retyped or renamed, plus raw
byte flips and truncations. `gguf-tokenizer` changes the tokenizer keys as values (tokens empty or
repeated, merges naming unknown tokens, token types of the wrong dtype or range, ids out of the
vocab, flags of the wrong type, another model or pre-tokenizer name, another chat template) and
writes the file again. Each case loads the file as the CLI does, then runs a forward pass, samples
a token, encodes and decodes text and renders a chat prompt with the file's template.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tools.fuzzkit import EXTREME_FLOAT32, EXTREME_INTS, FuzzFormat, exercise_loaded, load_test_helper, mutate_bytes

CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)
WORDS = ["the", "hello", "world", "once", "upon", "time", "there", "was", "llama", "in", "and", "ing", "123"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _gguf() -> Any:
    return load_test_helper("tests/gguf/ggufbytes.py")


# ---- the two vocabs ---------------------------------------------------------------------------------
def gpt2_vocab() -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges): ChatML specials at 0..2 (as SmolLM2), the 256 one-byte tokens of
    GPT-2's alphabet, the tokens the merges build (each word, with and without a leading space, one
    character at a time), and the user-defined token "<think>"."""
    from llamanuts.tokenizer.bpe_tokenizer import bytes_to_unicode

    alphabet = bytes_to_unicode()
    tokens, types = list(SPECIALS), [3, 3, 3]
    tokens += [alphabet[b] for b in range(256)]
    types += [1] * 256
    merges: list[str] = []
    known = set(tokens)
    for word in WORDS:
        for spelled in (word, "Ġ" + word):
            built = spelled[0]
            for char in spelled[1:]:
                joined = built + char
                if joined not in known:
                    merges.append(f"{built} {char}")
                    tokens.append(joined)
                    types.append(1)
                    known.add(joined)
                built = joined
    tokens.append("<think>")
    types.append(4)
    return tokens, types, merges


def spm_vocab() -> tuple[list[str], list[float], list[int]]:
    """(pieces, scores, types): <unk> <s> </s>, 256 byte pieces, "▁", letters, and scored merges."""
    pieces, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
    pieces += [f"<0x{b:02X}>" for b in range(256)]
    scores += [0.0] * 256
    types += [6] * 256
    known = set(pieces)
    score = -1.0
    for word in WORDS:
        spelled = "▁" + word
        for end in range(1, len(spelled) + 1):
            piece = spelled[:end]
            if piece not in known:
                pieces.append(piece)
                scores.append(score if end > 1 else -1000.0)
                types.append(1)
                known.add(piece)
                score -= 1.0
    return pieces, scores, types


# ---- tensors with sane block scales -----------------------------------------------------------------
def _block_data(type_id: int, dims: tuple[int, ...], rng: np.random.Generator) -> bytes:
    g = _gguf()
    count = int(np.prod(dims))
    if type_id == g.F32:
        return (rng.standard_normal(count) * 0.1).astype("<f4").tobytes()
    blocks = count // 32
    if type_id == g.Q8_0:  # float16 scale, 32 int8 values
        scale = np.full((blocks, 1), 0.004, dtype="<f2").view(np.uint8)
        values = rng.integers(-127, 128, (blocks, 32), dtype=np.int8).view(np.uint8)
        return np.concatenate([scale, values], axis=1).tobytes()
    if type_id == g.Q4_1:  # float16 scale and minimum, 16 bytes of 4-bit values
        scale = np.full((blocks, 1), 0.01, dtype="<f2").view(np.uint8)
        minimum = np.full((blocks, 1), -0.08, dtype="<f2").view(np.uint8)
        values = rng.integers(0, 256, (blocks, 16), dtype=np.uint8)
        return np.concatenate([scale, minimum, values], axis=1).tobytes()
    raise ValueError(type_id)


def model_tensors(vocab: int, tied: bool, seed: int, quantized: bool) -> list[Any]:
    """The tensors of a 2-layer llama of width 64; `quantized`: the matrices in Q8_0 and Q4_1 (the
    embedding, tied as the classifier, in Q8_0, as SmolLM2's), else all F32."""
    g = _gguf()
    rng = np.random.default_rng(seed)
    d, h, kv = 64, 96, 32  # dim, hidden, n_kv_heads * head_dim (4 heads, 2 kv heads, head_dim 16)

    def tensor(name: str, dims: tuple[int, ...], type_id: int) -> Any:
        type_id = type_id if quantized else g.F32
        data = _block_data(type_id, dims, rng)
        if name.endswith("norm.weight"):
            data = (1 + rng.standard_normal(dims[0]) * 0.05).astype("<f4").tobytes()
        return g.Tensor(name, dims, type_id, data)

    out = [tensor("token_embd.weight", (d, vocab), g.Q8_0 if tied else g.F32)]
    for i in range(2):
        p = f"blk.{i}."
        out += [
            tensor(p + "attn_norm.weight", (d,), g.F32),
            tensor(p + "attn_q.weight", (d, d), g.Q8_0),
            tensor(p + "attn_k.weight", (d, kv), g.Q4_1),
            tensor(p + "attn_v.weight", (d, kv), g.F32),
            tensor(p + "attn_output.weight", (d, d), g.Q8_0),
            tensor(p + "ffn_norm.weight", (d,), g.F32),
            tensor(p + "ffn_gate.weight", (d, h), g.Q4_1),
            tensor(p + "ffn_down.weight", (h, d), g.Q8_0),
            tensor(p + "ffn_up.weight", (d, h), g.Q4_1),
        ]
    out.append(tensor("output_norm.weight", (d,), g.F32))
    if not tied:
        out.append(tensor("output.weight", (d, vocab), g.Q4_1))
    return out


def model_metadata(vocab: int) -> list[Any]:
    g = _gguf()
    return [
        g.KV("general.architecture", g.STRING, "llama"),
        g.KV("general.name", g.STRING, "fuzz seed"),
        g.KV("general.alignment", g.UINT32, 32),
        g.KV("llama.block_count", g.UINT32, 2),
        g.KV("llama.context_length", g.UINT32, 128),
        g.KV("llama.embedding_length", g.UINT32, 64),
        g.KV("llama.feed_forward_length", g.UINT32, 96),
        g.KV("llama.attention.head_count", g.UINT32, 4),
        g.KV("llama.attention.head_count_kv", g.UINT32, 2),
        g.KV("llama.rope.freq_base", g.FLOAT32, 10000.0),
        g.KV("llama.attention.layer_norm_rms_epsilon", g.FLOAT32, 1e-5),
        g.KV("llama.vocab_size", g.UINT32, vocab),
        g.KV("llama.rope.dimension_count", g.UINT32, 16),
    ]


def bpe_tokenizer_metadata() -> list[Any]:
    g = _gguf()
    tokens, types, merges = gpt2_vocab()
    return [
        g.KV("tokenizer.ggml.model", g.STRING, "gpt2"),
        g.KV("tokenizer.ggml.pre", g.STRING, "smollm"),
        g.KV("tokenizer.ggml.tokens", g.ARRAY, g.Array(g.STRING, tokens)),
        g.KV("tokenizer.ggml.token_type", g.ARRAY, g.Array(g.INT32, types)),
        g.KV("tokenizer.ggml.merges", g.ARRAY, g.Array(g.STRING, merges)),
        g.KV("tokenizer.ggml.bos_token_id", g.UINT32, 1),
        g.KV("tokenizer.ggml.eos_token_id", g.UINT32, 2),
        g.KV("tokenizer.ggml.unknown_token_id", g.UINT32, 0),
        g.KV("tokenizer.ggml.padding_token_id", g.UINT32, 2),
        g.KV("tokenizer.ggml.add_bos_token", g.BOOL, False),
        g.KV("tokenizer.ggml.add_space_prefix", g.BOOL, False),
        g.KV("tokenizer.chat_template", g.STRING, CHATML),
    ]


def spm_tokenizer_metadata() -> list[Any]:
    g = _gguf()
    pieces, scores, types = spm_vocab()
    return [
        g.KV("tokenizer.ggml.model", g.STRING, "llama"),
        g.KV("tokenizer.ggml.tokens", g.ARRAY, g.Array(g.STRING, pieces)),
        g.KV("tokenizer.ggml.scores", g.ARRAY, g.Array(g.FLOAT32, scores)),
        g.KV("tokenizer.ggml.token_type", g.ARRAY, g.Array(g.INT32, types)),
        g.KV("tokenizer.ggml.bos_token_id", g.UINT32, 1),
        g.KV("tokenizer.ggml.eos_token_id", g.UINT32, 2),
        g.KV("tokenizer.ggml.unknown_token_id", g.UINT32, 0),
        g.KV("tokenizer.ggml.add_bos_token", g.BOOL, True),
        g.KV("tokenizer.chat_template", g.STRING, LLAMA2_TEMPLATE),
    ]


@dataclass
class Seed:
    name: str
    metadata: list[Any]
    tensors: list[Any]
    data: bytes = b""
    fields: list["Field"] = field(default_factory=list)
    entries: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of each metadata entry
    infos: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of each tensor info
    data_offset: int = 0

    def build(self, metadata: list[Any] | None = None, tensors: list[Any] | None = None, **options: Any) -> bytes:
        return _gguf().gguf_file(self.metadata if metadata is None else metadata,
                                 self.tensors if tensors is None else tensors, **options)


def make_seeds() -> list[Seed]:
    bpe_tokens = len(gpt2_vocab()[0])
    spm_tokens = len(spm_vocab()[0])
    seeds = [
        Seed("bpe", model_metadata(bpe_tokens) + bpe_tokenizer_metadata(), model_tensors(bpe_tokens, True, 1, quantized=False)),
        Seed("spm", model_metadata(spm_tokens) + spm_tokenizer_metadata(), model_tensors(spm_tokens, False, 2, quantized=False)),
        Seed("bpe-q8-q4", model_metadata(bpe_tokens) + bpe_tokenizer_metadata(), model_tensors(bpe_tokens, True, 3, quantized=True)),
    ]
    for seed in seeds:
        seed.data = seed.build()
        walk(seed)
    return seeds


# ---- where everything is in a seed (a walk of our own, over a file we made) ------------------------------
@dataclass(frozen=True)
class Field:
    kind: str  # count, version, key-length, value-type, scalar, string-length, array-type, array-count, n_dims, dim, ggml-type, offset
    offset: int
    size: int  # bytes
    what: str
    value_type: int = -1  # for scalars: the GGUF value type


_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def walk(seed: Seed) -> None:
    data = seed.data
    fields = [Field("version", 4, 4, "version"), Field("count", 8, 8, "tensor_count"), Field("count", 16, 8, "kv_count")]
    tensor_count, kv_count = struct.unpack_from("<QQ", data, 8)
    pos = 24

    def u32(at: int) -> int:
        return struct.unpack_from("<I", data, at)[0]

    def u64(at: int) -> int:
        return struct.unpack_from("<Q", data, at)[0]

    def string(at: int, what: str, record: bool = True) -> int:
        if record:
            fields.append(Field("string-length", at, 8, what))
        return at + 8 + u64(at)

    def value(at: int, type_id: int, what: str, depth: int) -> int:
        if type_id == 8:
            return string(at, what)
        if type_id == 9:
            element = u32(at)
            count = u64(at + 4)
            fields.append(Field("array-type", at, 4, what))
            fields.append(Field("array-count", at + 4, 8, what))
            at += 12
            for index in range(count):
                # every string length of a short array; a sample of a long one (tokens, merges)
                record = element != 8 or count <= 16 or index % 37 == 0
                if element == 8:
                    at = string(at, f"{what}[{index}]", record)
                elif element == 9:
                    at = value(at, 9, f"{what}[{index}]", depth + 1)
                else:
                    if index == 0:
                        fields.append(Field("scalar", at, _SCALAR_SIZES[element], f"{what}[0]", element))
                    at += _SCALAR_SIZES[element]
            return at
        fields.append(Field("scalar", at, _SCALAR_SIZES[type_id], what, type_id))
        return at + _SCALAR_SIZES[type_id]

    for _ in range(kv_count):
        start = pos
        key = data[pos + 8 : pos + 8 + u64(pos)].decode()
        pos = string(pos, f"key {key}")
        fields.append(Field("value-type", pos, 4, key))
        type_id = u32(pos)
        pos = value(pos + 4, type_id, key, 0)
        seed.entries.append((start, pos))
    for _ in range(tensor_count):
        start = pos
        name = data[pos + 8 : pos + 8 + u64(pos)].decode()
        pos = string(pos, f"tensor {name} name")
        n_dims = u32(pos)
        fields.append(Field("n_dims", pos, 4, name))
        pos += 4
        for axis in range(n_dims):
            fields.append(Field("dim", pos, 8, f"{name} dims[{axis}]"))
            pos += 8
        fields.append(Field("ggml-type", pos, 4, name))
        fields.append(Field("offset", pos + 4, 8, name))
        pos += 12
        seed.infos.append((start, pos))
    seed.fields = fields
    seed.data_offset = (pos + 31) // 32 * 32


# ---- gguf: structure-aware byte mutations -----------------------------------------------------------------
def _field_value(rng: random.Random, f: Field, old: int) -> int:
    bits = 8 * f.size
    if f.kind in ("value-type", "array-type"):
        return rng.choice([*range(13), 13, 100, 0xFFFFFFFF])
    if f.kind == "ggml-type":
        return rng.choice([0, 1, 2, 3, 6, 8, 9, 12, 14, 15, 24, 26, 28, 30, 31, 39, 40, 1000, 0xFFFFFFFF])
    if f.kind == "version":
        return rng.choice([0, 1, 2, 3, 4, 0x03000000, 0xFFFFFFFF])
    if f.kind == "n_dims":
        return rng.choice([0, 1, 2, 3, 4, 5, 64, 0xFFFFFFFF])
    if f.kind == "offset":
        return rng.choice([0, old + 1, old + 32, max(0, old - 32), old * 2, 1 << 40, (1 << 64) - 32]) & ((1 << bits) - 1)
    if f.kind == "scalar" and f.value_type in (6, 12):  # float32 / float64: handled as floats
        return -1
    pool = EXTREME_INTS + [old + 1, max(0, old - 1), old * 2, old * 32, old // 2]
    return rng.choice(pool) & ((1 << bits) - 1)


def _write_field(out: bytearray, f: Field, rng: random.Random) -> str:
    old = int.from_bytes(out[f.offset : f.offset + f.size], "little")
    value = _field_value(rng, f, old)
    if value < 0:  # a float scalar
        number = rng.choice(EXTREME_FLOAT32)
        struct.pack_into("<f" if f.size == 4 else "<d", out, f.offset, number)
        return f"{f.kind} {f.what}={number}"
    out[f.offset : f.offset + f.size] = value.to_bytes(f.size, "little")
    return f"{f.kind} {f.what}: {old}->{value}"


def _nested_array(rng: random.Random) -> tuple[bytes, str]:
    """A value that is arrays of arrays: deep (past the nesting limit) or wide (many empty arrays)."""
    if rng.random() < 0.5:
        depth = rng.choice([15, 16, 17, 100, 100_000])
        return b"".join(struct.pack("<IQ", 9, 1) for _ in range(depth - 1)) + struct.pack("<IQ", 4, 0), f"nested {depth} deep"
    width = rng.choice([1000, 100_000])
    inner = struct.pack("<IQ", rng.choice([4, 8, 9]), 0)
    return struct.pack("<IQ", 9, width) + inner * width, f"{width} empty arrays"


def mutate_structure(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    out = bytearray(seed.data)
    kind = rng.choice(["field"] * 6 + ["entry", "entry", "nest", "retype", "retype", "tensor", "tensor", "bytes", "truncate"])
    if kind == "field":
        steps = [_write_field(out, rng.choice(seed.fields), rng) for _ in range(rng.choice([1, 1, 2]))]
        return bytes(out), "; ".join(steps)
    if kind == "entry":  # delete, repeat or swap a whole metadata entry or tensor info
        table, count_at = (seed.entries, 16) if rng.random() < 0.6 else (seed.infos, 8)
        start, end = rng.choice(table)
        action = rng.choice(["delete", "repeat", "delete-keep-count", "repeat-keep-count"])
        chunk = bytes(out[start:end])
        if action.startswith("delete"):
            del out[start:end]
            change = -1
        else:
            out[end:end] = chunk
            change = 1
        if not action.endswith("keep-count"):
            struct.pack_into("<Q", out, count_at, struct.unpack_from("<Q", out, count_at)[0] + change)
        return bytes(out), f"entry {action} at {start}"
    if kind == "nest":  # one metadata value replaced by nested arrays
        start, end = rng.choice(seed.entries)
        key_end = start + 8 + struct.unpack_from("<Q", out, start)[0]
        value, description = _nested_array(rng)
        out[key_end:end] = struct.pack("<I", 9) + value
        return bytes(out), f"nest: entry at {start} is {description}"
    if kind == "retype":
        return _retype_value(rng, seed)
    if kind == "tensor":
        return _change_tensor(rng, seed)
    if kind == "truncate":
        cut = rng.choice([0, 3, 8, 23, 24, rng.randrange(24, seed.data_offset), seed.data_offset,
                          rng.randrange(seed.data_offset, len(out)), len(out) - 1])
        return bytes(out[:cut]), f"truncated at {cut} of {len(out)}"
    mutated, steps = mutate_bytes(rng, bytes(out), [(0, seed.data_offset)])
    return mutated, f"bytes {steps}"


_RETYPED: list[tuple[str, Any]] = [
    ("UINT32", 0), ("UINT32", 1), ("UINT32", 3), ("UINT32", 4), ("UINT32", 8), ("UINT32", 64), ("UINT32", 0xFFFFFFFF), ("INT32", -1), ("INT32", -(2**31)),
    ("UINT64", 2**63), ("UINT64", 2**20), ("UINT64", 2**20 + 1), ("INT64", -1), ("UINT8", 7), ("INT16", -3),
    ("FLOAT32", float("nan")), ("FLOAT32", float("inf")), ("FLOAT32", 0.0), ("FLOAT32", -1.0), ("FLOAT32", 1e-45),
    ("FLOAT32", 128.0), ("FLOAT64", 1e308), ("STRING", "llama"), ("STRING", ""), ("STRING", "yarn"), ("STRING", "linear"),
    ("BOOL", True), ("ARRAY", ("UINT32", [1, 2])), ("ARRAY", ("STRING", [])),
]
_EXTRA_KEYS = ["general.alignment", "llama.rope.scaling.type", "llama.rope.scaling.factor", "llama.expert_count",
               "llama.attention.key_length", "llama.attention.value_length", "llama.rope.scale_linear", "general.architecture"]


def _retype_value(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    """A model key given another type or value (or a new key added), the file written again."""
    g = _gguf()
    metadata = list(seed.metadata)
    model_keys = [i for i, kv in enumerate(metadata) if not kv.key.startswith("tokenizer.")]
    type_name, value = rng.choice(_RETYPED)
    type_id = getattr(g, type_name)
    if type_id == g.ARRAY:
        value = g.Array(getattr(g, value[0]), value[1])
    if rng.random() < 0.3:
        key = rng.choice(_EXTRA_KEYS)
        metadata = [kv for kv in metadata if kv.key != key] + [g.KV(key, type_id, value)]
    else:
        index = rng.choice(model_keys)
        key = metadata[index].key
        metadata[index] = g.KV(key, type_id, value)
    alignment = 32  # what the writer pads to; a general.alignment it was not written with is a broken file
    # ... and written with only when that is small: padding to 2^40 would write a terabyte (and
    # offsets past 2^64 cannot be written at all)
    if (key == "general.alignment" and isinstance(value, int) and 0 < value <= 4096 and value & (value - 1) == 0
            and rng.random() < 0.5):
        alignment = value
    data = seed.build(metadata, alignment=alignment)
    return data, f"retype {key} = {type_name} {value!r:.40}"


def _change_tensor(rng: random.Random, seed: Seed) -> tuple[bytes, str]:
    """A tensor retyped, reshaped, renamed, poisoned with NaN, dropped, or one added; written again."""
    g = _gguf()
    tensors = list(seed.tensors)
    index = rng.randrange(len(tensors))
    t = tensors[index]
    action = rng.choice(["type", "dims", "name", "nan", "drop", "add", "rope_freqs"])
    if action == "type":  # the data stays: its size now disagrees, unless the types have the same geometry
        tensors[index] = replace(t, type_id=rng.choice([g.F32, g.F16, g.Q4_0, g.Q4_1, g.Q8_0, g.Q4_K, g.Q6_K, g.BF16, g.Q5_0, g.I32, g.F64]))
    elif action == "dims":
        dims = list(t.dims)
        choice = rng.randrange(4)
        if choice == 0:
            dims = dims[::-1]
        elif choice == 1:
            dims[rng.randrange(len(dims))] *= 2
        elif choice == 2:
            dims = dims + [1]
        else:
            dims = [int(np.prod(dims))]
        tensors[index] = replace(t, dims=tuple(dims))
    elif action == "name":
        tensors[index] = replace(t, name=rng.choice(["blk.2.attn_q.weight", "blk.0.attn_q.bias", "token_embd.weight",
                                                     "output.weight", "blk.01.ffn_up.weight", "x" * 300, ""]))
    elif action == "nan":
        if t.type_id == g.F32:
            tensors[index] = replace(t, data=np.full(len(t.data) // 4, rng.choice([np.nan, np.inf, 1e38]), "<f4").tobytes())
        else:  # a float16 scale of inf / NaN in every block
            blocks = bytearray(t.data)
            size = 34 if t.type_id == g.Q8_0 else 20
            for start in range(0, len(blocks), size):
                blocks[start : start + 2] = rng.choice([b"\x00\x7c", b"\x00\x7e", b"\xff\x7b"])
            tensors[index] = replace(t, data=bytes(blocks))
    elif action == "drop":
        del tensors[index]
    elif action == "add":
        tensors.append(g.Tensor(rng.choice(["blk.0.attn_q.weight", "extra.weight", "blk.5.ffn_up.weight"]), (32,), g.F32, bytes(128)))
    else:  # Llama 3.1's scaled RoPE: rope_freqs.weight, [head_dim/2] float32 factors
        values = rng.choice([[1.0] * 8, [8.0] * 8, [0.0] * 8, [float("nan")] * 8, [1.0] * 7, [-1.0] * 8])
        tensors.append(g.Tensor("rope_freqs.weight", (len(values),), g.F32, np.asarray(values, "<f4").tobytes()))
    try:
        return seed.build(tensors=tensors), f"tensor {action} {t.name}"
    except (ValueError, KeyError):
        return seed.build(), f"tensor {action} {t.name} (not writable: seed as is)"


def _prepare(work: Path) -> list[Seed]:
    return make_seeds()


def _mutate_gguf(rng: random.Random, seeds: list[Seed], case: Path) -> tuple[Path, str]:
    seed = rng.choice(seeds)
    data, description = mutate_structure(rng, seed)
    path = case / "model.gguf"
    path.write_bytes(data)
    return path, f"{seed.name}: {description}"


def load_gguf_case(path: Path, _seeds: Any) -> None:
    from llamanuts.model.loader import load_model

    exercise_loaded(load_model(path))


def _warm_up(seeds: list[Seed]) -> None:
    """Every seed loads and runs. (The quantized seed's forward pass may be a DTypeError while the
    engine has no quantized kernels for Embedding / LinearTransformation: then its cases end there,
    refused, after the whole file was parsed, checked and mapped, and its vocab exercised.)"""
    import tempfile

    from llamanuts.common.errors import DTypeError

    with tempfile.TemporaryDirectory() as folder:
        for seed in seeds:
            path = Path(folder) / f"{seed.name}.gguf"
            path.write_bytes(seed.data)
            try:
                load_gguf_case(path, seeds)
            except DTypeError:
                if seed.name != "bpe-q8-q4":
                    raise


# ---- gguf-tokenizer: the vocab keys, as values -----------------------------------------------------------
def _set(metadata: list[Any], key: str, type_id: int | None, value: Any) -> list[Any]:
    g = _gguf()
    out = [kv for kv in metadata if kv.key != key]
    if type_id is not None:
        out.append(g.KV(key, type_id, value))
    return out


def _get(metadata: list[Any], key: str) -> Any:
    return next((kv for kv in metadata if kv.key == key), None)


def mutate_tokenizer_keys(rng: random.Random, seed: Seed) -> tuple[list[Any], str]:
    g = _gguf()
    metadata = list(seed.metadata)
    steps = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.choice(["tokens", "tokens", "merges", "merges", "types", "types", "scores", "ids", "ids",
                           "flags", "names", "template"])
        p = "tokenizer.ggml."
        if kind == "tokens":
            tokens = list(_get(seed.metadata, p + "tokens").value.items)
            i, j = rng.randrange(len(tokens)), rng.randrange(len(tokens))
            action = rng.choice(["empty", "empty-special", "duplicate", "long", "special-text", "byte-text", "swap",
                                 "drop-last", "append", "not-strings", "empty-list"])
            if action == "empty":
                tokens[i] = ""
            elif action == "empty-special":
                tokens[rng.choice([0, 1, 2])] = ""
            elif action == "duplicate":
                tokens[i] = tokens[j]
            elif action == "long":
                tokens[i] = "x" * rng.choice([1000, 100_000])
            elif action == "special-text":
                tokens[i] = rng.choice(["<|im_end|>", "<s>", "</s>", "<think>", " ", "\u2581"])
            elif action == "byte-text":
                tokens[i] = rng.choice(["<0x41>", "<0xZZ>", "<0x4>", "Ġ"])
            elif action == "swap":
                tokens[i], tokens[j] = tokens[j], tokens[i]
            elif action == "drop-last":
                tokens = tokens[:-1]
            elif action == "append":
                tokens.append("appended")
            if action == "not-strings":
                metadata = _set(metadata, p + "tokens", g.ARRAY, g.Array(g.UINT32, list(range(len(tokens)))))
            elif action == "empty-list":
                metadata = _set(metadata, p + "tokens", g.ARRAY, g.Array(g.STRING, []))
            else:
                metadata = _set(metadata, p + "tokens", g.ARRAY, g.Array(g.STRING, tokens))
            steps.append(f"tokens {action} {i} {j}")
        elif kind == "merges":
            found = _get(seed.metadata, p + "merges")
            merges = list(found.value.items) if found is not None else ["a b"]
            i = rng.randrange(len(merges))
            action = rng.choice(["empty", "one-token", "three-tokens", "unknown", "builds-special", "duplicate",
                                 "reverse", "delete-key", "not-strings", "space-token", "repeat-many"])
            if action == "empty":
                merges[i] = ""
            elif action == "one-token":
                merges[i] = "Ġ"
            elif action == "three-tokens":
                merges[i] = "t h e"
            elif action == "unknown":
                merges[i] = "zz qq"
            elif action == "builds-special":
                merges.append("<|im_ end|>")
            elif action == "duplicate":
                merges.insert(0, merges[i])
            elif action == "reverse":
                merges.reverse()
            elif action == "space-token":
                merges[i] = "Ġ  "
            elif action == "repeat-many":
                merges = merges * 200
            if action == "delete-key":
                metadata = _set(metadata, p + "merges", None, None)
            elif action == "not-strings":
                metadata = _set(metadata, p + "merges", g.ARRAY, g.Array(g.INT32, [1, 2, 3]))
            else:
                metadata = _set(metadata, p + "merges", g.ARRAY, g.Array(g.STRING, merges))
            steps.append(f"merges {action} {i}")
        elif kind == "types":
            types = list(_get(seed.metadata, p + "token_type").value.items)
            action = rng.choice(["float", "bool", "uint64", "int8", "strings", "nested", "short", "value", "value",
                                 "byte-as-control", "all-control", "special-normal", "delete"])
            if action == "float":
                metadata = _set(metadata, p + "token_type", g.ARRAY, g.Array(g.FLOAT32, [float(t) for t in types]))
            elif action == "bool":
                metadata = _set(metadata, p + "token_type", g.ARRAY, g.Array(g.BOOL, [True] * len(types)))
            elif action == "uint64":
                metadata = _set(metadata, p + "token_type", g.ARRAY, g.Array(g.UINT64, [t + (1 << 63) * (i == 5) for i, t in enumerate(types)]))
            elif action == "int8":
                metadata = _set(metadata, p + "token_type", g.ARRAY, g.Array(g.INT8, types))
            elif action == "strings":
                metadata = _set(metadata, p + "token_type", g.ARRAY, g.Array(g.STRING, [str(t) for t in types]))
            elif action == "nested":
                metadata = _set(metadata, p + "token_type", g.ARRAY, g.Array(g.ARRAY, [g.Array(g.INT32, [t]) for t in types]))
            elif action == "short":
                metadata = _set(metadata, p + "token_type", g.ARRAY, g.Array(g.INT32, types[:-1]))
            elif action == "delete":
                metadata = _set(metadata, p + "token_type", None, None)
            else:
                i = rng.randrange(len(types))
                if action == "value":
                    types[i] = rng.choice([0, 7, -1, 2**31 - 1, 2, 5, 6, 4])
                elif action == "byte-as-control":
                    types[3 + rng.randrange(256)] = 3
                elif action == "all-control":
                    types = [3] * len(types)
                else:
                    types[rng.choice([0, 1, 2])] = 1
                metadata = _set(metadata, p + "token_type", g.ARRAY, g.Array(g.INT32, types))
            steps.append(f"token_type {action}")
        elif kind == "scores":
            found = _get(seed.metadata, p + "scores")
            count = len(_get(seed.metadata, p + "tokens").value.items)
            action = rng.choice(["nan", "inf", "short", "ints", "strings", "equal", "delete"])
            values = list(found.value.items) if found is not None else [0.0] * count
            if action in ("nan", "inf"):
                values[rng.randrange(len(values))] = float(action)
                metadata = _set(metadata, p + "scores", g.ARRAY, g.Array(g.FLOAT32, values))
            elif action == "short":
                metadata = _set(metadata, p + "scores", g.ARRAY, g.Array(g.FLOAT32, values[:-3]))
            elif action == "ints":
                metadata = _set(metadata, p + "scores", g.ARRAY, g.Array(g.INT32, [int(v) for v in values]))
            elif action == "strings":
                metadata = _set(metadata, p + "scores", g.ARRAY, g.Array(g.STRING, ["0"] * len(values)))
            elif action == "equal":
                metadata = _set(metadata, p + "scores", g.ARRAY, g.Array(g.FLOAT32, [0.0] * len(values)))
            else:
                metadata = _set(metadata, p + "scores", None, None)
            steps.append(f"scores {action}")
        elif kind == "ids":
            count = len(_get(seed.metadata, p + "tokens").value.items)
            key = p + rng.choice(["bos_token_id", "eos_token_id", "unknown_token_id", "padding_token_id", "eot_token_id",
                                  "eom_token_id"])
            type_name, value = rng.choice([("UINT32", count), ("UINT32", count - 1), ("UINT32", 0xFFFFFFFF), ("INT32", -1),
                                           ("UINT64", 2**63), ("FLOAT32", 1.0), ("STRING", "1"), ("BOOL", True),
                                           ("UINT32", 3 + 0x41), ("UINT32", count - 2), (None, None)])
            value_type = None if type_name is None else getattr(g, type_name)
            metadata = _set(metadata, key, value_type, value)
            steps.append(f"{key} = {type_name} {value}")
        elif kind == "flags":
            key = p + rng.choice(["add_bos_token", "add_eos_token", "add_space_prefix"])
            type_name, value = rng.choice([("BOOL", True), ("BOOL", False), ("UINT8", 1), ("STRING", "true"), (None, None)])
            metadata = _set(metadata, key, None if type_name is None else getattr(g, type_name), value)
            steps.append(f"{key} = {type_name} {value}")
        elif kind == "names":
            key = p + rng.choice(["model", "pre"])
            type_name, value = rng.choice([("STRING", "gpt2"), ("STRING", "llama"), ("STRING", "bert"), ("STRING", ""),
                                           ("STRING", "llama-bpe"), ("STRING", "qwen2"), ("STRING", "default"),
                                           ("UINT32", 1), (None, None)])
            metadata = _set(metadata, key, None if type_name is None else getattr(g, type_name), value)
            steps.append(f"{key} = {type_name} {value!r}")
        else:
            from tools.fuzz_jinja import HOSTILE_SNIPPETS

            choice = rng.choice(["snippet", "snippet", "empty", "not-string", "delete", "other"])
            key = "tokenizer.chat_template"
            if choice == "snippet":
                name, snippet = rng.choice(HOSTILE_SNIPPETS)
                template = _get(seed.metadata, key).value
                metadata = _set(metadata, key, g.STRING, template + snippet)
                steps.append(f"chat_template + {name}")
                continue
            value = {"empty": (g.STRING, ""), "not-string": (g.ARRAY, g.Array(g.STRING, ["x"])), "delete": (None, None),
                     "other": (g.STRING, LLAMA2_TEMPLATE if seed.name == "bpe" else CHATML)}[choice]
            metadata = _set(metadata, key, *value)
            steps.append(f"chat_template {choice}")
    return metadata, "; ".join(steps)


def _mutate_tokenizer(rng: random.Random, seeds: list[Seed], case: Path) -> tuple[Path, str]:
    seed = rng.choice(seeds[:2])  # the F32 ones: the vocab is what changes, the forward pass runs
    metadata, description = mutate_tokenizer_keys(rng, seed)
    path = case / "model.gguf"
    path.write_bytes(seed.build(metadata))
    return path, f"{seed.name}: {description}"


FORMATS = [
    FuzzFormat("gguf", "a tiny llama GGUF (F32, Q8_0, Q4_1; BPE and SentencePiece vocabs): counts, types, lengths, "
               "nesting, entries, dims, ggml types, offsets, alignment, values, tensors, bytes",
               _prepare, _mutate_gguf, load_gguf_case, warm_up=_warm_up),
    FuzzFormat("gguf-tokenizer", "the vocab keys of those GGUFs: tokens, merges, token types, scores, ids, flags, "
               "model and pre names, chat template", _prepare, _mutate_tokenizer, load_gguf_case, warm_up=_warm_up),
]

__all__ = ["FORMATS", "Seed", "gpt2_vocab", "make_seeds", "spm_vocab"]
