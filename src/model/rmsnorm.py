"""RMSNorm: scale each token's vector to unit root-mean-square, then by a learned weight per feature.

    doNormalization(x) = x * rsqrt(mean(x^2) + eps)        (one fused op, RMSNormalization)
    Forward(x)         = doNormalization(x) * weight

As in Meta's reference, the normalization runs in float32 even in bf16 mode (`x.float()`), and its
result is rounded to the activation dtype once (`.type_as(x)`) before the weight multiply.
"""

from __future__ import annotations

import numpy as np

from ..common import GLogger
from ..ml import MultiplyElementwise, RMSNormalization, Tensor


class RMSNorm:
    def __init__(self, epsilon: float, weights: Tensor, name: str) -> None:
        self.epsilon = epsilon
        self.weights = weights
        self.name = name

    def doNormalization(self, x: Tensor) -> Tensor:
        # Pow, Mean, AddScalar, RSqrt and MultiplyElementwise of the formula, in one kernel
        GLogger.DebugPrintf(
            "Calling RMSNormalization for tensor x %s and epsilon %g: x * rsqrt(mean(x^2) + eps) in float32 -> tensor normalized",
            x,
            self.epsilon,
        )
        return RMSNormalization(x, self.epsilon)

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
