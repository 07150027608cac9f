"""Fuzzing every file format the loaders read: seeded, bounded mutations, each with a clean outcome.

    python -m tools.fuzz                          # every format, 200 cases each, seed 0
    python -m tools.fuzz --format pickle --cases 5000 --seed 7
    python -m tools.fuzz --format llama2c --seed 7 --case 1234   # replay one case, traceback shown
    python -m tools.fuzz --list

A case takes a real file of the format (a seed file), mutates it with a seeded random generator
(byte flips, truncations, insertions, field overwrites with extreme values, and mutations that
know the format: pickle opcodes, zip records, JSON fields, header ints, tokenizer records), and
hands it to the loader in process. The only acceptable outcomes are a load that works (the model
or tokenizer is then exercised a little: a forward pass, an encode/decode) or a `LlamaError` (the
CLI prints it and exits 2). Anything else fails the case: another exception (a traceback for the
user), a hang, a crash, or memory beyond the cap.

Each format's cases run in ONE child process with an address-space cap (RLIMIT_AS) and, per case,
an interval timer; the parent also watches the wall clock, so a hang inside C code (where no
signal is delivered) or a crash is caught, named by its case, and the batch continues from the
next case in a fresh child. Case `i` of format `f` with seed `s` always makes the same input.

The formats that came with GGUF, Hugging Face directories and chat templates live in their own
modules (tools/fuzz_gguf.py, tools/fuzz_hf.py, tools/fuzz_jinja.py), over what all formats share
(tools/fuzzkit.py). Adding a format: write a `prepare` (make or find the seed files; raise Skip
when they are absent), a `mutate` (write one mutated input, return its description) and a `load`
(load and exercise it), and add a `FuzzFormat` to FORMATS (or to such a module's FORMATS, which
`_newer_formats` collects). The CI test runs every format in it, with a case count of its own.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pickletools
import random
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import forge  # noqa: E402
from tools.fuzzkit import (  # noqa: E402
    EXTREME_FLOAT32,
    EXTREME_FLOATS,
    EXTREME_INTS,
    FIXTURES,
    REPO,
    SHARED_REFS,
    FuzzFormat,
    Skip,
    exercise_model as _exercise_model,
    exercise_tokenizer as _exercise_tokenizer,
    mutate_bytes,
    require as _require,
    write_file as _write,
)

DEFAULT_CASES = 200
DEFAULT_MEMORY = 3 << 30  # address space per child: numba and LLVM take ~1 GiB of it before any case
DEFAULT_CASE_SECONDS = 20.0  # a case (a load and a forward pass of a tiny model) takes milliseconds


# ---- pickle: opcode-aware -------------------------------------------------------------------------
_INT_OPS = {"BININT1": (b"K", 1), "BININT2": (b"M", 2), "BININT": (b"J", 4)}
_HOSTILE_SNIPPETS: list[tuple[str, Callable[[random.Random], bytes]]] = [
    ("deep-tuple", lambda r: b"N" + b"\x85" * r.choice([70, 1000, 20000])),
    ("tuple-graph", lambda r: forge.shared_tuple_graph(r.choice([30, 60]))),
    ("doubling-list", lambda r: forge.doubling_list(r.choice([20, 40]))),
    ("deep-list", lambda r: forge.deep_list(r.choice([70, 3000]))),
    ("marks", lambda r: b"(" * r.choice([100, 10000])),
    ("many-nones", lambda r: b"(" + b"N" * r.choice([1000, 100000]) + b"l"),
    ("os-system", lambda r: forge.global_("os", "system") + forge.tuple_of(forge.text("echo x")) + b"R"),
    ("long-string", lambda r: b"X" + struct.pack("<I", r.choice([1 << 20, 0xFFFFFFFF])) + b"ab"),
    ("memo-far", lambda r: b"N" + b"r" + struct.pack("<I", 0xFFFFFFFF) + b"j" + struct.pack("<I", 0xFFFFFFFE)),
    ("big-long", lambda r: b"\x8a\xff" + bytes(r.randrange(256) for _ in range(255))),
    ("float-key", lambda r: b"}" + b"G" + struct.pack(">d", r.choice(EXTREME_FLOATS)) + b"Ns"),
    ("self-append", lambda r: b"]" + forge.put(250) + forge.get(250) + b"a"),
    ("other-global", lambda r: forge.global_(*r.choice([("torch", "DoubleStorage"), ("collections", "OrderedDict"),
                                                        ("torch._utils", "_rebuild_parameter"), ("builtins", "eval")]))),
]


def _pickle_segments(data: bytes) -> list[tuple[str, Any, bytes]]:
    """(opcode name, argument, the op's bytes) for each op of a valid pickle."""
    ops = list(pickletools.genops(data))
    segments = []
    for index, (op, arg, position) in enumerate(ops):
        end = ops[index + 1][2] if index + 1 < len(ops) else len(data)
        segments.append((op.name, arg, data[position:end]))
    return segments


def mutate_pickle(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    segments = _pickle_segments(data)
    parts = [s[2] for s in segments]
    kind = rng.choice(["delete", "duplicate", "swap", "int", "int", "string", "random-op", "hostile", "hostile", "bytes"])
    index = rng.randrange(len(parts))
    if kind == "delete":
        del parts[index]
    elif kind == "duplicate":
        parts.insert(index, parts[index])
    elif kind == "swap":
        other = rng.randrange(len(parts))
        parts[index], parts[other] = parts[other], parts[index]
    elif kind == "int":
        ints = [i for i, s in enumerate(segments) if s[0] in _INT_OPS or s[0] in ("LONG1", "BINPUT", "BINGET", "LONG_BINPUT", "LONG_BINGET")]
        index = rng.choice(ints)
        value = rng.choice([0, 1, 255, 65535, 2**31 - 1, -(2**31), 2**62, 2**63, -(2**63), 10**40, rng.randrange(-9, 1 << 20)])
        name = segments[index][0]
        if name in ("BINPUT", "BINGET"):
            parts[index] = parts[index][:1] + bytes([value & 0xFF])
        elif name in ("LONG_BINPUT", "LONG_BINGET"):
            parts[index] = parts[index][:1] + struct.pack("<I", value & 0xFFFFFFFF)
        else:
            parts[index] = forge.int_(value)
        kind += f"={value}"
    elif kind == "string":
        strings = [i for i, s in enumerate(segments) if s[0] in ("BINUNICODE", "SHORT_BINUNICODE")]
        index = rng.choice(strings)
        parts[index] = rng.choice([
            forge.text(""), forge.text("x" * rng.choice([300, 100_000])), b"X\xff\xff\xff\x7fab",
            b"X" + struct.pack("<I", 3) + b"\xff\xfe\xfd", forge.text("storage"), forge.text("0"),
        ])
    elif kind == "random-op":
        parts.insert(index, bytes([rng.randrange(256)]) + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 9))))
    elif kind == "hostile":
        name, make = rng.choice(_HOSTILE_SNIPPETS)
        parts.insert(index, make(rng))
        kind += f":{name}"
    else:
        mutated, steps = mutate_bytes(rng, b"".join(parts))
        return mutated, f"bytes {steps}"
    return b"".join(parts), f"{kind}@op{index}"


