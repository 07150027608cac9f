"""InferenceEngine: prompt tokens in, a stream of `GeneratedPart`s out.

    engine = InferenceEngine(model, tokenizer, InferenceArgs(max_new_tokens=64))
    for part in engine.Generate(engine.TokenizeText("Once upon a time")):
        print(part.text, end="")

STAGE 01  tokenization (TokenizeText / TokenizeChat)
STAGE 02  the tokens tensor of the prompt
STAGE 03  the loop: the whole prompt goes through Forward in ONE call (prefill, which fills the KV
          cache for every prompt position), then each new token goes through Forward alone at the
          next position, reusing the cache. Each step samples the next token from the last row of
          logits and yields it as a GeneratedPart, decoded to text that is safe to print.

A conversation (src/inference/conversation.py) keeps one InferenceContext across turns and passes
it in with `start_pos`, the number of prompt tokens whose keys and values the cache already holds:
the prefill then runs only the rest, from that position on.

Generation ends when the model emits a stop token (EOS, the chat template's end of turn such as
Llama 3's <|eot_id|> or ChatML's <|im_end|>, or BOS for llama2.c models as run.c does), after
`max_new_tokens`, or when the next token would not fit in the KV cache.
The CLI only consumes parts; it never sees logits or the cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator, Protocol, Sequence

import numpy as np

from ..common.errors import LlamaError, SequenceLengthError
from ..common.logger import GLogger
from ..model.inferencecontext import InferenceContext
from ..model.llamatransformer import LlamaTransformer, tokens_tensor
from .prompt import ChatMessage, ChatTemplate, default_chat_template, encode_parts, encode_text_prompt, render_parts
from .sampling import Sampler, SamplingArgs
from .utf8 import StreamingUTF8Decoder


class EngineTokenizer(Protocol):
    """The part of src/tokenizer's `Tokenizer` the engine uses."""

    kind: str
    bos_id: int | None
    eos_id: int | None
    stop_ids: frozenset[int]
    special_tokens: dict[str, int]
    strip_leading_space_after_bos: bool

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]: ...

    def id_to_piece(self, id: int) -> str: ...

    def piece_bytes(self, id: int) -> bytes: ...


TOP_TOKENS = 5  # next-token candidates logged with --trace-values (STAGE 19)


class GenerationState(Enum):
    RUNNING = "running"
    FINISHED_EOS = "end of sequence"  # a stop token: EOS, <|eot_id|>, or BOS for llama2.c models
    FINISHED_MAX_TOKENS = "max tokens reached"
    FINISHED_SEQUENCE_LENGTH = "sequence length reached"

    @property
    def finished(self) -> bool:
        return self is not GenerationState.RUNNING


@dataclass
class GeneratedPart:
    token_id: int
    piece: str  # the vocab entry, e.g. "▁time" or "<0xF0>"
    text: str  # the text now safe to print (may be "" while a character is incomplete)
    waiting_bytes: bytes  # bytes of an incomplete character, held back until it completes
    state: GenerationState


@dataclass
class InferenceArgs:
    max_new_tokens: int | None = None  # None: until a stop token or the sequence length
    sequence_length: int | None = None  # the KV cache size; None: the model's max_seq_len
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop_on_bos: bool = False  # llama2.c's run.c stops when the model emits BOS; set for .bin models
    min_p: float = 0.0
    repeat_penalty: float = 1.0  # 1: off
    repeat_last_n: int = 64

    def sampling(self) -> SamplingArgs:
        return SamplingArgs(
            temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, seed=self.seed,
            min_p=self.min_p, repeat_penalty=self.repeat_penalty, repeat_last_n=self.repeat_last_n,
        )


