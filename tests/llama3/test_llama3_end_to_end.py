"""A Llama-3.1-shaped model in Meta's format runs through the CLI with the real Llama 3 tokenizer.

The model is tiny and random, but shaped like Llama 3.1 where it matters: the real 128256-token
vocabulary (tiktoken ranks + 256 specials), rope_theta 500000 with scaled RoPE, grouped-query
attention, and the FFN width from ffn_dim_multiplier and multiple_of. Writing the .pth needs PyTorch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
REFS = REPO.parent / "shared" / "refs"
PARAMS = {
    "dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "vocab_size": 128256, "multiple_of": 32,
    "ffn_dim_multiplier": 1.3, "norm_eps": 1e-05, "rope_theta": 500000.0, "use_scaled_rope": True,
    "max_seq_len": 128,
}


@pytest.fixture(scope="module")
def llama31_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch = pytest.importorskip("torch", reason="writing the .pth needs PyTorch (pip install -e '.[reference]')")
    if not (REFS / "llama3-tokenizer.model").exists():
        pytest.skip(f"{REFS} is absent (the Llama 3 tokenizer lives in the shared folder beside the repository)")
    from tools import make_fixtures

    # "instruct" in the directory name marks a chat model, as Meta names its releases
    model_dir = tmp_path_factory.mktemp("models") / "Meta-Llama-3.1-tiny-Instruct"
    model_dir.mkdir()
    weights = make_fixtures.random_weights(PARAMS, PARAMS["vocab_size"], seed=31)
    torch.save(weights, model_dir / "consolidated.00.pth")
    (model_dir / "params.json").write_text(json.dumps(PARAMS))
    (model_dir / "tokenizer.model").write_bytes((REFS / "llama3-tokenizer.model").read_bytes())
    return model_dir


def _cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cmd.llama_infer", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_llama31_shaped_model_loads_with_scaled_rope_and_the_tiktoken_vocabulary(llama31_dir: Path) -> None:
    from llamanuts.model.loader import load_model

    loaded = load_model(llama31_dir)
    assert loaded.tokenizer.kind == "tiktoken"
    assert loaded.args.vocab_size == 128256
    assert loaded.args.use_scaled_rope and loaded.args.rope_theta == 500000.0
    # Meta's rule: int(2 * 4 * 64 / 3) = 170, int(1.3 * 170) = 221, up to a multiple of 32 -> 224
    assert loaded.args.hidden_dim == 224


def test_llama31_chat_runs_through_the_cli_with_the_header_template(llama31_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "debug.log"
    out = _cli("--model", str(llama31_dir), "--chat", "--system", "Always answer with emojis",
               "--prompt", "How to go from Beijing to NY?", "--max-tokens", "6", "--temperature", "0",
               "--debug", "--debug-log", str(log))
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith("\n")
    from llamanuts.tokenizer import load_tokenizer

    tok = load_tokenizer(REFS / "llama3-tokenizer.model")
    expected_prompt = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nAlways answer with emojis<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHow to go from Beijing to NY?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    n_prompt = len(tok.encode_with_specials(expected_prompt))
    assert f"prompt tokens: {n_prompt}" in out.stderr
    assert "STAGE 01" in log.read_text() and "STAGE 19" in log.read_text()


def test_llama3_tokenize_tool_shows_the_published_ids() -> None:
    if not (REFS / "llama3-tokenizer.model").exists():
        pytest.skip(f"{REFS} is absent")
    out = subprocess.run([sys.executable, "-m", "cmd.llama_tokenize", "--tokenizer", str(REFS / "llama3-tokenizer.model"),
                          "--bos", "--eos", "--json", "This is a test sentence."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # Meta's own tokenizer test (llama3 repo): with BOS and EOS
    assert json.loads(out.stdout)["ids"] == [128000, 2028, 374, 264, 1296, 11914, 13, 128001]
