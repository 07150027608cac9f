"""tools/compare_stages.py: one prompt through two configurations, compared stage by stage.

The metrics are checked against numbers worked out by hand; the runs against what must hold:
a configuration against itself differs by exactly nothing, bf16 against f32 compute by a little
(bf16 keeps 8 significant bits: relative errors of about 1e-3, cosines of 1 to 4 digits or more),
and our engine in f32 against the independent PyTorch reference by float32 rounding only.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tools import compare_stages as tool

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "kjv"
TINY = REPO / "tests" / "fixtures" / "models" / "tiny-gqa"


def test_metrics_of_hand_made_vectors() -> None:
    a, b = np.array([3.0, 4.0]), np.array([3.0, 0.0])
    max_abs, rel, cosine = tool.compare_arrays(a, b)
    assert max_abs == 4.0
    assert rel == pytest.approx(4.0 / 3.0)  # ||(0, 4)|| / ||(3, 0)||
    assert cosine == pytest.approx(3.0 / 5.0)  # 9 / (5 * 3)
    assert tool.compare_arrays(np.array([-np.inf, 1.0]), np.array([-np.inf, 1.0])) == (0.0, 0.0, 1.0)
    assert tool.compare_arrays(np.zeros(3), np.zeros(3)) == (0.0, 0.0, 1.0)


def test_halves_to_interleaved_puts_pair_i_side_by_side() -> None:
    # one head of 4 features in Hugging Face order (x0, x1 | y0, y1): pairs (x0, y0), (x1, y1)
    hf = np.array([[10.0, 11.0, 20.0, 21.0]])
    assert tool.halves_to_interleaved(hf, 4).tolist() == [[10.0, 20.0, 11.0, 21.0]]


def test_config_parsing() -> None:
    c = tool.parse_config("model=/x,dtype=f32", Path("/default"), None)
    assert (c.model, c.dtype, c.reference) == (Path("/x"), "f32", False)
    c = tool.parse_config("reference,dtype=bf16", Path("/default"), None)
    assert (c.model, c.dtype, c.reference) == (Path("/default"), "bf16", True)
    with pytest.raises(SystemExit, match="unknown key"):
        tool.parse_config("colour=red", Path("/x"), None)
    with pytest.raises(SystemExit, match="dtype must be"):
        tool.parse_config("dtype=f64", Path("/x"), None)


def _runs(model: Path, a: str, b: str) -> list[tool.Row]:
    config_a = tool.parse_config(a, model, None)
    config_b = tool.parse_config(b, model, None)
    tokens, _ = tool.load_tokens(config_a if not config_a.reference else config_b, "In the beginning")
    return tool.compare_runs(tool.run(config_a, tokens), tool.run(config_b, tokens))


@pytest.fixture(scope="module")
def kjv() -> Path:
    if not (DEFAULT_MODEL / "consolidated.00.pth").is_file():
        pytest.skip("the default model is missing (models/kjv)")
    return DEFAULT_MODEL


def test_a_configuration_against_itself_is_exactly_equal(kjv: Path) -> None:
    rows = _runs(kjv, "dtype=bf16", "dtype=bf16")
    assert len(rows) == 2 + 16 * 6 + 2  # embedding, freqs_cis; 16 tensors per layer; norm, logits
    assert all(r.max_abs == 0 and r.rel_error == 0 and r.cosine == 1.0 for r in rows)


def test_bf16_against_f32_is_close_but_not_equal(kjv: Path) -> None:
    rows = {r.name: r for r in _runs(kjv, "dtype=bf16", "dtype=f32")}
    assert rows["embedding"].max_abs == 0  # the same bf16 table, widened exactly
    inside = [r for r in rows.values() if r.layer is not None]
    assert all(0 < r.rel_error < 0.05 for r in inside)  # bf16 rounding: per mille, not percent
    assert all(r.cosine > 0.999 for r in inside)
    assert 0 < rows["logits"].rel_error < 0.05 and rows["logits"].cosine > 0.999
    # the stages are in Forward's order, with their debug.log stage numbers
    assert [r.stage for r in rows.values() if r.layer == 0][:3] == [6, 8, 8]


def test_engine_against_the_pytorch_reference() -> None:
    pytest.importorskip("torch", reason='the reference needs PyTorch (pip install -e ".[reference]")')
    rows = _runs(TINY, "dtype=f32", "reference,dtype=f32")
    assert rows and all(r.rel_error < 1e-5 and r.cosine > 0.99999 for r in rows), [
        (r.name, r.rel_error) for r in rows if r.rel_error >= 1e-5
    ]


def test_command_line_prints_the_table_and_draws_the_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason='matplotlib is a docs extra (pip install -e ".[docs]")')
    out = tmp_path / "compare.png"
    result = subprocess.run(
        [sys.executable, "-m", "tools.compare_stages", "--model", str(TINY), "--a", "dtype=bf16", "--b", "dtype=f32",
         "--layers", "0", "--plot", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.split("\n")
    header = next(i for i, line in enumerate(lines) if "max |a-b|" in line)
    assert "rel. error" in lines[header] and "cosine" in lines[header]
    layer_rows = [line for line in lines if line.split()[1:2] == ["0"]]
    assert len(layer_rows) == 16  # --layers 0: only layer 0 of the blocks (16 recorded tensors)
    assert sum(line.startswith("next token") for line in lines) == 2
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for line in layer_rows:
        cosine = float(line.split()[-1])
        assert math.isfinite(cosine) and cosine > 0.99
