"""Vectors in registers for the bf16 prefill kernels (gemm_bf16.py): LLVM vector types and a few
instructions, in Numba.

Numba compiles scalar Python loops; LLVM vectorizes some of them, but it cannot be told to keep 16
accumulators of a matrix tile in registers, and it never emits the bf16 dot-product instruction.
These intrinsics give a kernel what a C programmer gets from <immintrin.h>: a vector value type and
the handful of operations the bf16 matrix product needs. Each compiles to one or two instructions.

    vzeros(lanes)                     -> f32 vector of `lanes` zeros
    load_bf16_pairs(a, row, col, lanes) -> 2*lanes bf16 of a uint16 array a[row, col:], as `lanes`
                                        32-bit lanes, each holding a pair (element 2i low, 2i+1 high)
    load_f32(a, row, col, lanes)      -> `lanes` float32 of a[row, col:]
    dot_bf16_pairs(acc, a, b)         -> acc + a.even * b.even + a.odd * b.odd, per lane (AVX512_BF16's
                                        vdpbf16ps: 32 bf16 products per instruction, summed in float32)
    widen_even(p), widen_odd(p)       -> the low / high bf16 of every pair as float32 (exact: a shift
                                        or a mask, then a bitcast)
    fma(acc, a, b)                    -> acc + a * b, fused, per lane
    reduce_sum(v)                     -> the float32 sum of the lanes
    sum_lanes_4x4(a00, a01, ..., a33)  -> one 16-lane vector whose lane 4r+c is the sum of a_rc's
                                        lanes: 16 sums in 45 shuffles and adds instead of 16 reductions
    add_quarter_to_row(out, row, col, v, q) -> out[row, col:col+4] += lanes 4q..4q+3 of v

`lanes` must be a compile-time constant (a module-level int): it decides the LLVM type. Loads are
unaligned and unchecked: the caller guarantees `col + 2*lanes` (bf16) or `col + lanes` (f32) fits
in the row. `dot_bf16_pairs` needs a CPU with AVX512_BF16 (see gemm_bf16.py, which checks first);
everything else is plain LLVM vector code that compiles for any CPU. The lane count is a parameter
because the fallback kernel runs 8 lanes on AVX2 (16 registers of 8 float32) and 16 on AVX-512.

Numba caches the compiled kernels beside gemm_bf16.py and does not notice when an intrinsic here
changes: after editing this file, delete src/ml/__pycache__/gemm_bf16.*.nbi and *.nbc.
"""

from __future__ import annotations

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

_F32 = ir.FloatType()
_I32 = ir.IntType(32)


class _BFloatType(ir.Type):
    """LLVM's `bfloat` scalar type, which llvmlite's IR builder does not define (LLVM 17+ uses it in
    the signature of the bf16 dot-product intrinsic)."""

    def _to_string(self) -> str:
        return "bfloat"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BFloatType)

    def __hash__(self) -> int:
        return hash("bfloat")


