"""Write the loader's test fixtures into tests/fixtures/loader/ (development tool; needs PyTorch).

    python tools/make_loader_fixtures.py            # writes tests/fixtures/loader/*
    python tools/make_loader_fixtures.py --out DIR  # elsewhere

Every fixture is a few KB and seeded (torch.manual_seed(1234)); the tensor *values* are reproducible,
the bytes are not quite (torch.save writes a random serialization id into each archive).
See tests/fixtures/loader/README.md for what each file is and which error it must provoke.

Good files come from torch.save itself, so the tests check our reader against the real writer.
Bad files are made three ways: torch.save of something a state dict should not hold (argparse
Namespace, float64, a transposed view), a zip rewritten after torch.save (compressed, truncated),
and pickles forged with Python's own Pickler (malicious globals, storages too small), written into a
zip laid out like torch's (storages aligned to 64 bytes).
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import pickle
import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "loader"
SHARED_REFS = REPO.parent / "shared" / "refs"
SEED = 1234
ALIGNMENT = 64  # torch.save aligns each storage's data to 64 bytes; our reader refuses misaligned data
# The file a malicious pickle would create in the current directory if Python's pickle loaded it.
MARKER_NAME = "llamanuts_malicious_marker"


# ---- zip writing laid out like torch's ----------------------------------------------------------
def _padding_extra(offset: int, name: str) -> bytes:
    """An extra field that makes the entry's data start at a multiple of ALIGNMENT (as torch does)."""
    header_end = offset + 30 + len(name.encode()) + 4
    pad = (-header_end) % ALIGNMENT
    return b"FB" + struct.pack("<H", pad) + b"Z" * pad


def write_torch_like_zip(path: Path, entries: list[tuple[str, bytes]], compress: set[str] | None = None) -> None:
    """Write `entries` (full names) as a zip; names in `compress` are deflated, the rest stored."""
    compress = compress or set()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED
            info.extra = _padding_extra(archive.fp.tell(), name)  # type: ignore[union-attr]
            archive.writestr(info, data)


def read_zip_entries(path: Path) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(path) as archive:
        return [(info.filename, archive.read(info.filename)) for info in archive.infolist()]


# ---- forged pickles -----------------------------------------------------------------------------
class StorageStub:
    """Stands for a storage: the pickler turns it into torch's persistent id tuple."""

    def __init__(self, storage_type: type, key: str, numel: int) -> None:
        self.storage_type, self.key, self.numel = storage_type, key, numel


class TensorStub:
    """Pickles as torch does a tensor, but with whatever size/stride/offset we ask for."""

    def __init__(self, storage: StorageStub, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())
        return (torch._utils._rebuild_tensor_v2, args)


class TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, StorageStub):
            return ("storage", obj.storage_type, obj.key, "cpu", obj.numel)
        return None


