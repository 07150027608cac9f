"""RMSNorm: scale each token's vector to unit root-mean-square, then by a learned weight per feature.

    doNormalization(x) = x * rsqrt(mean(x^2) + eps)        (Pow, Mean, AddScalar, RSqrt, Multiply)
    Forward(x)         = doNormalization(x) * weight

As in Meta's reference, the normalization runs in float32 even in bf16 mode (`x.float()`), and its
result is rounded to the activation dtype once (`.type_as(x)`) before the weight multiply.
"""

from __future__ import annotations

import numpy as np

from ..common import GLogger
from ..ml import AddScalar, DT_BF16, Mean, MultiplyElementwise, Pow, RSqrt, Tensor, ToBFloat16, ToFloat32


class RMSNorm:
    def __init__(self, epsilon: float, weights: Tensor, name: str) -> None:
        self.epsilon = epsilon
        self.weights = weights
        self.name = name

    def doNormalization(self, x: Tensor) -> Tensor:
        h = ToFloat32(x)
        GLogger.DebugPrintf("Calling Pow for tensor x %s with exponent 2 -> tensor h", h)
        h = Pow(h, 2)
        GLogger.DebugPrintf("Calling Mean for tensor h %s over dim -1 with keepdim -> tensor h", h)
        h = Mean(h, -1, keepdim=True)
        GLogger.DebugPrintf("Calling AddScalar for tensor h %s and epsilon %g -> tensor h", h, self.epsilon)
        h = AddScalar(h, self.epsilon)
        GLogger.DebugPrintf("Calling RSqrt for tensor h %s -> tensor h", h)
        h = RSqrt(h)
        GLogger.DebugPrintf("Calling MultiplyElementwise for tensor x %s and tensor h %s -> tensor normalized", x, h)
        normalized = MultiplyElementwise(ToFloat32(x), h)
        return ToBFloat16(normalized) if x.dtype is DT_BF16 else normalized

    def Forward(self, x: Tensor) -> Tensor:
        h = self.doNormalization(x)
        GLogger.DebugValues("RMS of the last row of x: sqrt(mean(x^2) + eps) = %.6g, so that row is multiplied by %.6g", lambda: _last_row_rms(x, self.epsilon), lambda: 1 / _last_row_rms(x, self.epsilon))
        GLogger.DebugPrintf(
            "Calling MultiplyElementwise for tensor normalized %s and %s weights %s -> tensor output", h, self.name, self.weights
        )
        return MultiplyElementwise(h, self.weights)


def _last_row_rms(x: Tensor, epsilon: float) -> float:
    """sqrt(mean(x^2) + eps) of x's last row, in float64: the number the normalisation divides by."""
    row = np.asarray(x.numpy(), dtype=np.float64).reshape(-1, x.shape[-1])[-1]
    return float(np.sqrt(np.mean(row * row) + epsilon))
