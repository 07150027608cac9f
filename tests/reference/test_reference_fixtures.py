"""The committed fixtures are well-formed, small, and still what the reference computes.

If one of these fails after a change to tools/reference_llama.py or tools/make_fixtures.py,
regenerate with `python -m tools.make_fixtures` and review the diff.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is a development-only tool; not installed")

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools import reference_llama as ref  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
REFS = Path("/work/shared/refs")
TINY = ("tiny-mha", "tiny-gqa", "tiny-llama3", "tiny-llama31")
MODES = ("f32", "bf16")
PHASES = ("prefill", "decode")


def load_npz(name: str) -> dict[str, np.ndarray]:
    path = FIXTURES / "reference" / f"{name}.npz"
    if not path.exists():
        pytest.skip(f"{path} missing: run python -m tools.make_fixtures")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def tiny_model(name: str) -> ref.ReferenceModel:
    return ref.load_meta_dir(FIXTURES / "models" / name)


def close(got: np.ndarray, want: np.ndarray, mode: str, key: str) -> None:
    """f32: float32 noise only.  bf16: allow a few bf16 ulps, since another CPU may sum
    a matmul in another order and round one element the other way."""
    scale = max(1.0, float(np.nanmax(np.abs(np.where(np.isinf(want), 0, want)))))
    atol = (2e-5 if mode == "f32" else 3 * 2.0**-8) * scale
    np.testing.assert_allclose(got, want, rtol=0, atol=atol, err_msg=key)


def test_fixture_folder_is_small() -> None:
    files = [p for p in FIXTURES.rglob("*") if p.is_file()]
    assert files, "no fixtures: run python -m tools.make_fixtures"
    assert sum(p.stat().st_size for p in files) < 2_000_000
    assert (FIXTURES / "reference" / "README.md").exists()


@pytest.mark.parametrize("name", TINY)
def test_model_folder_is_meta_layout(name: str) -> None:
    folder = FIXTURES / "models" / name
    params = json.loads((folder / "params.json").read_text())
    state = torch.load(folder / "consolidated.00.pth", map_location="cpu", weights_only=True)
    keys = {"tok_embeddings.weight", "norm.weight", "output.weight"}
    for i in range(params["n_layers"]):
        keys |= {f"layers.{i}.attention.{m}.weight" for m in ("wq", "wk", "wv", "wo")}
        keys |= {f"layers.{i}.feed_forward.{m}.weight" for m in ("w1", "w2", "w3")}
        keys |= {f"layers.{i}.attention_norm.weight", f"layers.{i}.ffn_norm.weight"}
    assert set(state) == keys
    assert all(t.dtype == torch.bfloat16 for t in state.values())
    assert not torch.equal(state["output.weight"], state["tok_embeddings.weight"])
    assert params["vocab_size"] in (-1, state["tok_embeddings.weight"].shape[0])
    if name in ("tiny-mha", "tiny-gqa"):
        assert params["vocab_size"] == -1  # Llama 2 style


def test_tokenizer_is_llama_like() -> None:
    spm = pytest.importorskip("sentencepiece")
    sp = spm.SentencePieceProcessor(model_file=str(FIXTURES / "models/tiny-mha/tokenizer.model"))
    assert (sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()) == (0, 1, 2, -1)
    assert sp.get_piece_size() == 320
    assert sp.id_to_piece(3) == "<0x00>" and sp.id_to_piece(258) == "<0xFF>"
    ids = sp.encode("The cat finds 42 apples!")
    assert sp.decode(ids) == "The cat finds 42 apples!"
    assert sp.encode("é") == [sp.piece_to_id("▁"), 198, 172]  # byte fallback for UTF-8 C3 A9


@pytest.mark.parametrize("name", TINY)
def test_tiny_fixture_keys_and_shapes(name: str) -> None:
    z = load_npz(name)
    a = tiny_model(name).args
    assert z["tokens"].shape == (7,) and z["tokens"][0] == 1
    assert z["decode_token"].shape == ()
    for mode in MODES:
        assert z[f"{mode}/prefill/logits"].shape == (7, a.vocab_size)
        assert z[f"{mode}/prefill/mask"].shape == (7, 7)
        assert z[f"{mode}/prefill/layers.0.scores"].shape == (a.n_heads, 7, 7)
        assert z[f"{mode}/decode/logits"].shape == (1, a.vocab_size)
        assert z[f"{mode}/decode/layers.1.scores"].shape == (a.n_heads, 1, 8)
        assert f"{mode}/decode/mask" not in z
        assert z[f"{mode}/full/logits"].shape == (8, a.vocab_size)
        assert z[f"{mode}/greedy"].shape == (20,)
        assert z[f"{mode}/prefill/freqs_cis"].dtype == np.complex64
        # KV-cache decode and a fresh forward over all 8 tokens agree.
        close(z[f"{mode}/decode/logits"][0], z[f"{mode}/full/logits"][-1], mode, name)


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("mode", MODES)
def test_tiny_fixture_reproduces(name: str, mode: str) -> None:
    z = load_npz(name)
    model = tiny_model(name)
    tokens = [int(t) for t in z["tokens"]]
    decode = int(z["decode_token"])
    _, prefill = ref.run_reference(model, tokens, 0, mode, record=True)
    _, step = ref.run_reference(model, [decode], len(tokens), mode, record=True)
    full, _ = ref.run_reference(model, tokens + [decode], 0, mode, record=False)
    for phase, stages in (("prefill", prefill), ("decode", step)):
        stored = {k.split("/", 2)[2]: v for k, v in z.items() if k.startswith(f"{mode}/{phase}/")}
        assert stored.keys() == stages.keys()
        for key, value in stages.items():
            if key == "freqs_cis":
                np.testing.assert_allclose(value, stored[key], atol=1e-6)
            else:
                close(value, stored[key], mode, f"{mode}/{phase}/{key}")
    close(full, z[f"{mode}/full/logits"], mode, "full")
    greedy = ref.greedy_generate(model, 20, stop_ids=(), mode=mode)
    assert greedy == z[f"{mode}/greedy"].tolist()


@pytest.mark.parametrize("name", ["stories260K", "aidreams260K"])
def test_llama2c_fixture(name: str) -> None:
    z = load_npz(name)
    assert z["prefill_tokens"].shape == (17,)
    assert z["prefill_tokens"][1:].tolist() == z["f32/greedy"][:16].tolist()
    assert z["f32/prefill/logits"].shape == (17, 512)
    path = REFS / f"{name}.bin"
    if not path.exists():
        pytest.skip(f"{path} absent (shared reference files not mounted)")
    model = ref.load_llama2c_bin(path)
    logits, _ = ref.run_reference(model, z["prefill_tokens"].tolist(), 0, "f32", record=False)
    close(logits, z["f32/prefill/logits"], "f32", name)
    assert ref.greedy_generate(model, 40, mode="bf16") == z["bf16/greedy"][:40].tolist()
