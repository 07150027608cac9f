"""The docs' generators still run against the engine: figures from recorded tensors, CLI captures.

Run on a tiny Meta-format fixture model so they take seconds; the committed files in docs/figures/
are made on the default model (`python tools/make_figures.py`, `python tools/capture_cli.py`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests" / "fixtures" / "models" / "tiny-gqa"


def test_make_figures_draws_from_recorded_tensors(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason='matplotlib is a docs extra (pip install -e ".[docs]")')
    result = subprocess.run(
        [sys.executable, "tools/make_figures.py", "--model", str(TINY), "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("rope-frequencies.png", "attention-scores.png", "bf16-bit-layout.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    # The chapters show the committed figures under the same names.
    for name in ("rope-frequencies.png", "attention-scores.png", "bf16-bit-layout.png"):
        assert (REPO / "docs" / "figures" / name).is_file()


def test_capture_cli_records_real_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "tools/capture_cli.py", "--model-args", f"--model {TINY}",
         "--tokenizer", str(TINY / "tokenizer.model"), "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    debug = (tmp_path / "cli-llama-infer-debug.svg").read_text(encoding="utf-8")
    assert debug.startswith("<svg") and "STAGE&#160;19" in debug
    assert "finish&#160;reason" in (tmp_path / "cli-llama-infer.svg").read_text(encoding="utf-8")
    for name in ("cli-llama-infer.svg", "cli-llama-infer-debug.svg", "cli-llama-tokenize.svg", "cli-llama-tokenize-emoji.svg"):
        assert (REPO / "docs" / "figures" / name).is_file()
