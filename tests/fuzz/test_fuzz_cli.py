"""Mutated files through the real command line: exit 0 or 2, never a traceback (issue 13).

A handful of cases only (each run imports numpy and compiles kernels): the fuzz suite covers the
loaders in depth in process; this checks the last step, that the CLI turns each outcome into one
message and the right exit code. Runs two processes at a time.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tools import fuzz

REPO = Path(__file__).resolve().parents[2]
TINY_META = REPO / "tests" / "fixtures" / "loader" / "tiny_meta"
TINY_HF = REPO / "tests" / "fixtures" / "hf" / "tiny-llama2-hf"
STORIES = fuzz.SHARED_REFS / "stories260K.bin"
TOK512 = fuzz.SHARED_REFS / "tok512.model"


def _meta_copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(TINY_META, target)
    return target


def _cases(tmp_path: Path) -> list[tuple[str, list[str], set[int]]]:
    """(name, CLI arguments, allowed exit codes)."""
    cases: list[tuple[str, list[str], set[int]]] = [("tiny Meta model as is", ["--model", str(TINY_META)], {0})]
    nan_eps = _meta_copy(tmp_path, "nan_eps")
    (nan_eps / "params.json").write_text('{"dim": 16, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, '
                                         '"multiple_of": 16, "vocab_size": -1, "norm_eps": NaN}')
    cases.append(("params.json norm_eps NaN", ["--model", str(nan_eps)], {2}))
    flipped = _meta_copy(tmp_path, "flipped")
    data = bytearray((flipped / "consolidated.00.pth").read_bytes())
    data[data.index(b"tok_embeddings.weight")] ^= 1  # inside data.pkl: the CRC check refuses it
    (flipped / "consolidated.00.pth").write_bytes(bytes(data))
    cases.append(("a flipped byte in data.pkl", ["--model", str(flipped)], {2}))
    # seeded fuzz cases, whatever the mutation gives: a load (0) or a refusal (2)
    for name, index in (("params", 3), ("sentencepiece", 5)):
        case = tmp_path / f"{name}{index}"
        case.mkdir()
        material = fuzz.FORMATS[name].prepare(tmp_path)
        path, _ = fuzz.FORMATS[name].mutate(fuzz.case_rng(13, name, index), material, case)
        if name == "params":
            cases.append((f"fuzz params case {index}", ["--model", str(path)], {0, 2}))
        else:
            model = _meta_copy(tmp_path, f"sp{index}")
            cases.append((f"fuzz tokenizer case {index}", ["--model", str(model), "--tokenizer", str(path)], {0, 2}))
    # the newer formats: a GGUF file, a Hugging Face directory (its weights, its other files), and
    # a chat template that would loop 10^10 times, rendered by --chat
    for name, index in (("gguf", 4), ("safetensors", 2), ("hf-directory", 6)):
        case = tmp_path / f"{name}{index}"
        case.mkdir()
        seeds = tmp_path / f"{name}-seeds"
        seeds.mkdir()
        material = fuzz.FORMATS[name].prepare(seeds)
        path, description = fuzz.FORMATS[name].mutate(fuzz.case_rng(13, name, index), material, case)
        cases.append((f"fuzz {name} case {index}: {description}", ["--model", str(path)], {0, 2}))
    endless = tmp_path / "endless-template"
    shutil.copytree(TINY_HF, endless)
    (endless / "chat_template.jinja").write_text(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", encoding="utf-8")
    cases.append(("a chat template of 10^10 steps, --chat", ["--model", str(endless), "--chat"], {2}))
    if STORIES.is_file() and TOK512.is_file():
        header = bytearray(STORIES.read_bytes())
        struct.pack_into("<i", header, 8, 2**31 - 1)  # n_layers
        (tmp_path / "layers.bin").write_bytes(bytes(header))
        cases.append(("llama2.c header n_layers 2^31-1", ["--model", str(tmp_path / "layers.bin"), "--tokenizer", str(TOK512)], {2}))
        cases.append(("tokenizer /dev/zero", ["--model", str(STORIES), "--tokenizer", "/dev/zero"], {2}))
    return cases


def test_mutated_inputs_through_the_cli_exit_0_or_2_without_a_traceback(tmp_path: Path, fuzz_summary: list[str]) -> None:
    if not (TINY_META / "tokenizer.model").is_file():
        pytest.skip("tiny_meta fixture missing")
    cases = _cases(tmp_path)
    results = []
    for start in range(0, len(cases), 2):  # two at a time: the machine has two cores
        running = [
            (name, allowed, subprocess.Popen(
                [sys.executable, "-m", "cmd.llama_infer", *args, "--prompt", "x", "--max-tokens", "1"],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))
            for name, args, allowed in cases[start : start + 2]
        ]
        for name, allowed, process in running:
            stdout, stderr = process.communicate(timeout=300)
            results.append((name, allowed, process.returncode, stderr))
    fuzz_summary.append(f"fuzz CLI smoke: {len(results)} mutated inputs through python -m cmd.llama_infer")
    for name, allowed, code, stderr in results:
        assert code in allowed, f"{name}: exit {code}, expected {sorted(allowed)}: {stderr[-600:]}"
        assert "Traceback" not in stderr, f"{name}: {stderr[-1200:]}"
        if code == 2:
            assert stderr.strip(), f"{name}: exit 2 without a message"