@dataclass
class GenerationStats:
    """Timing and counts of the last `Generate`; filled in as it runs, final when it ends."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    finish_reason: str = ""  # a GenerationState value, or "interrupted"
    started: float = 0.0  # perf_counter at the start of Generate
    first_token_at: float | None = None
    finished_at: float | None = None
    seed: int | None = None
    cached_tokens: int | None = None  # prompt tokens taken from a reused KV cache (None: a fresh context)

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from the start to the first sampled token: the prefill, plus kernel warm-up on a first run."""
        return None if self.first_token_at is None else self.first_token_at - self.started

    @property
    def tokens_per_second(self) -> float | None:
        """Decode speed: the tokens after the first over the time after the first.

        The first token is left out because its time is the prefill's, which is a different kind
        of work (matrix-matrix over the whole prompt) and is reported as time to first token.
        """
        if self.first_token_at is None or self.finished_at is None:
            return None
        seconds = self.finished_at - self.first_token_at
        if self.generated_tokens < 2 or seconds <= 0:
            return None
        return (self.generated_tokens - 1) / seconds

    def summary(self) -> str:
        ttft = self.time_to_first_token
        tps = self.tokens_per_second
        cached = "" if self.cached_tokens is None else f" ({self.cached_tokens} from the cache)"
        return (
            f"finish reason: {self.finish_reason or 'unknown'}, prompt tokens: {self.prompt_tokens}{cached}, "
            f"generated tokens: {self.generated_tokens}, "
            f"time to first token: {'-' if ttft is None else f'{ttft:.3f} s'}, "
            f"tokens/s: {'-' if tps is None else f'{tps:.1f}'}"
        )


@dataclass
class _Step:
    """What the loop knows after sampling one token."""

    token_id: int
    state: GenerationState
    data: bytes = field(default=b"")


