"""bfloat16: the top 16 bits of a float32 (1 sign, 8 exponent, 7 mantissa bits).

float32 -> bf16 rounds to nearest, ties to even, exactly as PyTorch's `c10::BFloat16` does:
add 0x7FFF plus the lowest kept bit, then drop the low 16 bits. Any NaN becomes the canonical quiet
NaN 0x7FC0 (PyTorch's choice); infinities stay infinities; a float32 above the largest bf16 rounds to
infinity. bf16 -> float32 is exact: put the 16 bits on top and zeros below.

In kernels the bits are reinterpreted with an LLVM `bitcast` (the two intrinsics below), which
compiles to no instruction at all, so widening a weight costs one shift.
"""

from __future__ import annotations


import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from .threads import parallel_ok

_PARALLEL_MIN = 1 << 16  # below this many elements a thread launch costs more than it saves


@intrinsic
def bf16_to_f32(typingctx, bits):  # type: ignore[no-untyped-def]
    """Numba intrinsic: uint16 bf16 bits -> float32 (zero-extend, shift left 16, bitcast)."""
    if not isinstance(bits, types.Integer) or bits.bitwidth != 16:
        return None
    sig = types.float32(bits)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        wide = builder.zext(args[0], ir.IntType(32))
        shifted = builder.shl(wide, ir.Constant(ir.IntType(32), 16))
        return builder.bitcast(shifted, ir.FloatType())

    return sig, codegen


@intrinsic
def f32_bits(typingctx, value):  # type: ignore[no-untyped-def]
    """Numba intrinsic: float32 -> its IEEE bits as uint32 (bitcast, no conversion)."""
    if value != types.float32:
        return None
    sig = types.uint32(value)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(32))

    return sig, codegen


@njit(inline="always", cache=True)
def f32_to_bf16(value):  # type: ignore[no-untyped-def]
    """float32 -> bf16 bits (uint16), round to nearest even; NaN -> 0x7FC0."""
    bits = np.int64(f32_bits(np.float32(value)))
    if (bits & 0x7FFFFFFF) > 0x7F800000:
        return np.uint16(0x7FC0)
    rounding_bias = 0x7FFF + ((bits >> 16) & 1)
    return np.uint16(((bits + rounding_bias) >> 16) & 0xFFFF)


@njit(cache=True)
def _widen_serial(src, dst):  # type: ignore[no-untyped-def]
    for i in range(src.size):
        dst[i] = bf16_to_f32(src[i])


@njit(cache=True, parallel=True)
def _widen_parallel(src, dst):  # type: ignore[no-untyped-def]
    for i in prange(src.size):
        dst[i] = bf16_to_f32(src[i])


@njit(cache=True)
def _round_serial(src, dst):  # type: ignore[no-untyped-def]
    for i in range(src.size):
        dst[i] = f32_to_bf16(src[i])


@njit(cache=True, parallel=True)
def _round_parallel(src, dst):  # type: ignore[no-untyped-def]
    for i in prange(src.size):
        dst[i] = f32_to_bf16(src[i])


def bf16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """uint16 bf16 bits (any shape) -> a new float32 array of the same shape. Exact."""
    src = np.ascontiguousarray(bits, dtype=np.uint16)
    dst = np.empty(src.shape, dtype=np.float32)
    if src.size:
        (_widen_parallel if src.size >= _PARALLEL_MIN and parallel_ok() else _widen_serial)(src.reshape(-1), dst.reshape(-1))
    return dst


def float32_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 (any shape) -> a new uint16 array of bf16 bits, rounded to nearest even."""
    src = np.ascontiguousarray(values, dtype=np.float32)
    dst = np.empty(src.shape, dtype=np.uint16)
    if src.size:
        (_round_parallel if src.size >= _PARALLEL_MIN and parallel_ok() else _round_serial)(src.reshape(-1), dst.reshape(-1))
    return dst


def round_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> float32 holding the nearest bf16 value (handy for tests and the reference math)."""
    return bf16_bits_to_float32(float32_to_bf16_bits(values))


__all__ = [
    "as_f32",
    "as_storage",
    "round_like",
    "bf16_to_f32",
    "f32_bits",
    "f32_to_bf16",
    "bf16_bits_to_float32",
    "float32_to_bf16_bits",
    "round_to_bf16",
]


def as_f32(value):  # type: ignore[no-untyped-def]
    """In kernels: a float32 from either a float32 or a bf16 (uint16) element. See the overload."""
    raise NotImplementedError("as_f32 is only callable inside Numba kernels")


@overload(as_f32, inline="always")
def _as_f32_overload(value):  # type: ignore[no-untyped-def]
    # Resolved at compile time from the element type, so one kernel source serves F32 and BF16.
    if isinstance(value, types.Integer) and value.bitwidth == 16:
        return lambda value: bf16_to_f32(value)
    return lambda value: np.float32(value)


def as_storage(out, value):  # type: ignore[no-untyped-def]
    """In kernels: the float32 `value` as an element of `out`: bf16 bits (rounded once, to nearest
    even) when out holds bf16, the float32 itself otherwise. Write `out[i, j] = as_storage(out, v)`."""
    raise NotImplementedError("as_storage is only callable inside Numba kernels")


@overload(as_storage)
def _as_storage_overload(out, value):  # type: ignore[no-untyped-def]
    if isinstance(out.dtype, types.Integer):
        return lambda out, value: f32_to_bf16(value)
    return lambda out, value: np.float32(value)


def round_like(out, value):  # type: ignore[no-untyped-def]
    """In kernels: `value` rounded to bf16 (kept as a float32) when out holds bf16 bits, else as is:
    the rounding a chain of bf16 ops does between steps, inside one fused kernel."""
    raise NotImplementedError("round_like is only callable inside Numba kernels")


@overload(round_like)
def _round_like_overload(out, value):  # type: ignore[no-untyped-def]
    if isinstance(out.dtype, types.Integer):
        return lambda out, value: bf16_to_f32(f32_to_bf16(value))
    return lambda out, value: np.float32(value)
