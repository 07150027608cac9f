"""A generation run with --debug on the default model writes every one of the 19 stage markers, each
followed by the shapes of what that stage makes (stages 02 and 04-19) or the token ids (01, 03)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"==== STAGE (\d\d): ")


def test_debug_run_of_the_default_model_writes_all_19_stages_with_shapes(tmp_path: Path) -> None:
    log = tmp_path / "debug.log"
    result = subprocess.run(
        [sys.executable, "-m", "cmd.llama_infer", "--prompt", "In the beginning", "--max-tokens", "3",
         "--debug", "--debug-log", str(log)],
        cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    lines = log.read_text(encoding="utf-8").splitlines()
    sections: dict[int, list[list[str]]] = {}
    current: list[str] | None = None
    for line in lines:
        found = MARKER.search(line)
        if found:
            current = []
            sections.setdefault(int(found.group(1)), []).append(current)
        elif current is not None:
            current.append(line)
    assert sorted(sections) == list(range(1, 20))
    for stage, occurrences in sections.items():
        for body in occurrences:
            if stage in (1, 3):
                assert any("tokens" in row for row in body), f"stage {stage} names no tokens"
            else:
                assert any("shape([" in row for row in body), f"stage {stage} shows no shape: {body[:3]}"
    # prefill (4 prompt tokens) then decode steps of one token, on the default model's dimensions
    assert any("currentTensor shape([4 256])" in row for row in lines)
    assert any("currentTensor shape([1 256])" in row for row in lines)
