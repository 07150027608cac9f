"""Independent references for the ml tests: bfloat16 rounding written from the IEEE 754 definition.

Nothing here calls llamanuts: the expected values of the tests come from these functions and from
numpy in float64, never from our own kernels.

bfloat16 (IEEE 754 binary16 "brain float"): 1 sign bit, 8 exponent bits (bias 127), 7 fraction bits.
- normal numbers: (-1)^s * 2^(E-127) * (1 + f/128) for E in 1..254,
- subnormals: (-1)^s * 2^-126 * (f/128) = (-1)^s * f * 2^-133 for E = 0,
- E = 255: infinity (f = 0) or NaN.
The spacing of bf16 numbers in [2^e, 2^(e+1)) is 2^(e-7), and 2^-133 below 2^-126.
Round to nearest, ties to even: pick the nearest representable value; on an exact tie pick the one
whose last fraction bit is 0. A value at or above 2^128 - 2^119 (the midpoint between the largest
finite bf16, (2 - 2^-7) * 2^127, and 2^128) rounds to infinity.
"""

from __future__ import annotations

import math

import numpy as np

BF16_CANONICAL_NAN = 0x7FC0  # PyTorch's c10::BFloat16 turns every NaN into this quiet NaN


def rne_bf16_bits(x: float) -> int:
    """The bf16 bit pattern nearest to the real number `x` (a Python float, i.e. float64), ties to even.

    Works on the value, not on float32 bits: x = n * 2^q exactly after rounding n to an integer with
    Python's round(), which is round-half-to-even on floats, and q the exponent of the bf16 spacing.
    """
    if math.isnan(x):
        return BF16_CANONICAL_NAN
    sign = 0x8000 if math.copysign(1.0, x) < 0 else 0
    a = abs(x)
    if math.isinf(a):
        return sign | 0x7F80
    if a == 0.0:
        return sign
    _, e = math.frexp(a)  # a = m * 2^e with 0.5 <= m < 1, i.e. a in [2^(e-1), 2^e)
    q = max(e - 1 - 7, -133)  # spacing of bf16 numbers around a (subnormal spacing below 2^-126)
    n = round(math.ldexp(a, -q))  # exact scaling by a power of two, then round half to even
    value = math.ldexp(n, q)
    if value >= 2.0**128:
        return sign | 0x7F80  # overflow: infinity
    if value < 2.0**-126:
        return sign | n  # subnormal (or zero): fraction = n, exponent field 0
    m2, e2 = math.frexp(value)  # value = (2*m2) * 2^(e2-1), 1 <= 2*m2 < 2
    exponent_field = e2 - 1 + 127
    fraction = int((2.0 * m2 - 1.0) * 128.0)  # exact: 2*m2 has at most 8 significant bits
    return sign | (exponent_field << 7) | fraction


_rne_vec = np.frompyfunc(lambda v: rne_bf16_bits(float(v)), 1, 1)


def rne_bf16_array(values: np.ndarray) -> np.ndarray:
    """rne_bf16_bits element-wise (float32 or float64 input, rounded directly to bf16) -> uint16."""
    values = np.asarray(values)
    if values.size == 0:
        return np.zeros(values.shape, dtype=np.uint16)
    with np.errstate(invalid="ignore"):  # widening a signalling NaN raises the invalid flag
        wide = values.astype(np.float64)
    return np.asarray(_rne_vec(wide), dtype=np.uint16).reshape(values.shape)