class VectorF32(types.Type):
    """A Numba value that is an LLVM <lanes x float>."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        super().__init__(name=f"f32x{lanes}")


class VectorBF16Pairs(types.Type):
    """A Numba value that is an LLVM <lanes x i32>: 2*lanes bf16, two per 32-bit lane."""

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        super().__init__(name=f"bf16x{2 * lanes}")


@register_model(VectorF32)
class _VectorF32Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):  # type: ignore[no-untyped-def]
        super().__init__(dmm, fe_type, ir.VectorType(_F32, fe_type.lanes))


@register_model(VectorBF16Pairs)
class _VectorBF16PairsModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):  # type: ignore[no-untyped-def]
        super().__init__(dmm, fe_type, ir.VectorType(_I32, fe_type.lanes))


def _lanes(value: types.Type) -> int | None:
    if isinstance(value, types.IntegerLiteral) and value.literal_value in (4, 8, 16):
        return int(value.literal_value)
    return None  # Numba retries with the literal type when it can


def _element_pointer(context, builder, array_type, array, row, col):  # type: ignore[no-untyped-def]
    ary = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, ary, [row, col], wraparound=False, boundscheck=False)


def _is_2d(array: types.Type, dtype: types.Type) -> bool:
    return isinstance(array, types.Array) and array.ndim == 2 and array.dtype == dtype


@intrinsic
def vzeros(typingctx, lanes):  # type: ignore[no-untyped-def]
    n = _lanes(lanes)
    if n is None:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return ir.Constant(ir.VectorType(_F32, n), None)

    return VectorF32(n)(lanes), codegen


@intrinsic
def load_bf16_pairs(typingctx, array, row, col, lanes):  # type: ignore[no-untyped-def]
    n = _lanes(lanes)
    if n is None or not _is_2d(array, types.uint16):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1], args[2])
        return builder.load(builder.bitcast(pointer, ir.VectorType(_I32, n).as_pointer()), align=2)

    return VectorBF16Pairs(n)(array, row, col, lanes), codegen


@intrinsic
def load_f32(typingctx, array, row, col, lanes):  # type: ignore[no-untyped-def]
    n = _lanes(lanes)
    if n is None or not _is_2d(array, types.float32):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1], args[2])
        return builder.load(builder.bitcast(pointer, ir.VectorType(_F32, n).as_pointer()), align=4)

    return VectorF32(n)(array, row, col, lanes), codegen


def _dpbf16_name_and_operand_type(lanes: int) -> tuple[str, ir.Type]:
    bits = 32 * lanes
    if llvm_binding.llvm_version_info[0] >= 17:
        operand: ir.Type = ir.VectorType(_BFloatType(), 2 * lanes)
    else:  # before LLVM 17 the intrinsic took the pairs as i32 lanes
        operand = ir.VectorType(_I32, lanes)
    return f"llvm.x86.avx512bf16.dpbf16ps.{bits}", operand


@intrinsic
def dot_bf16_pairs(typingctx, acc, a, b):  # type: ignore[no-untyped-def]
    if not (isinstance(acc, VectorF32) and isinstance(a, VectorBF16Pairs) and a == b and a.lanes == acc.lanes):
        return None
    n = acc.lanes

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        name, operand = _dpbf16_name_and_operand_type(n)
        vector = ir.VectorType(_F32, n)
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector, operand, operand]), name)
        return builder.call(function, [args[0], builder.bitcast(args[1], operand), builder.bitcast(args[2], operand)])

    return acc(acc, a, b), codegen


@intrinsic
def widen_even(typingctx, pairs):  # type: ignore[no-untyped-def]
    if not isinstance(pairs, VectorBF16Pairs):
        return None
    n = pairs.lanes

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        shifted = builder.shl(args[0], ir.Constant(ir.VectorType(_I32, n), [16] * n))
        return builder.bitcast(shifted, ir.VectorType(_F32, n))

    return VectorF32(n)(pairs), codegen


@intrinsic
def widen_odd(typingctx, pairs):  # type: ignore[no-untyped-def]
    if not isinstance(pairs, VectorBF16Pairs):
        return None
    n = pairs.lanes

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        masked = builder.and_(args[0], ir.Constant(ir.VectorType(_I32, n), [0xFFFF0000 - (1 << 32)] * n))
        return builder.bitcast(masked, ir.VectorType(_F32, n))

    return VectorF32(n)(pairs), codegen


@intrinsic
def fma(typingctx, acc, a, b):  # type: ignore[no-untyped-def]
    if not (isinstance(acc, VectorF32) and acc == a == b):
        return None
    n = acc.lanes

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        vector = ir.VectorType(_F32, n)
        function = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{n}f32")
        return builder.call(function, [args[1], args[2], args[0]])

    return acc(acc, a, b), codegen


@intrinsic
def reduce_sum(typingctx, vector):  # type: ignore[no-untyped-def]
    if not isinstance(vector, VectorF32):
        return None
    n = vector.lanes

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_F32, [_F32, ir.VectorType(_F32, n)]), f"llvm.vector.reduce.fadd.v{n}f32"
        )
        # reassoc: sum the lanes as a tree (a few shuffles and adds), not one after the other
        return builder.call(function, [ir.Constant(_F32, 0.0), args[0]], fastmath=("reassoc",))

    return types.float32(vector), codegen


def _shuffle_add(builder, a, b, first, second):  # type: ignore[no-untyped-def]
    """shuffle(a, b, first) + shuffle(a, b, second): pick lanes of the pair, add them lane by lane."""
    pick = lambda mask: builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(mask)), mask))  # noqa: E731
    return builder.fadd(pick(first), pick(second), flags=("fast",))


@intrinsic
def sum_lanes_4x4(typingctx, a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33):  # type: ignore[no-untyped-def]
    vectors = (a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33)
    if not all(v == VectorF32(16) for v in vectors):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        # Each level adds the two halves of every group of lanes, and packs two vectors into one.
        # 1: (a_r0, a_r1) -> [8 partials of a_r0 | 8 of a_r1]; the same for (a_r2, a_r3)
        lo8, hi8 = list(range(0, 8)) + list(range(16, 24)), list(range(8, 16)) + list(range(24, 32))
        c = [_shuffle_add(builder, args[i], args[i + 1], lo8, hi8) for i in range(0, 16, 2)]
        # 2: -> per row r: [4 partials of column 0 | of 1 | of 2 | of 3]
        lo4 = [g + i for g in (0, 8, 16, 24) for i in range(4)]
        d = [_shuffle_add(builder, c[2 * r], c[2 * r + 1], lo4, [v + 4 for v in lo4]) for r in range(4)]
        # 3: rows (0, 1) and (2, 3) -> 2 partials per (row, column)
        lo2 = [g + i for g in range(0, 32, 4) for i in range(2)]
        hi2 = [v + 2 for v in lo2]
        e = [_shuffle_add(builder, d[0], d[1], lo2, hi2), _shuffle_add(builder, d[2], d[3], lo2, hi2)]
        # 4: -> lane 4r + c = the whole sum of a_rc
        return _shuffle_add(builder, e[0], e[1], list(range(0, 32, 2)), list(range(1, 32, 2)))

    return VectorF32(16)(*vectors), codegen


@intrinsic
def add_quarter_to_row(typingctx, array, row, col, vector, quarter):  # type: ignore[no-untyped-def]
    if not (_is_2d(array, types.float32) and vector == VectorF32(16) and isinstance(quarter, types.IntegerLiteral)):
        return None
    q = int(quarter.literal_value)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1], args[2])
        pointer = builder.bitcast(pointer, ir.VectorType(_F32, 4).as_pointer())
        part = builder.shuffle_vector(args[3], args[3], ir.Constant(ir.VectorType(_I32, 4), [4 * q + i for i in range(4)]))
        builder.store(builder.fadd(builder.load(pointer, align=4), part), pointer, align=4)
        return context.get_dummy_value()

    return types.none(array, row, col, vector, quarter), codegen


__all__ = [
    "add_quarter_to_row",
    "sum_lanes_4x4",
    "VectorBF16Pairs",
    "VectorF32",
    "dot_bf16_pairs",
    "fma",
    "load_bf16_pairs",
    "load_f32",
    "reduce_sum",
    "vzeros",
    "widen_even",
    "widen_odd",
]
