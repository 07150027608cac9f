"""Rows of several matrices stacked one above the other, for kernels that stream them in one launch.

LinearTransformations computes the products of one x with several matrices (wq, wk, wv; w1, w3) in
one parallel kernel call: its loop runs over the rows of all the matrices, stacked, so the threads
are woken once and each streams one contiguous part of the stack. `locate_row` turns a row of the
stack back into (which matrix, which of its rows).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def stacked_rows(ws):  # type: ignore[no-untyped-def]
    """The number of rows of the matrices in the tuple ws, together."""
    total = 0
    for k in range(len(ws)):
        total += ws[k].shape[0]
    return total


@njit(cache=True, inline="always")
def locate_row(ws, r):  # type: ignore[no-untyped-def]
    """Row r of the matrices of ws stacked one above the other -> (which matrix, which of its rows)."""
    k, j = 0, r + 0  # a copy: r is the caller's loop index
    while j >= ws[k].shape[0]:
        j -= ws[k].shape[0]
        k += 1
    return k, j
