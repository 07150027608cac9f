"""The tensor layer: `Tensor`, dtypes (bf16 stored as uint16) and ops on Numba kernels.

Every op validates its arguments and raises ShapeError / DTypeError naming the op and the shapes;
the kernel behind it only computes. Use as `from llamanuts import ml; ml.LinearTransformation(x, w)`.
"""

import os

# Numba's parallel kernels run on an OpenMP (libgomp) thread pool; numpy's BLAS (prefill) runs on a
# second pool of its own. Idle OpenMP workers spin for a while before they sleep, and on 2 cores a
# spinning pool takes the cores the other pool, or another process, needs. Measured here on the
# 110M shape, alternating settings (bench.decode, tokens/s, decode / 32-token prefill):
#   libgomp spinning (active, or a 30000 spin count):  84-98 / 36-110, and 10-11 / 14-93 while
#                                                       another process was busy
#   passive (workers sleep at once):                   58-70 / 330-347, and 58 / 342 under load
# Passive costs a wake-up per kernel launch in decode but never starves BLAS or the main thread, so
# it is the default. Set before the pool starts; a policy from the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .bfloat16 import bf16_bits_to_float32, float32_to_bf16_bits, round_to_bf16
from .creation import ARange, Full, Ones, Outer, Polar, TriangularUpper, Zeros
from .dtype import (
    DT_BF16,
    DT_BOOL,
    DT_COMPLEX64,
    DT_F16,
    DT_F32,
    DT_INT32,
    DT_INT64,
    DT_Q4_0,
    DT_Q4_1,
    DT_Q4_K,
    DT_Q6_K,
    DT_Q8_0,
    QUANTIZED_DTYPES,
    DataType,
)
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
from .quantized import dequantize
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
