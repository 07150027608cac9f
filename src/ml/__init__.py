"""The tensor layer: `Tensor`, dtypes (bf16 stored as uint16) and ops on Numba kernels.

Every op validates its arguments and raises ShapeError / DTypeError naming the op and the shapes;
the kernel behind it only computes. Use as `from llamanuts import ml; ml.LinearTransformation(x, w)`.
"""

import os

# Numba's parallel kernels run on an OpenMP thread pool. By default its idle workers spin, waiting for
# the next kernel; on a machine where another process holds a core, a spinning worker and the main
# thread then take turns at the scheduler's pace, and a 20-microsecond matrix-vector product took
# 2-8 milliseconds (measured here with a training run on the other core). Passive workers sleep
# instead and wake in microseconds. Set before the pool starts; a value from the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .bfloat16 import bf16_bits_to_float32, float32_to_bf16_bits, round_to_bf16
from .creation import ARange, Full, Ones, Outer, Polar, TriangularUpper, Zeros
from .dtype import DT_BF16, DT_BOOL, DT_COMPLEX64, DT_F32, DT_INT32, DT_INT64, DataType
from .elementwise import (
    Add,
    AddScalar,
    DivToScalar,
    MultiplyElementwise,
    Pow,
    RSqrt,
    Silu,
    ToBFloat16,
    ToFloat32,
)
from .embedding import Embedding
from .matmul import LinearTransformation, MatMul
from .reduce import Argmax, Mean, Softmax
from .tensor import Tensor, format_dims
from .threads import GetThreads, SetThreads
from .views import (
    Cat,
    Contiguous,
    RepeatInterleave,
    Reshape,
    SetSlice,
    Slice,
    Transpose,
    View,
    ViewAsComplex64,
    ViewAsFloat32,
)

__all__ = [name for name in dir() if not name.startswith("_")]
