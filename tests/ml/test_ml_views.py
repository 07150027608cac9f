"""Views and copies: Reshape/View, Transpose, Slice, SetSlice, Cat, Contiguous, RepeatInterleave,
ViewAsComplex64 / ViewAsFloat32. Expected values come from the matching numpy operation."""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_COMPLEX64, DT_F32, Tensor


def f32(a) -> Tensor:
    return Tensor.from_numpy(np.asarray(a, dtype=np.float32))


def arange_f32(*shape: int) -> Tensor:
    return f32(np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape))


# ---- Reshape / View -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, new, expected",
    [
        ((2, 3, 4), [6, 4], (6, 4)),
        ((2, 3, 4), [-1, 4], (6, 4)),
        ((2, 3, 4), [2, -1], (2, 12)),
        ((2, 3, 4), [-1], (24,)),
        ((2, 3, 4), [1, 2, 1, 12, -1], (1, 2, 1, 12, 1)),
        ((6,), [2, 3], (2, 3)),
        ((1,), [], ()),
        ((0, 4), [4, 0], (4, 0)),
    ],
)
def test_reshape_matches_numpy_reshape(shape, new, expected):
    t = arange_f32(*shape)
    got = ml.Reshape(t, new)
    assert got.shape == expected and got.dtype is DT_F32
    np.testing.assert_array_equal(got.data, t.data.reshape(expected))


def test_reshape_shares_storage():
    t = arange_f32(2, 3)
    r = ml.Reshape(t, [3, 2])
    r.data[0, 0] = 42.0
    assert t.data[0, 0] == 42.0


def test_view_is_reshape_and_shares_memory():
    t = ml.Zeros([4, 8], DT_BF16)
    v = ml.View(t, [2, 2, -1])
    assert v.shape == (2, 2, 8) and v.dtype is DT_BF16
    assert np.shares_memory(v.data, t.data)


def test_reshape_to_a_different_number_of_elements_is_an_error():
    with pytest.raises(ShapeError, match=r"Reshape: cannot reshape \[2 3\] \(6 elements\) into \[4 2\] \(8 elements\)"):
        ml.Reshape(arange_f32(2, 3), [4, 2])


def test_reshape_with_a_minus_one_that_does_not_divide_is_an_error():
    with pytest.raises(ShapeError, match=r"Reshape: cannot reshape \[2 3\] into \[4 -1\]"):
        ml.Reshape(arange_f32(2, 3), [4, -1])


def test_reshape_with_two_minus_ones_is_an_error():
    with pytest.raises(ShapeError, match=r"Reshape: more than one -1 in \[-1 -1\]"):
        ml.Reshape(arange_f32(2, 3), [-1, -1])


@pytest.mark.parametrize("new", [[-2, 3], [-2, -3], [-3, 2, -1]])
def test_reshape_with_a_negative_dimension_other_than_minus_one_is_an_error(new):
    # numpy would say "can only specify one unknown dimension" (a ValueError); the op names itself
    with pytest.raises(ShapeError, match=r"Reshape: negative dimension in \[.*\] \(only -1 may be inferred\)"):
        ml.Reshape(arange_f32(6), new)


def test_reshape_with_minus_one_next_to_a_zero_dimension_is_an_error():
    # like PyTorch: -1 cannot be inferred when the other dimensions multiply to 0
    with pytest.raises(ShapeError, match="Reshape: cannot reshape"):
        ml.Reshape(ml.Zeros([0, 4]), [0, -1])


# ---- Transpose ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [(0, 1), (1, 0), (0, 2), (1, 2), (-1, -2), (0, -1), (-3, 1), (2, 2)])
def test_transpose_swaps_two_dimensions_like_numpy_swapaxes(dims):
    t = arange_f32(2, 3, 4)
    got = ml.Transpose(t, *dims)
    expected = np.swapaxes(t.data, *dims)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.data, expected)
    assert got.data.flags.c_contiguous


def test_transpose_returns_a_copy():
    t = arange_f32(2, 3)
    got = ml.Transpose(t, 0, 1)
    assert not np.shares_memory(got.data, t.data)


def test_transpose_keeps_bf16_bits():
    t = Tensor.from_numpy(np.array([[0x3F80, 0x4000], [0xC040, 0x7FC0]], np.uint16), DT_BF16)
    got = ml.Transpose(t, 0, 1)
    assert got.dtype is DT_BF16 and got.data.tolist() == [[0x3F80, 0xC040], [0x4000, 0x7FC0]]


