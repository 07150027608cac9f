"""Independent references for the block-quantized tests: gguf-py (llama.cpp's own Python package) and
random GGML blocks built byte by byte.

Nothing here calls llamanuts' kernels. The expected values come from `gguf.quants.dequantize`
(and, for Q8_0 / Q4_0 / Q4_1, `gguf.quants.quantize` makes realistic blocks from float weights);
gguf-py does not quantize Q4_K or Q6_K, so those blocks are random bytes with small random float16
scales, which is every valid block: any 6-bit scale, any nibble, any 2-bit high part is legal.
"""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf", reason="the gguf package (gguf-py) is the reference for GGML blocks")
from gguf import GGMLQuantizationType  # noqa: E402

BLOCK_TYPES = ["Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K"]
# byte offsets of the float16 fields in each block (scales, minimums)
F16_FIELDS = {"Q8_0": (0,), "Q4_0": (0,), "Q4_1": (0, 2), "Q4_K": (0, 2), "Q6_K": (208,)}
BLOCK_SHAPE = {"Q8_0": (32, 34), "Q4_0": (32, 18), "Q4_1": (32, 20), "Q4_K": (256, 144), "Q6_K": (256, 210)}

# float16 bit patterns at the edges: zeros, subnormals (smallest, largest), the smallest normal,
# the largest finite, infinities, quiet NaNs, one, a small power of two
F16_EDGES = np.array(
    [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0xFE00, 0x3C00, 0x1400],
    dtype=np.uint16,
)


def reference_dequantize(name: str, data: np.ndarray) -> np.ndarray:
    """gguf-py's dequantization of GGML blocks (uint8 [..., bytes]) or float16 values -> float32."""
    with np.errstate(all="ignore"):
        if name == "F16":
            return gguf.quants.dequantize(np.ascontiguousarray(data).view(np.uint8), GGMLQuantizationType.F16).reshape(data.shape)
        return gguf.quants.dequantize(np.ascontiguousarray(data), GGMLQuantizationType[name])


def reference_quantize(name: str, values: np.ndarray) -> np.ndarray:
    """gguf-py's quantization (Q8_0, Q4_0, Q4_1 only) -> uint8 [rows, bytes]."""
    return gguf.quants.quantize(np.asarray(values, dtype=np.float32), GGMLQuantizationType[name])


def random_blocks(
    name: str, rng: np.random.Generator, rows: int, blocks_per_row: int, scale: float = 0.01, f16_patterns=None
) -> np.ndarray:
    """uint8 [rows, blocks_per_row * block_bytes]: random bytes everywhere, then each float16 field
    set to a normal random value of about `scale` (or to patterns drawn from `f16_patterns`)."""
    _, block_bytes = BLOCK_SHAPE[name]
    blocks = rng.integers(0, 256, size=(rows, blocks_per_row, block_bytes), dtype=np.uint8)
    for offset in F16_FIELDS[name]:
        if f16_patterns is None:
            bits = (rng.standard_normal((rows, blocks_per_row)) * scale).astype(np.float16).view(np.uint16)
        else:
            bits = rng.choice(np.asarray(f16_patterns, dtype=np.uint16), size=(rows, blocks_per_row))
        blocks[:, :, offset : offset + 2] = bits.astype("<u2").view(np.uint8).reshape(rows, blocks_per_row, 2)
    return blocks.reshape(rows, blocks_per_row * block_bytes)


def realistic_blocks(name: str, rng: np.random.Generator, rows: int, cols: int, std: float = 0.1) -> np.ndarray:
    """Blocks of normally distributed weights: quantized by gguf-py where it can (Q8_0, Q4_0, Q4_1),
    random valid blocks with scales giving weights of about that size otherwise (Q4_K, Q6_K)."""
    size, _ = BLOCK_SHAPE[name]
    if name in ("Q8_0", "Q4_0", "Q4_1"):
        return reference_quantize(name, rng.standard_normal((rows, cols)) * std)
    # Q4_K: w = d*sc*q - dmin*mn with sc, mn up to 63 and q up to 15; Q6_K: w = d*sc*(q - 32), |sc| <= 128
    scale = std / (63 * 8) if name == "Q4_K" else std / (64 * 16)
    return random_blocks(name, rng, rows, cols // size, scale=scale)


def assert_same_float32(got: np.ndarray, expected: np.ndarray) -> None:
    """Bit-for-bit equal float32 arrays, except that a NaN only has to be a NaN where the reference
    has one: which NaN's payload survives `inf * 0 + NaN` is numpy's implementation's choice (its
    vector loops may swap commutative operands), not part of the format."""
    assert got.dtype == np.float32 and expected.dtype == np.float32
    assert got.shape == expected.shape, (got.shape, expected.shape)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan)
    same = got.view(np.uint32) == expected.view(np.uint32)
    bad = np.flatnonzero(~(same | nan))
    if bad.size:
        g, e = got.reshape(-1), expected.reshape(-1)
        rows = [f"[{i}] got {g[i]!r} (0x{int(g.view(np.uint32)[i]):08X}) expected {e[i]!r} (0x{int(e.view(np.uint32)[i]):08X})" for i in bad[:10]]
        raise AssertionError(f"{bad.size} of {got.size} values differ:\n" + "\n".join(rows))
