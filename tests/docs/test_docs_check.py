"""The chapters in docs/ cannot drift from the code or from a real debug.log.

- every `file` and `file: Class.function` a chapter names exists (functions found with `ast`);
- every `--flag` a chapter mentions is defined by a program in cmd/, bench/ or tools/;
- every `<!-- excerpt: FILE -->` block still occurs in FILE, line for line;
- every `<!-- debuglog -->` line occurs, in order, in the log of a real debug run of the default
  model, made once per session with the exact command docs/index.md gives the reader;
- every `STAGE NN: TITLE` named in the docs is written by that run, and every stage the run
  writes has a chapter heading.

The logic lives in tools/docs_excerpts.py, which also rewrites the quoted log lines after a code
change (`python tools/docs_excerpts.py`, then read `git diff docs/`).
"""

from __future__ import annotations

import importlib.util
import re
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "kjv" / "consolidated.00.pth"


def _load_tool():
    spec = importlib.util.spec_from_file_location("docs_excerpts", REPO / "tools" / "docs_excerpts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_excerpts"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


tool = _load_tool()
CHAPTERS = tool.chapters()
IDS = [p.name for p in CHAPTERS]


@pytest.fixture(scope="module")
def debug_log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log of the debug command docs/index.md gives the reader, made once per session."""
    if not (REPO / "cmd" / "llama_infer.py").is_file():
        pytest.skip("cmd/llama_infer.py is not there yet: the debug run cannot be made")
    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"the default model is missing ({DEFAULT_MODEL.relative_to(REPO)})")
    path = tmp_path_factory.mktemp("docs") / "debug.log"
    started = time.perf_counter()
    lines = tool.run_debug(path)
    print(f"debug run: {len(lines)} lines in {time.perf_counter() - started:.1f} s")
    return path


@pytest.fixture(scope="module")
def debug_log(debug_log_path: Path) -> list[str]:
    return debug_log_path.read_text(encoding="utf-8").split("\n")


def test_docs_exist() -> None:
    names = {p.name for p in CHAPTERS}
    for required in ("index.md", "00-the-journey.md", "13-generating-next-tokens.md", "20-diagrams.md"):
        assert required in names


def test_index_gives_the_debug_command() -> None:
    argv = tool.debug_command()
    assert argv[:3] == ["python", "-m", "cmd.llama_infer"]
    assert "--debug" in argv and "--prompt" in argv


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_named_files_and_functions_exist(chapter: Path) -> None:
    problems = tool.check_references(chapter)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_command_line_flags_exist(chapter: Path) -> None:
    problems = tool.check_flags(chapter)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_code_excerpts_are_verbatim(chapter: Path) -> None:
    problems = [p for b in tool.parse_blocks(chapter) if b.kind == "excerpt" for p in tool.check_excerpt(b)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_quoted_debug_log_lines_come_from_a_real_run(chapter: Path, debug_log: list[str]) -> None:
    blocks = [b for b in tool.parse_blocks(chapter) if b.kind == "debuglog" and b.target == tool.DEFAULT_RUN]
    problems = [p for b in blocks for p in tool.check_debuglog(b, debug_log)]
    assert not problems, "\n".join(problems) + "\n(regenerate with: python tools/docs_excerpts.py)"


@pytest.fixture(scope="module")
def smollm2_log(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The log of SmolLM2 answering the chapters' question (the smollm2 debug command of index.md)."""
    if why := tool.run_missing("smollm2"):
        pytest.skip(f"the SmolLM2 walkthrough's quotes need the real model: {why}")
    path = tmp_path_factory.mktemp("docs-smollm2") / "debug.log"
    return tool.run_named_debug("smollm2", path)


SMOLLM2_CHAPTERS = [c for c in CHAPTERS if any(b.kind == "debuglog" and b.target == "smollm2" for b in tool.parse_blocks(c))]


@pytest.mark.parametrize("chapter", SMOLLM2_CHAPTERS, ids=[c.name for c in SMOLLM2_CHAPTERS])
def test_smollm2_quotes_come_from_a_real_run(chapter: Path, smollm2_log: list[str]) -> None:
    blocks = [b for b in tool.parse_blocks(chapter) if b.kind == "debuglog" and b.target == "smollm2"]
    problems = [p for b in blocks for p in tool.check_debuglog(b, smollm2_log)]
    assert not problems, "\n".join(problems) + "\n(regenerate with: python tools/docs_excerpts.py)"


def test_the_walkthrough_follows_smollm2() -> None:
    assert len(SMOLLM2_CHAPTERS) >= 5, [c.name for c in SMOLLM2_CHAPTERS]
    argv = tool.debug_command(run="smollm2")
    assert "--chat" in argv and "--trace-values" in argv and "What is the capital of France?" in argv


def test_stage_markers_match_the_log(debug_log: list[str]) -> None:
    stages = tool.log_stages(debug_log)
    assert len(stages) == 19, f"expected the 19 stages, the log writes {sorted(stages)}"
    problems = tool.check_stages(debug_log, CHAPTERS)
    assert not problems, "\n".join(problems)


# ---- the checker itself --------------------------------------------------------------------------
def test_checker_catches_drift(tmp_path: Path) -> None:
    chapter = tmp_path / "probe.md"
    chapter.write_text(
        "`src/model/rope.py: precomputeFreqsCis` and `src/model/nope.py` and "
        "`src/model/rmsnorm.py: RMSNorm.noSuchMethod`\n\n"
        "<!-- excerpt: src/model/rmsnorm.py -->\n```python\ndef Forward(self, x: Tensor) -> Tensor:\n"
        "    h = self.doNormalization(x)\n```\n\n"
        "<!-- excerpt: src/model/rmsnorm.py -->\n```python\n    h = self.notThere(x)\n```\n\n"
        "<!-- debuglog -->\n```text\n[DEBUG]01:02:03.123456 ==== STAGE 13: CALCULATING SCORES ==== (0.1000 secs)\n"
        "...\n[DEBUG]01:02:03.123456 a line no run writes (0.0000 secs)\n```\n",
        encoding="utf-8",
    )
    assert tool.check_flags(chapter, {"--debug"}) == []
    chapter.write_text(chapter.read_text(encoding="utf-8") + "\nRun it with `--no-such-flag`.\n", encoding="utf-8")
    assert "--no-such-flag" in tool.check_flags(chapter)[0]
    refs = tool.check_references(chapter)
    assert any("nope.py" in p for p in refs) and any("noSuchMethod" in p for p in refs)
    assert not any("precomputeFreqsCis" in p for p in refs)
    blocks = tool.parse_blocks(chapter)
    assert [b.kind for b in blocks] == ["excerpt", "excerpt", "debuglog"]
    assert tool.check_excerpt(blocks[0]) == []
    assert tool.check_excerpt(blocks[1])
    log = ["[DEBUG]09:09:09.000001 ==== STAGE 13: CALCULATING SCORES ==== (1.2345 secs)"]
    problems = tool.check_debuglog(blocks[2], log)
    assert len(problems) == 1 and "a line no run writes" in problems[0]


def test_rewrite_keeps_unchanged_lines_and_follows_new_shapes() -> None:
    old = [
        "[DEBUG]10:00:00.000001 ==== STAGE 13: CALCULATING SCORES ==== (0.0001 secs)",
        "[DEBUG]10:00:00.000002 Calling MatMul for xq shape([8 5 8]) and keys transposed shape([8 8 5]) -> tensor scores (0.0000 secs)",
    ]
    log = [
        "[DEBUG]11:00:00.000001 ==== STAGE 12: DOING TRANSPOSES ==== (0.0001 secs)",
        "[DEBUG]11:00:00.000002 ==== STAGE 13: CALCULATING SCORES ==== (0.0003 secs)",
        "[DEBUG]11:00:00.000003 Calling MatMul for xq shape([6 7 16]) and keys transposed shape([6 16 7]) -> tensor scores (0.0000 secs)",
        "[DEBUG]11:00:00.000004 ==== STAGE 14: CALCULATING THE ATTENTION OUTPUT ==== (0.0001 secs)",
    ]
    block = tool.Block(REPO / "docs" / "x.md", "debuglog", "", 1, 0, 0, old)
    new, problems = tool.regenerate(block, log)
    assert not problems
    assert new == log[1:3]  # a changed run is taken whole from the fresh log (consistent times)
    unchanged = [log[1], log[2].replace("11:00:00.000003", "09:09:09.999999")]
    block = tool.Block(REPO / "docs" / "x.md", "debuglog", "", 1, 0, 0, unchanged)
    assert tool.regenerate(block, log)[0] == unchanged  # only the times differ: kept as written


def test_diagrams_page_collects_every_chapter_diagram() -> None:
    problems = tool.check_diagrams_page()
    assert not problems, "\n".join(problems)
    assert tool.DIAGRAMS_PAGE.read_text(encoding="utf-8").count("```mermaid") >= 10


def test_rewrite_takes_the_first_window_with_the_same_messages() -> None:
    old = [
        "[DEBUG]10:00:00.000001 Generated token id 432, piece ',' (0.0000 secs)",
        "[DEBUG]10:00:00.000002 Running Forward for curPos: 10, prevPos: 9, tokens [432] (0.0000 secs)",
    ]
    log = [
        "[DEBUG]11:00:00.000001 Generated token id 7, piece ' In' (0.0000 secs)",
        "[DEBUG]11:00:00.000002 Running Forward for curPos: 5, prevPos: 4, tokens [7] (0.0000 secs)",
        "[DEBUG]11:00:00.000003 Generated token id 8, piece ' the' (0.0000 secs)",
        "[DEBUG]11:00:00.000004 Running Forward for curPos: 6, prevPos: 5, tokens [8] (0.0000 secs)",
    ]
    block = tool.Block(REPO / "docs" / "x.md", "debuglog", "", 1, 0, 0, old)
    new, problems = tool.regenerate(block, log)
    assert not problems and new == log[:2]


# ---- tool outputs and "try it" blocks ---------------------------------------------------------
BLOCKS = [b for c in CHAPTERS for b in tool.parse_blocks(c)]
OUTPUTS = [b for b in BLOCKS if b.kind == "output"]
TRIES = [b for b in BLOCKS if b.kind == "try"]
# Not chapters of the walk: the generated diagrams page, the list of references, and chapter 18,
# whose owner is the benchmark work (bench/ and docs/PERFORMANCE.md).
NO_TRY_IT = {"index.md", "18-performance.md", "19-references.md", "20-diagrams.md"}


def _id(block) -> str:  # type: ignore[no-untyped-def]
    return f"{block.chapter.name}:{block.marker_line}"


@pytest.mark.parametrize("block", OUTPUTS, ids=[_id(b) for b in OUTPUTS])
def test_tool_outputs_are_what_the_tool_prints_now(block) -> None:  # type: ignore[no-untyped-def]
    if why := tool.block_skip(block):
        pytest.skip(why)
    problems = tool.check_output(block)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("block", TRIES, ids=[_id(b) for b in TRIES])
def test_try_it_commands_print_what_the_chapter_says(block, debug_log_path: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if why := tool.block_skip(block):
        pytest.skip(why)
    problems = tool.check_try(block, tool.make_sandbox(tmp_path / "repo"), debug_log_path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if c.name not in NO_TRY_IT], ids=[c.name for c in CHAPTERS if c.name not in NO_TRY_IT])
def test_every_chapter_ends_with_a_try_it(chapter: Path) -> None:
    text = chapter.read_text(encoding="utf-8")
    headings = [m.start() for m in re.finditer(r"^## ", text, re.MULTILINE)]
    assert headings and text[headings[-1]:].startswith("## Try it"), f"{chapter.name}: the last section is not '## Try it'"
    assert any(b.kind == "try" and b.first > text[: headings[-1]].count("\n") for b in tool.parse_blocks(chapter)), (
        f"{chapter.name}: its Try it section has no <!-- try expect=... --> block"
    )


def test_try_blocks_are_checked(tmp_path: Path) -> None:
    """The checker itself: a try block whose output lacks the expected text, or whose command fails, is a problem."""
    chapter = tmp_path / "probe.md"
    chapter.write_text(
        '## Try it\n\n<!-- try expect="hello" -->\n```bash\necho hello world\n```\n\n'
        '<!-- try expect="goodbye" -->\n```bash\necho hello\n```\n\n'
        '<!-- try expect="x" -->\n```bash\nfalse\n```\n\n'
        '<!-- try expect="x" needs=no-such-thing -->\n```bash\necho x\n```\n\n'
        '<!-- output: echo one; echo two -->\n```text\none\ntwo\n```\n\n'
        '<!-- output: echo three -->\n```text\nfour\n```\n',
        encoding="utf-8",
    )
    ok, wrong, failing, unknown, same, changed = tool.parse_blocks(chapter)
    sandbox = tool.make_sandbox(tmp_path / "repo")
    assert tool.check_try(ok, sandbox) == []
    assert "does not show ['goodbye']" in tool.check_try(wrong, sandbox)[0]
    assert "failed (exit 1)" in tool.check_try(failing, sandbox)[0]
    assert "unknown need" in tool.block_skip(unknown)
    assert tool.check_output(same) == [] and "changed" in tool.check_output(changed)[0]


def test_floats_match_within_a_tolerance_and_everything_else_exactly() -> None:
    """Sums computed on another CPU may differ in their last digits; ids, shapes and words may not."""
    assert tool.same_line("mean +0.001127 std 0.02996 shape([4 256])", "mean +0.001130 std 0.02990 shape([4 256])")
    assert not tool.same_line("shape([4 256])", "shape([4 257])")
    assert not tool.same_line("p = 0.50 (id 7)", "p = 0.70 (id 7)")
    assert not tool.same_line("'▁of' 0.5614", "'▁the' 0.5614")
