"""tools/reference_hf.py, the transformers stage reference, checked on its own.

- halves_to_interleaved undoes exactly the Q/K row permutation transformers' GGUF loader applies
  (its LlamaTensorProcessor._reverse_permute_weights, llama.cpp's permute in reverse);
- on a tiny committed Hugging Face fixture, every stage it captures agrees with our engine (which
  runs that directory in its own Hugging Face layout), so the hooks capture what they are named for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[reference]')")
pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[reference]')")

from llamanuts.inference import InferenceArgs, InferenceEngine  # noqa: E402
from llamanuts.inference.prompt import ChatMessage  # noqa: E402
from llamanuts.model import LlamaTransformer, tokens_tensor  # noqa: E402
from llamanuts.model.loader import load_model  # noqa: E402
from tools import reference_hf  # noqa: E402

HF = Path(__file__).resolve().parents[1] / "fixtures" / "hf"


@pytest.mark.parametrize(("n_heads", "n_kv_heads"), [(9, 9), (9, 3)])
def test_halves_to_interleaved_undoes_the_permutation_transformers_applies_to_gguf_q_k_rows(n_heads: int, n_kv_heads: int) -> None:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    head_dim, dim = 8, 12
    rows = n_kv_heads * head_dim
    gguf_rows = np.random.default_rng(1).standard_normal((rows, dim)).astype(np.float32)
    processor = LlamaTensorProcessor(config={"num_attention_heads": n_heads, "num_key_value_heads": n_kv_heads})
    hf_rows = processor.process(gguf_rows, "blk.0.attn_k.weight").weights
    assert not np.array_equal(hf_rows, gguf_rows)
    x = np.random.default_rng(2).standard_normal((5, dim)).astype(np.float32)
    # the projection through transformers' rows, reordered, is the projection through the file's rows
    np.testing.assert_array_equal(reference_hf.halves_to_interleaved(x @ hf_rows.T, head_dim), x @ gguf_rows.T)


# Same float32 arithmetic on both sides up to summation order, on a tiny random model: the stages
# agree to about 1e-6 of their magnitude; 1e-5 leaves a margin and still catches a misplaced hook.
TINY_TOLERANCE = 1e-5


@pytest.mark.parametrize("name", ["tiny-llama2-hf", "tiny-llama32-hf"])
def test_every_captured_stage_of_a_tiny_hugging_face_model_matches_our_engine(name: str) -> None:
    loaded = load_model(HF / name)
    model = LlamaTransformer(loaded.args, loaded.weights, "f32")
    engine = InferenceEngine(model, loaded.tokenizer, InferenceArgs())
    ids = engine.TokenizeChat([ChatMessage("system", "You answer briefly."), ChatMessage("user", "The cat finds 42 apples!")])
    context = model.NewInferenceContext(len(ids) + 1)
    context.recorder = {}
    logits = model.Forward(context, tokens_tensor(ids), 0).data
    reference = reference_hf.load_reference_model(HF / name)
    stages, cache = reference_hf.capture_stages(reference, ids, reference_hf.HALVES)
    names = reference_hf.stage_names(loaded.args.n_layers)
    assert set(names) <= set(stages)
    for d in reference_hf.stage_differences(context.recorder, stages, names):
        assert d.relative <= TINY_TOLERANCE, f"prefill {d.name}: {d.relative:.3g}"
    # a decode step, through transformers' cache
    token = int(np.argmax(logits[-1]))
    context.recorder = {}
    model.Forward(context, tokens_tensor([token]), len(ids))
    stages, _ = reference_hf.capture_stages(reference, [token], reference_hf.HALVES, cache)
    for d in reference_hf.stage_differences(context.recorder, stages, names):
        assert d.relative <= TINY_TOLERANCE, f"decode {d.name}: {d.relative:.3g}"
