#!/usr/bin/env python3
"""Show one real quantized block of a GGUF file, byte by byte, and dequantize it by hand.

    python -m tools.gguf_blocks                                          # SmolLM2's blk.0.attn_q.weight (Q4_1)
    python -m tools.gguf_blocks --tensor token_embd.weight --row 504     # a Q8_0 block of the embedding table
    python -m tools.gguf_blocks --model path/to/model.gguf --tensor NAME --row R --block B

The block is read from the file with our reader (`src/gguf/reader.py`: the tensor is a view of
the mapped file), printed in hex, split into its fields, and turned into its 32 numbers with the
formula of its type, written out here in plain Python one field at a time. The result is then
compared with two others computed without this file's arithmetic: gguf-py's `gguf.quants.dequantize`
(the `gguf` package, llama.cpp's own Python), and our engine's dequantizer (`Tensor.numpy()` on
that row), and the output says whether each agrees exactly. Chapter 07a quotes this output, and the
docs check reruns it.

Types: Q8_0 (32 weights: a float16 scale d, 32 int8 q; w = d·q) and Q4_1 (32 weights: float16
d and m, 16 bytes of 4-bit q, the low nibbles holding weights 0-15 and the high nibbles 16-31;
w = d·q + m).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

BLOCK = 32


def _f16(b: bytes) -> float:
    return float(np.frombuffer(b, dtype="<f2")[0])


def hexdump(data: bytes, start: int = 0, width: int = 16) -> list[str]:
    return [f"{start + i:04x}  " + " ".join(f"{x:02x}" for x in data[i : i + width]) for i in range(0, len(data), width)]


def by_hand_q8_0(block: bytes) -> tuple[list[str], list[float]]:
    d = _f16(block[0:2])
    q = [int(v) for v in np.frombuffer(block[2:34], dtype=np.int8)]
    lines = [
        f"bytes 0-1    d = float16 {block[0:2].hex(' ')} (little-endian 0x{block[1]:02x}{block[0]:02x}) = {d:.9g}",
        f"bytes 2-33   q = 32 signed bytes: {' '.join(str(v) for v in q[:8])} ... {' '.join(str(v) for v in q[-4:])}",
        "w[i] = d * q[i]:",
    ]
    weights = [float(np.float32(d) * np.float32(v)) for v in q]
    for i in (0, 1, 2, 31):
        lines.append(f"  w[{i:2}] = {d:.9g} * {q[i]:4} = {weights[i]:.9g}")
    return lines, weights


def by_hand_q4_1(block: bytes) -> tuple[list[str], list[float]]:
    d, m = _f16(block[0:2]), _f16(block[2:4])
    qs = block[4:20]
    low = [b & 0x0F for b in qs]  # weights 0..15
    high = [b >> 4 for b in qs]  # weights 16..31
    q = low + high
    lines = [
        f"bytes 0-1    d = float16 {block[0:2].hex(' ')} (0x{block[1]:02x}{block[0]:02x}) = {d:.9g}",
        f"bytes 2-3    m = float16 {block[2:4].hex(' ')} (0x{block[3]:02x}{block[2]:02x}) = {m:.9g}",
        f"bytes 4-19   16 bytes, two 4-bit q each: {qs.hex(' ')}",
        f"  low nibbles  (weights 0-15):  {' '.join(f'{v:2}' for v in low)}",
        f"  high nibbles (weights 16-31): {' '.join(f'{v:2}' for v in high)}",
        f"  e.g. byte 4 = 0x{qs[0]:02x}: low nibble 0x{qs[0] & 15:x} = {low[0]} is weight 0, high nibble 0x{qs[0] >> 4:x} = {high[0]} is weight 16",
        "w[i] = d * q[i] + m:",
    ]
    weights = [float(np.float32(d) * np.float32(v) + np.float32(m)) for v in q]
    for i in (0, 1, 16, 31):
        lines.append(f"  w[{i:2}] = {d:.9g} * {q[i]:2} + ({m:.9g}) = {weights[i]:.9g}")
    return lines, weights


BY_HAND = {"Q8_0": (34, by_hand_q8_0), "Q4_1": (20, by_hand_q4_1)}


def show_header(gguf, path: Path) -> None:  # type: ignore[no-untyped-def]
    """The parts of the file in order: header, metadata (values abbreviated), tensor infos, data."""
    from collections import Counter

    from llamanuts.gguf.reader import abbreviate

    raw = path.open("rb").read(24)
    print(f"{path.name}: {path.stat().st_size:,} bytes")
    print(f"header   magic {raw[0:4]!r}, version {gguf.version}, {len(gguf.tensor_infos)} tensors, {len(gguf.metadata)} metadata keys")
    print(f"         bytes 0-23: {raw.hex(' ')}")
    print("metadata (key: type = value)")
    for key, value in gguf.metadata.items():
        print(f"  {key}: {gguf.value_types[key]} = {abbreviate(value, items=4, chars=60)}")
    print(f"tensor infos (name, GGUF dims innermost first, type, offset in the data section), first 11 of {len(gguf.tensor_infos)}")
    for info in gguf.tensor_infos[:11]:
        print(f"  {info.name:<26} {str(list(info.dims)):<13} {info.type.name:<5} {info.offset:>10}  {info.nbytes:>10,} bytes")
    counts = Counter(info.type.name for info in gguf.tensor_infos)
    print("types    " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])))
    print(f"data     from byte {gguf.data_offset:,} (aligned to {gguf.alignment}), {sum(i.nbytes for i in gguf.tensor_infos):,} bytes of tensors")


def _resolve(path: Path) -> Path:
    if path.exists():
        return path
    from llamanuts.model.loader import resolve_model_alias

    found = resolve_model_alias(str(path))
    if found is None:
        raise SystemExit(f"gguf_blocks: no file {path}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gguf_blocks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("smollm2"), help="a .gguf file, or smollm2 (default)")
    parser.add_argument("--tensor", default="blk.0.attn_q.weight", help="tensor name (default: blk.0.attn_q.weight)")
    parser.add_argument("--row", type=int, default=0, help="row of the matrix (default 0)")
    parser.add_argument("--block", type=int, default=0, help="block of the row (default 0: its first 32 weights)")
    parser.add_argument("--header", action="store_true", help="show the file's header, metadata and tensor table instead")
    args = parser.parse_args(argv)

    from llamanuts.gguf import read_gguf

    path = _resolve(args.model)
    gguf = read_gguf(path)
    if args.header:
        show_header(gguf, path)
        return 0
    info = next((t for t in gguf.tensor_infos if t.name == args.tensor), None)
    if info is None:
        raise SystemExit(f"gguf_blocks: {path.name} has no tensor {args.tensor!r}")
    kind = info.type.name
    if kind not in BY_HAND:
        raise SystemExit(f"gguf_blocks: {args.tensor} is {kind}; this tool shows Q8_0 and Q4_1 blocks")
    size, by_hand = BY_HAND[kind]
    rows, cols = info.shape
    if not (0 <= args.row < rows and 0 <= args.block < cols // BLOCK):
        raise SystemExit(f"gguf_blocks: {args.tensor} has {rows} rows of {cols // BLOCK} blocks")
    row_bytes = cols // BLOCK * size
    offset = gguf.data_offset + info.offset + args.row * row_bytes + args.block * size
    tensor = gguf.tensors[args.tensor]
    stored = np.asarray(tensor.data).reshape(rows, row_bytes)
    block = bytes(stored[args.row, args.block * size : (args.block + 1) * size])

    print(f"{path.name}: {args.tensor}, {kind}, shape {list(info.shape)} (GGUF dims {list(info.dims)})")
    print(f"{cols // BLOCK} blocks of {BLOCK} weights per row, {size} bytes each: {row_bytes} bytes per row, {size * 8 / BLOCK:g} bits per weight")
    print(f"row {args.row}, block {args.block} (weights {args.block * BLOCK}-{args.block * BLOCK + BLOCK - 1}), file offset {offset} = 0x{offset:x}:")
    for line in hexdump(block):
        print("  " + line)
    lines, weights = by_hand(block)
    for line in lines:
        print(line)
    print("all 32: " + " ".join(f"{w:.4g}" for w in weights))

    mine = np.array(weights, dtype=np.float32)
    import gguf as gguf_py

    reference = gguf_py.quants.dequantize(np.frombuffer(block, dtype=np.uint8), gguf_py.GGMLQuantizationType[kind]).astype(np.float32)
    print(f"gguf-py's dequantize gives the same 32 numbers: {'yes, bit for bit' if np.array_equal(mine, reference) else 'NO'}")
    try:
        from llamanuts.ml import Tensor

        row = Tensor((1, cols), tensor.dtype, stored[args.row : args.row + 1]).numpy().reshape(-1)
        ours = np.asarray(row[args.block * BLOCK : (args.block + 1) * BLOCK], dtype=np.float32)
        print(f"our engine's dequantizer (Tensor.numpy) gives the same 32 numbers: {'yes, bit for bit' if np.array_equal(mine, ours) else 'NO'}")
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        print(f"our engine's dequantizer: not available ({type(exc).__name__}: {exc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
