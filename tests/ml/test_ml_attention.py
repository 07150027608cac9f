"""Attention: softmax(q · kᵀ / scale) · v per query head, read from a KV cache laid out [T, kv_heads, d].

Reference: the definition in float64 numpy (Vaswani et al., "Attention Is All You Need", eq. 1),
with query head h using key/value head h // (heads / kv_heads) (grouped-query attention, Ainslie et
al.) and query i of n, at position T-n+i, seeing positions 0..T-n+i (causal). In bf16 the reference
rounds where the ops the kernel replaces round (MatMul, DivToScalar, Softmax, MatMul); float32
accumulation may still move a value that lies near a bf16 tie to its neighbour, so bf16 results are
compared within a couple of bf16 ulps of the row's scale.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from llamanuts import ml
from llamanuts.common import DTypeError, ShapeError
from llamanuts.ml import DT_BF16, DT_F32, Tensor
from ml_reference import bf16_bits_to_f64_ref, bf16_ulp, random_bf16_bits, rne_bf16_array

import llamanuts.ml.attention as attention_module


def rne(values: np.ndarray) -> np.ndarray:
    return bf16_bits_to_f64_ref(rne_bf16_array(values))


def reference(q, k, v, scale, rounding=lambda a: a):  # type: ignore[no-untyped-def]
    """q [n, H, d], k and v [T, KV, d] float64 -> (out [n, H, d], probabilities [H, n, T])."""
    n, heads, _ = q.shape
    positions, kv_heads, _ = k.shape
    out = np.zeros(q.shape)
    probabilities = np.zeros((heads, n, positions))
    for h in range(heads):
        g = h // (heads // kv_heads)
        for i in range(n):
            visible = positions - n + i + 1
            s = rounding(rounding(k[:visible, g] @ q[i, h]) / np.float64(np.float32(scale)))
            e = np.exp(s - s.max())
            p = rounding(e / e.sum())
            probabilities[h, i, :visible] = p
            out[i, h] = rounding(p @ v[:visible, g])
    return out, probabilities


@pytest.fixture(params=["serial", "parallel"])
def kernel(request, monkeypatch):
    """The heads computed by one thread, or split over the threads (both must agree with the reference)."""
    monkeypatch.setattr(attention_module, "_PARALLEL_MIN_BYTES", 1 << 62 if request.param == "serial" else 0)
    return request.param


@pytest.mark.parametrize("heads, kv_heads", [(4, 4), (6, 2), (9, 3)])
def test_f32_one_query_is_the_softmax_weighted_sum_of_the_values(heads, kv_heads, kernel):
    rng = np.random.default_rng(heads)
    d, positions = 16, 11
    q = rng.standard_normal((1, heads, d)).astype(np.float32)
    k = rng.standard_normal((positions, kv_heads, d)).astype(np.float32)
    v = rng.standard_normal((positions, kv_heads, d)).astype(np.float32)
    out, probabilities = ml.Attention(Tensor.from_numpy(q), Tensor.from_numpy(k), Tensor.from_numpy(v), math.sqrt(d))
    assert out.dtype is DT_F32 and out.shape == (1, heads, d)
    assert probabilities.dtype is DT_F32 and probabilities.shape == (heads, 1, positions)
    ref_out, ref_p = reference(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), math.sqrt(d))
    np.testing.assert_allclose(probabilities.data, ref_p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.data, ref_out, rtol=1e-5, atol=1e-6)


def test_f32_several_queries_are_causal(kernel):
    rng = np.random.default_rng(20)
    q = rng.standard_normal((3, 4, 8)).astype(np.float32)
    k = rng.standard_normal((7, 2, 8)).astype(np.float32)
    v = rng.standard_normal((7, 2, 8)).astype(np.float32)
    out, probabilities = ml.Attention(Tensor.from_numpy(q), Tensor.from_numpy(k), Tensor.from_numpy(v), 2.0)
    ref_out, ref_p = reference(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), 2.0)
    np.testing.assert_allclose(out.data, ref_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities.data, ref_p, rtol=1e-5, atol=1e-7)
    # query 0 sits at position 4 of 7: positions 5 and 6 are in its future
    np.testing.assert_array_equal(probabilities.data[:, 0, 5:], 0.0)
    np.testing.assert_allclose(probabilities.data.sum(axis=-1), 1.0, rtol=1e-6)


def test_each_query_head_reads_the_key_value_head_of_its_group():
    # keys equal everywhere (uniform attention), values constant per kv head: the output of query
    # head h is the value of kv head h // 3, whatever the position
    heads, kv_heads, d, positions = 6, 2, 4, 5
    q = np.ones((1, heads, d), np.float32)
    k = np.ones((positions, kv_heads, d), np.float32)
    v = np.stack([np.full((positions, d), 10.0 * (g + 1), np.float32) for g in range(kv_heads)], axis=1)
    out, _ = ml.Attention(Tensor.from_numpy(q), Tensor.from_numpy(k), Tensor.from_numpy(v), 1.0)
    np.testing.assert_allclose(out.data[0, :, 0], [10, 10, 10, 20, 20, 20], rtol=1e-6)


@pytest.mark.parametrize("n", [1, 2])
def test_bf16_rounds_where_the_ops_it_replaces_round(n, kernel):
    rng = np.random.default_rng(30 + n)
    heads, kv_heads, d, positions = 8, 2, 32, 9
    q = random_bf16_bits(rng, (n, heads, d), -2.0, 2.0)
    k = random_bf16_bits(rng, (positions, kv_heads, d), -2.0, 2.0)
    v = random_bf16_bits(rng, (positions, kv_heads, d), -2.0, 2.0)
    out, probabilities = ml.Attention(
        Tensor.from_numpy(q, DT_BF16), Tensor.from_numpy(k, DT_BF16), Tensor.from_numpy(v, DT_BF16), math.sqrt(d)
    )
    assert out.dtype is DT_BF16
    ref_out, ref_p = reference(bf16_bits_to_f64_ref(q), bf16_bits_to_f64_ref(k), bf16_bits_to_f64_ref(v), math.sqrt(d), rne)
    # the probabilities are bf16 values stored as float32
    np.testing.assert_array_equal(rne(probabilities.data), probabilities.data)
    assert (np.abs(probabilities.data - ref_p) <= 2 * bf16_ulp(np.maximum(ref_p, 1e-3))).all()
    got = bf16_bits_to_f64_ref(out.data)
    scale = np.abs(ref_out).max(axis=-1, keepdims=True)
    assert (np.abs(got - ref_out) <= 2 * bf16_ulp(scale)).all()


def test_mixed_dtypes_are_an_error():
    q = Tensor.from_numpy(np.zeros((1, 2, 4), np.float32))
    k = Tensor.from_numpy(np.zeros((3, 2, 4), np.uint16), DT_BF16)
    with pytest.raises(DTypeError, match="Attention: dtypes F32"):
        ml.Attention(q, k, k, 2.0)


@pytest.mark.parametrize(
    "q_shape, kv_shape",
    [((1, 4, 8), (5, 3, 8)), ((1, 4, 8), (5, 2, 6)), ((6, 4, 8), (5, 2, 8)), ((4, 8), (5, 2, 8))],
)
def test_shapes_that_do_not_fit_are_an_error_naming_them(q_shape, kv_shape):
    q = Tensor.from_numpy(np.zeros(q_shape, np.float32))
    kv = Tensor.from_numpy(np.zeros(kv_shape, np.float32))
    with pytest.raises(ShapeError, match=r"Attention: xq shape \["):
        ml.Attention(q, kv, kv, 1.0)