# ---- the formats -----------------------------------------------------------------------------------
# pickle: data.pkl of real torch files, mutated by opcode, written back with a correct CRC so the
# VM (not the CRC check) meets every mutation.
def _prepare_pickle(work: Path) -> list[list[tuple[str, bytes]]]:
    seeds = []
    for path in (FIXTURES / "loader" / "tiny_checkpoint.pth", FIXTURES / "loader" / "tiny_checkpoint_proto4.pth",
                 FIXTURES / "loader" / "tiny_meta" / "consolidated.00.pth"):
        seeds.append(forge.read_zip_entries(_require(path)))
    return seeds


def _mutate_pickle(rng: random.Random, seeds: Any, case: Path) -> tuple[Path, str]:
    entries = list(rng.choice(seeds))
    index = next(i for i, (name, _) in enumerate(entries) if name.endswith("data.pkl"))
    mutated, description = mutate_pickle(rng, entries[index][1])
    entries[index] = (entries[index][0], mutated)
    path = case / "model.pth"
    forge.write_torch_zip(path, entries)
    return path, description


def _load_checkpoint(path: Path, _seed: Any) -> None:
    from llamanuts.torch import load_torch_checkpoint

    for tensor in load_torch_checkpoint(path).values():
        tensor.numpy().sum()  # touch the data: every view must lie inside the file


