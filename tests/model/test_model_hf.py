"""Hugging Face directories through load_model: the tiny transformers-made fixtures against
transformers' own outputs (committed beside them by tools/make_hf_fixture.py), shards, float16,
the zero-copy views, and the errors a bad directory gives.

The tokenizer is not what these tests are about: load_model's tokenizer step is replaced by a
stand-in with the fixture's vocabulary size, and the prompts are the token ids transformers'
own tokenizer made (stored in the reference file).
"""

from __future__ import annotations

import json
import mmap
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from llamanuts.common import GLogger
from llamanuts.common.errors import ModelFileError
from llamanuts.ml import DT_BF16, DT_F16, DT_F32
from llamanuts.model import LlamaTransformer, tokens_tensor
from llamanuts.model import loader
from llamanuts.model.loader import FORMAT_HF, load_model
from llamanuts.model.metadata import model_metadata
from llamanuts.model.rope import ROPE_HALVES
from llamanuts.safetensors import SafetensorsFile

from ..safetensors.writer import write

HF = Path(__file__).resolve().parents[1] / "fixtures" / "hf"
MODELS = ["tiny-llama2-hf", "tiny-llama32-hf"]
# f32 compute against transformers' float32 forward: summation order differs (BLAS vs ours, a
# divide vs a multiply by head_dim**-0.5), so equality is to a few float32 ulps of the logits' range.
F32_TOLERANCE = 1e-5
REAL_LOAD_HF_TOKENIZER = loader._load_hf_tokenizer  # before the autouse fixture replaces it


class StandInTokenizer:
    kind = "stand-in"

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size


@pytest.fixture(autouse=True)
def stand_in_tokenizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_load_hf_tokenizer", lambda directory: StandInTokenizer(320))


def _reference(name: str) -> np.lib.npyio.NpzFile:
    return np.load(HF / "reference" / f"{name}.npz")


def _logits(directory: Path, ids: list[int], mode: str = "f32") -> np.ndarray:
    loaded = load_model(directory)
    model = LlamaTransformer(loaded.args, loaded.weights, mode)
    return model.Forward(model.NewInferenceContext(), tokens_tensor(ids), 0).data


def _greedy(directory: Path, ids: list[int], n: int) -> list[int]:
    loaded = load_model(directory)
    model = LlamaTransformer(loaded.args, loaded.weights, "f32")
    ctx = model.NewInferenceContext()
    logits = model.Forward(ctx, tokens_tensor(ids), 0).data[-1]
    out: list[int] = []
    for pos in range(len(ids), len(ids) + n):
        out.append(int(np.argmax(logits)))
        logits = model.Forward(ctx, tokens_tensor([out[-1]]), pos).data[0]
    return out


@pytest.fixture
def tiny_copy(tmp_path: Path) -> Path:
    target = tmp_path / "tiny-llama2-hf"
    shutil.copytree(HF / "tiny-llama2-hf", target)
    return target


# ---- what loads -----------------------------------------------------------------------------------
def test_a_hugging_face_directory_is_recognised_and_read_from_its_config() -> None:
    loaded = load_model(HF / "tiny-llama32-hf")
    config = json.loads((HF / "tiny-llama32-hf" / "config.json").read_text())
    assert loaded.format == FORMAT_HF == "huggingface"
    a = loaded.args
    assert (a.dim, a.n_layers, a.n_heads, a.n_kv_heads, a.head_dim, a.hidden_dim, a.vocab_size) == (
        config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
        config["num_key_value_heads"], config["head_dim"], config["intermediate_size"], config["vocab_size"],
    )
    assert a.rope_scaling is not None and a.rope_scaling.original_max_position_embeddings == 16
    assert loaded.weights.shared_classifier and loaded.weights.rope_pairing == ROPE_HALVES
    assert loaded.weights.layers[0].wq.shape == (4 * 16, 32)  # head_dim 16 is not hidden/heads = 8


def test_files_are_listed_by_role() -> None:
    loaded = load_model(HF / "tiny-llama32-hf")
    assert set(loaded.files) == {"config", "weights", "tokenizer", "tokenizer_config", "chat_template", "generation_config"}
    assert all(p.parent == HF / "tiny-llama32-hf" for p in loaded.files.values())
    meta = model_metadata(loaded)
    assert meta.format == "huggingface" and all(f.size_bytes > 0 for f in meta.files)


