"""Attention: softmax(q · kᵀ / scale) · v for every query head, reading the KV cache in place.

Written as ops (chapter 14), attention is transposes to put the heads first, RepeatInterleave for
grouped-query attention, two batched MatMuls, a DivToScalar and a Softmax: each a call, and the
transposes and repeats copy the whole cache at every step. For one new token that copying and
calling is most of the time, so decoding uses this op instead: one kernel that, for each query
head, dots the query with the keys of its key/value head where they lie in the cache, takes the
softmax, and sums the values weighted by it. The arithmetic and the roundings are those of the ops
it replaces: float32 products, and in bf16 the scores, the scaled scores, the probabilities and the
output each rounded to bf16 once, where MatMul, DivToScalar, Softmax and MatMul round them.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..common.errors import ShapeError
from .bfloat16 import as_f32, as_storage, round_like
from .checks import require_dtype, require_same_dtype, require_tensor
from .dtype import DT_BF16, DT_F32
from .tensor import Tensor, format_dims
from .threads import parallel_ok

# bytes of keys and values read, from which the heads are split over the threads
_PARALLEL_MIN_BYTES = 1 << 20
_FAST = {"reassoc", "contract"}  # dot products with several vector accumulators

# ---- kernels --------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_FAST, inline="always")
def _attend_head(xq, keys, values, scale, out, probabilities, i, h):  # type: ignore[no-untyped-def]
    n, n_heads, head_dim = xq.shape
    positions = keys.shape[0]
    kv = h // (n_heads // keys.shape[1])  # the key/value head this query head shares (GQA)
    visible = positions - n + i + 1  # query i sits at position positions-n+i: it sees up to there
    q = np.empty(head_dim, dtype=np.float32)
    for c in range(head_dim):
        q[c] = as_f32(xq[i, h, c])
    scores = probabilities[h, i]
    top = np.float32(-np.inf)
    for t in range(visible):
        dot = np.float32(0.0)
        for c in range(head_dim):
            dot += q[c] * as_f32(keys[t, kv, c])
        s = round_like(out, round_like(out, dot) / scale)  # MatMul, then DivToScalar
        scores[t] = s
        if s > top:
            top = s
    total = np.float32(0.0)
    for t in range(visible):
        e = np.exp(scores[t] - top)
        scores[t] = e
        total += e
    for t in range(visible):
        scores[t] = round_like(out, scores[t] / total)  # Softmax
    for t in range(visible, positions):
        scores[t] = 0.0  # the causal mask: later positions get probability 0
    acc = np.zeros(head_dim, dtype=np.float32)
    for t in range(visible):
        p = scores[t]
        for c in range(head_dim):
            acc[c] += p * as_f32(values[t, kv, c])
    for c in range(head_dim):
        out[i, h, c] = as_storage(out, acc[c])  # the second MatMul


@njit(cache=True, fastmath=_FAST)
def _attention(xq, keys, values, scale, out, probabilities):  # type: ignore[no-untyped-def]
    for h in range(xq.shape[1]):
        for i in range(xq.shape[0]):
            _attend_head(xq, keys, values, scale, out, probabilities, i, h)


@njit(cache=True, fastmath=_FAST, parallel=True)
def _attention_parallel(xq, keys, values, scale, out, probabilities):  # type: ignore[no-untyped-def]
    for h in prange(xq.shape[1]):
        for i in range(xq.shape[0]):
            _attend_head(xq, keys, values, scale, out, probabilities, i, h)


# ---- ops ------------------------------------------------------------------------------------------


def Attention(xq: Tensor, keys: Tensor, values: Tensor, scale: float) -> tuple[Tensor, Tensor]:
    """xq [n, heads, head_dim], keys and values [T, kv_heads, head_dim] (positions 0..T-1, the last n
    of them the queries' own) -> (output [n, heads, head_dim], probabilities [heads, n, T] F32).

    Query i sits at position T-n+i and attends to positions 0..T-n+i (causal). Query head h uses
    key/value head h // (heads / kv_heads). F32 or BF16 (all three alike); the output has that dtype,
    the probabilities are float32 (holding bf16 values in bf16)."""
    op = "Attention"
    require_tensor(op, "xq", xq)
    require_tensor(op, "keys", keys)
    require_tensor(op, "values", values)
    require_dtype(op, xq, (DT_F32, DT_BF16), "xq")
    require_same_dtype(op, xq, keys)
    require_same_dtype(op, xq, values)
    if xq.ndim != 3 or keys.ndim != 3 or keys.shape != values.shape:
        raise ShapeError(
            f"{op}: xq shape {format_dims(xq.shape)} must be [n heads head_dim] and keys, values shapes "
            f"{format_dims(keys.shape)}, {format_dims(values.shape)} the same [T kv_heads head_dim]"
        )
    n, n_heads, head_dim = xq.shape
    positions, kv_heads, kv_dim = keys.shape
    if kv_dim != head_dim or kv_heads == 0 or n_heads % kv_heads or not 0 < n <= positions:
        raise ShapeError(
            f"{op}: xq shape {format_dims(xq.shape)} does not fit keys shape {format_dims(keys.shape)} "
            f"(same head_dim, heads a multiple of kv_heads, 1 <= n <= T)"
        )
    out = np.empty(xq.shape, dtype=xq.data.dtype)
    probabilities = np.empty((n_heads, n, positions), dtype=np.float32)
    kernel = _attention_parallel if 2 * keys.data.nbytes >= _PARALLEL_MIN_BYTES and parallel_ok() else _attention
    kernel(xq.data, keys.data, values.data, np.float32(scale), out, probabilities)
    return Tensor.wrap(out, xq.dtype), Tensor.wrap(probabilities, DT_F32)
