"""Element-wise ops: Add, AddScalar, DivToScalar, MultiplyElementwise, Pow, RSqrt, Silu, ToFloat32,
ToBFloat16.

Each kernel is a Numba-compiled numpy ufunc (`numba.vectorize`), so PyTorch/numpy broadcasting comes
from the ufunc machinery and the kernel body only computes one element. The bf16 kernels take and
return uint16 bits: widen to float32, compute in float32, round once to bf16 (PyTorch's rule for bf16
math on CPU). Scalars stay float32 (they are not rounded to bf16 first).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numba import vectorize

from .bfloat16 import bf16_to_f32, f32_to_bf16, float32_to_bf16_bits, bf16_bits_to_float32
from .checks import broadcast_shape, require_dtype, require_same_dtype, require_tensor
from ..common.errors import DTypeError
from .dtype import DT_BF16, DT_COMPLEX64, DT_F16, DT_F32
from .quantized import BLOCK_DTYPES, dequantize
from .tensor import Tensor

# ---- kernels --------------------------------------------------------------------------------------


class LazyUfunc:
    """A Numba ufunc compiled (or loaded from Numba's cache) on its first call, not at import.

    Loading a cached ufunc costs tens of milliseconds and a run needs only the kernels of its compute
    mode, so building them on demand shortens start-up. After the first call this calls the numpy
    ufunc itself: numba.vectorize returns a DUFunc whose __call__ is Python code (it can add
    signatures on the fly), while the compiled ufunc underneath costs about a quarter as much per call;
    the ops validate dtypes first, so the one compiled signature always fits.
    """

    __slots__ = ("signature", "function", "ufunc")

    def __init__(self, signature: str, function: Callable[..., Any]) -> None:
        self.signature = signature
        self.function = function
        self.ufunc: np.ufunc | None = None

    def __call__(self, *args: Any) -> Any:
        ufunc = self.ufunc
        if ufunc is None:
            ufunc = self.ufunc = vectorize([self.signature], cache=True)(self.function).ufunc
        return ufunc(*args)


def lazy_vectorize(signature: str) -> Callable[[Callable[..., Any]], LazyUfunc]:
    return lambda function: LazyUfunc(signature, function)



@lazy_vectorize("float32(float32, float32)")
def _add_f32(a, b):  # type: ignore[no-untyped-def]
    return a + b


@lazy_vectorize("uint16(uint16, uint16)")
def _add_bf16(a, b):  # type: ignore[no-untyped-def]
    return f32_to_bf16(bf16_to_f32(a) + bf16_to_f32(b))


@lazy_vectorize("float32(float32, float32)")
def _mul_f32(a, b):  # type: ignore[no-untyped-def]
    return a * b


@lazy_vectorize("uint16(uint16, uint16)")
def _mul_bf16(a, b):  # type: ignore[no-untyped-def]
    return f32_to_bf16(bf16_to_f32(a) * bf16_to_f32(b))


@lazy_vectorize("complex64(complex64, complex64)")
def _mul_c64(a, b):  # type: ignore[no-untyped-def]
    # (a.re + i a.im)(b.re + i b.im): the rotary embedding's rotation of a pair by an angle
    return complex(a.real * b.real - a.imag * b.imag, a.real * b.imag + a.imag * b.real)


@lazy_vectorize("uint16(uint16, float32)")
def _add_scalar_bf16(a, s):  # type: ignore[no-untyped-def]
    return f32_to_bf16(bf16_to_f32(a) + s)


@lazy_vectorize("uint16(uint16, float32)")
def _div_scalar_bf16(a, s):  # type: ignore[no-untyped-def]
    return f32_to_bf16(bf16_to_f32(a) / s)


@lazy_vectorize("float32(float32, float32)")
def _div_f32(a, s):  # type: ignore[no-untyped-def]
    return a / s


@lazy_vectorize("float32(float32, float32)")
def _pow_f32(a, e):  # type: ignore[no-untyped-def]
    if e == 2.0:
        return a * a  # exact, and what RMSNorm asks for
    return a**e


@lazy_vectorize("uint16(uint16, float32)")
def _pow_bf16(a, e):  # type: ignore[no-untyped-def]
    x = bf16_to_f32(a)
    return f32_to_bf16(x * x if e == 2.0 else x**e)


@lazy_vectorize("float32(float32)")
def _rsqrt_f32(a):  # type: ignore[no-untyped-def]
    return np.float32(1.0) / np.sqrt(a)


@lazy_vectorize("uint16(uint16)")
def _rsqrt_bf16(a):  # type: ignore[no-untyped-def]
    return f32_to_bf16(np.float32(1.0) / np.sqrt(bf16_to_f32(a)))


@lazy_vectorize("float32(float32)")
def _silu_f32(a):  # type: ignore[no-untyped-def]
    return a / (np.float32(1.0) + np.exp(-a))


@lazy_vectorize("uint16(uint16)")
def _silu_bf16(a):  # type: ignore[no-untyped-def]
    x = bf16_to_f32(a)
    return f32_to_bf16(x / (np.float32(1.0) + np.exp(-x)))


# ---- ops ------------------------------------------------------------------------------------------

_FLOATS = (DT_F32, DT_BF16)


def _binary(op: str, a: Tensor, b: Tensor, kernels: dict) -> Tensor:  # type: ignore[type-arg]
    require_tensor(op, "a", a)
    require_tensor(op, "b", b)
    require_same_dtype(op, a, b)
    kernel = kernels.get(a.dtype)
    if kernel is None:
        require_dtype(op, a, tuple(kernels))
    if a.shape != b.shape:
        broadcast_shape(op, a.shape, b.shape)
    return Tensor.wrap(np.ascontiguousarray(kernel(a.data, b.data)), a.dtype)


_ADD = {DT_F32: _add_f32, DT_BF16: _add_bf16}
_MUL = {DT_F32: _mul_f32, DT_BF16: _mul_bf16, DT_COMPLEX64: _mul_c64}


def Add(a: Tensor, b: Tensor) -> Tensor:
    """a + b with broadcasting (the residual connections, and scores + mask)."""
    return _binary("Add", a, b, _ADD)


def MultiplyElementwise(a: Tensor, b: Tensor) -> Tensor:
    """a * b with broadcasting; F32, BF16 or COMPLEX64 (the rotary rotation)."""
    return _binary("MultiplyElementwise", a, b, _MUL)


def _scalar_op(op: str, t: Tensor, scalar: float, f32_kernel, bf16_kernel) -> Tensor:  # type: ignore[no-untyped-def]
    require_tensor(op, "input", t)
    require_dtype(op, t, _FLOATS)
    s = np.float32(scalar)
    kernel = bf16_kernel if t.dtype is DT_BF16 else f32_kernel
    return Tensor.wrap(np.ascontiguousarray(kernel(t.data, s)), t.dtype)


def AddScalar(t: Tensor, scalar: float) -> Tensor:
    """t + scalar (RMSNorm adds eps this way)."""
    return _scalar_op("AddScalar", t, scalar, _add_f32, _add_scalar_bf16)


def DivToScalar(t: Tensor, scalar: float) -> Tensor:
    """t / scalar (attention divides the scores by sqrt(head_dim))."""
    if scalar == 0:
        from ..common.errors import ShapeError

        raise ShapeError("DivToScalar: division by zero")
    return _scalar_op("DivToScalar", t, scalar, _div_f32, _div_scalar_bf16)


def Pow(t: Tensor, exponent: float) -> Tensor:
    """t ** exponent (exponent 2 is computed as t*t, exactly)."""
    return _scalar_op("Pow", t, exponent, _pow_f32, _pow_bf16)


def _unary(op: str, t: Tensor, f32_kernel, bf16_kernel) -> Tensor:  # type: ignore[no-untyped-def]
    require_tensor(op, "input", t)
    require_dtype(op, t, _FLOATS)
    kernel = bf16_kernel if t.dtype is DT_BF16 else f32_kernel
    return Tensor.wrap(np.ascontiguousarray(kernel(t.data)), t.dtype)


def RSqrt(t: Tensor) -> Tensor:
    """1 / sqrt(t)."""
    return _unary("RSqrt", t, _rsqrt_f32, _rsqrt_bf16)


def Silu(t: Tensor) -> Tensor:
    """SiLU (swish): t * sigmoid(t) = t / (1 + exp(-t)), the FFN's gate activation."""
    return _unary("Silu", t, _silu_f32, _silu_bf16)


def ToFloat32(t: Tensor) -> Tensor:
    """BF16 and F16 -> F32 (exact); block-quantized -> the dequantized values (gguf-py's, bit for
    bit); F32 is returned as is."""
    require_tensor("ToFloat32", "input", t)
    require_dtype("ToFloat32", t, (*_FLOATS, *BLOCK_DTYPES))
    if t.dtype is DT_F32:
        return t
    if t.dtype is DT_BF16:
        return Tensor.wrap(bf16_bits_to_float32(t.data), DT_F32)
    return Tensor.wrap(dequantize(t.dtype, t.data).reshape(t.shape), DT_F32)


def ToBFloat16(t: Tensor) -> Tensor:
    """F32 and F16 -> BF16, rounded to nearest even (F16 widens exactly first, so once); BF16 is
    returned as is. Block-quantized tensors are refused: rounding their dequantized values would
    change the model (the model keeps them as stored and its kernels read the blocks)."""
    require_tensor("ToBFloat16", "input", t)
    if t.dtype.is_quantized:
        raise DTypeError(
            f"ToBFloat16: input dtype {t.dtype} is block-quantized; its values are not rounded to bf16 "
            f"(keep it as stored, or use ToFloat32 for the exact dequantized values)"
        )
    require_dtype("ToBFloat16", t, (*_FLOATS, DT_F16))
    if t.dtype is DT_BF16:
        return t
    if t.dtype is DT_F16:
        return Tensor.wrap(float32_to_bf16_bits(dequantize(DT_F16, t.data).reshape(t.shape)), DT_BF16)
    return Tensor.wrap(float32_to_bf16_bits(t.data), DT_BF16)