@pytest.mark.parametrize("dims", [(0, 3), (-4, 0), (3, -4)])
def test_transpose_out_of_range_dim_is_an_error(dims):
    with pytest.raises(ShapeError, match="Transpose: dim -?[34] is out of range for a tensor with 3 dimensions"):
        ml.Transpose(arange_f32(2, 3, 4), *dims)


def test_transpose_needs_a_tensor():
    with pytest.raises(DTypeError, match="Transpose: input must be a Tensor"):
        ml.Transpose(np.zeros((2, 2), np.float32), 0, 1)


# ---- Slice --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim, start, end", [(0, 1, 3), (1, 0, 2), (2, 1, 4), (-1, 3, 4), (0, 2, 2), (1, 0, 3)])
def test_slice_matches_numpy_slicing(dim, start, end):
    t = arange_f32(3, 3, 4)
    got = ml.Slice(t, dim, start, end)
    index = [slice(None)] * 3
    index[dim] = slice(start, end)
    expected = t.data[tuple(index)]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.data, expected)
    assert got.data.flags.c_contiguous


def test_slice_along_dim_0_is_a_view_of_the_same_storage():
    t = arange_f32(4, 3)
    s = ml.Slice(t, 0, 1, 3)
    assert np.shares_memory(s.data, t.data)
    s.data[0, 0] = -1.0
    assert t.data[1, 0] == -1.0


def test_slice_along_another_dim_is_a_copy():
    t = arange_f32(2, 4, 3)
    s = ml.Slice(t, 1, 1, 3)
    assert not np.shares_memory(s.data, t.data)
    s.data[...] = -1.0
    np.testing.assert_array_equal(t.data, np.arange(24, dtype=np.float32).reshape(2, 4, 3))


def test_slice_along_another_dim_is_a_view_when_the_elements_are_contiguous():
    # [1, T, d] along dim 1 selects one contiguous block, so no copy is made (as in PyTorch, where
    # every slice is a view): writing into the result writes into the source.
    t = arange_f32(1, 4, 3)
    s = ml.Slice(t, 1, 1, 3)
    assert np.shares_memory(s.data, t.data)


@pytest.mark.parametrize("dim, start, end", [(0, 0, 5), (1, 2, 1), (0, -1, 2), (1, 4, 5)])
def test_slice_out_of_range_is_an_error(dim, start, end):
    with pytest.raises(ShapeError, match=rf"Slice: range \[{start}, {end}\) is outside dimension {dim} of size \d \(shape \[4 3\]\)"):
        ml.Slice(arange_f32(4, 3), dim, start, end)


def test_slice_bad_dim_is_an_error():
    with pytest.raises(ShapeError, match="Slice: dim 2 is out of range"):
        ml.Slice(arange_f32(4, 3), 2, 0, 1)


# ---- SetSlice -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dim, start", [(0, 0), (0, 2), (1, 1), (-1, 0), (2, 3)])
def test_set_slice_writes_in_place_like_numpy_assignment(dim, start):
    dst = ml.Zeros([4, 5, 6])
    storage = dst.data
    src_shape = [4, 5, 6]
    src_shape[dim] = 2
    src = f32(np.arange(1, np.prod(src_shape) + 1).reshape(src_shape))
    assert ml.SetSlice(dst, dim, start, src) is None
    expected = np.zeros((4, 5, 6), np.float32)
    index = [slice(None)] * 3
    index[dim] = slice(start, start + 2)
    expected[tuple(index)] = src.data
    assert dst.data is storage  # written in place, not replaced
    np.testing.assert_array_equal(dst.data, expected)


def test_set_slice_into_a_dim_0_view_writes_through_to_the_parent():
    # the KV cache pattern: a per-layer view of a bigger cache
    cache = ml.Zeros([2, 4, 3])
    layer1 = ml.Slice(cache, 0, 1, 2)
    ml.SetSlice(layer1, 1, 2, ml.Ones([1, 2, 3]))
    assert cache.data[1, 2:].sum() == 6 and cache.data.sum() == 6


def test_set_slice_bf16_copies_bits():
    dst = ml.Zeros([3, 2], DT_BF16)
    ml.SetSlice(dst, 0, 1, ml.Full([1, 2], -2.0, DT_BF16))
    assert dst.data.tolist() == [[0, 0], [0xC000, 0xC000], [0, 0]]


def test_set_slice_past_the_end_is_an_error():
    with pytest.raises(ShapeError, match=r"SetSlice: range \[3, 5\) is outside dimension 0 of size 4"):
        ml.SetSlice(ml.Zeros([4, 3]), 0, 3, ml.Zeros([2, 3]))


