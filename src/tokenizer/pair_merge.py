"""The merge loop every pair-merging tokenizer here shares, in O(n log n).

Both families of vocabularies this project reads encode the same way once the text is cut into
starting symbols: repeatedly join the best adjacent pair, until no adjacent pair can be joined.

- SentencePiece-style vocabularies (llama2.c's tokenizer.bin, the GGUF `llama` vocab) rank a pair
  by the score of the joined piece: the highest score merges first.
- Byte-level BPE vocabularies (the GGUF `gpt2` vocab) rank a pair by its line in the merges list:
  the lowest rank merges first.

In both, equal priorities go to the leftmost pair. `merge_adjacent_pairs` takes the ranking as a
function, so each tokenizer says only how it ranks a pair.

run.c's loop rescans every pair on every merge, which is quadratic: a long prompt of one repeated
character would take hours. Here the symbols are a doubly linked list over their starting
positions and the candidate pairs sit in a heap keyed by (priority, left position). A merge
changes only the two pairs touching the new symbol, so it pushes at most two new candidates;
candidates made stale by an earlier merge are recognised when popped and skipped ("lazy
invalidation"). The first pairs are n - 1 pushes and each merge (at most n - 1) adds two, so the
heap sees O(n) pushes and pops of O(log n) each.

Why the left position works as the tie-break: a merged symbol keeps the position of its left
part, and merging never reorders symbols, so comparing positions compares places in the current
sequence, exactly as run.c's left-to-right scan does.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# (priority, merged id) for a pair that can merge, None for one that cannot. Lower priority
# merges first: a BPE rank as is; for scores, the position of the score in descending order.
# Priorities are whole numbers so that one heap entry is one int (see below).
PairMerge = tuple[int, int]
PairLookup = Callable[[int, int], "PairMerge | None"]

_GONE = -1  # the token of a symbol that was merged into its left neighbour


@dataclass
class MergeCounters:
    """Work done by `merge_adjacent_pairs`, for tests that bound it (no timing needed)."""

    pushes: int = 0
    pops: int = 0
    merges: int = 0


def merge_adjacent_pairs(ids: list[int], lookup: PairLookup, counters: MergeCounters | None = None) -> list[int]:
    """Merge the best adjacent pair of `ids` until `lookup` finds no pair that can merge.

    `lookup(left, right)` gives (priority, merged id) or None. Returns the final ids, in order.

    A heap entry is the single int `priority * count + position` (count = number of symbols), so
    the heap orders by priority, then by position, with plain int comparisons. A popped entry is
    current if the pair now starting at that position still has that priority: then it is a
    best pair (every pair ever formed was pushed) and merging it is the right next step, even if
    it is not the very pair that was pushed. Otherwise it is stale and skipped.
    """
    count = len(ids)
    if count < 2:
        return list(ids)
    tokens = list(ids)
    next_of = list(range(1, count + 1))
    next_of[-1] = -1
    prev_of = list(range(-1, count - 1))
    heap: list[int] = []
    for position in range(count - 1):
        found = lookup(tokens[position], tokens[position + 1])
        if found is not None:
            heap.append(found[0] * count + position)
    heapq.heapify(heap)
    pushes, pops, merges = len(heap), 0, 0

    while heap:
        key = heapq.heappop(heap)
        pops += 1
        priority, left = divmod(key, count)
        right = next_of[left]
        if right < 0 or tokens[left] == _GONE:
            continue  # stale: the symbol was merged away, or lost its right neighbour
        found = lookup(tokens[left], tokens[right])
        if found is None or found[0] != priority:
            continue  # stale: one side was merged with something else since this was queued
        tokens[left] = found[1]
        tokens[right] = _GONE
        after = next_of[right]
        next_of[left] = after
        if after >= 0:
            prev_of[after] = left
        merges += 1
        # Only the pairs (left neighbour, new symbol) and (new symbol, right neighbour) are new.
        before = prev_of[left]
        if before >= 0:
            found = lookup(tokens[before], tokens[left])
            if found is not None:
                heapq.heappush(heap, found[0] * count + before)
                pushes += 1
        if after >= 0:
            found = lookup(tokens[left], tokens[after])
            if found is not None:
                heapq.heappush(heap, found[0] * count + left)
                pushes += 1

    if counters is not None:
        counters.pushes += pushes
        counters.pops += pops
        counters.merges += merges
    out: list[int] = []
    position = 0  # the first symbol is never merged away: merges keep the left part
    while position >= 0:
        out.append(tokens[position])
        position = next_of[position]
    return out


def score_priorities(scores: Sequence[float]) -> list[int]:
    """For each id, the place of its score among the distinct scores, highest first (0 = best).

    Turns "highest score merges first" into "lowest priority merges first" with equal scores
    keeping equal priorities, so ties still go to the leftmost pair.
    """
    places = {score: place for place, score in enumerate(sorted(set(scores), reverse=True))}
    return [places[score] for score in scores]


__all__ = ["MergeCounters", "PairLookup", "PairMerge", "merge_adjacent_pairs", "score_priorities"]
