"""Fuzz formats for Hugging Face model directories: the safetensors weights, and the JSON and template
files beside them.

The seeds are the repository's two tiny Hugging Face fixtures (tests/fixtures/hf: a float32 Llama 3.2
shape with tied embeddings, a byte-level BPE tokenizer.json and chat_template.jinja; a bfloat16
Llama 2 shape with a SentencePiece-style tokenizer.json and its template in tokenizer_config.json)
and a sharded copy of the second, made here: two shards and model.safetensors.index.json.

`safetensors` changes the weights files knowing their layout: the 8-byte header length; the JSON
header's entries (dtype, shape, data_offsets, unknown keys, renamed, dropped or added tensors,
duplicate keys) and `__metadata__`; raw bytes of the JSON text; the data (NaN, cut, grown); and,
for the sharded seed, the index (shards that are missing or lead out of the directory, tensors in
the wrong shard or in none). `hf-directory` changes config.json, generation_config.json,
tokenizer_config.json (special tokens, add_bos_token, chat_template), tokenizer.json (vocab ids,
merges, added tokens, model / decoder / normalizer / pre-tokenizer types) and chat_template.jinja,
as JSON values or raw bytes, and replaces files with what is not a regular file. Each case loads
the directory as the CLI does, then runs a forward pass, samples a token, encodes and decodes text
and renders the model's chat template.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
from pathlib import Path
from typing import Any

from tools.fuzzkit import EXTREME_INTS, FIXTURES, FuzzFormat, Skip, exercise_loaded, mutate_bytes

SEED_DIRECTORIES = ("tiny-llama32-hf", "tiny-llama2-hf")
SHARDED = "tiny-llama2-hf-sharded"


# ---- the seeds ----------------------------------------------------------------------------------------
def split_safetensors(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack_from("<Q", data, 0)
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def join_safetensors(header: dict[str, Any] | bytes, body: bytes) -> bytes:
    """Header (a dict, or JSON text as is) padded with spaces to a multiple of 8, then the data."""
    text = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + body


def _shard(source: Path, target: Path) -> None:
    """A sharded copy of `source`: its tensors in two files, listed by model.safetensors.index.json."""
    target.mkdir()
    for file in source.iterdir():
        if file.name != "model.safetensors":
            shutil.copy(file, target / file.name)
    header, body = split_safetensors((source / "model.safetensors").read_bytes())
    header.pop("__metadata__", None)
    names = list(header)
    weight_map: dict[str, str] = {}
    for part, chosen in enumerate((names[: len(names) // 2], names[len(names) // 2 :]), start=1):
        shard_name = f"model-0000{part}-of-00002.safetensors"
        shard_header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        chunks, offset = [], 0
        for name in chosen:
            begin, end = header[name]["data_offsets"]
            chunks.append(body[begin:end])
            shard_header[name] = {**header[name], "data_offsets": [offset, offset + end - begin]}
            offset += end - begin
            weight_map[name] = shard_name
        (target / shard_name).write_bytes(join_safetensors(shard_header, b"".join(chunks)))
    index = {"metadata": {"total_size": len(body)}, "weight_map": weight_map}
    (target / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _prepare(work: Path) -> dict[str, Path]:
    seeds: dict[str, Path] = {}
    for name in SEED_DIRECTORIES:
        source = FIXTURES / "hf" / name
        if not (source / "model.safetensors").is_file():
            raise Skip(f"{source} is absent")
        seeds[name] = source
    sharded = work / SHARDED
    if not sharded.exists():
        _shard(seeds["tiny-llama2-hf"], sharded)
    seeds[SHARDED] = sharded
    return seeds


def _case_directory(seed: Path, case: Path) -> Path:
    """The case's model directory: a link to each seed file; a mutation replaces the ones it changes."""
    model = case / seed.name
    model.mkdir()
    for file in seed.iterdir():
        (model / file.name).symlink_to(file)
    return model


def _replace(model: Path, name: str, data: bytes) -> None:
    target = model / name
    if target.is_symlink() or target.exists():
        target.unlink()
    target.write_bytes(data)


def load_hf_case(path: Path, _seeds: Any) -> None:
    from llamanuts.model.loader import load_model

    exercise_loaded(load_model(path))


def _warm_up(seeds: dict[str, Path]) -> None:
    for directory in seeds.values():
        load_hf_case(directory, seeds)


