"""Live comparison with the PyTorch reference on a freshly drawn random model (needs PyTorch).

On a fresh clone without PyTorch this skips; CI installs the CPU build (`pip install -e ".[reference]"`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from llamanuts.model import LlamaTransformer, tokens_tensor
from llamanuts.model.loader import load_model

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[reference]')")

from tools import make_fixtures, reference_llama  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PARAMS = {
    "llama2-gqa": {"dim": 48, "multiple_of": 16, "n_heads": 6, "n_kv_heads": 2, "n_layers": 2, "norm_eps": 1e-5,
                   "vocab_size": -1, "max_seq_len": 32},
    "llama31": {"dim": 32, "multiple_of": 32, "ffn_dim_multiplier": 1.3, "n_heads": 4, "n_kv_heads": 1,
                "n_layers": 3, "norm_eps": 1e-5, "vocab_size": -1, "rope_theta": 500000.0,
                "use_scaled_rope": True, "max_seq_len": 32},
}


def _write_random_model(tmp_path: Path, params: dict, seed: int) -> Path:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copyfile(FIXTURES / "models" / "tiny-gqa" / "tokenizer.model", model_dir / "tokenizer.model")
    vocab = 320
    torch.save(make_fixtures.random_weights(params, vocab, seed), model_dir / "consolidated.00.pth")
    (model_dir / "params.json").write_text(json.dumps(params))
    return model_dir


@pytest.mark.parametrize("variant", list(PARAMS))
def test_fresh_random_model_logits_match_the_live_reference_in_f32(tmp_path: Path, variant: str) -> None:
    seed = int(np.random.SeedSequence().entropy % (2**31))  # a new model every run
    model_dir = _write_random_model(tmp_path, PARAMS[variant], seed)
    tokens = [1, 17, 240, 5, 99, 63, 8, 150, 42]

    reference = reference_llama.load_model(model_dir)
    expected, _ = reference_llama.run_reference(reference, tokens, 0, "f32", record=False)

    loaded = load_model(model_dir)
    model = LlamaTransformer(loaded.args, loaded.weights, "f32")
    got = model.Forward(model.NewInferenceContext(), tokens_tensor(tokens), 0).data
    assert np.abs(got - expected).max() <= 1e-4 * np.ptp(expected), f"seed {seed}"


def test_fresh_random_model_bf16_logits_stay_within_bf16_precision_of_the_live_reference(tmp_path: Path) -> None:
    seed = int(np.random.SeedSequence().entropy % (2**31))
    model_dir = _write_random_model(tmp_path, PARAMS["llama2-gqa"], seed)
    tokens = [1, 17, 240, 5, 99, 63, 8]
    reference = reference_llama.load_model(model_dir)
    expected, _ = reference_llama.run_reference(reference, tokens, 0, "bf16", record=False)
    loaded = load_model(model_dir)
    model = LlamaTransformer(loaded.args, loaded.weights, "bf16")
    got = model.Forward(model.NewInferenceContext(), tokens_tensor(tokens), 0).data
    # logits are bf16 values: allow a few ulps of the largest logit
    assert np.abs(got - expected).max() <= 4 * 2.0 ** (np.floor(np.log2(np.abs(expected).max())) - 7), f"seed {seed}"