class InferenceEngine:
    def __init__(
        self,
        model: LlamaTransformer,
        tokenizer: EngineTokenizer,
        args: InferenceArgs,
        chat_template: ChatTemplate | None = None,
    ) -> None:
        """`chat_template`: the dialog layout for TokenizeChat; by default the model's own
        (from its files, via the tokenizer), else Llama 3's or Llama 2's (prompt.py)."""
        self.model = model
        self.tokenizer = tokenizer
        self.args = args
        args.sampling().validate()
        if args.max_new_tokens is not None and args.max_new_tokens < 0:
            raise LlamaError(f"max_new_tokens must be >= 0, got {args.max_new_tokens}")
        self.sequence_length = args.sequence_length or model.args.max_seq_len
        if not 1 <= self.sequence_length <= model.args.max_seq_len:
            raise SequenceLengthError(
                f"sequence length {self.sequence_length} must be between 1 and the model's max_seq_len {model.args.max_seq_len}"
            )
        self.chat_template: ChatTemplate = chat_template if chat_template is not None else default_chat_template(tokenizer)
        self.stop_ids = self._stop_ids()
        self.stats = GenerationStats()
        self.decoder = StreamingUTF8Decoder()
        # The ids whose keys and values the last Generate's context holds, position by position
        # (see `context_tokens`): the prompt and generated ids, and how many of them went through Forward.
        self._context_ids: list[int] = []
        self._context_filled = 0

    def _stop_ids(self) -> frozenset[int]:
        ids = set(self.tokenizer.stop_ids)
        ids |= self.chat_template.StopIds(self.tokenizer)  # the end of a turn, e.g. <|im_end|>
        if self.tokenizer.eos_id is not None:
            ids.add(self.tokenizer.eos_id)
        if self.args.stop_on_bos and self.tokenizer.bos_id is not None:
            ids.add(self.tokenizer.bos_id)
        return frozenset(ids)

    # ---- STAGE 01: tokenization ------------------------------------------------------------------
    def TokenizeText(self, prompt: str) -> list[int]:
        """Text completion: BOS + the prompt's tokens ("" gives BOS alone)."""
        GLogger.DebugStage(1, "Tokenization")
        GLogger.DebugPrintf("Tokenizing text prompt %r", prompt)
        tokens = encode_text_prompt(self.tokenizer, prompt)
        self._log_tokens(tokens)
        return tokens

    def TokenizeChat(self, dialog: Sequence[ChatMessage]) -> list[int]:
        """A chat dialog through the chat template (the model's own, or Llama 2's or Llama 3's)."""
        GLogger.DebugStage(1, "Tokenization")
        parts = self.chat_template.Render(dialog)
        GLogger.DebugPrintf("Rendered the %s chat template: %r", self.chat_template.name, render_parts(parts))
        tokens = encode_parts(self.tokenizer, parts)
        self._log_tokens(tokens)
        return tokens

    def _log_tokens(self, tokens: list[int]) -> None:
        if GLogger.debug_enabled:
            pieces = [self.tokenizer.id_to_piece(t) for t in tokens]
            GLogger.DebugPrintf("Prompt tokens (%d): %s", len(tokens), tokens)
            GLogger.DebugPrintf("Prompt pieces: %r", pieces)

    # ---- STAGES 02-03: generation ----------------------------------------------------------------
    def NewContext(self) -> InferenceContext:
        """An empty KV cache of this engine's sequence length, to keep across several `Generate`s."""
        return self.model.NewInferenceContext(self.sequence_length)

    @property
    def context_tokens(self) -> list[int]:
        """The ids whose keys and values positions 0, 1, ... of the last Generate's context hold.

        Only positions a finished Forward wrote count, so after an interruption this is still
        exact; the last sampled token is not in it (it was never fed back)."""
        return self._context_ids[: self._context_filled]

    def Generate(
        self, promptTokens: Sequence[int], context: InferenceContext | None = None, start_pos: int = 0
    ) -> Iterator[GeneratedPart]:
        """Yield one GeneratedPart per generated token; the last one has a finished state.

        Without `context`, a fresh KV cache is made and the whole prompt is prefilled. With one
        (from `NewContext`), the caller promises that its positions 0..start_pos-1 hold
        promptTokens[:start_pos] (e.g. the `context_tokens` of an earlier Generate): only
        promptTokens[start_pos:] go through Forward, from position start_pos; what the cache held
        beyond that is overwritten.

        The prompt is checked here, at the call (not at the first `next`): it must be non-empty
        and fit in the sequence length. `self.stats` is updated as parts come, and says
        "interrupted" if the consumer stops early or Ctrl-C arrives inside Forward.
        """
        prompt = [int(t) for t in promptTokens]
        if not prompt:
            raise LlamaError("the prompt has no tokens: start it with BOS (TokenizeText(\"\") gives [BOS])")
        if len(prompt) > self.sequence_length:
            raise SequenceLengthError(
                f"the prompt has {len(prompt)} tokens but the sequence length is {self.sequence_length}: "
                "use a shorter prompt or a larger --sequence-length"
            )
        if context is None and start_pos != 0:
            raise LlamaError(f"start_pos {start_pos} needs the context whose cache holds those positions")
        if context is not None:
            if context.sequence_length != self.sequence_length:
                raise LlamaError(
                    f"the context holds {context.sequence_length} positions but the engine runs with "
                    f"{self.sequence_length}: make it with InferenceEngine.NewContext"
                )
            if not 0 <= start_pos < len(prompt):
                raise LlamaError(f"start_pos must be in 0..{len(prompt) - 1} (at least one prompt token to prefill), got {start_pos}")
        sampler = Sampler(self.args.sampling())
        self.stats = GenerationStats(
            prompt_tokens=len(prompt),
            seed=None if sampler.args.greedy else sampler.seed,
            cached_tokens=None if context is None else start_pos,
        )
        self.decoder.reset()
        self._context_ids, self._context_filled = list(prompt), start_pos
        return self._generate(prompt, sampler, context, start_pos)

    def _generate(
        self, prompt: list[int], sampler: Sampler, context: InferenceContext | None, start_pos: int
    ) -> Iterator[GeneratedPart]:
        self.stats.started = time.perf_counter()  # the clock starts when the consumer asks for a token
        if self.args.max_new_tokens == 0:
            self.stats.finish_reason = GenerationState.FINISHED_MAX_TOKENS.value
            self.stats.finished_at = time.perf_counter()
            return
        try:
            yield from self._loop(prompt, sampler, context, start_pos)
        finally:
            if self.stats.finished_at is None:  # left early: Ctrl-C, an error, or the consumer stopped
                self.stats.finished_at = time.perf_counter()
                self.stats.finish_reason = "interrupted"

    def FlushText(self) -> str:
        """After an interrupted generation: U+FFFD for a character left incomplete, else ""."""
        return self.decoder.finish()

    def _loop(
        self, prompt: list[int], sampler: Sampler, context: InferenceContext | None, start_pos: int
    ) -> Iterator[GeneratedPart]:
        infContext = context if context is not None else self.model.NewInferenceContext(self.sequence_length)
        GLogger.DebugStage(2, "Creating the tokens tensor")
        inputTokens = tokens_tensor(prompt[start_pos:])
        GLogger.DebugPrintf("Created tokens tensor %s from %d prompt tokens", inputTokens, len(prompt) - start_pos)
        if start_pos:
            GLogger.DebugPrintf("The KV cache already holds the first %d prompt tokens: prefill starts at position %d", start_pos, start_pos)

        GLogger.DebugStage(3, "Looping through the sequence length")
        prevPos, curPos = start_pos, len(prompt)
        generated = 0
        previous_id = prompt[-1]
        tokens = self._context_ids  # the context so far: the prompt, then each generated id
        while True:
            if GLogger.debug_enabled:  # tolist() is work, skipped when the log is off
                GLogger.DebugPrintf("Running Forward for curPos: %d, prevPos: %d, tokens %s", curPos, prevPos, inputTokens.data.tolist())
            # Only the last row matters: it predicts the token after the last input token.
            logits = self.model.Forward(infContext, inputTokens, prevPos, lastRowOnly=True)
            self._context_filled = curPos  # positions 0..curPos-1 now hold tokens[:curPos]
            GLogger.DebugValues("Top %d next tokens (softmax of the last row of logits): %s", TOP_TOKENS, lambda: self._top_tokens(logits))
            next_id = sampler.Sample(np.asarray(logits.numpy()[-1], dtype=np.float32), tokens)
            tokens.append(next_id)
            generated += 1
            if self.stats.first_token_at is None:
                self.stats.first_token_at = time.perf_counter()
                GLogger.DebugPrintf("Time to first token: %.4f secs", self.stats.first_token_at - self.stats.started)
            step = self._step(next_id, previous_id, generated, curPos)
            yield self._part(step)
            if step.state.finished:
                return
            prevPos, curPos = curPos, curPos + 1
            previous_id = next_id
            inputTokens = tokens_tensor([next_id])

    def _step(self, next_id: int, previous_id: int, generated: int, curPos: int) -> _Step:
        if GLogger.debug_enabled:
            GLogger.DebugPrintf("Generated token id %d, piece %r", next_id, self.tokenizer.id_to_piece(next_id))
        self.stats.generated_tokens = generated
        if next_id in self.stop_ids:
            return _Step(next_id, GenerationState.FINISHED_EOS)  # a stop token prints nothing
        data = self.tokenizer.piece_bytes(next_id)
        if previous_id == self.tokenizer.bos_id and self.tokenizer.strip_leading_space_after_bos and data.startswith(b" "):
            # SentencePiece's dummy prefix: the first word after BOS carries a space nobody typed.
            data = data[1:]
        if self.args.max_new_tokens is not None and generated >= self.args.max_new_tokens:
            return _Step(next_id, GenerationState.FINISHED_MAX_TOKENS, data)
        if curPos >= self.sequence_length:
            # Feeding this token back would need KV cache position curPos, which does not exist.
            return _Step(next_id, GenerationState.FINISHED_SEQUENCE_LENGTH, data)
        return _Step(next_id, GenerationState.RUNNING, data)

    def _part(self, step: _Step) -> GeneratedPart:
        chunk = self.decoder.feed(step.data)
        text, waiting = chunk.text, chunk.waiting_bytes
        if step.state.finished:
            text += self.decoder.finish()
            waiting = b""
            self.stats.finished_at = time.perf_counter()
            self.stats.finish_reason = step.state.value
            GLogger.DebugPrintf("Generation finished: %s", step.state.value)
        return GeneratedPart(step.token_id, self.tokenizer.id_to_piece(step.token_id), text, waiting, step.state)

    def _top_tokens(self, logits) -> str:  # type: ignore[no-untyped-def]
        """The most probable next tokens under the model's own distribution (temperature 1), for
        the debug log with --trace-values: "'▁of' 0.4321 (id 271), ..."."""
        row = np.asarray(logits.numpy()[-1], dtype=np.float64)
        probabilities = np.exp(row - row.max())
        probabilities /= probabilities.sum()
        best = np.argsort(-probabilities, kind="stable")[:TOP_TOKENS]
        return ", ".join(f"{self.tokenizer.id_to_piece(int(i))!r} {probabilities[i]:.4f} (id {int(i)})" for i in best)


__all__ = ["GeneratedPart", "GenerationState", "GenerationStats", "InferenceArgs", "InferenceEngine"]