# ---- safetensors ---------------------------------------------------------------------------------------
_DTYPES = ["F64", "I8", "U8", "BOOL", "F8_E4M3", "X", "", 5, None, "bf16", "F16", "BF16", "F32", ["F32"]]
_OFFSET_CHANGES = ["+1 both", "swap", "end+1", "huge", "negative", "one", "three", "floats", "null", "strings", "shift-all"]


def _well_formed(entry: Any) -> bool:
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    return isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)


def _mutate_entry(rng: random.Random, header: dict[str, Any]) -> str:
    # Only entries an earlier mutation of this case left whole: a second mutation must not trip
    # over the first (an entry made null, or its offsets made strings).
    names = [n for n in header if n != "__metadata__" and _well_formed(header[n])]
    if not names:
        return "no whole entry left to mutate"
    name = rng.choice(names)
    entry = header[name]
    part = rng.choice(["dtype", "shape", "shape", "offsets", "offsets", "keys", "entry"])
    if part == "dtype":
        entry["dtype"] = rng.choice(_DTYPES)
        return f"{name} dtype={entry['dtype']!r}"
    if part == "shape":
        shape = list(entry["shape"])
        action = rng.choice(["append1", "prepend1", "drop", "plus1", "double", "swap", "negative", "float", "string",
                             "huge", "empty", "nine", "hundred", "nested", "null"])
        if action == "append1":
            shape.append(1)
        elif action == "prepend1":
            shape.insert(0, 1)
        elif action == "drop":
            shape = shape[1:]
        elif action in ("plus1", "double", "negative", "float", "string", "huge") and shape:
            i = rng.randrange(len(shape))
            shape[i] = {"plus1": shape[i] + 1, "double": shape[i] * 2, "negative": -shape[i], "float": float(shape[i]),
                        "string": str(shape[i]), "huge": 2**64 + 1}[action]
        elif action == "swap":
            shape = shape[::-1]
        elif action == "empty":
            shape = []
        elif action == "nine":
            shape = [1] * 9
        elif action == "hundred":
            shape = [0] + [1] * 99
        elif action == "nested":
            shape = [shape]
        else:
            shape = None
        entry["shape"] = shape
        return f"{name} shape {action}"
    if part == "offsets":
        begin, end = entry["data_offsets"]
        action = rng.choice(_OFFSET_CHANGES)
        if action == "shift-all":
            step = rng.choice([1, 2, 4, 8, -8])
            for other in names:
                b, e = header[other]["data_offsets"]
                header[other]["data_offsets"] = [b + step, e + step]
            return f"all data_offsets {step:+d}"
        entry["data_offsets"] = {
            "+1 both": [begin + 1, end + 1], "swap": [end, begin], "end+1": [begin, end + 1], "huge": [0, 2**63],
            "negative": [-1, end], "one": [begin], "three": [begin, end, end], "floats": [float(begin), float(end)],
            "null": None, "strings": [str(begin), str(end)],
        }[action]
        return f"{name} data_offsets {action}"
    if part == "keys":
        action = rng.choice(["delete", "extra"])
        if action == "delete":
            del entry[rng.choice(list(entry))]
        else:
            entry["extra"] = 1
        return f"{name} keys {action}"
    action = rng.choice(["rename-unknown", "rename-layer", "drop", "copy", "list", "string", "null"])
    if action == "rename-unknown":
        header["model.layers.0.self_attn.q_proj.bias"] = header.pop(name)
    elif action == "rename-layer":
        header["model.layers.99.mlp.up_proj.weight"] = header.pop(name)
    elif action == "drop":
        del header[name]
    elif action == "copy":
        header[name + ".copy"] = dict(entry)  # overlaps the original's bytes
    else:
        header[name] = {"list": [], "string": "x", "null": None}[action]
    return f"{name} entry {action}"


def _mutate_metadata(rng: random.Random, header: dict[str, Any]) -> str:
    value = rng.choice([{"format": 5}, [], "x", {"a": {"b": 1}}, {"format": "pt" * 100000}, None, {"format": "np"}])
    if value is None:
        header.pop("__metadata__", None)
    else:
        header["__metadata__"] = value
    return f"__metadata__ = {str(value)[:30]}"


