"""merge_adjacent_pairs: the shared heap merge loop gives run.c's result with O(n) heap work.

The reference for the merge order is the quadratic rescanning loop, written out here as run.c
does it (best priority, leftmost on ties, rescan after every merge).
"""

from __future__ import annotations

import random

import pytest

from llamanuts.tokenizer import Llama2cTokenizer
from llamanuts.tokenizer.pair_merge import MergeCounters, PairMerge, merge_adjacent_pairs, score_priorities
from tokenizer_testdata import LLAMA2C_BIN, ref_path


def rescanning_merge(ids: list[int], lookup) -> list[int]:
    """run.c's loop: scan all pairs, merge the best (leftmost on ties), repeat."""
    ids = list(ids)
    while True:
        best: tuple[int, int, int] | None = None  # (priority, position, merged)
        for position in range(len(ids) - 1):
            found = lookup(ids[position], ids[position + 1])
            if found is not None and (best is None or found[0] < best[0]):
                best = (found[0], position, found[1])
        if best is None:
            return ids
        _, position, merged = best
        ids[position : position + 2] = [merged]


def toy_lookup(table: dict[tuple[int, int], PairMerge]):
    return lambda left, right: table.get((left, right))


def random_table(rng: random.Random, alphabet: int, merges: int) -> dict[tuple[int, int], PairMerge]:
    """Random merges over a small alphabet; merged ids are new, priorities often tie."""
    table: dict[tuple[int, int], PairMerge] = {}
    next_id = alphabet
    for _ in range(merges):
        left, right = rng.randrange(next_id), rng.randrange(next_id)
        if (left, right) not in table:
            table[(left, right)] = (rng.randrange(8), next_id)
            next_id += 1
    return table


@pytest.mark.parametrize("seed", range(20))
def test_heap_merge_equals_the_rescanning_loop(seed: int) -> None:
    rng = random.Random(seed)
    lookup = toy_lookup(random_table(rng, alphabet=4, merges=40))
    for _ in range(50):
        ids = [rng.randrange(4) for _ in range(rng.randrange(0, 30))]
        assert merge_adjacent_pairs(ids, lookup) == rescanning_merge(ids, lookup)


def test_equal_priorities_merge_the_leftmost_pair_first() -> None:
    # (a a) -> X at priority 0: "a a a" gives X a, not a X.
    lookup = toy_lookup({(0, 0): (0, 9)})
    assert merge_adjacent_pairs([0, 0, 0], lookup) == [9, 0]


def test_a_long_run_of_one_symbol_costs_linear_heap_work() -> None:
    # The worst case for run.c: every merge rescans everything. Here the pushes are bounded by
    # (n - 1) initial pairs + 2 per merge, and merges by n - 1, so by 3n in all.
    lookup = toy_lookup({(0, 0): (0, 1), (1, 1): (1, 2), (2, 2): (2, 3), (3, 3): (3, 4)})
    n = 100_000
    counters = MergeCounters()
    out = merge_adjacent_pairs([0] * n, lookup, counters)
    assert out == [4] * (n // 16)
    assert counters.merges == n - n // 16
    assert counters.pushes <= 3 * n
    assert counters.pops == counters.pushes


def test_score_priorities_rank_higher_scores_first_and_keep_ties() -> None:
    assert score_priorities([-1.0, 0.5, -1.0, 3.0]) == [2, 1, 2, 0]


def test_llama2c_long_prompt_merges_with_linear_heap_work(monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = Llama2cTokenizer(ref_path(LLAMA2C_BIN))
    counters = MergeCounters()
    import llamanuts.tokenizer.llama2c_tokenizer as module

    monkeypatch.setattr(module, "merge_adjacent_pairs", lambda ids, lookup: merge_adjacent_pairs(ids, lookup, counters))
    text = "a" * 20_000 + " the quick brown fox" * 500
    ids = tokenizer.encode(text)
    symbols = len(text) + 1  # the dummy-prefix space, then one symbol per (ASCII) character
    assert counters.pushes <= 3 * symbols
    assert len(ids) < symbols
    assert tokenizer.decode([1] + ids) == text
