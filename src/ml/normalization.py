"""RMSNormalization: x * rsqrt(mean(x^2) + eps) along the last dimension, in one kernel.

The formula is five element-wise ops (Pow, Mean, AddScalar, RSqrt, MultiplyElementwise). Run one
by one, each allocates its result and costs a call, which on a small model is most of the time of
the norm; fused, the kernel reads a row twice (sum its squares, then scale it) and writes it once.
As in Meta's reference (`x.float()`), the arithmetic is float32 for a bf16 input too, and the
result is rounded to the input's dtype once, at the end.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .bfloat16 import as_f32, as_storage
from .checks import require_dtype, require_tensor
from .dtype import DT_BF16, DT_F32
from .tensor import Tensor

_FAST = {"reassoc", "contract"}  # the sum of squares may use several vector accumulators

# ---- kernels --------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_FAST)
def _rms_normalize_rows(x, epsilon, out):  # type: ignore[no-untyped-def]
    rows, n = x.shape
    for i in range(rows):
        squares = np.float32(0.0)
        for j in range(n):
            v = as_f32(x[i, j])
            squares += v * v  # Pow(x, 2), summed for the Mean
        scale = np.float32(1.0) / np.sqrt(squares / np.float32(n) + epsilon)  # Mean, AddScalar, RSqrt
        for j in range(n):
            out[i, j] = as_storage(out, as_f32(x[i, j]) * scale)  # MultiplyElementwise


# ---- ops ------------------------------------------------------------------------------------------


def RMSNormalization(x: Tensor, epsilon: float) -> Tensor:
    """x / sqrt(mean(x^2 over the last dim) + epsilon), computed in float32; the result has x's dtype
    (F32 or BF16, rounded once). RMSNorm's doNormalization."""
    require_tensor("RMSNormalization", "x", x)
    require_dtype("RMSNormalization", x, (DT_F32, DT_BF16), "x")
    if x.ndim == 0:
        from ..common.errors import ShapeError

        raise ShapeError("RMSNormalization: x must have at least 1 dimension, got shape []")
    rows = x.data.reshape(math.prod(x.shape[:-1]), x.shape[-1])
    out = np.empty(rows.shape, dtype=x.data.dtype)
    _rms_normalize_rows(rows, np.float32(epsilon), out)
    return Tensor.wrap(out.reshape(x.shape), x.dtype)
