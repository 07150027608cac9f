"""Development tool: the machine code of the block kernels, summarised (are the loops vectorised?).

    python tools/kernel_asm.py                  # every kernel of every block type
    python tools/kernel_asm.py q4_1 --dump /tmp/q4_1.s

Numba's `inspect_asm` only works for code compiled in this process, so the kernels are compiled
afresh into a temporary cache directory. For each kernel the tool counts packed (vector) and scalar
floating-point instructions, and looks for calls inside basic blocks that also hold vector
arithmetic (packed multiply, add, fused multiply-add): a call (typically NRT_incref / NRT_decref, reference counting that numba could not
prove unnecessary) in the hot loop spills every vector register and costs several times the
arithmetic. Expect `calls in vector blocks: 0`.

Numba caches compiled kernels beside their source file and does not notice when a function they
call from another file changes (simd.py, f16.py): after editing those, delete
src/ml/__pycache__/*.nbi and *.nbc.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections import Counter

os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="kernel_asm_")

import importlib  # noqa: E402

import numpy as np  # noqa: E402

MODULES = ["q8_0", "q4_0", "q4_1", "q4_k", "q6_k", "f16"]
KERNELS = ["gemv_serial", "gemv_parallel", "dequantize_serial"]
_PACKED = re.compile(r"^v\w+p[sd]$")  # vmulps, vfmadd231ps, vcvtdq2ps, vaddpd ...
_SCALAR = re.compile(r"^v\w+s[sd]$")  # vmulss, vaddsd, vcvtsi2ss ...
_ARITHMETIC = re.compile(r"^v(fn?m(add|sub)\d*|mul|add|sub)p[sd]$")  # the work of a loop body


def _sample_arguments(module_name: str, kernel: str) -> tuple[np.ndarray, ...]:
    from llamanuts.ml.dtype import DataType

    k, m = 512, 4
    if module_name == "f16":
        w = np.zeros((m, k), np.uint16)
    else:
        dtype = DataType[module_name.upper()]
        w = np.zeros((m, k // dtype.block_size * dtype.block_bytes), np.uint8)
    if kernel.startswith("gemv"):
        return np.ones((1, k), np.float32), w, np.empty((1, m), np.float32)
    return w, np.empty((m, k), np.float32)


def summarise(asm: str) -> dict[str, object]:
    lines = [line.strip() for line in asm.splitlines()]
    instructions = [line.split()[0] for line in lines if line and not line.startswith((".", "#")) and not line.endswith(":")]
    blocks: list[list[str]] = [[]]
    for line in lines:
        if line.endswith(":") and not line.startswith("#"):
            blocks.append([])
        blocks[-1].append(line)
    vector_blocks = [b for b in blocks if any(_ARITHMETIC.match(l.split()[0]) for l in b if l and not l.startswith((".", "#")) and not l.endswith(":"))]
    counts = Counter(instructions)
    zmm = sum(1 for line in lines if "%zmm" in line)
    ymm = sum(1 for line in lines if "%ymm" in line)
    return {
        "packed": sum(n for name, n in counts.items() if _PACKED.match(name)),
        "scalar": sum(n for name, n in counts.items() if _SCALAR.match(name)),
        "zmm lines": zmm,
        "ymm lines": ymm,
        "calls in vector blocks": sum(1 for b in vector_blocks for l in b if l.startswith("call")),
        "top": counts.most_common(8),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"block types (default: all of {', '.join(MODULES)})")
    parser.add_argument("--dump", help="write the gemv_serial assembly of the (single) module here")
    args = parser.parse_args(argv)
    for module_name in args.modules or MODULES:
        module = importlib.import_module(f"llamanuts.ml.{module_name}")
        for kernel in KERNELS:
            function = getattr(module, kernel)
            function(*_sample_arguments(module_name, kernel))
            asm = function.inspect_asm(function.signatures[0])
            if args.dump and kernel == "gemv_serial":
                with open(args.dump, "w") as f:
                    f.write(asm)
            s = summarise(asm)
            print(
                f"{module_name:5} {kernel:18} packed {s['packed']:4}  scalar {s['scalar']:4}  zmm {s['zmm lines']:4}  "
                f"ymm {s['ymm lines']:4}  calls in vector blocks: {s['calls in vector blocks']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
