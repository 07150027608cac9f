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


def test_make_diagrams_draws_every_stage_figure_readable_at_its_own_size(tmp_path: Path) -> None:
    """The stage figures: valid SVG, at most 680 px wide (the site's text column at a 1400 px window
    is 688 px, so they show at their own size) with no text under 13 px, the shapes of the model
    they were drawn from, and every committed figure shown by a chapter."""
    import xml.etree.ElementTree as ET

    from tools import make_diagrams

    result = subprocess.run(
        [sys.executable, "tools/make_diagrams.py", "--model", str(TINY), "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    params = __import__("json").loads((TINY / "params.json").read_text(encoding="utf-8"))
    head_dim = params["dim"] // params["n_heads"]
    chapters = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("*.md"))
    for name in make_diagrams.PICTURES:
        root = ET.fromstring((tmp_path / name).read_text(encoding="utf-8"))
        assert root.tag.endswith("svg") and float(root.get("width")) <= 680
        sizes = [float(t.get("font-size")) for t in root.iter() if t.tag.endswith("text")]
        assert sizes and min(sizes) >= 13, name
        assert (REPO / "docs" / "figures" / name).is_file(), f"{name} is not committed (python tools/make_diagrams.py)"
        assert f"(figures/{name})" in chapters, f"no chapter shows {name}"
    heads = (tmp_path / "stage-09-heads.svg").read_text(encoding="utf-8")
    assert f"[{params['n_heads']} {head_dim}] per token" in heads
