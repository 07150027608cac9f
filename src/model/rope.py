"""Rotary position embeddings (RoPE): the frequency table `freqs_cis` and the complex rotation.

Each pair of features of a head is read as one complex number and rotated by the angle
position * theta^(-2i/head_dim): multiplying by cos(angle) + i sin(angle). Low i turn fast, high i
turn slowly, so relative positions show up in the dot products of queries and keys. Llama 3.1
stretches the slow frequencies ("scaled RoPE") to reach a longer context.

Which two features make pair i depends on how the checkpoint laid out the rows of wq and wk:

- interleaved, (x[2i], x[2i+1]): Meta's checkpoints, llama2.c, GGUF files (ROPE_INTERLEAVED);
- halves, (x[i], x[i + head_dim/2]): Hugging Face's checkpoints, whose conversion script permutes
  the rows of wq and wk so that its `rotate_half` can rotate two contiguous halves (ROPE_HALVES).

Both are the same rotation of the same pairs; only the order of the features differs. The weights
say which convention they follow (`ModelWeights.rope_pairing`); applyRotaryEmbeddings brings the
halves side by side before the complex multiply, so its output is in the interleaved order for
either convention.
"""

from __future__ import annotations

import math

import numpy as np

from ..common import GLogger
from ..ml import (
    ARange,
    DT_F32,
    MultiplyComplexPairs,
    Ones,
    Outer,
    Polar,
    Tensor,
)
from .modelargs import RopeScaling

ROPE_INTERLEAVED = "interleaved"  # pair i = (x[2i], x[2i+1]): Meta, llama2.c, GGUF
ROPE_HALVES = "halves"  # pair i = (x[i], x[i + head_dim/2]): Hugging Face (rotate_half)
ROPE_PAIRINGS = (ROPE_INTERLEAVED, ROPE_HALVES)


def applyRopeScaling(freqs: np.ndarray, scaling: RopeScaling) -> np.ndarray:
    """Llama 3.1: keep high frequencies, divide low ones by the factor (8), blend smoothly in between."""
    if scaling.freq_factors is not None:
        # A GGUF file gives the divisors themselves (llama.cpp's rope_freqs.weight), as ggml applies them.
        return (freqs / np.asarray(scaling.freq_factors, dtype=np.float32)).astype(np.float32)
    old_context_len = float(scaling.original_max_position_embeddings)
    low_freq_wavelen = old_context_len / scaling.low_freq_factor
    high_freq_wavelen = old_context_len / scaling.high_freq_factor
    out = np.empty_like(freqs)
    for i, freq in enumerate(freqs.tolist()):
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            out[i] = freq
        elif wavelen > low_freq_wavelen:
            out[i] = freq / scaling.factor
        else:
            smooth = (old_context_len / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
            out[i] = (1 - smooth) * freq / scaling.factor + smooth * freq
    return out


def precomputeFreqsCis(head_dim: int, end: int, theta: float, scaling: RopeScaling | None = None) -> Tensor:
    """freqs_cis [end, head_dim/2] COMPLEX64: cos + i sin of position * frequency, in float32 as Meta does."""
    exponents = ARange(0, head_dim, 2, DT_F32).data[: head_dim // 2] / np.float32(head_dim)
    freqs = (np.float32(1.0) / np.power(np.float32(theta), exponents)).astype(np.float32)
    if scaling is not None:
        freqs = applyRopeScaling(freqs, scaling)
    positions = ARange(0, end, 1, DT_F32)
    angles = Outer(positions, Tensor.wrap(freqs, DT_F32))
    return Polar(Ones(angles.shape, DT_F32), angles)


def applyRotaryEmbeddings(x: Tensor, freqs_cis: Tensor, name: str, pairing: str = ROPE_INTERLEAVED) -> Tensor:
    """x [n, heads, head_dim] rotated by freqs_cis [n, head_dim/2]; computed in float32, returned in x's dtype.

    Interleaved weights (Meta's) put pair i at (x[2i], x[2i+1]), read as the complex number
    x[2i] + i*x[2i+1] as is. Hugging Face's weights put it at (x[i], x[i + head_dim/2]), and its
    modeling code rotates them as

        q * cos + rotate_half(q) * sin      rotate_half(q) = cat(-q[half:], q[:half])

    which, element by element, is q[i]*cos_i - q[i+half]*sin_i and q[i+half]*cos_i + q[i]*sin_i:
    the complex product (q[i] + i*q[i+half]) * (cos_i + i*sin_i). So the halves are read as pairs
    and the rotated pair is written side by side, at (2i, 2i+1) (MultiplyComplexPairs' halves=True).
    The result is in the interleaved order for both conventions: xq and xk change order together, so
    their dot products do not change, and from here on the numbers are those of a Meta-layout model.
    """
    if pairing == ROPE_HALVES:
        GLogger.DebugPrintf(
            "Calling applyRotaryEmbeddings for %s %s: pairs i and i+%d (Hugging Face layout) moved side by side, "
            "viewed as complex, multiplied by freqs_cis %s", name, x, x.shape[-1] // 2, freqs_cis,
        )
    else:
        GLogger.DebugPrintf(
            "Calling applyRotaryEmbeddings for %s %s: adjacent pairs (2i, 2i+1) viewed as complex, multiplied by freqs_cis %s",
            name, x, freqs_cis,
        )
    # every head of a position turns by the same angles, freqs_cis[position]: one kernel reads each
    # pair, multiplies it as complex64 does, and writes it in x's dtype
    return MultiplyComplexPairs(x, freqs_cis, halves=pairing == ROPE_HALVES)
