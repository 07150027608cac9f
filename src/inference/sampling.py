"""Choosing the next token from the last row of logits.

Temperature 0 (the default) is greedy: the argmax, so a run is deterministic and comparable with
the reference fixtures. Otherwise, as llama2.c's `run.c` and Meta's `generate` do:

    probs = softmax(logits / temperature)
    keep the top_k most probable tokens               (top_k = 0: keep all)
    keep the smallest prefix whose cumulative probability >= top_p   (top_p = 1: keep all)
    keep the tokens whose probability >= min_p * the top probability  (min_p = 0: keep all)
    renormalise and draw one token with a seeded numpy Generator

Before all of that (and before greedy's argmax too), a repeat penalty can push down the tokens
seen in the last `repeat_last_n` positions of the context, as llama.cpp's `--repeat-penalty` does:
a positive logit is divided by the penalty, a negative one multiplied by it, so the token always
becomes less likely whatever its sign (penalty 1: off).

Same seed, same logits -> same token, so a seeded run is reproducible.

Any temperature > 0 works, however small: the logits are shifted by their maximum *before* the
division, in float64, so the largest becomes exactly 0 and every other one at most 0. A quotient
too large for float64 is -inf and its probability exactly 0, which is the limit of softmax as the
temperature goes to 0 (all mass on the argmax, split evenly between exact ties). No threshold
turns small temperatures into greedy, so 1e-3 and 1e-40 are both what they say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..common.errors import LlamaError


@dataclass
class SamplingArgs:
    temperature: float = 0.0
    top_k: int = 0  # 0 = no top-k cut
    top_p: float = 1.0  # 1.0 = no nucleus cut
    seed: int | None = None  # None = a fresh seed, reported in `Sampler.seed` so a run can be repeated
    min_p: float = 0.0  # 0.0 = no min-p cut
    repeat_penalty: float = 1.0  # 1.0 = no penalty
    repeat_last_n: int = 64  # how many recent context tokens the penalty looks at; 0 = none, -1 = all

    def validate(self) -> None:
        if not self.temperature >= 0.0:  # also rejects NaN
            raise LlamaError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise LlamaError(f"top_k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise LlamaError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.seed is not None and self.seed < 0:
            raise LlamaError(f"seed must be >= 0, got {self.seed}")
        if not 0.0 <= self.min_p <= 1.0:
            raise LlamaError(f"min_p must be in [0, 1] (0 disables it), got {self.min_p}")
        if not self.repeat_penalty > 0.0:
            raise LlamaError(f"repeat_penalty must be > 0 (1 disables it), got {self.repeat_penalty}")
        if self.repeat_last_n < -1:
            raise LlamaError(f"repeat_last_n must be >= -1 (0 disables the penalty, -1 looks at the whole context), got {self.repeat_last_n}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(x / temperature) of a 1-D float array, in float64, safe for any temperature > 0.

    The max is subtracted first (see the module docstring), so no exp overflows and the sum is
    at least 1; -inf from an overflowing division and exp's underflow to 0 are both exact limits.
    """
    x64 = x.astype(np.float64)
    shifted = x64 - np.max(x64)
    with np.errstate(over="ignore", under="ignore"):
        e = np.exp(shifted / temperature)
    return e / e.sum()


def descending_order(logits: np.ndarray) -> np.ndarray:
    """Token ids from the most to the least likely; ties keep the lower id first, like argmax."""
    return np.argsort(-logits, kind="stable")


def nucleus_size(sorted_probs: np.ndarray, top_p: float) -> int:
    """The size of the smallest prefix of `sorted_probs` whose sum reaches `top_p` (at least 1)."""
    if top_p >= 1.0:
        return len(sorted_probs)
    cumulative = np.cumsum(sorted_probs)
    # Meta keeps token i while the mass *before* it is <= top_p: this prefix, but for an exact tie.
    return max(1, int(np.searchsorted(cumulative, top_p, side="left")) + 1)


def min_p_size(sorted_probs: np.ndarray, min_p: float) -> int:
    """How many of `sorted_probs` (descending) are >= min_p times the largest (at least 1)."""
    if min_p <= 0.0:
        return len(sorted_probs)
    return max(1, int(np.count_nonzero(sorted_probs >= min_p * sorted_probs[0])))


def apply_repeat_penalty(logits: np.ndarray, recent: Sequence[int], penalty: float) -> np.ndarray:
    """A copy of `logits` with each distinct id of `recent` made less likely (llama.cpp's rule)."""
    out = np.array(logits, dtype=np.float32, copy=True)
    ids = np.unique(np.asarray(recent, dtype=np.int64))
    ids = ids[(ids >= 0) & (ids < len(out))]
    seen = out[ids]
    out[ids] = np.where(seen > 0, seen / np.float32(penalty), seen * np.float32(penalty))
    return out


class Sampler:
    def __init__(self, args: SamplingArgs) -> None:
        args.validate()
        self.args = args
        self.seed: int = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % (2**63))
        self.rng = np.random.Generator(np.random.PCG64(self.seed))

    def Sample(self, logits: np.ndarray, recent: Sequence[int] = ()) -> int:
        """The next token id for one row of logits [vocab] (float32).

        `recent` is the context so far (prompt and generated ids, oldest first); only the repeat
        penalty reads it, and only its last `repeat_last_n` ids."""
        peak = float(np.max(logits))
        if not np.isfinite(peak):  # NaN anywhere, or +inf: no distribution to choose from
            raise LlamaError(
                f"the model's logits are not finite (maximum {peak}): the weights or the hyperparameters "
                f"produce NaN or infinity, so no token can be chosen"
            )
        if self.args.repeat_penalty != 1.0 and self.args.repeat_last_n != 0 and len(recent):
            window = recent if self.args.repeat_last_n < 0 else recent[-self.args.repeat_last_n :]
            logits = apply_repeat_penalty(logits, window, self.args.repeat_penalty)
        if self.args.greedy:
            return int(np.argmax(logits))
        return self.sample_distribution(logits)

    def candidates(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, renormalised probabilities) left after temperature, top-k and top-p."""
        order = descending_order(logits)
        probs = softmax(logits, self.args.temperature)[order]
        if self.args.top_k > 0:
            order, probs = order[: self.args.top_k], probs[: self.args.top_k]
            probs = probs / probs.sum()  # top-p measures mass within what top-k kept
        keep = nucleus_size(probs, self.args.top_p)
        order, probs = order[:keep], probs[:keep]
        keep = min_p_size(probs, self.args.min_p)  # relative to the top probability: renormalising cannot change it
        order, probs = order[:keep], probs[:keep]
        return order, probs / probs.sum()

    def sample_distribution(self, logits: np.ndarray) -> int:
        ids, probs = self.candidates(logits)
        # One uniform coin against the cumulative distribution, as run.c's sample_mult does.
        coin = self.rng.random()
        index = int(np.searchsorted(np.cumsum(probs), coin, side="right"))
        return int(ids[min(index, len(ids) - 1)])  # min: guards a coin beyond a sum of 0.9999999


__all__ = ["Sampler", "SamplingArgs", "apply_repeat_penalty", "descending_order", "min_p_size", "nucleus_size", "softmax"]
