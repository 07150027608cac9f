"""Conversation: a multi-turn chat that keeps its KV cache from one turn to the next.

A chat model sees the whole dialog every turn, in its template's layout (prompt.py). Rendering it
again and prefilling all of it would make each turn slower than the last, so the conversation keeps
the InferenceContext (the KV cache) and the ids whose keys and values it holds. For a new turn:

    1. render the WHOLE dialog (system, every earlier user/assistant pair, the new user message)
       with the template, to ids;
    2. find the longest common prefix of those ids and the ids in the cache;
    3. prefill only the ids after that prefix, starting at its position (the cache beyond it is
       simply overwritten: Forward writes each position it is given, and attention reads only
       positions 0..startPos+n-1);
    4. as the answer is generated its ids join the cached ids, so the next turn's rendering
       usually shares everything up to the end of this answer.

Nothing here knows the template: Llama 2's [INST] pairs, Llama 3's headers and a model's own Jinja
template all work the same way, because only the rendered ids are compared. When the answer
re-encodes to other ids than were sampled (a tokenizer may split a text differently than the model
wrote it), the common prefix is just shorter and a few more ids are prefilled.

The dialog never silently loses a turn: when the rendered dialog plus room for an answer does not
fit in the sequence length, `plan` raises ContextFullError, and the caller decides (reset, or
`drop_oldest` turns).

An interrupted answer (Ctrl-C, or the consumer stopping early) stays in the history as far as it
was generated, so the history holds exactly what the user saw; if not one token came, the user's
message is dropped as well (there is nothing to answer to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

from ..common.errors import SequenceLengthError
from .prompt import ChatMessage, build_dialog

if TYPE_CHECKING:
    from ..model.inferencecontext import InferenceContext
    from .engine import GeneratedPart, GenerationStats, InferenceEngine

# Room kept for an answer when no --max-tokens bounds it: an eighth of the context, 16..512 tokens.
MIN_DEFAULT_ANSWER_ROOM = 16
MAX_DEFAULT_ANSWER_ROOM = 512


class ContextFullError(SequenceLengthError):
    """The rendered dialog plus room for an answer does not fit in the sequence length."""

    def __init__(self, dialog_tokens: int, answer_room: int, sequence_length: int, turns: int) -> None:
        self.dialog_tokens = dialog_tokens
        self.answer_room = answer_room
        self.sequence_length = sequence_length
        self.turns = turns
        what = f"the conversation ({turns} earlier turn{'s' if turns != 1 else ''} and the new message)" if turns else "the message"
        super().__init__(
            f"context full: {what} takes {dialog_tokens} tokens, plus {answer_room} kept for the answer, "
            f"more than the context size of {sequence_length} tokens"
        )


@dataclass
class Turn:
    user: str
    answer: str
    interrupted: bool = False


@dataclass(frozen=True)
class TurnPlan:
    """What the next turn will run: the whole dialog's ids, and how many of them the cache holds."""

    tokens: list[int]
    cached: int

    @property
    def new_tokens(self) -> int:
        return len(self.tokens) - self.cached


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def default_answer_room(sequence_length: int, max_new_tokens: int | None) -> int:
    """Tokens a turn keeps free for its answer: --max-tokens when given, else an eighth of the
    context (16..512); never more than half the context, so a large --max-tokens still allows a chat."""
    room = max_new_tokens if max_new_tokens is not None else min(MAX_DEFAULT_ANSWER_ROOM, max(MIN_DEFAULT_ANSWER_ROOM, sequence_length // 8))
    return max(1, min(room, sequence_length // 2))


class Conversation:
    def __init__(self, engine: InferenceEngine, system: str | None = None, answer_room: int | None = None) -> None:
        self.engine = engine
        self.system = system or None
        self.turns: list[Turn] = []
        self.context: InferenceContext | None = None  # made on the first turn, kept until the end
        self.cached_ids: list[int] = []  # the ids positions 0.. of `context` hold
        self.answer_room = answer_room if answer_room is not None else default_answer_room(engine.sequence_length, engine.args.max_new_tokens)

    # ---- the dialog --------------------------------------------------------------------------
    def dialog(self, user: str) -> list[ChatMessage]:
        return build_dialog(user, system=self.system, history=[(t.user, t.answer) for t in self.turns])

    def set_system(self, text: str | None) -> None:
        """A new system prompt for the whole conversation (None or "" removes it); history stays."""
        self.system = text or None

    def reset(self) -> None:
        """Forget every turn (the system prompt stays); the cache is reused from position 0."""
        self.turns.clear()
        self.cached_ids = []

    def drop_oldest(self, count: int = 1) -> int:
        """Forget the `count` oldest turns; returns how many were dropped."""
        count = max(0, min(count, len(self.turns)))
        del self.turns[:count]
        return count

    def fit(self, user: str) -> int:
        """Drop the oldest turns until `user` fits with room for its answer; returns how many were
        dropped. Raises ContextFullError when the message does not fit even alone."""
        dropped = 0
        while True:
            try:
                self.plan(user)
                return dropped
            except ContextFullError:
                if not self.turns:
                    raise
                dropped += self.drop_oldest(1)

    # ---- a turn ------------------------------------------------------------------------------
    def plan(self, user: str) -> TurnPlan:
        """The next turn's ids and how many the cache already holds; ContextFullError if it cannot fit."""
        tokens = self.engine.TokenizeChat(self.dialog(user))
        limit = self.engine.sequence_length
        if len(tokens) + self.answer_room > limit:
            raise ContextFullError(len(tokens), self.answer_room, limit, len(self.turns))
        cached = common_prefix_length(tokens, self.cached_ids)
        # At least one id must go through Forward: its logits predict the answer's first token.
        return TurnPlan(tokens, min(cached, len(tokens) - 1))

    def Ask(self, user: str) -> Iterator[GeneratedPart]:
        """Generate the answer to `user`, streaming parts; the turn joins the history when the
        generator ends, however it ends (see the module docstring for an interrupted answer).
        The plan is made, and ContextFullError raised, at the call."""
        plan = self.plan(user)
        if self.context is None:
            self.context = self.engine.NewContext()
        parts = self.engine.Generate(plan.tokens, context=self.context, start_pos=plan.cached)
        self.cached_ids = plan.tokens[: plan.cached]  # all that is certain until Forward has run
        return self._answer(user, parts)

    def _answer(self, user: str, parts: Iterator[GeneratedPart]) -> Iterator[GeneratedPart]:
        texts: list[str] = []
        finished = False
        try:
            for part in parts:
                texts.append(part.text)
                yield part
            finished = True
        finally:
            parts.close()  # (an early exit) ends the engine's generator now, so its stats are final
            self.cached_ids = self.engine.context_tokens
            answer = "".join(texts).strip()
            if finished or texts:
                self.turns.append(Turn(user, answer, interrupted=not finished))

    @property
    def stats(self) -> GenerationStats:
        """The last turn's statistics (the engine's)."""
        return self.engine.stats


__all__ = ["ContextFullError", "Conversation", "Turn", "TurnPlan", "common_prefix_length", "default_answer_room"]