# zip: the archive's own records (EOCD, ZIP64 records, central directory, local headers).
def _prepare_zip(work: Path) -> list[tuple[bytes, list[tuple[int, int]]]]:
    seeds = []
    for path in (FIXTURES / "loader" / "tiny_checkpoint.pth", FIXTURES / "loader" / "tiny_meta" / "consolidated.00.pth"):
        data = _require(path).read_bytes()
        with zipfile.ZipFile(path) as archive:
            hot = [(info.header_offset, info.header_offset + 30 + len(info.filename)) for info in archive.infolist()]
        hot.append((data.find(b"PK\x01\x02"), len(data)))  # central directory, ZIP64 records, EOCD
        seeds.append((data, hot))
    return seeds


def _mutate_zip(rng: random.Random, seeds: Any, case: Path) -> tuple[Path, str]:
    data, hot = rng.choice(seeds)
    mutated, description = mutate_bytes(rng, data, hot)
    path = case / "model.pth"
    path.write_bytes(mutated)
    return path, description


def _load_zip(path: Path, seed: Any) -> None:
    from llamanuts.torch import verify_checkpoint

    _load_checkpoint(path, seed)
    verify_checkpoint(path)


# params.json: JSON-level field overwrites with extreme values, deletions, additions; raw text.
_PARAM_KEYS = ["dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "multiple_of", "ffn_dim_multiplier",
               "norm_eps", "rope_theta", "use_scaled_rope", "max_seq_len"]
_JSON_VALUES = ["0", "-1", "1", "2", "3", "16", "32", "511", "513", "2147483648", "9223372036854775808",
                "100000000", "10000000", "4194304", "-9223372036854775809", "1e-300", "1e308", "-1e308", "1e400",
                "NaN", "Infinity", "-Infinity", '"x"', '"16"', "null", "true", "false", "[]", "{}", "[16]", "0.5",
                "1.3", "1e-05", "16.0", "9" * 5000, "1" + "0" * 400, "[" * 5000 + "]" * 5000]


def _prepare_params(work: Path) -> list[tuple[Path, dict[str, Any]]]:
    seeds = []
    for directory in (FIXTURES / "loader" / "tiny_meta", FIXTURES / "models" / "tiny-llama3"):
        params = json.loads(_require(directory / "params.json").read_text())
        seeds.append((directory, params))
    return seeds


def _mutate_params(rng: random.Random, seeds: Any, case: Path) -> tuple[Path, str]:
    directory, params = rng.choice(seeds)
    model = case / "model"
    model.mkdir()
    for name in ("consolidated.00.pth", "tokenizer.model"):
        (model / name).symlink_to(directory / name)
    fields = {key: json.dumps(value) for key, value in params.items()}
    steps = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        kind = rng.choice(["set", "set", "set", "delete", "add"])
        key = rng.choice(_PARAM_KEYS)
        if kind == "set":
            fields[key] = rng.choice(_JSON_VALUES)
            steps.append(f"{key}={fields[key][:20]}")
        elif kind == "delete":
            fields.pop(key, None)
            steps.append(f"-{key}")
        else:
            fields[f"extra_{rng.randrange(10)}"] = rng.choice(_JSON_VALUES)
            steps.append("+extra")
    text = "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"
    if rng.random() < 0.15:
        raw, raw_steps = mutate_bytes(rng, text.encode())
        steps.append(f"bytes {raw_steps}")
        (model / "params.json").write_bytes(raw)
    else:
        (model / "params.json").write_text(text)
    return model, " ".join(steps)


def _load_model_dir(path: Path, _seed: Any) -> None:
    from llamanuts.model.loader import load_model

    _exercise_model(load_model(path))


# llama2.c .bin: header ints overwritten with extreme values, the body cut, grown or poisoned.
def _prepare_llama2c(work: Path) -> tuple[bytes, Path]:
    return _require(SHARED_REFS / "stories260K.bin").read_bytes(), _require(SHARED_REFS / "tok512.model")