def _json_text(rng: random.Random, header: dict[str, Any]) -> tuple[bytes, str]:
    text = json.dumps(header, separators=(",", ":")).encode()
    action = rng.choice(["bytes", "bytes", "deep", "big-number", "nan", "duplicate-key", "bom", "not-utf8", "not-object"])
    if action == "bytes":
        mutated, steps = mutate_bytes(rng, text)
        return mutated, f"header text bytes {steps}"
    if action == "deep":
        depth = rng.choice([1000, 100_000])
        return text[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}", f"header nested {depth} deep"
    if action == "big-number":
        return text.replace(b'"data_offsets":[0,', b'"data_offsets":[' + rng.choice([b"1e999", b"9" * 5000]) + b",", 1), "big number"
    if action == "nan":
        return text.replace(b'"data_offsets":[0,', b'"data_offsets":[NaN,', 1), "NaN offset"
    if action == "duplicate-key":
        first = next(n for n in header if n != "__metadata__")
        return text[:-1] + b"," + json.dumps({first: header[first]})[1:-1].encode() + b"}", "duplicate key"
    if action == "bom":
        return b"\xef\xbb\xbf" + text, "BOM"
    if action == "not-utf8":
        return text.replace(b"weight", b"w\xffight", 1), "invalid UTF-8"
    return json.dumps(list(header)).encode(), "header is a list"


