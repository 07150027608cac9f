"""Values in the trace (`--trace-values`, `GLogger.Init(..., values=True)`): each tensor on a debug
line is followed by a fixed-width summary of its last row, and a few lines exist only in that mode
(the RMS a norm divides by, one head's attention weights, the top next tokens). Off by default.

Reference values come from the standard library (`statistics`), from hand-made inputs whose
numbers are exact in bfloat16, and, for the real run, from PyTorch reading the default model's
checkpoint on its own (`torch.load`), never from the engine's output.
"""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llamanuts.common.logger import GLogger, Logger, _noop, summarize_values
from llamanuts.ml import DT_BF16, DT_F32, DT_INT64, Tensor, float32_to_bf16_bits

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "kjv"
SUMMARY = re.compile(
    r"^ last row \[(?P<values>(?: ?[ +-][ \d.e+-]{8}[\d.]| ?[ +-]{1,}inf){1,4})(?P<more> …)?\] "
    r"mean (?P<mean>.{10}) std (?P<std>.{9})$"
)


def _values(summary: str) -> list[float]:
    m = SUMMARY.match(summary)
    assert m, f"not the documented format: {summary!r}"
    return [float(v) for v in m.group("values").split()]


def test_summary_is_the_last_row_with_fixed_widths() -> None:
    rows = [[9.0, 9.0, 9.0, 9.0, 9.0, 9.0], [1.5, -2.25, 0.125, 3.0, 7.0, -0.0001234]]
    summary = summarize_values(Tensor.wrap(np.array(rows, dtype=np.float32), DT_F32))
    m = SUMMARY.match(summary)
    assert m and m.group("more") == " …"  # six values, four shown
    assert _values(summary) == [1.5, -2.25, 0.125, 3.0]  # the LAST row's first four
    assert float(m.group("mean")) == pytest.approx(statistics.fmean(rows[1]), rel=1e-3)
    assert float(m.group("std")) == pytest.approx(statistics.pstdev(rows[1]), rel=1e-3)
    # every value takes 10 characters, whatever its size: columns line up from line to line
    inside = summary[len(" last row [") : summary.index(" …")]
    assert len(inside) == 4 * 10 + 3


def test_summary_of_a_3d_tensor_is_its_last_head_of_the_last_position() -> None:
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    assert _values(summarize_values(Tensor.wrap(x, DT_F32))) == [20.0, 21.0, 22.0, 23.0]


def test_bf16_values_are_summarised_from_their_float_values() -> None:
    exact = np.array([[0.5, -1.25, 3.0, 1024.0, 0.0078125]], dtype=np.float32)  # all exact in bf16
    bits = float32_to_bf16_bits(exact)
    summary = summarize_values(Tensor.wrap(bits, DT_BF16))
    assert _values(summary) == [0.5, -1.25, 3.0, 1024.0]
    assert float(SUMMARY.match(summary).group("mean")) == pytest.approx(statistics.fmean(exact[0].tolist()), rel=1e-3)


def test_integer_and_complex_tensors() -> None:
    ids = Tensor.wrap(np.array([1, 1032, 261, 2230, 7], dtype=np.int64), DT_INT64)
    assert summarize_values(ids) == " last row [1 1032 261 2230 …]"
    table = np.array([[1 + 0j, 0.5403023 + 0.84147096j]], dtype=np.complex64)  # cos 1 + i sin 1
    summary = summarize_values(table)
    assert "+0.5403" in summary and "+0.8415i" in summary and "mean" not in summary


def test_a_masked_row_prints_inf_without_warnings() -> None:
    with np.errstate(all="raise"):
        summary = summarize_values(np.array([[0.0, -np.inf]], dtype=np.float32))
    assert "-inf" in summary


def test_values_are_off_by_default(tmp_path: Path) -> None:
    logger = Logger()
    assert logger.DebugValues is _noop and logger.DebugPrintf is _noop
    log = tmp_path / "debug.log"
    logger.Init(debug=True, debug_path=str(log))
    try:
        assert logger.DebugValues is _noop and not logger.trace_values
        logger.DebugPrintf("x %s", Tensor.wrap(np.ones((2, 3), dtype=np.float32), DT_F32))
        logger.DebugValues("only with values %s", lambda: 1 / 0)  # never evaluated
    finally:
        logger.Close()
    line = log.read_text(encoding="utf-8").strip()
    assert "x shape([2 3]) (" in line and "last row" not in line and "only with values" not in line
    logger.Init(debug=False, values=True)  # values without debug: still nothing at all
    assert logger.DebugValues is _noop and logger.DebugPrintf is _noop and not logger.trace_values


def test_values_on_summarise_every_tensor_argument(tmp_path: Path) -> None:
    logger = Logger()
    log = tmp_path / "debug.log"
    logger.Init(debug=True, debug_path=str(log), values=True)
    try:
        logger.DebugPrintf("x %s and %d", Tensor.wrap(np.full((2, 3), 2.0, dtype=np.float32), DT_F32), 7)
        logger.DebugValues("top %s", lambda: "'a' 0.5")
    finally:
        logger.Close()
    first, second = log.read_text(encoding="utf-8").strip().split("\n")
    assert "x shape([2 3]) last row [        +2         +2         +2] mean         +2 std         0 and 7 (" in first
    assert "top 'a' 0.5 (" in second