def test_set_slice_other_dims_must_match():
    with pytest.raises(ShapeError, match=r"SetSlice: src shape \[2 2\] does not fit dst shape \[4 3\] outside dimension 0"):
        ml.SetSlice(ml.Zeros([4, 3]), 0, 0, ml.Zeros([2, 2]))


def test_set_slice_ranks_must_match():
    with pytest.raises(ShapeError, match=r"SetSlice: src shape \[3\] and dst shape \[4 3\] differ in rank"):
        ml.SetSlice(ml.Zeros([4, 3]), 0, 0, ml.Zeros([3]))


def test_set_slice_dtypes_must_match():
    with pytest.raises(DTypeError, match="SetSlice: dst dtype F32 and src dtype BF16 differ"):
        ml.SetSlice(ml.Zeros([4, 3]), 0, 0, ml.Zeros([1, 3], DT_BF16))


def test_set_slice_needs_tensors():
    with pytest.raises(DTypeError, match="SetSlice: src must be a Tensor"):
        ml.SetSlice(ml.Zeros([4, 3]), 0, 0, np.zeros((1, 3), np.float32))


# ---- Cat ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_cat_matches_numpy_concatenate(dim):
    a = arange_f32(2, 3, 4)
    shape_b = [2, 3, 4]
    shape_b[dim] = 1
    b = f32(-np.arange(np.prod(shape_b)).reshape(shape_b))
    got = ml.Cat([a, b, a], dim)
    expected = np.concatenate([a.data, b.data, a.data], axis=dim)
    assert got.shape == expected.shape and got.dtype is DT_F32
    np.testing.assert_array_equal(got.data, expected)


def test_cat_of_one_tensor_is_a_copy():
    a = arange_f32(2, 2)
    got = ml.Cat([a])
    np.testing.assert_array_equal(got.data, a.data)
    assert not np.shares_memory(got.data, a.data)


def test_cat_default_dim_is_zero():
    assert ml.Cat([ml.Zeros([1, 3]), ml.Zeros([2, 3])]).shape == (3, 3)


def test_cat_of_nothing_is_an_error():
    with pytest.raises(ShapeError, match="Cat: needs at least one tensor"):
        ml.Cat([])


def test_cat_shapes_must_agree_outside_dim():
    with pytest.raises(ShapeError, match=r"Cat: shapes \[2 3\] and \[2 4\] differ outside dimension 0"):
        ml.Cat([ml.Zeros([2, 3]), ml.Zeros([2, 4])], 0)


def test_cat_ranks_must_agree():
    with pytest.raises(ShapeError, match=r"Cat: shapes \[2 3\] and \[3\] differ outside dimension 0"):
        ml.Cat([ml.Zeros([2, 3]), ml.Zeros([3])], 0)


def test_cat_dtypes_must_agree():
    with pytest.raises(DTypeError, match="Cat: dtypes F32 and BF16 differ"):
        ml.Cat([ml.Zeros([2, 3]), ml.Zeros([2, 3], DT_BF16)])


def test_cat_dim_out_of_range_is_an_error():
    with pytest.raises(ShapeError, match="Cat: dim 2 is out of range"):
        ml.Cat([ml.Zeros([2, 3])], 2)


# ---- Contiguous ---------------------------------------------------------------------------------


def test_contiguous_detaches_a_view():
    t = arange_f32(4, 2)
    view = ml.Slice(t, 0, 1, 3)
    c = ml.Contiguous(view)
    assert c.shape == (2, 2) and c.dtype is DT_F32
    np.testing.assert_array_equal(c.data, t.data[1:3])
    assert not np.shares_memory(c.data, t.data)


# ---- RepeatInterleave ---------------------------------------------------------------------------


@pytest.mark.parametrize("repeats", [1, 2, 4])
@pytest.mark.parametrize("dim", [0, 1, 2, -2])
def test_repeat_interleave_matches_numpy_repeat(repeats, dim):
    t = arange_f32(2, 3, 4)
    got = ml.RepeatInterleave(t, repeats, dim)
    expected = np.repeat(t.data, repeats, axis=dim)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.data, expected)


def test_repeat_interleave_repeats_each_slice_in_place_not_the_whole():
    # grouped-query attention: kv heads [a b] serve query heads [a a b b], not [a b a b]
    got = ml.RepeatInterleave(f32([[1.0], [2.0]]), 2, 0)
    assert got.data.reshape(-1).tolist() == [1.0, 1.0, 2.0, 2.0]


def test_repeat_interleave_bf16():
    t = Tensor.from_numpy(np.array([0x3F80, 0x4000], np.uint16), DT_BF16)
    got = ml.RepeatInterleave(t, 3, 0)
    assert got.dtype is DT_BF16 and got.data.tolist() == [0x3F80] * 3 + [0x4000] * 3


