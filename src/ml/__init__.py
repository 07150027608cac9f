"""The tensor layer: `Tensor`, dtypes (bf16 stored as uint16) and ops on Numba kernels.

Every op validates its arguments and raises ShapeError / DTypeError naming the op and the shapes;
the kernel behind it only computes. Use as `from llamanuts import ml; ml.LinearTransformation(x, w)`.
"""

# The thread policy (idle OpenMP and OpenBLAS workers sleep) is set when llamanuts is imported,
# before numpy and Numba start their pools: src/common/threadpolicy.py.

from .attention import Attention
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
from .matmul import LinearTransformation, LinearTransformations, MatMul
from .normalization import RMSNormalization
from .quantized import dequantize
from .reduce import Argmax, Mean, Softmax
from .rotation import MultiplyComplexPairs
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