def forge_pickle(state: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    TorchLikePickler(buffer, protocol=2).dump(state)
    return buffer.getvalue()


def write_forged_checkpoint(path: Path, state: dict[str, Any], storages: dict[str, bytes]) -> None:
    archive = path.stem
    entries = [(f"{archive}/data.pkl", forge_pickle(state)), (f"{archive}/byteorder", b"little")]
    entries += [(f"{archive}/data/{key}", data) for key, data in storages.items()]
    entries.append((f"{archive}/version", b"3\n"))
    write_torch_like_zip(path, entries)


def write_raw_pickle_checkpoint(path: Path, pickle_bytes: bytes) -> None:
    archive = path.stem
    write_torch_like_zip(path, [(f"{archive}/data.pkl", pickle_bytes), (f"{archive}/version", b"3\n")])


# ---- the fixtures -------------------------------------------------------------------------------
def tiny_state_dict() -> "collections.OrderedDict[str, torch.Tensor]":
    big = torch.randn(6, 8).to(torch.bfloat16)
    state: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict()
    state["bf16.matrix"] = torch.randn(4, 8).to(torch.bfloat16)
    state["f16.vector"] = torch.randn(6).to(torch.float16)
    state["f32.matrix"] = torch.randn(3, 5)
    state["bf16.rows_2_to_4"] = big[2:4]  # a view: storage_offset 16 into a 48-element storage
    state["f32.parameter"] = torch.nn.Parameter(torch.randn(5))  # pickled via _rebuild_parameter
    state["f32.scalar"] = torch.tensor(3.25)  # 0-dimensional
    return state


def save_values(path: Path, state: dict[str, torch.Tensor]) -> None:
    """torch's own values: float32 for every tensor, plus the raw bits of bf16 ones."""
    arrays: dict[str, np.ndarray] = {}
    for name, tensor in state.items():
        tensor = tensor.detach()
        arrays[name] = tensor.float().numpy()
        if tensor.dtype == torch.bfloat16:
            arrays[name + ".bits"] = tensor.contiguous().view(torch.int16).numpy().view(np.uint16)
    np.savez(path, **arrays)


def make_tiny_checkpoints(out: Path) -> None:
    state = tiny_state_dict()
    torch.save(state, out / "tiny_checkpoint.pth")
    torch.save(state, out / "tiny_checkpoint_proto4.pth", pickle_protocol=4)
    save_values(out / "tiny_checkpoint.npz", state)


def make_tiny_meta_model(out: Path) -> None:
    """A complete Meta-format model directory: dim 16, 2 layers, 4 heads, 2 kv heads, vocab 512."""
    directory = out / "tiny_meta"
    directory.mkdir(exist_ok=True)
    dim, n_layers, n_heads, n_kv_heads, vocab, multiple_of = 16, 2, 4, 2, 512, 16
    head_dim = dim // n_heads
    hidden = multiple_of * ((int(2 * 4 * dim / 3) + multiple_of - 1) // multiple_of)  # Meta's rule: 48

    def weight(*shape: int) -> torch.Tensor:
        return (torch.randn(*shape) * 0.1).to(torch.bfloat16)

    state: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict()
    state["tok_embeddings.weight"] = weight(vocab, dim)
    state["norm.weight"] = torch.ones(dim, dtype=torch.bfloat16)
    state["output.weight"] = weight(vocab, dim)
    for i in range(n_layers):
        p = f"layers.{i}."
        state[p + "attention.wq.weight"] = weight(n_heads * head_dim, dim)
        state[p + "attention.wk.weight"] = weight(n_kv_heads * head_dim, dim)
        state[p + "attention.wv.weight"] = weight(n_kv_heads * head_dim, dim)
        state[p + "attention.wo.weight"] = weight(dim, n_heads * head_dim)
        state[p + "feed_forward.w1.weight"] = weight(hidden, dim)
        state[p + "feed_forward.w2.weight"] = weight(dim, hidden)
        state[p + "feed_forward.w3.weight"] = weight(hidden, dim)
        state[p + "attention_norm.weight"] = torch.ones(dim, dtype=torch.bfloat16)
        state[p + "ffn_norm.weight"] = torch.ones(dim, dtype=torch.bfloat16)
    # Llama 2's checkpoints also carry the RoPE table; the loader must ignore it.
    state["rope.freqs"] = (1.0 / (10000.0 ** (torch.arange(0, head_dim, 2).float() / head_dim))).to(torch.bfloat16)
    torch.save(state, directory / "consolidated.00.pth")
    params = {"dim": dim, "multiple_of": multiple_of, "n_heads": n_heads, "n_kv_heads": n_kv_heads,
              "n_layers": n_layers, "norm_eps": 1e-05, "vocab_size": -1}
    (directory / "params.json").write_text(json.dumps(params, indent=1) + "\n")
    tokenizer = SHARED_REFS / "tok512.model"
    if tokenizer.is_file():
        shutil.copyfile(tokenizer, directory / "tokenizer.model")
    else:
        print(f"warning: {tokenizer} not found; tiny_meta/ has no tokenizer.model")


def make_malicious(out: Path) -> None:
    command = f"echo pwned > {MARKER_NAME}"
    # GLOBAL 'os system', then REDUCE with (command,): Python's pickle would run the shell command.
    # A tensor-free dict entry comes first, so the refusal happens mid-stream, not at byte 0.
    os_system = (
        b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01"
        b"X\x04\x00\x00\x00evil"
        b"cos\nsystem\n"
        + b"X" + struct.pack("<I", len(command)) + command.encode()
        + b"\x85R" + b"u."
    )
    write_raw_pickle_checkpoint(out / "malicious_os_system.pth", os_system)
    # Protocol 4 style: STACK_GLOBAL builtins.exec with Python code that writes the marker file.
    code = f"open({MARKER_NAME!r}, 'w').write('pwned')".encode()
    exec_pickle = (
        b"\x80\x04"
        b"\x8c\x08builtins\x94\x8c\x04exec\x94\x93\x94"
        + b"\x8c" + bytes([len(code)]) + code
        + b"\x85R."
    )
    write_raw_pickle_checkpoint(out / "malicious_exec.pth", exec_pickle)
    # INST is an opcode that imports and calls in one step; it is refused as an opcode.
    inst_pickle = b"\x80\x02(X" + struct.pack("<I", len(command)) + command.encode() + b"ios\nsystem\n."
    write_raw_pickle_checkpoint(out / "malicious_inst.pth", inst_pickle)


def make_bad_checkpoints(out: Path) -> None:
    tiny = out / "tiny_checkpoint.pth"
    entries = read_zip_entries(tiny)
    renamed = [(name.replace("tiny_checkpoint/", "compressed/", 1), data) for name, data in entries]
    write_torch_like_zip(out / "compressed.pth", renamed, compress={n for n, _ in renamed if "/data/" in n})

    data = tiny.read_bytes()
    (out / "truncated.pth").write_bytes(data[: len(data) * 6 // 10])

    floats = np.arange(8, dtype=np.float32).tobytes()
    # Storage of 6 float32 elements (24 bytes, entry has 32), tensor [4, 2] needs 8 elements.
    storage = StorageStub(torch.FloatStorage, "0", 6)
    write_forged_checkpoint(out / "short_storage.pth", {"w": TensorStub(storage, 0, (4, 2), (2, 1))}, {"0": floats})
    # Persistent id claims 16 elements (64 bytes) but the zip entry holds 32 bytes.
    storage = StorageStub(torch.FloatStorage, "0", 16)
    write_forged_checkpoint(out / "short_entry.pth", {"w": TensorStub(storage, 0, (16,), (1,))}, {"0": floats})

    torch.save({"w": torch.randn(3), "args": argparse.Namespace(lr=0.1)}, out / "unknown_global.pth")
    torch.save({"w": torch.randn(3, 4).t()}, out / "non_contiguous.pth")
    torch.save({"w": torch.randn(3, dtype=torch.float64)}, out / "unsupported_dtype.pth")
    torch.save({"model": {"w": torch.randn(3)}}, out / "nested.pth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    make_tiny_checkpoints(out)
    make_tiny_meta_model(out)
    make_malicious(out)
    make_bad_checkpoints(out)
    for path in sorted(out.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:8d}  {path.relative_to(out)}")


if __name__ == "__main__":
    main()
