"""Sixteen-lane vectors for the block kernels: F32x16 (16 float32) and I32x16 (16 int32).

A GGML block is 32 values (or sub-blocks of 16 or 32), and its matrix-vector product wants the CPU's
vector instructions: 16 bytes of 4-bit values unpacked into 16 float32 lanes, scaled, multiplied
by 16 activations and accumulated lane by lane, with one horizontal sum per row at the very end.
LLVM's auto-vectoriser does not find that shape in a scalar loop over a block (it vectorises
across blocks instead, with gathers), so the kernels spell it out with these two value types.
Each is one LLVM vector (<16 x float>, <16 x i32>): on AVX-512 one zmm register, on AVX2 two ymm;
LLVM picks the instructions. Every operation is exact IEEE float32 / two's-complement int32
arithmetic, lane by lane, except `fma` (fused when the CPU has FMA, which is allowed to change the
last bit of a sum) and `hsum`, a fixed tree of additions.

    d = splat_f16(row, offset)      # a block's float16 scale, widened, in all 16 lanes
    v = load_u8(row, offset + 2)    # 16 bytes, zero-extended -> I32x16
    lo = to_f32(v & 15)             # the low nibbles as float32
    acc = fma(lo * d, load_f32(x, start), acc)
    total = hsum(acc)

Loads read 16 consecutive elements of a 1-D contiguous array starting at an element index, without
a bounds check (like numba's default indexing): the op that calls a kernel has validated every
shape, so every load is inside its array.

A block's scale goes straight from memory into all lanes (`splat_f16`: vpbroadcastw, then
vcvtph2ps on the whole register) rather than through a scalar float16 -> float32 conversion: for a
scalar, LLVM inserts the 16 bits into whichever vector register it likes (vpinsrw merges into the
register's old contents), and when that register held an accumulator every block waited for the
previous block's sum; the Q8_0 kernel ran at half speed.

Numba caches compiled kernels beside their source files and does not notice when a function they use
from another file changes: after editing this file, delete src/ml/__pycache__/*.nbi and *.nbc.
"""

from __future__ import annotations

import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

LANES = 16
_F32 = ir.FloatType()
_I32 = ir.IntType(32)
_VF32 = ir.VectorType(_F32, LANES)
_VI32 = ir.VectorType(_I32, LANES)


class F32x16Type(types.Type):
    def __init__(self) -> None:
        super().__init__(name="F32x16")


class I32x16Type(types.Type):
    def __init__(self) -> None:
        super().__init__(name="I32x16")


F32x16 = F32x16Type()
I32x16 = I32x16Type()


@register_model(F32x16Type)
class _F32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):  # type: ignore[no-untyped-def]
        super().__init__(dmm, fe_type, _VF32)


@register_model(I32x16Type)
class _I32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):  # type: ignore[no-untyped-def]
        super().__init__(dmm, fe_type, _VI32)


def _splat(builder, value, vector_type):  # type: ignore[no-untyped-def]
    """A scalar repeated in every lane (insertelement + shufflevector: LLVM's broadcast idiom)."""
    undef = ir.Constant(vector_type, ir.Undefined)
    one = builder.insert_element(undef, value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, undef, ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _element_pointer(context, builder, array_type, array, index):  # type: ignore[no-untyped-def]
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index])


def _is_array(value, dtype) -> bool:  # type: ignore[no-untyped-def]
    return isinstance(value, types.Array) and value.ndim == 1 and value.dtype == dtype and value.layout == "C"


# ---- construction and loads ---------------------------------------------------------------------


@intrinsic
def zeros(typingctx):  # type: ignore[no-untyped-def]
    """F32x16 of +0.0."""

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return ir.Constant(_VF32, [0.0] * LANES)

    return F32x16(), codegen