def bf16_bits_to_f32_ref(bits: np.ndarray) -> np.ndarray:
    """bf16 -> float32 by definition: the 16 bits become the high half of a float32, the low half zero."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def bf16_bits_to_f64_ref(bits: np.ndarray) -> np.ndarray:
    return bf16_bits_to_f32_ref(bits).astype(np.float64)


def f32_from_bits(*patterns: int) -> np.ndarray:
    return np.array(patterns, dtype=np.uint32).view(np.float32)


def random_bf16_bits(rng: np.random.Generator, shape, low: float = -4.0, high: float = 4.0) -> np.ndarray:
    """Random bf16 values (as bits) drawn uniformly from [low, high) and rounded by the reference."""
    return rne_bf16_array(rng.uniform(low, high, size=shape))


def all_bf16_bits() -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def assert_bf16_correctly_rounded(got_bits: np.ndarray, ref64: np.ndarray, f32_ulps: float = 0.0) -> None:
    """`got_bits` must equal rne(ref64) element-wise (NaN compared as NaN, i.e. any NaN result ok only
    where the reference is NaN, and it must be the canonical 0x7FC0).

    With f32_ulps > 0 a result may instead be the other neighbour of a rounding boundary when ref64 is
    within f32_ulps float32 ulps of that boundary: a float32 computation of a transcendental function
    (exp, pow) carries about that much error before the final rounding to bf16, so near a bf16 tie
    either neighbour is a faithful result.
    """
    got_bits = np.asarray(got_bits, dtype=np.uint16).reshape(-1)
    ref64 = np.asarray(ref64, dtype=np.float64).reshape(-1)
    assert got_bits.shape == ref64.shape
    expected = rne_bf16_array(ref64)
    bad = np.flatnonzero(got_bits != expected)
    if f32_ulps and bad.size:
        r = ref64[bad]
        with np.errstate(all="ignore"):
            slack = f32_ulps * np.spacing(np.abs(r).astype(np.float32)).astype(np.float64)
            lo_bits = rne_bf16_array(r - slack)
            hi_bits = rne_bf16_array(r + slack)
        ambiguous = (lo_bits != hi_bits) & ((got_bits[bad] == lo_bits) | (got_bits[bad] == hi_bits))
        bad = bad[~ambiguous]
    if bad.size:
        rows = [
            f"ref={ref64[i]!r} expected=0x{int(expected[i]):04X} got=0x{int(got_bits[i]):04X}"
            for i in bad[:10]
        ]
        raise AssertionError(f"{bad.size} of {got_bits.size} bf16 results not correctly rounded:\n" + "\n".join(rows))


def assert_f32_within_ulps(got: np.ndarray, ref64: np.ndarray, ulps: float) -> None:
    """float32 results within `ulps` float32 ulps (of the reference value) of a float64 reference."""
    got = np.asarray(got)
    assert got.dtype == np.float32
    ref64 = np.asarray(ref64, dtype=np.float64)
    assert got.shape == ref64.shape, (got.shape, ref64.shape)
    same_nan = np.isnan(got) & np.isnan(ref64)
    same_inf = np.isinf(ref64) & (got.astype(np.float64) == ref64)
    ulp = np.spacing(np.abs(ref64).astype(np.float32)).astype(np.float64)
    with np.errstate(invalid="ignore"):
        close = np.abs(got.astype(np.float64) - ref64) <= ulps * ulp
    ok = same_nan | same_inf | close
    if not ok.all():
        idx = np.flatnonzero(~ok.reshape(-1))[:10]
        rows = [f"ref={ref64.reshape(-1)[i]!r} got={got.reshape(-1)[i]!r}" for i in idx]
        raise AssertionError(f"{(~ok).sum()} results off by more than {ulps} ulps:\n" + "\n".join(rows))


def bf16_ulp(values: np.ndarray) -> np.ndarray:
    """Spacing of bf16 numbers at |values| (float64): 2^(e-7) in [2^e, 2^(e+1)), 2^-133 below 2^-126."""
    a = np.abs(np.asarray(values, dtype=np.float64))
    _, e = np.frexp(a)  # a in [2^(e-1), 2^e)
    return np.maximum(np.ldexp(1.0, e - 1 - 7), 2.0**-133)


def assert_bf16_within_one_ulp(got_bits: np.ndarray, ref64: np.ndarray) -> None:
    """Finite bf16 results at most one bf16 ulp away from rne(ref64): a float32 accumulation in another
    order can move a value that lies near a rounding boundary to the neighbouring bf16."""
    got = bf16_bits_to_f64_ref(got_bits).reshape(-1)
    expected = bf16_bits_to_f64_ref(rne_bf16_array(ref64)).reshape(-1)
    assert got.shape == expected.shape
    assert np.isfinite(expected).all(), "reference must be finite"
    ulp = np.maximum(bf16_ulp(expected), bf16_ulp(got))
    bad = np.flatnonzero(~(np.abs(got - expected) <= ulp))
    if bad.size:
        rows = [f"ref={float(np.ravel(ref64)[i])!r} expected={expected[i]!r} got={got[i]!r}" for i in bad[:10]]
        raise AssertionError(f"{bad.size} of {got.size} bf16 results more than 1 ulp off:\n" + "\n".join(rows))