def test_repeat_interleave_zero_repeats_is_an_error():
    with pytest.raises(ShapeError, match="RepeatInterleave: repeats must be >= 1, got 0"):
        ml.RepeatInterleave(arange_f32(2, 2), 0, 0)


def test_repeat_interleave_bad_dim_is_an_error():
    with pytest.raises(ShapeError, match="RepeatInterleave: dim 2 is out of range"):
        ml.RepeatInterleave(arange_f32(2, 2), 2, 2)


# ---- ViewAsComplex64 / ViewAsFloat32 ------------------------------------------------------------


def test_view_as_complex_pairs_adjacent_elements():
    # PyTorch's view_as_complex on [..., k, 2]: element 2i is the real part, 2i+1 the imaginary part
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    got = ml.ViewAsComplex64(f32(x))
    assert got.dtype is DT_COMPLEX64 and got.shape == (2, 3)
    np.testing.assert_array_equal(got.data, x[:, 0::2] + 1j * x[:, 1::2])


def test_view_as_complex_shares_storage():
    t = arange_f32(2, 4)
    c = ml.ViewAsComplex64(t)
    assert np.shares_memory(c.data, t.data)


def test_view_as_float32_unpairs_into_real_then_imaginary():
    c = Tensor.from_numpy(np.array([[1 + 2j, 3 - 4j]], dtype=np.complex64))
    got = ml.ViewAsFloat32(c)
    assert got.dtype is DT_F32 and got.shape == (1, 4)
    assert got.data.tolist() == [[1.0, 2.0, 3.0, -4.0]]


def test_view_as_complex_then_float32_round_trips_bit_for_bit():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 8)).astype(np.float32)
    back = ml.ViewAsFloat32(ml.ViewAsComplex64(f32(x)))
    assert back.shape == (3, 2, 8)
    np.testing.assert_array_equal(back.data.view(np.uint32), x.view(np.uint32))


def test_view_as_complex_of_a_dim_0_slice():
    t = arange_f32(4, 2)
    got = ml.ViewAsComplex64(ml.Slice(t, 0, 1, 3))
    np.testing.assert_array_equal(got.data, np.array([[2 + 3j], [4 + 5j]], np.complex64))


def test_view_as_complex_needs_an_even_last_dimension():
    with pytest.raises(ShapeError, match=r"ViewAsComplex64: last dimension must be even, got shape \[2 3\]"):
        ml.ViewAsComplex64(arange_f32(2, 3))


def test_view_as_complex_of_a_scalar_tensor_is_an_error():
    with pytest.raises(ShapeError, match=r"ViewAsComplex64: last dimension must be even, got shape \[\]"):
        ml.ViewAsComplex64(f32(np.float32(1.0)))


def test_view_as_complex_needs_f32():
    with pytest.raises(DTypeError, match="ViewAsComplex64: input dtype BF16 is not supported"):
        ml.ViewAsComplex64(ml.Zeros([2], DT_BF16))


def test_view_as_float32_needs_complex64():
    with pytest.raises(DTypeError, match="ViewAsFloat32: input dtype F32 is not supported"):
        ml.ViewAsFloat32(ml.Zeros([2]))


def test_view_as_float32_of_a_scalar_tensor_is_an_error():
    with pytest.raises(ShapeError, match=r"ViewAsFloat32: needs at least 1 dimension, got shape \[\]"):
        ml.ViewAsFloat32(Tensor.from_numpy(np.array(1 + 2j, dtype=np.complex64)))


# ---- every view op checks that it got a Tensor ------------------------------------------------


@pytest.mark.parametrize(
    "op, call",
    [
        ("Reshape", lambda a: ml.Reshape(a, [4])),
        ("Contiguous", lambda a: ml.Contiguous(a)),
        ("Slice", lambda a: ml.Slice(a, 0, 0, 1)),
        ("Cat", lambda a: ml.Cat([ml.Zeros([2, 2]), a])),
        ("RepeatInterleave", lambda a: ml.RepeatInterleave(a, 2, 0)),
        ("ViewAsComplex64", lambda a: ml.ViewAsComplex64(a)),
        ("ViewAsFloat32", lambda a: ml.ViewAsFloat32(a)),
    ],
)
def test_view_ops_reject_a_numpy_array_in_place_of_a_tensor(op, call):
    with pytest.raises(DTypeError, match=rf"{op}: .* must be a Tensor, got ndarray"):
        call(np.zeros((2, 2), np.float32))