def _mutate_llama2c(rng: random.Random, seed: Any, case: Path) -> tuple[Path, str]:
    data, _tokenizer = seed
    out = bytearray(data)
    steps = []
    for _ in range(rng.choice([1, 1, 2])):
        kind = rng.choice(["header", "header", "header", "size", "float", "bytes"])
        if kind == "header":
            index = rng.randrange(7)
            old = struct.unpack_from("<i", out, 4 * index)[0]
            value = rng.choice([0, 1, -1, 2, 3, 7, 8, 64, 511, 512, 513, 520, 2**31 - 1, -(2**31), 1 << 30, 1 << 29,
                                old * 2, old // 2, old + 1, old - 1, -old])
            value = max(-(2**31), min(2**31 - 1, value))
            struct.pack_into("<i", out, 4 * index, value)
            steps.append(f"field{index}={value}")
        elif kind == "size":
            cut = rng.choice([28, 27, len(out) // 2, len(out) - 4, len(out) - 1, len(out) + 4, len(out) + 4 * 64 * 8])
            out = out[:cut] if cut <= len(out) else out + bytes(cut - len(out))
            steps.append(f"size={cut}")
        elif kind == "float" and len(out) >= 32:
            position = 28 + 4 * rng.randrange((len(out) - 28) // 4)
            struct.pack_into("<f", out, position, rng.choice(EXTREME_FLOAT32))
            steps.append(f"float@{position}")
        else:
            mutated, description = mutate_bytes(rng, bytes(out), [(0, 28)])
            out = bytearray(mutated)
            steps.append(f"bytes {description}")
        if len(out) < 28:
            break  # the header itself is cut: nothing more to mutate field by field
    path = case / "model.bin"
    path.write_bytes(bytes(out))
    return path, " ".join(steps)


def _load_llama2c(path: Path, seed: Any) -> None:
    from llamanuts.model.loader import load_model

    _exercise_model(load_model(path, seed[1]))


# tokenizers: SentencePiece protobuf, llama2.c tokenizer.bin records, tiktoken ranks lines.
def _prepare_sentencepiece(work: Path) -> bytes:
    return _require(FIXTURES / "loader" / "tiny_meta" / "tokenizer.model").read_bytes()


def _mutate_tokenizer_bytes(name: str) -> Callable[[random.Random, Any, Path], tuple[Path, str]]:
    def mutate(rng: random.Random, seed: Any, case: Path) -> tuple[Path, str]:
        mutated, description = mutate_bytes(rng, seed, [(0, 64)])
        path = case / name
        path.write_bytes(mutated)
        return path, description

    return mutate


def _load_tokenizer(path: Path, _seed: Any, **options: Any) -> None:
    from llamanuts.tokenizer import load_tokenizer

    _exercise_tokenizer(load_tokenizer(path, **options))


def _prepare_llama2c_tokenizer(work: Path) -> bytes:
    return _require(SHARED_REFS / "tok512.bin").read_bytes()


def _mutate_llama2c_tokenizer(rng: random.Random, seed: bytes, case: Path) -> tuple[Path, str]:
    out = bytearray(seed)
    # record offsets: int32 max_token_length, then (f32 score, i32 length, bytes) per token
    offsets, position = [], 4
    while position + 8 <= len(out):
        offsets.append(position)
        position += 8 + struct.unpack_from("<i", out, position + 4)[0]
    kind = rng.choice(["max_length", "length", "score", "piece", "bytes"])
    record = rng.choice(offsets)
    if kind == "max_length":
        struct.pack_into("<i", out, 0, rng.choice([0, 1, -1, 2**31 - 1, 64, 7]))
    elif kind == "length":
        struct.pack_into("<i", out, record + 4, rng.choice([0, -1, 1, 2**31 - 1, 64, 255, 100000]))
    elif kind == "score":
        struct.pack_into("<f", out, record, rng.choice(EXTREME_FLOAT32))
    elif kind == "piece":
        length = struct.unpack_from("<i", out, record + 4)[0]
        if length > 0:
            out[record + 8 + rng.randrange(length)] = rng.choice([0x00, 0x80, 0xC3, 0xE4, 0xF0, 0xFF, 0x20])
    else:
        mutated, description = mutate_bytes(rng, bytes(out))
        return _write(case / "tokenizer.bin", mutated), f"bytes {description}"
    return _write(case / "tokenizer.bin", bytes(out)), f"{kind}@record{offsets.index(record)}"


def _prepare_tiktoken(work: Path) -> list[bytes]:
    """A small ranks file: the 256 byte tokens and some merges (base64 token, space, rank)."""
    tokens = [bytes([b]) for b in range(256)] + [b"th", b"he", b"the", b" t", b" the", b"in", b"ing", b"ll", b"llo", b"hello"]
    return [base64.b64encode(token) + b" " + str(rank).encode() for rank, token in enumerate(tokens)]


def _mutate_tiktoken(rng: random.Random, lines: list[bytes], case: Path) -> tuple[Path, str]:
    lines = list(lines)
    kind = rng.choice(["delete", "duplicate", "swap", "rank", "base64", "bytes", "retoken", "retoken", "swap-tokens"])
    index = rng.randrange(len(lines))
    if kind == "retoken":  # a merge token becomes other bytes: still a valid file, other merges
        index = rng.randrange(256, len(lines))
        token = bytes(rng.choice([rng.randrange(256), 0x20, 0x68, 0xC3, 0xF0]) for _ in range(rng.randrange(2, 7)))
        lines[index] = base64.b64encode(token) + b" " + lines[index].split(b" ")[-1]
    elif kind == "swap-tokens":  # two tokens trade ranks: valid, and the merge order changes
        other = rng.randrange(len(lines))
        (a, rank_a), (b, rank_b) = lines[index].split(b" "), lines[other].split(b" ")
        lines[index], lines[other] = b + b" " + rank_a, a + b" " + rank_b
    elif kind == "delete":
        del lines[index]
    elif kind == "duplicate":
        lines.insert(rng.randrange(len(lines)), lines[index])
    elif kind == "swap":
        other = rng.randrange(len(lines))
        lines[index], lines[other] = lines[other], lines[index]
    elif kind == "rank":
        token = lines[index].split(b" ")[0]
        lines[index] = token + b" " + rng.choice([b"-1", b"0", b"99999999999999999999", b"1e5", b"", b"2147483648", b"5"])
    elif kind == "base64":
        rank = lines[index].split(b" ")[-1]
        lines[index] = rng.choice([b"!!!", b"", b"QQ", b"QQ===", base64.b64encode(b"x" * 5000)]) + b" " + rank
    else:
        mutated, description = mutate_bytes(rng, b"\n".join(lines) + b"\n")
        return _write(case / "tokenizer.model", mutated), f"bytes {description}"
    return _write(case / "tokenizer.model", b"\n".join(lines) + b"\n"), f"{kind}@line{index}"


def _newer_formats() -> list[FuzzFormat]:
    """The formats that came with GGUF, Hugging Face directories and chat templates (their own modules)."""
    from tools import fuzz_gguf, fuzz_hf, fuzz_jinja

    return [*fuzz_gguf.FORMATS, *fuzz_hf.FORMATS, *fuzz_jinja.FORMATS]


FORMATS: dict[str, FuzzFormat] = {
    f.name: f
    for f in [
        FuzzFormat("pickle", "data.pkl of real torch files, opcode-aware mutations (CRC kept valid)",
                   _prepare_pickle, _mutate_pickle, _load_checkpoint),
        FuzzFormat("zip", "the .pth archive's records: EOCD, ZIP64, central directory, local headers",
                   _prepare_zip, _mutate_zip, _load_zip),
        FuzzFormat("params", "params.json of two tiny Meta models: field overwrites, deletions, raw bytes",
                   _prepare_params, _mutate_params, _load_model_dir,
                   warm_up=lambda seeds: [_load_model_dir(directory, None) for directory, _ in seeds]),
        FuzzFormat("llama2c", "stories260K.bin: header ints, size, float values, bytes",
                   _prepare_llama2c, _mutate_llama2c, _load_llama2c,
                   warm_up=lambda seed: _load_llama2c(SHARED_REFS / "stories260K.bin", seed)),
        FuzzFormat("sentencepiece", "a SentencePiece tokenizer.model: bytes, protobuf header hot",
                   _prepare_sentencepiece, _mutate_tokenizer_bytes("tokenizer.model"), _load_tokenizer),
        FuzzFormat("llama2c-tokenizer", "tok512.bin: max_token_length, record lengths, scores, piece bytes",
                   _prepare_llama2c_tokenizer, _mutate_llama2c_tokenizer,
                   lambda path, seed: _load_tokenizer(path, seed, llama2c_vocab_size=512)),
        FuzzFormat("tiktoken", "a small tiktoken ranks file: lines deleted, duplicated, swapped, ranks, base64",
                   _prepare_tiktoken, _mutate_tiktoken, _load_tokenizer),
        *_newer_formats(),
    ]
}


# A format whose "loader" misbehaves on purpose, in every way the harness must catch; the tests run it
# to show that a crash, a hang in C, a runaway allocation and a stray exception are each reported.
SELFTEST_KINDS = ["ok", "llama-error", "value-error", "python-hang", "c-hang", "segfault", "memory"]


def _selftest_mutate(rng: random.Random, _seed: Any, case: Path) -> tuple[Path, str]:
    kind = SELFTEST_KINDS[rng.randrange(len(SELFTEST_KINDS))]
    return _write(case / "kind", kind.encode()), kind


def _selftest_load(path: Path, _seed: Any) -> None:
    from llamanuts.common.errors import ModelFileError

    kind = path.read_text()
    if kind == "llama-error":
        raise ModelFileError(path, "refused on purpose")
    if kind == "value-error":
        raise ValueError("a stray exception")
    if kind == "python-hang":
        while True:
            pass
    if kind == "c-hang":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # the per-case timer cannot reach
        time.sleep(3600)
    if kind == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if kind == "memory":
        bytearray(64 << 30)


SELFTEST = FuzzFormat("selftest", "the harness's own check: each kind of failure it must report",
                      lambda work: None, _selftest_mutate, _selftest_load)
_ALL_FORMATS = {**FORMATS, SELFTEST.name: SELFTEST}


# ---- running cases (the child) ---------------------------------------------------------------------
class CaseTimeout(BaseException):
    """Raised by the per-case timer; a BaseException so no `except Exception` under test swallows it."""


def case_rng(seed: int, name: str, index: int) -> random.Random:
    return random.Random(f"{seed}:{name}:{index}")


def run_case(fmt: FuzzFormat, material: Any, seed: int, index: int, work: Path,
             announce: Callable[[str], None] = lambda _d: None) -> tuple[str, str, str]:
    """(outcome, description, detail): outcome 'loaded', 'refused' (a LlamaError) or 'FAIL'.

    `announce(description)` is called before the load, so a crash can still be described."""
    from llamanuts.common.errors import LlamaError

    case = work / f"case{index}"
    case.mkdir()
    description = "(mutation not made)"
    try:
        try:
            path, description = fmt.mutate(case_rng(seed, fmt.name, index), material, case)
            announce(description)
            fmt.load(path, material)
        except LlamaError as exc:
            return "refused", description, type(exc).__name__
        except CaseTimeout:
            return "FAIL", description, "timeout (a Python-level loop ran past the case limit)"
        except BaseException as exc:  # noqa: BLE001 - anything else is exactly what we look for
            frames = traceback.extract_tb(exc.__traceback__)[-3:]
            where = "; ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames)
            return "FAIL", description, f"{type(exc).__name__}: {str(exc)[:200]} [{where}]"
        return "loaded", description, ""
    finally:
        shutil.rmtree(case, ignore_errors=True)


def child_main(name: str, seed: int, start: int, stop: int, case_seconds: float) -> None:
    """Run cases [start, stop) of one format, one protocol line per event on stdout."""
    fmt = _ALL_FORMATS[name]
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise CaseTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    try:
        try:
            material = fmt.prepare(work)
        except Skip as reason:
            print(f"SKIP {reason}", flush=True)
            return
        if fmt.warm_up is not None:
            fmt.warm_up(material)  # an error here is the seed's own: the parent reports it
        for index in range(start, stop):
            print(f"START {index}", flush=True)
            signal.setitimer(signal.ITIMER_REAL, case_seconds)
            outcome, description, detail = run_case(
                fmt, material, seed, index, work, lambda d: print(f"INPUT {index}\t{' '.join(d.split())}", flush=True)
            )
            signal.setitimer(signal.ITIMER_REAL, 0)
            description, detail = (" ".join(text.split()) for text in (description, detail))
            print(f"END {index}\t{outcome}\t{description}\t{detail}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- supervising (the parent) ----------------------------------------------------------------------
@dataclass
class Report:
    name: str
    cases: int = 0
    loaded: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped: str = ""
    seconds: float = 0.0

    def line(self) -> str:
        if self.skipped:
            return f"{self.name}: skipped ({self.skipped})"
        refused = sum(self.refused.values())
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items()))
        return (f"{self.name}: {self.cases} cases in {self.seconds:.1f} s: {self.loaded} loaded, {refused} refused"
                f"{f' ({kinds})' if kinds else ''}, {len(self.failures)} failed")


def _child_command(name: str, seed: int, start: int, stop: int, case_seconds: float, memory: int) -> list[str]:
    return [sys.executable, "-m", "tools.fuzz", "--child", name, "--seed", str(seed), "--start", str(start),
            "--stop", str(stop), "--case-seconds", str(case_seconds), "--memory", str(memory)]


class Batch:
    """One format's cases in child processes, restarted after a crash or a hang."""

    def __init__(self, name: str, seed: int, cases: int, case_seconds: float, memory: int, first: int = 0,
                 startup_seconds: float = 60.0) -> None:
        self.name, self.seed, self.case_seconds, self.memory = name, seed, case_seconds, memory
        self.startup_seconds = startup_seconds
        self.next, self.stop = first, first + cases
        self.report = Report(name)
        self.process: subprocess.Popen[str] | None = None
        self.current: int | None = None
        self.deadline = 0.0
        self.buffer = ""
        self.started: float | None = None

    @property
    def done(self) -> bool:
        return self.process is None and (self.next >= self.stop or bool(self.report.skipped))

    def launch(self) -> None:
        if self.started is None:
            self.started = time.monotonic()
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(
            _child_command(self.name, self.seed, self.next, self.stop, self.case_seconds, self.memory),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
        )
        os.set_blocking(self.process.stdout.fileno(), False)  # type: ignore[union-attr]
        self.current = None
        self.description = ""
        self.fresh = True  # the first case of a child also pays imports and kernel compilation
        self.deadline = time.monotonic() + self.case_seconds * 3 + self.startup_seconds

    def fail_current(self, why: str) -> None:
        index = self.current if self.current is not None else self.next
        self.report.cases += 1
        described = f", {self.description}" if self.description else ""
        self.report.failures.append(f"{self.name} case {index} (seed {self.seed}{described}): {why}")
        self.next = index + 1

    def poll(self) -> None:
        if self.process is None:
            if not self.done:
                self.launch()
            return
        assert self.process.stdout is not None
        try:
            chunk = self.process.stdout.read()
        except (BlockingIOError, TypeError):
            chunk = None
        if chunk:
            self.buffer += chunk
            *lines, self.buffer = self.buffer.split("\n")
            for line in lines:
                self.handle(line)
        if self.process.poll() is not None:
            rest = self.process.stdout.read() or ""
            for line in (self.buffer + rest).split("\n"):
                if line:
                    self.handle(line)
            self.buffer = ""
            code = self.process.returncode
            stderr = (self.process.stderr.read() if self.process.stderr else "")[-400:]
            if self.current is not None:  # died inside a case: a crash (signal) or an exit
                how = f"killed by signal {-code}" if code < 0 else f"exited with {code}"
                self.fail_current(f"the process {how} (crash or memory cap): {stderr.strip()[-300:]}")
            elif code != 0 and not self.report.skipped and self.next < self.stop:
                self.report.failures.append(f"{self.name}: the child failed before a case: {stderr.strip()}")
                self.next = self.stop
            self.process = None
            self.report.seconds = time.monotonic() - (self.started or time.monotonic())
        elif time.monotonic() > self.deadline:
            self.process.kill()
            self.process.wait()
            self.fail_current(f"no answer in time (the case limit is {self.case_seconds:g} s): a hang in C code, "
                              f"where the per-case timer cannot reach")
            self.process = None

    def handle(self, line: str) -> None:
        if line.startswith("SKIP "):
            self.report.skipped = line[5:]
            self.next = self.stop
        elif line.startswith("INPUT "):
            self.description = line.split("\t", 1)[1] if "\t" in line else ""
        elif line.startswith("START "):
            self.current = int(line.split()[1])
            self.description = ""
            self.deadline = time.monotonic() + self.case_seconds * 2 + (self.startup_seconds if self.fresh else 5)
            self.fresh = False
        elif line.startswith("END "):
            head, outcome, description, detail = line.split("\t", 3)
            index = int(head.split()[1])
            self.report.cases += 1
            if outcome == "loaded":
                self.report.loaded += 1
            elif outcome == "refused":
                self.report.refused[detail] = self.report.refused.get(detail, 0) + 1
            else:
                self.report.failures.append(f"{self.name} case {index} (seed {self.seed}, {description}): {detail}")
            self.current = None
            self.next = index + 1


def run_formats(names: list[str], seed: int, cases: int | dict[str, int], case_seconds: float = DEFAULT_CASE_SECONDS,
                memory: int = DEFAULT_MEMORY, parallel: int = 2, first: int = 0,
                startup_seconds: float = 60.0) -> list[Report]:
    """Run `cases` cases of each format (or `cases[name]`), `parallel` children at a time, started in
    the order of `names` (put the longest first); one Report per format, in that order.

    `startup_seconds`: extra time the first case of each child may take (imports, kernel compiling).
    """
    counts = cases if isinstance(cases, dict) else {name: cases for name in names}
    batches = [Batch(name, seed, counts[name], case_seconds, memory, first, startup_seconds) for name in names]
    waiting, active = list(batches), []
    while waiting or active:
        while waiting and len(active) < parallel:
            active.append(waiting.pop(0))
        for batch in active:
            batch.poll()
        active = [b for b in active if not b.done]
        pipes = [b.process.stdout for b in active if b.process is not None and b.process.stdout is not None]
        if pipes:
            select.select(pipes, [], [], 0.2)
    return [b.report for b in batches]


def replay(name: str, seed: int, index: int) -> int:
    """Run one case in this process and show a traceback if it fails (for debugging a failure)."""
    from llamanuts.common.errors import LlamaError

    fmt = _ALL_FORMATS[name]
    work = Path(tempfile.mkdtemp(prefix="fuzz-replay-"))
    material = fmt.prepare(work)
    case = work / "case"
    case.mkdir()
    path, description = fmt.mutate(case_rng(seed, name, index), material, case)
    print(f"{name} case {index} (seed {seed}): {description}; input kept at {path}")
    try:
        fmt.load(path, material)
    except LlamaError as exc:
        print(f"refused: {type(exc).__name__}: {exc}")
        return 0
    print("loaded")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", action="append", choices=sorted(_ALL_FORMATS), help="a format (default: all)")
    parser.add_argument("--cases", type=int, default=DEFAULT_CASES, help="cases per format")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case", type=int, default=None, help="replay this one case in process")
    parser.add_argument("--case-seconds", type=float, default=DEFAULT_CASE_SECONDS)
    parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY, help="address-space cap per child, bytes")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--startup-seconds", type=float, default=60.0,
                        help="extra time for the first case of each child (imports, kernel compiling)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stop", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        resource.setrlimit(resource.RLIMIT_AS, (args.memory, args.memory))
        child_main(args.child, args.seed, args.start, args.stop, args.case_seconds)
        return 0
    if args.list:
        for fmt in FORMATS.values():
            print(f"{fmt.name:18} {fmt.what}")
        return 0
    names = args.format or list(FORMATS)
    if args.case is not None:
        return replay(names[0], args.seed, args.case)
    started = time.monotonic()
    reports = run_formats(names, args.seed, args.cases, args.case_seconds, args.memory, args.parallel,
                          startup_seconds=args.startup_seconds)
    for report in reports:
        print(report.line())
        for failure in report.failures:
            print("  FAIL", failure)
    total = sum(r.cases for r in reports)
    failed = sum(len(r.failures) for r in reports)
    print(f"fuzz: {total} cases over {len(reports)} formats in {time.monotonic() - started:.1f} s, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
