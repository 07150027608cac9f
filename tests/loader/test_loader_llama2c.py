"""llama2.c legacy .bin: the real reference models load, zero-copy, and bad files are explained."""

from __future__ import annotations

import mmap
import struct

import numpy as np
import pytest

from llamanuts.common.errors import ModelArgsError, ModelFileError
from llamanuts.ml import DT_F32
from llamanuts.model.llama2c import load_llama2c_model


def _owner(array: np.ndarray) -> object:
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


def _write_model(path, dim=8, hidden=12, layers=2, heads=2, kv_heads=1, vocab=10, seq=4, extra_floats=0):
    """A synthetic llama2.c file whose floats count 0, 1, 2, ... so each tensor's position is visible."""
    head_dim = dim // heads
    kv = kv_heads * head_dim
    count = (abs(vocab) * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim)
             + dim + seq * head_dim + (abs(vocab) * dim if vocab < 0 else 0) + extra_floats)
    header = struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab, seq)
    path.write_bytes(header + np.arange(count, dtype=np.float32).tobytes())
    return count


def test_stories260k_args(refs):
    args, weights = load_llama2c_model(refs / "stories260K.bin")
    assert (args.dim, args.hidden_dim, args.n_layers, args.n_heads, args.n_kv_heads) == (64, 172, 5, 8, 4)
    assert (args.vocab_size, args.max_seq_len, args.norm_eps, args.rope_theta) == (512, 512, 1e-5, 10000.0)
    assert len(weights.layers) == 5
    assert weights.layers[0].wk.shape == (32, 64) and weights.layers[0].w2.shape == (64, 172)


def test_aidreams260k_args(refs):
    args, weights = load_llama2c_model(refs / "aidreams260K.bin")
    assert (args.dim, args.hidden_dim, args.n_layers, args.n_heads, args.n_kv_heads) == (64, 172, 4, 4, 4)
    assert (args.vocab_size, args.max_seq_len) == (512, 128)
    assert weights.layers[3].wv.shape == (64, 64)


def test_shared_classifier_is_the_same_tensor(refs):
    _, weights = load_llama2c_model(refs / "stories260K.bin")
    assert weights.output is weights.tok_embeddings and weights.shared_classifier


def test_reference_weights_are_zero_copy_and_match_the_file(refs):
    path = refs / "stories260K.bin"
    _, weights = load_llama2c_model(path)
    raw = np.frombuffer(path.read_bytes(), dtype=np.float32, offset=28)
    np.testing.assert_array_equal(weights.tok_embeddings.data.reshape(-1), raw[: 512 * 64])
    for name, tensor in weights.named_tensors():
        assert tensor.dtype is DT_F32
        assert isinstance(_owner(tensor.data), mmap.mmap), name
        assert not tensor.data.flags.writeable


def test_tensors_are_taken_in_run_c_order(tmp_path):
    path = tmp_path / "m.bin"
    _write_model(path)
    _, w = load_llama2c_model(path)
    # vocab 10 x dim 8 = 80 floats of embeddings, then rms_att [2, 8], then wq [2, 8, 8] ...
    assert w.tok_embeddings.data[0, 0] == 0 and w.layers[0].attention_norm.data[0] == 80
    assert w.layers[1].attention_norm.data[0] == 88 and w.layers[0].wq.data[0, 0] == 96
    assert w.layers[1].wq.data[0, 0] == 96 + 64
    assert w.layers[0].wk.shape == (4, 8) and w.layers[0].w1.shape == (12, 8) and w.layers[0].w2.shape == (8, 12)


def test_per_layer_slices_share_memory(tmp_path):
    path = tmp_path / "m.bin"
    _write_model(path)
    _, w = load_llama2c_model(path)
    assert np.shares_memory(w.layers[0].wq.data, np.frombuffer(_owner(w.layers[1].wq.data), dtype=np.uint8))


def test_negative_vocab_means_a_separate_classifier(tmp_path):
    path = tmp_path / "m.bin"
    count = _write_model(path, vocab=-10)
    args, w = load_llama2c_model(path)
    assert args.vocab_size == 10 and not w.shared_classifier
    assert w.output.shape == (10, 8) and w.output.data[-1, -1] == count - 1


def test_file_shorter_than_header_promises(tmp_path):
    path = tmp_path / "m.bin"
    count = _write_model(path)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ModelFileError, match=f"shorter than its header promises: expected {28 + 4 * count} bytes.*got {28 + 4 * count - 4} bytes"):
        load_llama2c_model(path)


def test_file_longer_than_header_promises(tmp_path):
    path = tmp_path / "m.bin"
    count = _write_model(path, extra_floats=3)
    with pytest.raises(ModelFileError, match=f"longer than its header promises: expected {28 + 4 * (count - 3)} bytes"):
        load_llama2c_model(path)


def test_shared_file_missing_its_classifier_is_too_short(refs, tmp_path):
    # stories260K with the vocab sign flipped expects a classifier after the freq tables.
    data = bytearray((refs / "stories260K.bin").read_bytes())
    struct.pack_into("<i", data, 20, -512)
    path = tmp_path / "flipped.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="shorter than its header promises.*separate classifier"):
        load_llama2c_model(path)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"dim": 0}, "dim = 0 must be positive"),
        ({"n_layers": -1}, "n_layers = -1 must be positive"),
        ({"dim": 10, "heads": 4}, "dim 10 is not divisible by n_heads 4"),
        ({"heads": 4, "kv_heads": 3}, "n_heads 4 is not a multiple of n_kv_heads 3"),
        ({"vocab": 0}, "vocab_size = 0"),
    ],
)
def test_impossible_header_is_refused(tmp_path, fields, message):
    values = {"dim": 8, "hidden": 12, "n_layers": 2, "heads": 2, "kv_heads": 1, "vocab": 10, "seq": 4, **fields}
    path = tmp_path / "bad.bin"
    path.write_bytes(struct.pack("<7i", *values.values()) + b"\0" * 64)
    with pytest.raises(ModelArgsError, match=message):
        load_llama2c_model(path)


def test_versioned_export_is_refused(tmp_path):
    path = tmp_path / "v1.bin"
    path.write_bytes(struct.pack("<Ii", 0x616B3432, 1) + b"\0" * 256)
    with pytest.raises(ModelFileError, match="versioned llama2.c export"):
        load_llama2c_model(path)


def test_file_shorter_than_header(tmp_path):
    path = tmp_path / "short.bin"
    path.write_bytes(b"\1\0\0\0")
    with pytest.raises(ModelFileError, match="too short for a llama2.c model: 4 bytes"):
        load_llama2c_model(path)


def test_header_whose_sizes_overflow_int64_is_refused(tmp_path):
    # Issue 13, item 10. dim 2^30 with 2^29 heads (head_dim 2), hidden 2^30 - 1, 16 layers, vocab 15,
    # seq_len 8: every matrix's element count is a multiple of 2^34 that wraps in int64 so that the
    # sum comes to exactly the 16 floats of the freq_cis tables. With int64 products the 92-byte
    # file passed the size check and crashed in reshape; the true size is about 2^68 bytes.
    path = tmp_path / "overflow.bin"
    header = struct.pack("<7i", 1 << 30, (1 << 30) - 1, 16, 1 << 29, 1 << 29, 15, 8)
    path.write_bytes(header + np.zeros(16, np.float32).tobytes())
    with pytest.raises(ModelFileError, match=r"file is shorter than its header promises: expected \d{20,} bytes"):
        load_llama2c_model(path)
