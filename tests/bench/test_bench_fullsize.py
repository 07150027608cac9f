"""bench/fullsize.py without a full-size run: its checks before writing 16 GB, and its report section.

The measurements themselves need the real sizes and a quiet machine; what is checked here is what
must hold before any of that starts: a machine without room for the checkpoint or the run is told
what is needed, in bytes, and nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # plain `pytest` does not put the repo root on sys.path

from bench import fullsize  # noqa: E402


def test_too_little_disk_and_memory_are_reported_with_what_is_needed(tmp_path, capsys):
    directory = tmp_path / "not-yet" / "llama2-7b-32layers"
    problems = fullsize.check_resources(directory, 10**15, force=False)  # a petabyte checkpoint
    assert any(p.startswith("not enough disk: 1000001.07 GB needed in ") for p in problems)
    if fullsize.mem_available_bytes() >= 0:
        assert any(p.startswith("not enough available memory: about 1000001.50 GB needed") for p in problems)
    assert not directory.exists()  # nothing written, not even the directory
    assert "MemAvailable" in capsys.readouterr().err


def test_force_skips_only_the_memory_check(tmp_path):
    problems = fullsize.check_resources(tmp_path / "d", 10**15, force=True)
    assert [p.split(":")[0] for p in problems] == ["not enough disk"]


def test_an_existing_checkpoint_needs_no_disk(tmp_path):
    (tmp_path / "consolidated.00.pth").write_bytes(b"")
    assert not any(p.startswith("not enough disk") for p in fullsize.check_resources(tmp_path, 10**15, force=True))


def _row(shape: str, layers: int, decode: float) -> dict:
    return {
        "shape": shape, "layers": layers, "dtype": "bf16", "threads": 2, "date": "2026-01-01 00:00 UTC",
        "load_average": 0.5, "machine": {"cpu": "Test CPU"}, "weight_bytes": 13_476_831_232, "load_s": 0.3,
        "peak_rss_bytes": 14_000_000_000, "peak_rss_beyond_weights_bytes": 523_168_768, "ttft_8_s": 2.0,
        "ttft_64_s": 5.0, "prefill_8_tok_s": 4.0, "prefill_8_vs_decode": 2.0, "prefill_64_tok_s": 12.8,
        "prefill_64_vs_decode": 6.4, "prefill_64_gflop_s": 172.0, "decode_tok_s": decode, "roofline_tok_s": 2.5,
        "roofline_fraction": decode / 2.5, "bandwidth_gb_s": 34.0,
    }


def test_the_report_section_replaces_its_previous_version_and_keeps_the_rest(tmp_path):
    page = tmp_path / "PERFORMANCE.md"
    page.write_text("# Performance\n\nthe main table\n", encoding="utf-8")
    fullsize.update_performance_md([_row("llama2-7b", 32, 2.0)], page)
    fullsize.update_performance_md([_row("llama2-7b", 32, 2.1), _row("llama31-8b", 32, 1.7)], page)
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Performance\n\nthe main table\n")
    assert text.count(fullsize.SECTION_START) == 1 and text.count(fullsize.SECTION_END) == 1
    rows = [line for line in text.splitlines() if line.startswith("| llama")]
    assert len(rows) == 2 and "| 2.10 |" in rows[0] and rows[1].startswith("| llama31-8b | bf16 | Test CPU, 2 threads")
    assert "| 14.00 (+0.52) |" in rows[0] and "(6.4x)" in rows[0]


def test_prompts_start_with_bos_and_stay_in_the_vocabulary():
    prompt = fullsize._prompt(32000, 1, 64)
    assert len(prompt) == 64 and prompt[0] == 1 and all(0 <= t < 32000 for t in prompt)
