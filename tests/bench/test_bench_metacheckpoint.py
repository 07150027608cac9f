"""The benchmarks' streaming checkpoint writer (bench/metacheckpoint.py), on tiny shapes.

It must write what torch.save writes: PyTorch's own torch.load (the independent reader) must read
every tensor back with Meta's names, shapes, dtype and the values that were written, and our loader
must accept the directory as a Meta model. The full-size shapes are checked by their sizes only:
13.48 GB for Llama 2 7B and 16.06 GB for Llama 3.1 8B, as Meta's bf16 checkpoints are.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # plain `pytest` does not put the repo root on sys.path

from bench import metacheckpoint as mc  # noqa: E402

TINY = mc.MetaShape(
    "tiny-gqa", 64, 2, 4, 2, 96, 300,
    {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 300, "multiple_of": 32, "norm_eps": 1e-05},
    "llama2-tokenizer.model",
)


def test_full_size_checkpoints_have_metas_sizes():
    assert round(mc.weight_bytes(mc.SHAPES["llama2-7b"]) / 1e9, 2) == 13.48
    assert round(mc.weight_bytes(mc.SHAPES["llama31-8b"]) / 1e9, 2) == 16.06


def test_torch_load_reads_back_every_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "consolidated.00.pth"
    mc.write_checkpoint(path, TINY)
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    assert list(state) == [name for name, _ in mc.tensor_shapes(TINY)]
    assert state["layers.1.attention.wk.weight"].shape == (2 * 16, 64)  # n_kv_heads * head_dim rows
    block = mc._random_block()
    for key, (name, dims) in enumerate(mc.tensor_shapes(TINY)):
        tensor = state[name]
        assert tuple(tensor.shape) == dims and tensor.dtype == torch.bfloat16
        bits = tensor.contiguous().view(torch.int16).numpy().view(np.uint16).reshape(-1)
        expected = b"".join(mc._tensor_chunks(name, bits.size, key, block))
        assert bits.tobytes() == expected, name
        if name.endswith("norm.weight"):
            assert torch.all(tensor == 1.0)
        else:
            assert abs(float(tensor.float().std()) - 0.02) < 0.005  # N(0, 0.02) as promised


def test_storages_are_64_byte_aligned_and_our_loader_maps_them(tmp_path):
    from llamanuts.torch import load_torch_checkpoint

    path = tmp_path / "consolidated.00.pth"
    mc.write_checkpoint(path, TINY)
    tensors = load_torch_checkpoint(path)
    base = None
    for name, dims in mc.tensor_shapes(TINY):
        t = tensors[name]
        assert t.shape == dims
        address = t.data.__array_interface__["data"][0]
        base = base or address
        assert (address - base) % 64 == 0, name


def test_a_model_directory_loads_as_a_meta_model(tmp_path):
    tokenizer = mc.REFS / TINY.tokenizer
    if not tokenizer.is_file():
        pytest.skip(f"needs the shared reference tokenizer {tokenizer}")
    from llamanuts.model.loader import load_model

    shape = mc.SHAPES["llama2-7b"]
    small = mc.MetaShape("small", 64, 1, 4, 4, 256, 32000, {**shape.params, "dim": 64, "n_heads": 4, "n_layers": 1}, shape.tokenizer)
    mc.write_model_directory(tmp_path, small)
    loaded = load_model(tmp_path)
    assert (loaded.args.dim, loaded.args.n_layers, loaded.args.hidden_dim, loaded.args.vocab_size) == (64, 1, 256, 32000)


def test_offsets_past_4_gb_in_the_zip64_fields_are_read(tmp_path, monkeypatch):
    # A full-size checkpoint (13.5 GB) has entries past 4 GB: Python's zipfile then writes 0xFFFFFFFF
    # in their central directory records and the real offsets in ZIP64 extra fields. Writing 4 GB in
    # a test is out of the question, so the central directory is written as if every offset were
    # past the limit (ZIP64_LIMIT lowered for that step only): the same records, in a small file.
    import zipfile

    write_end = zipfile.ZipFile._write_end_record

    def as_if_huge(self):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 64)
        try:
            write_end(self)
        finally:
            monkeypatch.undo()

    monkeypatch.setattr(zipfile.ZipFile, "_write_end_record", as_if_huge)
    path = tmp_path / "consolidated.00.pth"
    mc.write_checkpoint(path, TINY)
    monkeypatch.undo()
    raw = path.read_bytes()
    assert raw.count(b"PK\x06\x06") == 1  # the ZIP64 end record is there
    offsets, at = [], raw.find(b"PK\x01\x02")  # central directory records: local header offset at +42
    while at >= 0:
        offsets.append(struct.unpack_from("<I", raw, at + 42)[0])
        at = raw.find(b"PK\x01\x02", at + 4)
    assert offsets.count(0xFFFFFFFF) == len(offsets) - 1  # all but the first, at offset 0
    from llamanuts.torch import load_torch_checkpoint

    tensors = load_torch_checkpoint(path)
    block = mc._random_block()
    for key, (name, dims) in enumerate(mc.tensor_shapes(TINY)):
        expected = b"".join(mc._tensor_chunks(name, int(np.prod(dims)), key, block))
        assert tensors[name].data.tobytes() == expected, name


def test_no_partial_file_is_left_as_the_checkpoint(tmp_path, monkeypatch):
    # an interrupted write leaves consolidated.00.partial, never a truncated consolidated.00.pth
    path = tmp_path / "consolidated.00.pth"

    def fail(*_args):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mc.write_checkpoint(path, TINY, progress=fail)
    assert not path.exists() and (tmp_path / "consolidated.00.partial").exists()