def test_chat_template_comes_from_chat_template_jinja_or_tokenizer_config() -> None:
    jinja = (HF / "tiny-llama32-hf" / "chat_template.jinja").read_text()
    assert load_model(HF / "tiny-llama32-hf").chat_template == jinja
    config = json.loads((HF / "tiny-llama2-hf" / "tokenizer_config.json").read_text())
    assert load_model(HF / "tiny-llama2-hf").chat_template == config["chat_template"]


def test_a_model_without_a_chat_template_has_none(tiny_copy: Path) -> None:
    config = json.loads((tiny_copy / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (tiny_copy / "tokenizer_config.json").write_text(json.dumps(config))
    assert load_model(tiny_copy).chat_template is None


def test_weights_keep_their_stored_dtype_and_view_the_mapped_file() -> None:
    for name, dtype in (("tiny-llama2-hf", DT_BF16), ("tiny-llama32-hf", DT_F32)):
        loaded = load_model(HF / name)
        for tensor_name, tensor in loaded.weights.named_tensors():
            assert tensor.dtype is dtype, tensor_name
            base = tensor.data
            while isinstance(base, np.ndarray) and base.base is not None:
                base = base.base
            assert isinstance(base.obj if isinstance(base, memoryview) else base, mmap.mmap), tensor_name


def test_the_model_safetensors_file_path_means_its_directory() -> None:
    assert load_model(HF / "tiny-llama2-hf" / "model.safetensors").format == "huggingface"


def test_progress_is_reported_per_tensor() -> None:
    calls: list[tuple[int, int, str]] = []
    load_model(HF / "tiny-llama2-hf", progress=lambda d, t, n: calls.append((d, t, n)))
    assert len(calls) == 3 + 2 * 9 and calls[-1][:2] == (21, 21)


# ---- against transformers ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_f32_logits_equal_transformers_within_1e5_of_their_range(name: str) -> None:
    ref = _reference(name)
    got = _logits(HF / name, [int(i) for i in ref["ids"]])
    expected = ref["logits"]
    assert got.shape == expected.shape
    error = float(np.abs(got - expected).max())
    assert error <= F32_TOLERANCE * float(np.ptp(expected)), f"{name}: max abs error {error:.3g}"


@pytest.mark.parametrize("name", MODELS)
def test_greedy_ids_equal_transformers_generate_for_40_tokens(name: str) -> None:
    ref = _reference(name)
    assert _greedy(HF / name, [int(i) for i in ref["ids"]], len(ref["greedy"])) == [int(t) for t in ref["greedy"]]


# ---- other layouts of the same weights ------------------------------------------------------------
def _split_into_two_shards(source: Path, target: Path) -> None:
    """The fixture's tensors in two shards and an index, as save_pretrained(max_shard_size=...) writes them."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("model.safetensors"))
    file = SafetensorsFile(source / "model.safetensors")
    names = file.names()
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2], "model-00002-of-00002.safetensors": names[len(names) // 2 :]}
    weight_map = {}
    for shard, members in shards.items():
        arrays = {n: (file.tensors[n].dtype, file.tensor(n).data) for n in members}
        write(target / shard, arrays)
        weight_map.update({n: shard for n in members})
    (target / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))


@pytest.mark.parametrize("name", MODELS)
def test_a_sharded_checkpoint_gives_the_same_logits(tmp_path: Path, name: str) -> None:
    _split_into_two_shards(HF / name, tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert {"index", "weights 1/2", "weights 2/2"} <= set(loaded.files)
    ids = [int(i) for i in _reference(name)["ids"]]
    np.testing.assert_array_equal(_logits(tmp_path / name, ids), _logits(HF / name, ids))


def test_float16_weights_stay_float16_and_compute_like_the_same_values_in_float32(tmp_path: Path) -> None:
    source = SafetensorsFile(HF / "tiny-llama32-hf" / "model.safetensors")
    halves = {n: source.tensor(n).data.astype(np.float16) for n in source.names()}
    for directory, arrays in (("f16", halves), ("f32", {n: a.astype(np.float32) for n, a in halves.items()})):
        shutil.copytree(HF / "tiny-llama32-hf", tmp_path / directory, ignore=shutil.ignore_patterns("model.safetensors"))
        write(tmp_path / directory / "model.safetensors", arrays)
    assert all(t.dtype is DT_F16 for _, t in load_model(tmp_path / "f16").weights.named_tensors())  # no copy
    ids = [int(i) for i in _reference("tiny-llama32-hf")["ids"]]
    f16, f32 = _logits(tmp_path / "f16", ids), _logits(tmp_path / "f32", ids)
    # The same values (float16 widens exactly); the F16 kernels sum in another order than BLAS.
    np.testing.assert_allclose(f16, f32, rtol=0, atol=1e-5 * float(np.ptp(f32)))


# ---- the debug log says which RoPE layout -------------------------------------------------------------
def test_debug_log_names_the_hugging_face_rope_layout(tmp_path: Path) -> None:
    log = tmp_path / "debug.log"
    GLogger.Init(debug=True, debug_path=str(log))
    try:
        _logits(HF / "tiny-llama2-hf", [1, 5, 9])
    finally:
        GLogger.Init(debug=False)
    text = log.read_text()
    assert "RoPE layout: Hugging Face's q_proj/k_proj rows pair features i and i+4" in text
    assert "Calling applyRotaryEmbeddings for xq shape([3 4 8]): pairs i and i+4 (Hugging Face layout) moved side by side" in text


# ---- bad directories ------------------------------------------------------------------------------------
def _refused(directory: Path, *phrases: str) -> str:
    with pytest.raises(ModelFileError) as info:
        load_model(directory)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message, (phrase, message)
    return message


def _edit_config(directory: Path, **changes: object) -> None:
    config = json.loads((directory / "config.json").read_text())
    config.update(changes)
    (directory / "config.json").write_text(json.dumps(config))


def test_a_config_that_disagrees_with_the_tensor_shapes_names_the_tensor(tiny_copy: Path) -> None:
    _edit_config(tiny_copy, intermediate_size=48)
    _refused(tiny_copy, str(tiny_copy / "model.safetensors"), "tensor 'model.layers.0.mlp.gate_proj.weight' has shape [64 32]",
             "config.json implies [hidden_dim, dim] = [48 32]")


def test_a_config_with_fewer_layers_than_the_checkpoint(tiny_copy: Path) -> None:
    _edit_config(tiny_copy, num_hidden_layers=1)
    _refused(tiny_copy, "layers beyond num_hidden_layers = 1")


def test_an_untied_config_over_a_tied_checkpoint_misses_lm_head(tmp_path: Path) -> None:
    target = tmp_path / "m"
    shutil.copytree(HF / "tiny-llama32-hf", target)
    _edit_config(target, tie_word_embeddings=False)
    _refused(target, "'lm_head.weight'", "tie_word_embeddings is false")


def test_a_config_value_out_of_range_stops_before_the_weights(tiny_copy: Path) -> None:
    (tiny_copy / "model.safetensors").write_bytes(b"garbage")  # never reached
    _edit_config(tiny_copy, rms_norm_eps=float("nan"))
    _refused(tiny_copy, str(tiny_copy / "config.json"), "'rms_norm_eps' is nan")


def test_a_truncated_safetensors_file(tiny_copy: Path) -> None:
    path = tiny_copy / "model.safetensors"
    path.write_bytes(path.read_bytes()[:5000])
    _refused(tiny_copy, str(path), "lie outside the data section")


def test_a_missing_shard(tmp_path: Path) -> None:
    _split_into_two_shards(HF / "tiny-llama2-hf", tmp_path / "m")
    (tmp_path / "m" / "model-00002-of-00002.safetensors").unlink()
    _refused(tmp_path / "m", "model-00002-of-00002.safetensors: shard not found")


def test_config_json_without_safetensors_weights(tmp_path: Path) -> None:
    shutil.copyfile(HF / "tiny-llama2-hf" / "config.json", tmp_path / "config.json")
    (tmp_path / "pytorch_model.bin").write_bytes(b"PK")
    _refused(tmp_path, str(tmp_path), "neither model.safetensors nor model.safetensors.index.json", "not pytorch_model.bin")


def test_a_separate_tokenizer_file_is_refused_for_a_hugging_face_directory() -> None:
    with pytest.raises(ModelFileError, match="brings its own tokenizer.json"):
        load_model(HF / "tiny-llama2-hf", tokenizer_path=HF / "tiny-llama2-hf" / "tokenizer.json")


def test_without_the_hugging_face_tokenizer_module_the_error_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_load_hf_tokenizer", REAL_LOAD_HF_TOKENIZER)
    monkeypatch.setitem(sys.modules, "llamanuts.tokenizer.hf_tokenizer", None)  # import now fails
    _refused(HF / "tiny-llama2-hf", str(HF / "tiny-llama2-hf"), "the Hugging Face tokenizer is not available yet")


def test_a_tokenizer_larger_than_the_embedding_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_load_hf_tokenizer", lambda directory: StandInTokenizer(321))
    _refused(HF / "tiny-llama2-hf", "tokenizer.json", "321 tokens but the model's embedding has only 320 rows")

