"""load_model: Meta directories and llama2.c files -> one LoadedModel, with named mismatches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.ml import DT_BF16
from llamanuts.model.loader import LoadedModel, load_model

MODELS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "models"


@pytest.fixture
def meta_dir(fixtures, tmp_path) -> Path:
    """A writable copy of tests/fixtures/loader/tiny_meta."""
    source = fixtures / "tiny_meta"
    if not (source / "tokenizer.model").is_file():
        pytest.skip("tiny_meta/tokenizer.model missing (shared/refs/tok512.model was absent when fixtures were made)")
    target = tmp_path / "tiny_meta"
    shutil.copytree(source, target)
    return target


def _edit_params(directory: Path, **changes) -> None:
    path = directory / "params.json"
    params = json.loads(path.read_text())
    params.update(changes)
    path.write_text(json.dumps(params))


def test_meta_directory_loads(meta_dir):
    model = load_model(meta_dir)
    assert isinstance(model, LoadedModel) and model.format == "meta"
    args = model.args
    assert (args.dim, args.n_layers, args.n_heads, args.n_kv_heads, args.hidden_dim) == (16, 2, 4, 2, 48)
    assert args.vocab_size == 512 == model.tokenizer.vocab_size  # params say -1: the tokenizer's
    assert model.weights.layers[1].wk.shape == (8, 16) and model.weights.layers[1].wk.dtype is DT_BF16
    assert not model.weights.shared_classifier
    assert set(model.files) == {"checkpoint", "params", "tokenizer"}


def test_meta_checkpoint_path_means_its_directory(meta_dir):
    assert load_model(meta_dir / "consolidated.00.pth").format == "meta"


def test_meta_progress_callback(meta_dir):
    calls = []
    load_model(meta_dir, progress=lambda done, total, name: calls.append((done, total, name)))
    assert len(calls) == 21 and calls[-1][:2] == (21, 21)  # 3 + 2*9 weights; rope.freqs is skipped


@pytest.mark.parametrize("missing", ["consolidated.00.pth", "params.json", "tokenizer.model"])
def test_missing_meta_file_is_named(meta_dir, missing):
    (meta_dir / missing).unlink()
    with pytest.raises(ModelFileError, match=rf"expected {missing} at .*llama.meta.com"):
        load_model(meta_dir)


def test_multi_file_meta_directory_is_refused(meta_dir):
    shutil.copyfile(meta_dir / "consolidated.00.pth", meta_dir / "consolidated.01.pth")
    with pytest.raises(ModelFileError, match="multi-file checkpoints"):
        load_model(meta_dir)


def test_wrong_kv_heads_names_the_tensor(meta_dir):
    _edit_params(meta_dir, n_kv_heads=4)
    with pytest.raises(ModelFileError, match=r"'layers.0.attention.wk.weight' has shape \[8 16\] but params.json implies \[n_kv_heads\*head_dim, dim\] = \[16 16\]"):
        load_model(meta_dir)


def test_wrong_ffn_width_names_the_tensor(meta_dir):
    _edit_params(meta_dir, multiple_of=32)
    with pytest.raises(ModelFileError, match=r"'layers.0.feed_forward.w1.weight' has shape \[48 16\] .*\[hidden_dim, dim\] = \[64 16\]"):
        load_model(meta_dir)


def test_wrong_vocab_names_the_embedding(meta_dir):
    _edit_params(meta_dir, vocab_size=600)
    with pytest.raises(ModelFileError, match=r"'tok_embeddings.weight' has shape \[512 16\] .*\[600 16\]"):
        load_model(meta_dir)


def test_more_layers_than_the_checkpoint_names_missing_tensors(meta_dir):
    _edit_params(meta_dir, n_layers=3)
    with pytest.raises(ModelFileError, match=r"9 tensor\(s\) missing for a 3-layer model: 'layers.2.attention.wq.weight'"):
        load_model(meta_dir)


def test_fewer_layers_than_the_checkpoint_names_unexpected_tensors(meta_dir):
    _edit_params(meta_dir, n_layers=1)
    with pytest.raises(ModelFileError, match=r"9 unexpected tensor\(s\).*'layers.1.attention.wq.weight'"):
        load_model(meta_dir)


def test_tokenizer_bigger_than_the_model_is_refused(meta_dir, refs):
    shutil.copyfile(refs / "llama2-tokenizer.model", meta_dir / "tokenizer.model")
    _edit_params(meta_dir, vocab_size=512)
    with pytest.raises(ModelFileError, match="tokenizer has 32000 tokens but the model's embedding has only 512 rows"):
        load_model(meta_dir)


def test_llama2c_loads_with_its_tokenizer(refs):
    model = load_model(refs / "stories260K.bin", refs / "tok512.bin")
    assert model.format == "llama2c" and model.args.n_layers == 5
    assert model.weights.shared_classifier
    assert model.tokenizer.encode("Once upon a time")[-4:] == [403, 407, 261, 378]
    assert model.files == {"model": refs / "stories260K.bin", "tokenizer": refs / "tok512.bin"}


def test_llama2c_without_tokenizer_is_refused(refs):
    with pytest.raises(ModelFileError, match="needs a tokenizer"):
        load_model(refs / "stories260K.bin")


def test_llama2c_progress_callback(refs):
    calls = []
    load_model(refs / "aidreams260K.bin", refs / "aidreams260K-tok512.bin", progress=lambda *c: calls.append(c))
    assert len(calls) == 2 + 4 * 9 and calls[-1][:2] == (38, 38)


def test_missing_model_path(tmp_path):
    with pytest.raises(ModelFileError, match="model path not found"):
        load_model(tmp_path / "nothing")


def test_unrecognised_model_file(tmp_path):
    # (a .gguf file is recognised now: tests/gguf covers it)
    path = tmp_path / "model.onnx"
    path.write_bytes(b"ONNX")
    with pytest.raises(ModelFileError, match="unrecognised model path"):
        load_model(path)


def _model_dirs() -> list[Path]:
    if not MODELS.is_dir():
        return []
    return sorted(p for p in MODELS.iterdir() if (p / "params.json").is_file() and (p / "consolidated.00.pth").is_file())


@pytest.mark.parametrize("directory", _model_dirs() or [None], ids=lambda p: p.name if p else "none")
def test_shared_tiny_models_load(directory):
    if directory is None:
        pytest.skip(f"no Meta-format models in {MODELS} yet")
    model = load_model(directory)
    assert len(model.weights.layers) == model.args.n_layers


def test_checkpoint_without_output_weight_shares_the_embedding(fixtures):
    from llamanuts.model.loader import weights_from_state_dict
    from llamanuts.model.params import model_args_from_params
    from llamanuts.torch import load_torch_checkpoint

    tensors = load_torch_checkpoint(fixtures / "tiny_meta" / "consolidated.00.pth")
    del tensors["output.weight"]
    args = model_args_from_params({"dim": 16, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "multiple_of": 16}, "p", 512)
    weights = weights_from_state_dict(tensors, args, "ckpt")
    assert weights.shared_classifier and weights.output is weights.tok_embeddings


def test_llama2c_with_a_missing_tokenizer_file_names_it(refs, tmp_path):
    with pytest.raises(ModelFileError, match="nope.bin"):
        load_model(refs / "stories260K.bin", tmp_path / "nope.bin")


def test_model_path_that_is_a_dangling_symlink_is_named(tmp_path):
    link = tmp_path / "model.bin"
    link.symlink_to(tmp_path / "moved-away.bin")
    with pytest.raises(ModelFileError, match="model path is a dangling symbolic link"):
        load_model(link, tmp_path / "tok.model")


def test_meta_file_that_is_a_fifo_is_named(meta_dir):
    import os

    (meta_dir / "params.json").unlink()
    os.mkfifo(meta_dir / "params.json")
    with pytest.raises(ModelFileError, match=r"params file is a named pipe \(FIFO\), not a regular file"):
        load_model(meta_dir)
