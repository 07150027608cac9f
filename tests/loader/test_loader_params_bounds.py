"""Every number in params.json is checked for type, finiteness and range, and every allocation it
implies (expected tensor names, the RoPE table, the KV cache) is checked against the file and the
machine's memory before it is made (issue 13, item 4).

Before: n_layers 10^8 or max_seq_len 10^7 allocated gigabytes (MemoryError tracebacks),
Infinity / 1e308 / NaN multipliers, 100,000-deep JSON and a 5,000-digit integer were tracebacks,
and NaN or 1e400 norm_eps and NaN rope_theta loaded silently and generated nothing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from llamanuts.common import memory
from llamanuts.common.errors import InsufficientMemoryError, ModelArgsError, ModelFileError
from llamanuts.model import LlamaTransformer
from llamanuts.model.inferencecontext import InferenceContext
from llamanuts.model.loader import load_model
from llamanuts.model.params import load_params, model_args_from_params

SMALL = {"dim": 16, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 512, "multiple_of": 16}


@pytest.fixture
def meta_dir(fixtures, tmp_path) -> Path:
    target = tmp_path / "tiny_meta"
    shutil.copytree(fixtures / "tiny_meta", target)
    return target


def _write_params(directory: Path, text: str) -> Path:
    path = directory / "params.json"
    path.write_text(text)
    return path


def _edit_params(directory: Path, **changes) -> None:
    path = directory / "params.json"
    params = json.loads(path.read_text())
    params.update(changes)
    path.write_text(json.dumps(params))


# ---- the values, through the loader ----------------------------------------------------------
def test_n_layers_1e8_is_refused_before_allocating(meta_dir):
    _edit_params(meta_dir, n_layers=10**8)
    with pytest.raises(ModelArgsError, match=r"'n_layers' is 100000000, outside the range \[1, 1024\]"):
        load_model(meta_dir)


@pytest.mark.parametrize("key", ["norm_eps", "rope_theta", "ffn_dim_multiplier"])
def test_an_integer_too_large_for_a_float_is_refused(key):
    # load_params refuses such a number in the file already; params given as a dict made float()
    # raise OverflowError (a traceback)
    with pytest.raises(ModelArgsError, match=rf"'{key}' is an integer of 1329 bits: it must be a finite number"):
        model_args_from_params({**SMALL, key: 10**400}, "params.json", None)


def test_n_layers_beyond_the_checkpoint_is_refused_before_listing_names(meta_dir):
    _edit_params(meta_dir, n_layers=1000)
    with pytest.raises(ModelFileError, match=r"n_layers = 1000, which needs 9000 layer tensors .* holds only 21 tensors"):
        load_model(meta_dir)


def test_max_seq_len_1e7_is_refused(meta_dir):
    _edit_params(meta_dir, max_seq_len=10**7)
    with pytest.raises(ModelArgsError, match=r"'max_seq_len' is 10000000, outside the range \[1, 4194304\]"):
        load_model(meta_dir)


@pytest.mark.parametrize(
    "text, message",
    [
        ('"ffn_dim_multiplier": Infinity', "Infinity is not a number JSON allows"),
        ('"ffn_dim_multiplier": NaN', "NaN is not a number JSON allows"),
        ('"ffn_dim_multiplier": 1e308', r"'ffn_dim_multiplier' is 1e\+308, outside the range \(0, 16\]"),
        ('"norm_eps": NaN', "NaN is not a number JSON allows"),
        ('"norm_eps": 1e400', "1e400 is not a finite number"),
        ('"rope_theta": NaN', "NaN is not a number JSON allows"),
        ('"rope_theta": 0.5', r"'rope_theta' is 0.5, outside the range \(1, 1e\+12\]"),
        ('"norm_eps": 2', r"'norm_eps' is 2.0, outside the range \(0, 1\]"),
        ('"dim": ' + "9" * 5000, "an integer of 5000 digits"),
    ],
)
def test_numbers_no_hyperparameter_can_be_are_refused(meta_dir, text, message):
    _write_params(meta_dir, '{"dim": 16, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": -1, '
                  '"multiple_of": 16, ' + text + "}")
    with pytest.raises(ModelArgsError, match=message):
        load_model(meta_dir)


def test_json_nested_100000_deep_is_refused(tmp_path):
    path = _write_params(tmp_path, '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ModelArgsError, match="values nested too deeply"):
        load_params(path)


def test_oversized_params_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "params.json"
    with open(path, "wb") as file:
        file.truncate(10 << 20)
    with pytest.raises(ModelArgsError, match=r"params.json is 10485760 bytes, more than the limit"):
        load_params(path)


def test_params_on_a_fifo_is_refused_without_waiting(tmp_path):
    import os

    fifo = tmp_path / "params.json"
    os.mkfifo(fifo)
    with pytest.raises(ModelArgsError, match=r"params.json is a named pipe \(FIFO\)"):
        load_params(fifo)


def test_odd_head_dim_is_refused():
    with pytest.raises(ModelArgsError, match=r"head_dim 5 \(dim / n_heads\) must be even"):
        model_args_from_params({**SMALL, "dim": 20}, "params.json", None)


# ---- allocations against the memory the machine has ---------------------------------------------------
@pytest.fixture
def tiny_model(fixtures):
    return load_model(fixtures / "tiny_meta")


def test_kv_cache_larger_than_memory_says_what_fits(tiny_model, monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 100_000)
    # 2 x 2 layers x 512 positions x 2 kv heads x head_dim 4 x 2 bytes = 32768 bytes per 512 positions
    with pytest.raises(InsufficientMemoryError) as error:
        InferenceContext(tiny_model.args, 2048, "bf16")
    text = str(error.value)
    assert "the KV cache needs 128.0 KiB (keys and values: 2 x 2 layers x 2048 positions" in text
    assert "only 97.7 KiB of memory is available; a sequence length of at most 1562 fits" in text
    assert InferenceContext(tiny_model.args, 1562, "bf16").cache_bytes() <= 100_000


def test_rope_table_larger_than_memory_is_refused_with_the_length_that_fits(tiny_model, monkeypatch):
    model = LlamaTransformer(tiny_model.args, tiny_model.weights, "f32")  # builds no table yet
    monkeypatch.setattr(memory, "available_memory", lambda: 1000)
    # 2048 positions x head_dim/2 2 x 16 bytes = 64 KiB; 1000 bytes hold 31 positions
    with pytest.raises(InsufficientMemoryError) as error:
        model.NewInferenceContext(2048)
    text = str(error.value)
    assert "the RoPE table freqs_cis needs 64.0 KiB (2048 positions x head_dim/2 2 complex64 entries" in text
    assert "a sequence length of at most 31 fits (llama_infer --sequence-length, llama_perplexity --ctx; " in text
    assert "the default is the model's max_seq_len 2048)" in text


def test_the_rope_table_is_sized_by_the_sequence_length_not_max_seq_len(tiny_model, monkeypatch):
    # A model that claims 2^20 positions runs a context of 8 with an 8-row table.
    from dataclasses import replace

    from llamanuts.model import tokens_tensor

    args = replace(tiny_model.args, max_seq_len=1 << 20)
    model = LlamaTransformer(args, tiny_model.weights, "f32")
    short = model.Forward(model.NewInferenceContext(8), tokens_tensor([1, 5, 7]), 0).numpy()
    assert model.freqs_cis is not None and model.freqs_cis.shape[0] == 8
    # A longer context rebuilds the table, and positions 0..2 give the same numbers.
    longer = model.Forward(model.NewInferenceContext(64), tokens_tensor([1, 5, 7]), 0).numpy()
    assert model.freqs_cis.shape[0] == 64
    np.testing.assert_array_equal(short, longer)


def test_a_context_made_directly_gets_its_rope_rows_at_the_first_forward(tiny_model):
    from llamanuts.model import tokens_tensor

    model = LlamaTransformer(tiny_model.args, tiny_model.weights, "f32")
    model.Forward(InferenceContext(tiny_model.args, 16, "f32"), tokens_tensor([1, 5]), 0)
    assert model.freqs_cis.shape[0] == 16


def test_address_space_limit_counts_as_memory(tmp_path, bounded, fixtures):
    # Under `ulimit -v` (RLIMIT_AS) numpy would fail with MemoryError; the check sees the limit.
    run = bounded(
        f"""
        from llamanuts.common.errors import LlamaError
        from llamanuts.model.loader import load_model
        from llamanuts.model.inferencecontext import InferenceContext
        loaded = load_model({str(fixtures / "tiny_meta")!r})
        loaded.args.max_seq_len = 1 << 23
        try:
            InferenceContext(loaded.args, 1 << 23, "f32")  # 2 x 2 layers x 8M x 2 x 4 x 4 bytes = 1 GiB
        except LlamaError as exc:
            print(type(exc).__name__, exc)
        """,
        memory=1 << 30,
    )
    assert run.returncode == 0, run.stderr[-600:]
    assert run.stdout.startswith("InsufficientMemoryError the KV cache needs 1.0 GiB"), run.stdout


# ---- the context lengths GGUF and Hugging Face files state -------------------------------------------------
REPO = Path(__file__).resolve().parents[2]


def test_a_gguf_context_length_of_2_20_is_checked_before_its_kv_cache_is_allocated(tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(REPO / "tests" / "gguf"))
    from ggufbytes import TinyLlama  # 2 layers, 2 kv heads, head_dim 16

    path = tmp_path / "long.gguf"
    path.write_bytes(TinyLlama(context=1 << 20).build())
    loaded = load_model(path)
    assert loaded.args.max_seq_len == 1 << 20
    model = LlamaTransformer(loaded.args, loaded.weights, "f32")
    monkeypatch.setattr(memory, "available_memory", lambda: 96 << 20)
    # the RoPE table (2^20 x 8 pairs x 16 bytes = 128 MiB) is checked first, then the KV cache would be
    with pytest.raises(InsufficientMemoryError) as error:
        model.NewInferenceContext()
    text = str(error.value)
    assert "the RoPE table freqs_cis needs 128.0 MiB (1048576 positions" in text
    assert "a sequence length of at most 786432 fits (llama_infer --sequence-length" in text
    assert "the default is the model's max_seq_len 1048576" in text
    monkeypatch.setattr(memory, "available_memory", lambda: 200 << 20)
    with pytest.raises(InsufficientMemoryError, match=r"the KV cache needs 512.0 MiB \(keys and values: 2 x 2 layers x 1048576 positions"):
        model.NewInferenceContext()
    assert model.NewInferenceContext(4096).sequence_length == 4096  # what the message says to do works


def test_a_hugging_face_max_position_embeddings_is_checked_the_same_way(tmp_path, monkeypatch):
    source = REPO / "tests" / "fixtures" / "hf" / "tiny-llama32-hf"
    target = tmp_path / "long-hf"
    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    config["max_position_embeddings"] = 131072  # Llama 3.2's
    (target / "config.json").write_text(json.dumps(config))
    loaded = load_model(target)
    model = LlamaTransformer(loaded.args, loaded.weights, "f32")
    monkeypatch.setattr(memory, "available_memory", lambda: 8 << 20)
    with pytest.raises(InsufficientMemoryError, match=r"the RoPE table freqs_cis needs 16.0 MiB \(131072 positions x head_dim/2 8 .*"
                                                      r"a sequence length of at most 65536 fits"):
        model.NewInferenceContext()
