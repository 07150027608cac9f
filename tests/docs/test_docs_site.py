"""The documentation site builds with `mkdocs build --strict`: every page in the nav, no broken link
or image, the Mermaid fence configured. Skips when mkdocs is not installed (`pip install -e ".[docs]"`).

No `-q`: mkdocs counts warnings for --strict only when they are logged, and -q silences them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_every_chapter_is_in_the_nav() -> None:
    nav = re.findall(r":\s*([\w.-]+\.md)\s*$", (REPO / "mkdocs.yml").read_text(encoding="utf-8"), re.MULTILINE)
    chapters = sorted({p.name for p in (REPO / "docs").glob("*.md")} | {"PERFORMANCE.md"})
    assert sorted(nav) == chapters  # the benchmark report is listed too (a stand-in while absent)
    assert nav[0] == "index.md" and nav[-1] == "20-diagrams.md"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    if shutil.which("mkdocs") is None:
        try:
            import mkdocs  # noqa: F401
        except ImportError:
            pytest.skip('mkdocs is not installed (pip install -e ".[docs]")')
    try:
        import material  # noqa: F401
    except ImportError:
        pytest.skip('mkdocs-material is not installed (pip install -e ".[docs]")')
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    page = (tmp_path / "site" / "14-making-a-prediction-attention" / "index.html").read_text(encoding="utf-8")
    assert 'class="mermaid"' in page  # the custom fence turned ```mermaid into a diagram
    assert (tmp_path / "site" / "figures" / "attention-scores.png").is_file()
    # Chapter 18's link to the benchmark report resolves: the real docs/PERFORMANCE.md, or the
    # stand-in docs/_hooks/performance_page.py generates while it is absent.
    assert (tmp_path / "site" / "PERFORMANCE" / "index.html").is_file()
