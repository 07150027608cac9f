"""model_metadata: hyperparameter rows, a tensor table and totals."""

from __future__ import annotations

import json

import pytest

from llamanuts.model.loader import load_model
from llamanuts.model.metadata import model_metadata


def test_llama2c_metadata(refs):
    meta = model_metadata(load_model(refs / "stories260K.bin", refs / "tok512.bin"))
    assert meta.format == "llama2c"
    assert ("dim", "64") in meta.hyperparameters and ("shared classifier", "True") in meta.hyperparameters
    # the shared classifier is listed and counted once
    assert [t.name for t in meta.tensors].count("tok_embeddings.weight") == 1
    assert "output.weight" not in [t.name for t in meta.tensors]
    assert meta.parameter_count == sum(t.numel for t in meta.tensors) == 260032
    assert meta.total_bytes == 4 * meta.parameter_count
    assert {f.role: f.size_bytes for f in meta.files} == {"model": 1056540, "tokenizer": 6227}


def test_meta_metadata(fixtures):
    if not (fixtures / "tiny_meta" / "tokenizer.model").is_file():
        pytest.skip("tiny_meta has no tokenizer.model")
    meta = model_metadata(load_model(fixtures / "tiny_meta"))
    row = next(t for t in meta.tensors if t.name == "layers.0.attention.wk.weight")
    assert (row.shape, row.dtype, row.numel, row.nbytes, row.shape_text) == ((8, 16), "BF16", 128, 256, "[8 16]")
    assert meta.total_bytes == 2 * meta.parameter_count
    assert ("n_kv_heads", "2") in meta.hyperparameters


def test_metadata_is_json_ready(refs):
    meta = model_metadata(load_model(refs / "aidreams260K.bin", refs / "aidreams260K-tok512.bin"))
    decoded = json.loads(json.dumps(meta.as_dict()))
    assert decoded["parameter_count"] == meta.parameter_count and decoded["tensors"][0]["name"] == "tok_embeddings.weight"