@intrinsic
def splat(typingctx, value):  # type: ignore[no-untyped-def]
    """F32x16 with a float32 in every lane."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return _splat(builder, args[0], _VF32)

    return F32x16(value), codegen


@intrinsic
def load_f32(typingctx, array, start):  # type: ignore[no-untyped-def]
    """F32x16 of array[start : start + 16] (a 1-D contiguous float32 array)."""
    if not _is_array(array, types.float32) or not isinstance(start, types.Integer):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load(builder.bitcast(pointer, _VF32.as_pointer()), align=4)

    return F32x16(array, start), codegen


def _byte_load(signed: bool):  # type: ignore[no-untyped-def]
    def typer(typingctx, array, start):  # type: ignore[no-untyped-def]
        if not _is_array(array, types.uint8) or not isinstance(start, types.Integer):
            return None

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
            vector_type = ir.VectorType(ir.IntType(8), LANES)
            raw = builder.load(builder.bitcast(pointer, vector_type.as_pointer()), align=1)
            return builder.sext(raw, _VI32) if signed else builder.zext(raw, _VI32)

        return I32x16(array, start), codegen

    return typer


load_u8 = intrinsic(_byte_load(signed=False))
load_u8.__doc__ = "I32x16 of the 16 bytes array[start : start + 16] (uint8), zero-extended."
load_i8 = intrinsic(_byte_load(signed=True))
load_i8.__doc__ = "I32x16 of the 16 bytes array[start : start + 16] read as int8, sign-extended."


@intrinsic
def load_f16(typingctx, array, start):  # type: ignore[no-untyped-def]
    """F32x16 of the 16 float16 values array[start : start + 16] (uint16 bits), widened exactly."""
    if not _is_array(array, types.uint16) or not isinstance(start, types.Integer):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        half_type = ir.VectorType(ir.HalfType(), LANES)
        raw = builder.load(builder.bitcast(pointer, half_type.as_pointer()), align=2)
        return builder.fpext(raw, _VF32)

    return F32x16(array, start), codegen


@intrinsic
def store_f32(typingctx, array, start, value):  # type: ignore[no-untyped-def]
    """array[start : start + 16] = the 16 lanes of an F32x16 (a 1-D contiguous float32 array)."""
    if not _is_array(array, types.float32) or not array.mutable or not isinstance(start, types.Integer) or value != F32x16:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(pointer, _VF32.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(array, start, value), codegen


@intrinsic
def splat_f16(typingctx, array, start):  # type: ignore[no-untyped-def]
    """F32x16 with, in every lane, the little-endian float16 at bytes array[start], array[start + 1]
    (a uint8 array: the scale of a block), widened exactly."""
    if not _is_array(array, types.uint8) or not isinstance(start, types.Integer):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        bits = builder.load(builder.bitcast(pointer, ir.IntType(16).as_pointer()), align=1)
        lanes = _splat(builder, bits, ir.VectorType(ir.IntType(16), LANES))
        return builder.fpext(builder.bitcast(lanes, ir.VectorType(ir.HalfType(), LANES)), _VF32)

    return F32x16(array, start), codegen


# ---- conversions, fused multiply-add, horizontal sum ---------------------------------------------


@intrinsic
def to_f32(typingctx, value):  # type: ignore[no-untyped-def]
    """I32x16 -> F32x16, each lane converted exactly (the kernels' values are small integers)."""
    if value != I32x16:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.sitofp(args[0], _VF32)

    return F32x16(value), codegen


@intrinsic
def fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """a * b + c lane by lane (llvm.fmuladd: one fused instruction where the CPU has FMA)."""
    if not (a == b == c == F32x16):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_VF32, [_VF32] * 3), "llvm.fmuladd.v16f32")
        return builder.call(fn, list(args))

    return F32x16(a, b, c), codegen


@intrinsic
def hsum(typingctx, value):  # type: ignore[no-untyped-def]
    """The sum of the 16 lanes: halves added pairwise (8 + 8, 4 + 4, 2 + 2, 1 + 1), a fixed order."""
    if value != F32x16:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        v = args[0]
        width = LANES
        while width > 1:
            width //= 2
            low = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, width), list(range(width))))
            high = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, width), list(range(width, 2 * width))))
            v = builder.fadd(low, high)
        return builder.extract_element(v, ir.Constant(_I32, 0))

    return types.float32(value), codegen


# ---- operators: F32x16 (+ - *) and I32x16 (& | >> << + -), with a vector or a scalar -----------


def _vector_binary(vector_type, scalar_type, instruction: str, scalar_cast):  # type: ignore[no-untyped-def]
    """An intrinsic for `a OP b` where each side is a vector or a scalar (splatted to every lane)."""
    llvm_vector = _VF32 if vector_type is F32x16 else _VI32

    def typer(typingctx, a, b):  # type: ignore[no-untyped-def]
        if a != vector_type and b != vector_type:
            return None
        for side in (a, b):
            if side != vector_type and not isinstance(side, scalar_type):
                return None

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            operands = []
            for side_type, value in zip(signature.args, args):
                if side_type != vector_type:
                    value = _splat(builder, scalar_cast(context, builder, side_type, value), llvm_vector)
                operands.append(value)
            return getattr(builder, instruction)(*operands)

        return vector_type(a, b), codegen

    return intrinsic(typer)


def _to_float32(context, builder, from_type, value):  # type: ignore[no-untyped-def]
    return context.cast(builder, value, from_type, types.float32)


def _to_int32(context, builder, from_type, value):  # type: ignore[no-untyped-def]
    return context.cast(builder, value, from_type, types.int32)


_F32_OPS = {operator.add: "fadd", operator.sub: "fsub", operator.mul: "fmul"}
_I32_OPS = {
    operator.and_: "and_",
    operator.or_: "or_",
    operator.rshift: "lshr",  # logical: the kernels shift unsigned bytes
    operator.lshift: "shl",
    operator.add: "add",
    operator.sub: "sub",
}


def _register_operators() -> None:
    for op, instruction in _F32_OPS.items():
        _overload_operator(op, F32x16, types.Float, _vector_binary(F32x16, types.Float, instruction, _to_float32))
    for op, instruction in _I32_OPS.items():
        _overload_operator(op, I32x16, types.Integer, _vector_binary(I32x16, types.Integer, instruction, _to_int32))


def _overload_operator(op, vector_type, scalar_type, implementation) -> None:  # type: ignore[no-untyped-def]
    @overload(op)
    def _ol(a, b):  # type: ignore[no-untyped-def]
        if (a == vector_type and (b == vector_type or isinstance(b, scalar_type))) or (
            b == vector_type and isinstance(a, scalar_type)
        ):
            return lambda a, b: implementation(a, b)
        return None


_register_operators()

__all__ = ["F32x16", "I32x16", "LANES", "zeros", "splat", "load_f32", "load_u8", "load_i8", "load_f16", "store_f32", "to_f32", "fma", "hsum"]
