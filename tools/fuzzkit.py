"""What every fuzz format shares: the format record, byte mutations, extreme values, and the steps
that exercise a loaded model or tokenizer (tools/fuzz.py runs the formats; tools/fuzz_gguf.py,
tools/fuzz_hf.py and tools/fuzz_jinja.py hold the formats that came with GGUF, Hugging Face
directories and chat templates).
"""

from __future__ import annotations

import importlib.util
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
SHARED_REFS = REPO.parent / "shared" / "refs"
FIXTURES = REPO / "tests" / "fixtures"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class Skip(Exception):
    """A format's seed files are absent: its cases are skipped, with this reason."""


@dataclass
class FuzzFormat:
    name: str
    what: str  # one line for --list and the report
    prepare: Callable[[Path], Any]  # workdir -> seed material (raise Skip when files are missing)
    mutate: Callable[[random.Random, Any, Path], tuple[Path, str]]  # -> (input to load, description)
    load: Callable[[Path, Any], None]  # load and exercise; return, or raise LlamaError
    # Run once on the unmutated seed before the cases, outside the per-case timer: compiles the
    # kernels a forward pass needs (seconds on a busy machine), and checks the seed itself loads.
    warm_up: Callable[[Any], None] | None = None


# ---- generic byte mutations ----------------------------------------------------------------------
EXTREME_INTS = [0, 1, 2, 3, 7, 8, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
                1 << 32, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF]
EXTREME_FLOATS = [0.0, -0.0, 1.0, -1.0, 1e-45, 1e-38, 3.4e38, 1e308, float("inf"), float("-inf"), float("nan")]
EXTREME_FLOAT32 = [v for v in EXTREME_FLOATS if v != 1e308]  # all representable as float32


def _extreme_int_bytes(rng: random.Random) -> bytes:
    size = rng.choice([1, 2, 4, 8])
    value = rng.choice(EXTREME_INTS) & ((1 << (8 * size)) - 1)
    return value.to_bytes(size, "little")


def mutate_bytes(rng: random.Random, data: bytes, hot: list[tuple[int, int]] | None = None) -> tuple[bytes, str]:
    """One to three stacked mutations; `hot` ranges (start, end) are where structure lives."""
    out = bytearray(data)
    steps: list[str] = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if not out:
            out += bytes([rng.randrange(256)])
            continue
        if hot and rng.random() < 0.7:
            start, end = rng.choice(hot)
            position = rng.randrange(max(0, min(start, len(out) - 1)), max(1, min(end, len(out))))
        else:
            position = rng.randrange(len(out))
        kind = rng.choice(["flip", "byte", "int", "int", "truncate", "insert", "delete", "repeat"])
        if kind == "flip":
            out[position] ^= 1 << rng.randrange(8)
        elif kind == "byte":
            out[position] = rng.randrange(256)
        elif kind == "int":
            value = _extreme_int_bytes(rng)
            out[position : position + len(value)] = value
        elif kind == "truncate":
            del out[position:]
        elif kind == "insert":
            out[position:position] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 17)))
        elif kind == "delete":
            del out[position : position + rng.randrange(1, 65)]
        else:  # repeat a chunk, bounded growth
            chunk = bytes(out[position : position + rng.randrange(1, 33)])
            out[position:position] = chunk * rng.randrange(2, 200)
        steps.append(f"{kind}@{position}")
    return bytes(out), " ".join(steps)


# ---- files --------------------------------------------------------------------------------------
def require(path: Path) -> Path:
    if not path.is_file():
        raise Skip(f"{path} is absent")
    return path


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def load_test_helper(relative: str) -> ModuleType:
    """A helper module of the test suite (e.g. tests/gguf/ggufbytes.py, the GGUF writer written from
    the format's description), imported by path: the test folders are not packages."""
    path = REPO / relative
    name = "fuzz_helper_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    if not path.is_file():
        raise Skip(f"{path} is absent")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ---- exercising what loaded ---------------------------------------------------------------------
def exercise_model(loaded: Any) -> None:
    """A forward pass of two tokens and one greedy choice: what a first generation step does."""
    from llamanuts.inference.sampling import Sampler, SamplingArgs
    from llamanuts.model import LlamaTransformer, tokens_tensor

    model = LlamaTransformer(loaded.args, loaded.weights, "f32")
    context = model.NewInferenceContext(min(8, loaded.args.max_seq_len))
    bos = loaded.tokenizer.bos_id if loaded.tokenizer.bos_id is not None else 0
    tokens = [bos, 5 % loaded.args.vocab_size][: context.sequence_length]
    logits = model.Forward(context, tokens_tensor(tokens), 0)
    token = Sampler(SamplingArgs()).Sample(logits.numpy()[-1])
    loaded.tokenizer.piece_bytes(token)


TEXT = "Hello world! héllo 你好 🦙\n\t  123 <s> </s> <|im_end|> <think>"


def exercise_tokenizer(tokenizer: Any) -> None:
    ids = tokenizer.encode(TEXT, bos=True, eos=True)
    tokenizer.decode([i for i in ids if 0 <= i < tokenizer.vocab_size])
    for id in range(min(tokenizer.vocab_size, 4096)):
        tokenizer.piece_bytes(id)
        tokenizer.id_to_piece(id)
        tokenizer.is_byte_piece(id)


DIALOG = [("system", "Be brief."), ("user", "Hi <|im_end|> there"), ("assistant", "Hello!"), ("user", "A joke, please 🦙")]


def exercise_chat(tokenizer: Any, template: str | None) -> None:
    """What a chat turn does with a model's template: render a dialog, encode it, find the stops."""
    from llamanuts.inference.prompt import ChatMessage, JinjaChatTemplate, default_chat_template, encode_text_prompt

    dialog = [ChatMessage(role, content) for role, content in DIALOG]
    chat = JinjaChatTemplate.from_tokenizer(tokenizer, template) if template else default_chat_template(tokenizer)
    ids = chat.Encode(tokenizer, dialog)
    chat.StopIds(tokenizer)
    tokenizer.decode([i for i in ids if 0 <= i < tokenizer.vocab_size])
    encode_text_prompt(tokenizer, "Once upon a time")


def exercise_loaded(loaded: Any) -> None:
    """A loaded model end to end: the tokenizer, a chat prompt, a forward pass and a sample."""
    exercise_tokenizer(loaded.tokenizer)
    exercise_chat(loaded.tokenizer, loaded.chat_template)
    exercise_model(loaded)


__all__ = [
    "DIALOG",
    "EXTREME_FLOAT32",
    "EXTREME_FLOATS",
    "EXTREME_INTS",
    "FIXTURES",
    "FuzzFormat",
    "REPO",
    "SHARED_REFS",
    "Skip",
    "TEXT",
    "exercise_chat",
    "exercise_loaded",
    "exercise_model",
    "exercise_tokenizer",
    "mutate_bytes",
    "require",
    "load_test_helper",
    "write_file",
]