# ---- a real run of the default model ------------------------------------------------------------
@pytest.fixture(scope="module")
def values_log(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    if not (DEFAULT_MODEL / "consolidated.00.pth").is_file():
        pytest.skip("the default model is missing (models/kjv)")
    log = tmp_path_factory.mktemp("values") / "debug.log"
    result = subprocess.run(
        [sys.executable, "-m", "cmd.llama_infer", "--trace-values", "--prompt", "In the beginning", "--max-tokens", "2", "--debug-log", str(log)],
        cwd=REPO, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return log.read_text(encoding="utf-8").split("\n")


def test_trace_values_implies_debug_and_summarises_the_tensors(values_log: list[str]) -> None:
    assert any("==== STAGE 19" in line for line in values_log)
    tensor_lines = [line for line in values_log if "shape([" in line]
    assert tensor_lines and all("last row [" in line for line in tensor_lines)


def test_the_first_rms_is_that_of_the_last_prompt_tokens_embedding(values_log: list[str]) -> None:
    """Layer 0's first norm sees the embedding row of the prompt's last token: its RMS, as PyTorch
    computes it from the checkpoint itself, is the number the log gives."""
    torch = pytest.importorskip("torch", reason='PyTorch is the reference here (pip install -e ".[reference]")')
    ids = next(line for line in values_log if "Prompt tokens" in line)
    last_id = int(re.search(r"\[([\d, ]+)\]", ids).group(1).split(",")[-1])
    weights = torch.load(DEFAULT_MODEL / "consolidated.00.pth", map_location="cpu", weights_only=True)
    row = weights["tok_embeddings.weight"][last_id].double()
    expected = math.sqrt(float((row * row).mean()) + 1e-5)
    line = next(line for line in values_log if "RMS of the last row of x" in line)
    rms, inverse = (float(v) for v in re.search(r"= ([\d.e+-]+), so that row is multiplied by ([\d.e+-]+)", line).groups())
    assert rms == pytest.approx(expected, rel=1e-5) and inverse == pytest.approx(1 / expected, rel=1e-5)


def test_attention_weights_sum_to_one(values_log: list[str]) -> None:
    lines = [line for line in values_log if "Attention weights of head 0, last query" in line]
    assert lines
    for line in lines:
        last = int(re.search(r"over positions 0\.\.(\d+)", line).group(1))
        weights = [float(w) for w in re.search(r": \[([\d. ]+)\]", line).group(1).split()]
        assert len(weights) == last + 1 and sum(weights) == pytest.approx(1.0, abs=0.002 * len(weights))


def test_the_top_token_is_the_greedy_choice(values_log: list[str]) -> None:
    tops = [i for i, line in enumerate(values_log) if "Top 5 next tokens" in line]
    assert len(tops) == 2  # one per generated token
    for i in tops:
        found = re.findall(r"'([^']*)' ([\d.]+) \(id (\d+)\)", values_log[i])
        assert len(found) == 5
        probabilities = [float(p) for _, p, _ in found]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0001
        chosen = next(line for line in values_log[i:] if "Generated token id" in line)
        assert f"Generated token id {found[0][2]}," in chosen  # greedy sampling took the most probable


def test_without_the_flag_the_log_has_no_values(tmp_path: Path) -> None:
    if not (DEFAULT_MODEL / "consolidated.00.pth").is_file():
        pytest.skip("the default model is missing (models/kjv)")
    log = tmp_path / "debug.log"
    result = subprocess.run(
        [sys.executable, "-m", "cmd.llama_infer", "--debug", "--prompt", "In", "--max-tokens", "1", "--debug-log", str(log)],
        cwd=REPO, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    text = log.read_text(encoding="utf-8")
    assert "shape([" in text and "last row [" not in text and "Top 5" not in text and "RMS of" not in text
    assert GLogger.DebugValues is _noop  # this process never switched it on


def test_quantized_rows_are_summarised_from_their_dequantized_values() -> None:
    """A Q8_0 tensor's summary is that of its last row as gguf-py (llama.cpp's Python) dequantizes it."""
    gguf = pytest.importorskip("gguf", reason="gguf-py is the reference here")
    from llamanuts.ml.dtype import DT_Q8_0

    values = np.random.default_rng(3).standard_normal((3, 64)).astype(np.float32)
    blocks = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
    expected = gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType.Q8_0)[-1]
    summary = summarize_values(Tensor((3, 64), DT_Q8_0, np.ascontiguousarray(blocks)))
    assert _values(summary) == pytest.approx(expected[:4].tolist(), rel=1e-3, abs=1e-4)
    assert float(SUMMARY.match(summary).group("mean")) == pytest.approx(statistics.fmean(expected.tolist()), rel=1e-3, abs=1e-4)