def _mutate_weights_file(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    header, body = split_safetensors(data)
    kind = rng.choice(["length", "entry", "entry", "entry", "metadata", "text", "text", "data"])
    if kind == "length":
        out = bytearray(data)
        (old,) = struct.unpack_from("<Q", out, 0)
        value = rng.choice(EXTREME_INTS + [old + 1, old - 1, old + 8, max(0, old - 8), len(data), 1, 0])
        out[:8] = (value & (2**64 - 1)).to_bytes(8, "little")
        return bytes(out), f"header length {old}->{value}"
    if kind == "entry":
        description = "; ".join(_mutate_entry(rng, header) for _ in range(rng.choice([1, 1, 2])))
        return join_safetensors(header, body), description
    if kind == "metadata":
        description = _mutate_metadata(rng, header)
        return join_safetensors(header, body), description
    if kind == "text":
        text, description = _json_text(rng, header)
        return join_safetensors(text, body), description
    action = rng.choice(["nan", "inf", "cut", "grow", "flip", "empty"])
    body = bytearray(body)
    if action in ("nan", "inf"):
        name = rng.choice([n for n in header if n != "__metadata__"])
        begin, end = header[name]["data_offsets"]
        value = b"\x00\x00\xc0\x7f" if action == "nan" else b"\x00\x00\x80\x7f"  # float32; as bf16 pairs too
        body[begin:end] = (value * ((end - begin) // 4 + 1))[: end - begin]
    elif action == "cut":
        body = body[: rng.randrange(len(body))]
    elif action == "grow":
        body += bytes(rng.choice([1, 8, 4096]))
    elif action == "flip":
        for _ in range(rng.choice([1, 10, 1000])):
            body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
    else:
        body = bytearray()
    return join_safetensors(header, bytes(body)), f"data {action}"


def _mutate_index(rng: random.Random, model: Path) -> str:
    index = json.loads((model / "model.safetensors.index.json").read_text())
    weight_map = index["weight_map"]
    names = list(weight_map)
    shards = sorted(set(weight_map.values()))
    name = rng.choice(names)
    action = rng.choice(["other-shard", "outside", "absolute", "missing", "empty", "number", "null", "drop", "extra",
                         "map-list", "map-empty", "total-size", "remove-index", "remove-shard", "single-too", "raw"])
    if action == "other-shard":
        weight_map[name] = next(s for s in shards if s != weight_map[name])
    elif action in ("outside", "absolute", "missing", "empty", "number", "null"):
        weight_map[name] = {"outside": "../tiny-llama32-hf/model.safetensors", "absolute": "/etc/passwd",
                            "missing": "model-00003-of-00002.safetensors", "empty": "", "number": 5, "null": None}[action]
    elif action == "drop":
        del weight_map[name]
    elif action == "extra":
        weight_map["model.layers.0.extra.weight"] = shards[0]
    elif action == "map-list":
        index["weight_map"] = names
    elif action == "map-empty":
        index["weight_map"] = {}
    elif action == "total-size":
        index["metadata"] = {"total_size": rng.choice([-1, "x", 2**70])}
    elif action == "remove-index":
        (model / "model.safetensors.index.json").unlink()
        return "index removed"
    elif action == "remove-shard":
        (model / rng.choice(shards)).unlink()
        return "a shard removed"
    elif action == "single-too":
        (model / "model.safetensors").symlink_to(FIXTURES / "hf" / "tiny-llama2-hf" / "model.safetensors")
        return "model.safetensors beside the shards"
    else:
        mutated, steps = mutate_bytes(rng, (model / "model.safetensors.index.json").read_bytes())
        _replace(model, "model.safetensors.index.json", mutated)
        return f"index bytes {steps}"
    _replace(model, "model.safetensors.index.json", json.dumps(index).encode())
    return f"index {action} {name}"


def _mutate_safetensors(rng: random.Random, seeds: dict[str, Path], case: Path) -> tuple[Path, str]:
    name = rng.choice(sorted(seeds))
    model = _case_directory(seeds[name], case)
    if name == SHARDED and rng.random() < 0.4:
        return model, f"{name}: {_mutate_index(rng, model)}"
    files = sorted(p.name for p in model.iterdir() if p.name.endswith(".safetensors"))
    target = rng.choice(files)
    data, description = _mutate_weights_file(rng, (model / target).read_bytes())
    _replace(model, target, data)
    return model, f"{name} {target}: {description}"


# ---- hf-directory: config.json, generation_config.json, tokenizer files, template -------------------------
_CONFIG_KEYS = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "rms_norm_eps", "rope_theta", "max_position_embeddings", "vocab_size", "tie_word_embeddings",
                "architectures", "model_type", "hidden_act", "attention_bias", "mlp_bias", "rope_scaling",
                "rope_parameters", "dtype", "bos_token_id", "eos_token_id"]
_VALUES: list[Any] = [0, -1, 1, 2, 3, 16, 31, 33, 64, 127, 129, 320, 321, 2**21, 2**21 + 1, 2**31, 2**63, 2**64, -2**63,
                      1e-300, 1e308, -1e308, float("nan"), float("inf"), float("-inf"), 0.5, 1.5, 16.0, "x", "16", None,
                      True, False, [], {}, [16], ["LlamaForCausalLM"], ["MistralForCausalLM"], "llama", "mistral", "gelu",
                      10**400]
_ROPE_VALUES: list[Any] = [
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
    {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0, "original_max_position_embeddings": 16},
    {"rope_type": "llama3", "factor": 0.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 0},
    {"rope_type": "llama3"}, {"rope_type": "yarn", "factor": 4.0}, {"type": "linear", "factor": 2.0},
    {"rope_type": "default", "rope_theta": -1}, {"rope_type": "default", "rope_theta": float("nan")}, "llama3", [1],
]


def _json_dumps(value: Any, rng: random.Random) -> bytes:
    return json.dumps(value, indent=rng.choice([None, 2]), allow_nan=True).encode()


def _mutate_config(rng: random.Random, config: dict[str, Any]) -> str:
    steps = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        key = rng.choice(_CONFIG_KEYS)
        action = rng.choice(["set", "set", "set", "delete", "add"])
        if action == "set":
            config[key] = rng.choice(_ROPE_VALUES + [None]) if key.startswith("rope_") and key != "rope_theta" else rng.choice(_VALUES)
            steps.append(f"{key}={str(config[key])[:30]}")
        elif action == "delete":
            config.pop(key, None)
            steps.append(f"-{key}")
        else:
            config[f"extra_{rng.randrange(5)}"] = rng.choice(_VALUES)
            steps.append("+extra")
    return " ".join(steps)


_TOKEN_VALUES: list[Any] = ["nope", {"content": 5}, {"content": "<s>"}, {"content": "<|im_end|>"}, 5, None, "", "<unk>",
                            "<|endoftext|>", ["<s>"], {"content": "x" * 100000}]


def _mutate_tokenizer_config(rng: random.Random, config: dict[str, Any]) -> str:
    from tools.fuzz_jinja import HOSTILE_SNIPPETS

    key = rng.choice(["bos_token", "eos_token", "unk_token", "add_bos_token", "chat_template", "chat_template"])
    if key == "add_bos_token":
        config[key] = rng.choice([1, "yes", None, True, False, []])
    elif key == "chat_template":
        name, snippet = rng.choice(HOSTILE_SNIPPETS)
        config[key] = rng.choice([
            str(config.get(key) or "") + snippet, [{"name": "default", "template": snippet}],
            [{"name": "tool_use", "template": snippet}], [{"template": 5}], 5, "", None, {"a": 1},
        ])
        return f"chat_template ({name}) {str(config[key])[:40]!r}"
    else:
        config[key] = rng.choice(_TOKEN_VALUES)
    return f"{key}={str(config[key])[:30]!r}"


def _mutate_generation_config(rng: random.Random, config: dict[str, Any]) -> str:
    key = rng.choice(["eos_token_id", "eos_token_id", "bos_token_id"])
    config[key] = rng.choice([[], [1, 99999], -1, 2**40, "x", 1.5, True, [[1]], None, 319, 320, [2, 2, 2], list(range(320))])
    return f"{key}={str(config[key])[:30]}"


def _mutate_tokenizer_json(rng: random.Random, spec: dict[str, Any]) -> str:
    model = spec["model"]
    vocab: dict[str, int] = model["vocab"]
    tokens = list(vocab)
    part = rng.choice(["vocab", "vocab", "merges", "merges", "added", "added", "model-type", "decoder", "normalizer",
                       "pre_tokenizer", "post_processor", "truncation"])
    if part == "vocab":
        token = rng.choice(tokens)
        action = rng.choice(["delete", "huge-id", "negative-id", "duplicate-id", "float-id", "gap", "empty-token"])
        if action == "delete":
            del vocab[token]
        elif action == "huge-id":
            vocab[token] = rng.choice([2**31, 2**40, 100_000])
        elif action == "negative-id":
            vocab[token] = -1
        elif action == "duplicate-id":
            vocab[token] = vocab[rng.choice(tokens)]
        elif action == "float-id":
            vocab[token] = 1.5
        elif action == "gap":
            vocab[token] = len(vocab) + 5
        else:
            vocab[""] = len(vocab)
        return f"vocab {action} {token!r}"
    if part == "merges":
        merges = model.get("merges") or []
        action = rng.choice(["unknown", "malformed", "three", "string-form", "drop-all", "reverse", "not-list"])
        if action == "unknown" and merges:
            merges[rng.randrange(len(merges))] = ["zz", "qq"]
        elif action == "malformed" and merges:
            merges[rng.randrange(len(merges))] = ["a"]
        elif action == "three" and merges:
            merges[rng.randrange(len(merges))] = ["a", "b", "c"]
        elif action == "string-form":
            model["merges"] = [" ".join(m) if isinstance(m, list) else m for m in merges] + ["x"]
        elif action == "drop-all":
            model["merges"] = []
        elif action == "reverse":
            merges.reverse()
        else:
            model["merges"] = 5
        return f"merges {action}"
    if part == "added":
        added = spec["added_tokens"]
        entry = rng.choice(added) if added else {}
        action = rng.choice(["id-huge", "id-negative", "empty", "special-flip", "duplicate", "new", "content-int"])
        if action == "id-huge":
            entry["id"] = rng.choice([2**31, 10**6, 1000])
        elif action == "id-negative":
            entry["id"] = -1
        elif action == "empty":
            entry["content"] = ""
        elif action == "special-flip":
            entry["special"] = not entry.get("special", False)
        elif action == "duplicate":
            added.append(dict(entry))
        elif action == "new":
            added.append({"id": rng.choice([len(vocab), len(vocab) + 100, 5]), "content": rng.choice(["<think>", "the", " "]),
                          "single_word": False, "lstrip": False, "rstrip": False, "normalized": rng.random() < 0.5,
                          "special": rng.random() < 0.5})
        else:
            entry["content"] = 5
        return f"added_tokens {action}"
    if part == "model-type":
        model["type"] = rng.choice(["WordPiece", "Unigram", "WordLevel", "X", None])
        return f"model type {model['type']}"
    if part == "decoder":
        spec["decoder"] = rng.choice([
            {"type": "Unknown"}, {"type": "Replace", "pattern": {"Regex": "a+"}, "content": "b"}, {"type": "Strip", "content": " ", "start": 5, "stop": 1},
            {"type": "Sequence", "decoders": [{"type": "Sequence", "decoders": []}] * 3}, None, {"type": "ByteLevel"},
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "never"}, {"type": "WordPiece", "prefix": "##"},
            {"type": "Sequence", "decoders": "x"}, {"type": "Strip", "content": " ", "start": "x", "stop": 0},
        ])
        return f"decoder {str(spec['decoder'])[:40]}"
    if part == "normalizer":
        spec["normalizer"] = rng.choice([{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Replace", "pattern": {"Regex": "(a*)*b"}, "content": "x"},
                                         {"type": "Prepend", "prepend": "▁" * 1000}, {"type": "X"}, None, 5])
        return f"normalizer {str(spec['normalizer'])[:40]}"
    if part == "pre_tokenizer":
        spec["pre_tokenizer"] = rng.choice([
            {"type": "Split", "pattern": {"Regex": "(a*)*b"}, "behavior": "Isolated", "invert": False},
            {"type": "Split", "pattern": {"Regex": "["}, "behavior": "Isolated", "invert": False},
            {"type": "Whitespace"}, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            {"type": "Digits", "individual_digits": True}, {"type": "X"}, None,
        ])
        return f"pre_tokenizer {str(spec['pre_tokenizer'])[:40]}"
    if part == "post_processor":
        spec["post_processor"] = rng.choice([
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<nope>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {}},
            {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [], "special_tokens": {"<s>": {"id": "<s>", "ids": [10**6], "tokens": ["<s>"]}}},
            {"type": "X"}, None,
        ])
        return f"post_processor {str(spec['post_processor'])[:40]}"
    spec["truncation"] = rng.choice([{"max_length": 0, "strategy": "LongestFirst", "stride": 0, "direction": "Right"},
                                     {"max_length": 1}, "x"])
    return f"truncation {spec['truncation']}"


def _not_a_regular_file(model: Path, name: str, rng: random.Random) -> str:
    target = model / name
    if target.is_symlink() or target.exists():
        target.unlink()
    kind = rng.choice(["directory", "fifo", "dev-zero", "dangling", "empty"])
    if kind == "directory":
        target.mkdir()
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "dev-zero":
        target.symlink_to("/dev/zero")
    elif kind == "dangling":
        target.symlink_to(model / "nowhere")
    else:
        target.write_bytes(b"")
    return f"{name} is a {kind}"


def _mutate_directory(rng: random.Random, seeds: dict[str, Path], case: Path) -> tuple[Path, str]:
    from tools.fuzz_jinja import HOSTILE_SNIPPETS

    name = rng.choice(SEED_DIRECTORIES)
    model = _case_directory(seeds[name], case)
    files = sorted(p.name for p in model.iterdir() if p.name.endswith((".json", ".jinja")))
    target = rng.choice(files)
    original = (model / target).read_bytes()
    roll = rng.random()
    if roll < 0.08:
        return model, f"{name}: {_not_a_regular_file(model, target, rng)}"
    if roll < 0.25:
        mutated, steps = mutate_bytes(rng, original)
        _replace(model, target, mutated)
        return model, f"{name} {target}: bytes {steps}"
    if target.endswith(".jinja"):
        snippet_name, snippet = rng.choice(HOSTILE_SNIPPETS)
        _replace(model, target, (original.decode() + snippet).encode("utf-8", errors="surrogatepass"))
        return model, f"{name} {target}: + {snippet_name}"
    value = json.loads(original)
    mutate = {"config.json": _mutate_config, "generation_config.json": _mutate_generation_config,
              "tokenizer_config.json": _mutate_tokenizer_config, "tokenizer.json": _mutate_tokenizer_json}[target]
    description = mutate(rng, value)
    _replace(model, target, _json_dumps(value, rng))
    return model, f"{name} {target}: {description}"


FORMATS = [
    FuzzFormat("safetensors", "two tiny Hugging Face directories and a sharded one: header length, JSON header "
               "entries (dtype, shape, data_offsets), __metadata__, header text, data, the shard index",
               _prepare, _mutate_safetensors, load_hf_case, warm_up=_warm_up),
    FuzzFormat("hf-directory", "their config.json, generation_config.json, tokenizer_config.json (chat_template), "
               "tokenizer.json and chat_template.jinja: values, raw bytes, not regular files",
               _prepare, _mutate_directory, load_hf_case, warm_up=_warm_up),
]

__all__ = ["FORMATS", "join_safetensors", "split_safetensors"]
