"""The tensor layer: `Tensor`, dtypes (bf16 stored as uint16) and ops on Numba kernels.

Every op validates its arguments and raises ShapeError / DTypeError naming the op and the shapes;
the kernel behind it only computes. Use as `from llamanuts import ml; ml.LinearTransformation(x, w)`.
"""

import os

# Numba's parallel kernels run on an OpenMP (libgomp) thread pool whose idle workers spin for a while
# before they sleep. Measured here on 2 cores, for a bf16 matrix-vector product:
# - on a quiet machine, spinning workers start the next kernel at once (a 768x768 product in 15 us,
#   11008x4096 at 34-37 GB/s), while sleeping ones (OMP_WAIT_POLICY=passive) must be woken each time
#   (47 us and 19 GB/s: decode calls hundreds of kernels per token, so that is the common case);
# - when another process holds a core, a long spin steals the time slice the main thread needs
#   (libgomp's default spin let a 20 us product take milliseconds).
# A short spin (30000 iterations, tens of microseconds) keeps the quiet-machine speed and bounds the
# damage under load. Set before the pool starts; a policy or spin count from the user wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "30000")

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
