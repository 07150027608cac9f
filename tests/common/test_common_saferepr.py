"""short_repr: Python's repr for small plain values, bounded work and length for anything else."""

from __future__ import annotations

import pytest

from llamanuts.common.saferepr import short_repr


@pytest.mark.parametrize(
    "value",
    ["storage", b"x\xff", 7, -3, 1.5, None, True, (), (1,), (1, "a"), [1, [2, [3]]], {"a": 1, "b": (2,)}, {}, []],
)
def test_small_values_read_as_python_repr(value) -> None:
    assert short_repr(value, limit=200) == repr(value)


def test_a_doubling_list_is_cut_without_building_its_repr() -> None:
    value: list = []
    for _ in range(60):  # repr(value) would be 2^60 characters
        value = [value, value]
    assert short_repr(value) == "[[[[...], [...]], [[...], [...]]], [[[...], [...]], [[...], [...]]]]"
    assert short_repr(value, limit=30, max_depth=60) == "[" * 27 + "..."


def test_deep_nesting_stops_at_the_depth() -> None:
    value: list = []
    for _ in range(100_000):  # repr(value) raises RecursionError
        value = [value]
    assert short_repr(value, max_depth=3) == "[[[[...]]]]"


def test_huge_ints_and_strings_are_named_by_size_or_cut() -> None:
    assert short_repr(1 << 5000) == "<int of 5001 bits>"
    text = short_repr("x" * 10_000_000, limit=20)
    assert text == "'xxxxxxxxxxxxxxxx..." and len(text) == 20
    data = short_repr(b"\x00" * 10_000_000, limit=20)  # a llama2.c piece or a tiktoken token
    assert data == repr(b"\x00" * 10)[:17] + "..." and len(data) == 20


def test_other_objects_show_their_type_unless_their_repr_is_declared_bounded() -> None:
    class Opaque:
        def __repr__(self) -> str:
            raise AssertionError("must not be called")

    class Named:
        bounded_repr = True

        def __repr__(self) -> str:
            return "torch.FloatStorage"

    assert short_repr([Opaque(), Named()]) == "[<Opaque>, torch.FloatStorage]"
