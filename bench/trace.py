"""What the debug trace costs: decode with tracing compiled in but off, against the same model code
with every trace call removed, and with tracing on.

    python -m bench.trace [--shape 260K] [--tokens 200] [--repeats 7] [--json]

"Removed" is literal: this script copies src/model/*.py into a temporary package, deletes every
statement that calls `GLogger.Debug...` (with the `ast` module), imports that copy and runs the same
weights through both. Runs alternate (off, stubbed, off, stubbed, ...) so drift hits both alike, and
the medians are compared. The small 260K model is the worst case: its ops are cheapest, so the fixed
cost of a no-op call weighs the most.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench.decode import model_files
from llamanuts.common import GLogger
from llamanuts.model.loader import load_model

REPO = Path(__file__).resolve().parents[1]
MODEL_SOURCES = REPO / "src" / "model"


class _StripTrace(ast.NodeTransformer):
    """Drops expression statements `GLogger.DebugX(...)` and whole `if GLogger.debug_enabled:` blocks
    (the level checks that guard the trace calls); an emptied block gets `pass`."""

    removed = 0

    def visit_If(self, node: ast.If) -> Any:
        test = node.test
        if (
            isinstance(test, ast.Attribute)
            and isinstance(test.value, ast.Name)
            and test.value.id == "GLogger"
            and test.attr == "debug_enabled"
            and not node.orelse
        ):
            _StripTrace.removed += 1
            return None
        return self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> Any:
        call = node.value
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "GLogger"
            and call.func.attr.startswith("Debug")
        ):
            _StripTrace.removed += 1
            return None
        return node

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list) and field == "body" and not block:
                block.append(ast.Pass())
        return node


def stubbed_model_package() -> tuple[ModuleType, int]:
    """Import a copy of llamanuts.model with every GLogger.Debug* statement removed."""
    target = Path(tempfile.mkdtemp(prefix="llamanuts_stubbed_")) / "stubbed_model"
    target.mkdir()
    _StripTrace.removed = 0
    for source in MODEL_SOURCES.glob("*.py"):
        tree = _StripTrace().visit(ast.parse(source.read_text()))
        code = ast.unparse(ast.fix_missing_locations(tree))
        code = code.replace("from ..", "from llamanuts.")  # the copy lives outside the package
        (target / source.name).write_text(code)
    sys.path.insert(0, str(target.parent))
    try:
        package = importlib.import_module("stubbed_model")
        importlib.import_module("stubbed_model.llamatransformer")
    finally:
        sys.path.remove(str(target.parent))
    return package, _StripTrace.removed


def _decode_seconds(model: Any, tokens_tensor: Any, n_tokens: int) -> float:
    ctx = model.NewInferenceContext(n_tokens + 1)
    token = 1
    t0 = time.perf_counter()
    for pos in range(n_tokens):
        token = int(np.argmax(model.Forward(ctx, tokens_tensor([token]), pos).data[0]))
    return time.perf_counter() - t0


def run(shape: str, n_tokens: int, repeats: int) -> dict[str, Any]:
    import llamanuts.model as traced

    stubbed, removed = stubbed_model_package()
    model_path, tokenizer_path = model_files(shape)
    loaded = load_model(model_path, tokenizer_path=tokenizer_path) if tokenizer_path else load_model(model_path)
    n_tokens = min(n_tokens, loaded.args.max_seq_len - 1)
    with_trace = traced.LlamaTransformer(loaded.args, loaded.weights, "bf16")
    without_trace = stubbed.LlamaTransformer(loaded.args, loaded.weights, "bf16")
    GLogger.Init(debug=False)
    for m, tt in ((with_trace, traced.tokens_tensor), (without_trace, stubbed.tokens_tensor)):
        _decode_seconds(m, tt, 8)  # warm up
    off, stub = [], []
    for _ in range(repeats):
        off.append(_decode_seconds(with_trace, traced.tokens_tensor, n_tokens))
        stub.append(_decode_seconds(without_trace, stubbed.tokens_tensor, n_tokens))
    with tempfile.TemporaryDirectory() as tmp:
        GLogger.Init(debug=True, debug_path=str(Path(tmp) / "debug.log"))
        try:
            on = [_decode_seconds(with_trace, traced.tokens_tensor, n_tokens) for _ in range(max(1, repeats // 2))]
            lines = sum(1 for _ in open(Path(tmp) / "debug.log", encoding="utf-8"))
        finally:
            GLogger.Init(debug=False)
    t_off, t_stub, t_on = statistics.median(off), statistics.median(stub), statistics.median(on)
    return {
        "shape": shape,
        "tokens": n_tokens,
        "trace_statements_removed": removed,
        "debug_lines_per_token": round(lines / (n_tokens * len(on)), 1),
        "stubbed_tok_s": round(n_tokens / t_stub, 1),
        "debug_off_tok_s": round(n_tokens / t_off, 1),
        "debug_on_tok_s": round(n_tokens / t_on, 1),
        "debug_off_overhead": round(t_off / t_stub - 1, 4),
        "debug_on_overhead": round(t_on / t_stub - 1, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="260K")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.shape, args.tokens, args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
