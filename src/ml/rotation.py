"""MultiplyComplexPairs: the rotary embedding's rotation, in one kernel.

Each head's numbers are read as complex pairs, (x[2i], x[2i+1]) = x[2i] + i*x[2i+1], and multiplied
by a complex number per position and pair, the same for every head: a rotation when its length is 1.
Written as ops it is ToFloat32, ViewAsComplex64, MultiplyElementwise (complex64), ViewAsFloat32 and
ToBFloat16, each a call and most an allocation; here the kernel reads each pair once, multiplies in
float32 as a complex64 multiply does, and writes the result in x's dtype (bf16 rounded once).

Hugging Face's weights pair x[i] with x[i + k] instead (rope.py's ROPE_HALVES); with halves=True the
kernel reads those two and writes the rotated pair side by side at (2i, 2i+1), as the ops would after
moving the halves together (Reshape, Transpose, Reshape): the same order and the same numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..common.errors import ShapeError
from .bfloat16 import as_f32, as_storage
from .checks import require_dtype, require_tensor
from .dtype import DT_BF16, DT_COMPLEX64, DT_F32
from .tensor import Tensor, format_dims

# ---- kernels --------------------------------------------------------------------------------------


@njit(cache=True)
def _multiply_complex_pairs(x, factors, out, halves):  # type: ignore[no-untyped-def]
    n, heads, width = x.shape
    half = width // 2
    for p in range(n):
        for h in range(heads):
            for i in range(half):
                # pair i: adjacent features, or feature i and its twin in the second half
                first, second = (i, i + half) if halves else (2 * i, 2 * i + 1)
                re = as_f32(x[p, h, first])
                im = as_f32(x[p, h, second])
                c = factors[p, i]
                # (re + i im)(c.re + i c.im), term by term as complex64 multiplication computes it
                out[p, h, 2 * i] = as_storage(out, re * c.real - im * c.imag)
                out[p, h, 2 * i + 1] = as_storage(out, re * c.imag + im * c.real)


# ---- ops ------------------------------------------------------------------------------------------


def MultiplyComplexPairs(x: Tensor, factors: Tensor, halves: bool = False) -> Tensor:
    """x [n, heads, 2k] (F32 or BF16), its adjacent pairs read as complex numbers, times factors
    [n, k] (COMPLEX64, the same for every head) -> [n, heads, 2k] in x's dtype.

    halves=True pairs x[..., i] with x[..., i + k] (Hugging Face's layout); the rotated pair i is
    written at (2i, 2i+1) either way."""
    require_tensor("MultiplyComplexPairs", "x", x)
    require_tensor("MultiplyComplexPairs", "factors", factors)
    require_dtype("MultiplyComplexPairs", x, (DT_F32, DT_BF16), "x")
    require_dtype("MultiplyComplexPairs", factors, (DT_COMPLEX64,), "factors")
    if x.ndim != 3 or factors.ndim != 2 or x.shape[2] % 2 or factors.shape != (x.shape[0], x.shape[2] // 2):
        raise ShapeError(
            f"MultiplyComplexPairs: x shape {format_dims(x.shape)} must be [n heads 2k] and factors shape "
            f"{format_dims(factors.shape)} must be [n k]"
        )
    out = np.empty(x.shape, dtype=x.data.dtype)
    _multiply_complex_pairs(x.data, factors.data, out, bool(halves))
    return Tensor.wrap(out, x.dtype)
