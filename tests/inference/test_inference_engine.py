"""The generation loop on a scripted stand-in model: prefill once, then one token per Forward,
and each way of stopping (EOS, BOS for llama2.c models, max tokens, sequence length)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from llamanuts.common.errors import LlamaError, SequenceLengthError
from llamanuts.common.logger import GLogger
from llamanuts.inference.engine import GenerationState, InferenceArgs, InferenceEngine
from llamanuts.ml import Tensor

BOS, EOS = 1, 2
VOCAB = 16


@dataclass
class FakeArgs:
    max_seq_len: int


@dataclass
class FakeContext:
    sequence_length: int


@dataclass
class ScriptedModel:
    """Forward returns logits whose last row points at the next id of `script`."""

    script: list[int]
    max_seq_len: int = 32
    vocab: int = VOCAB
    calls: list[tuple[list[int], int]] = field(default_factory=list)
    last_row_only: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.args = FakeArgs(self.max_seq_len)

    def NewInferenceContext(self, sequence_length: int) -> FakeContext:
        return FakeContext(sequence_length)

    def Forward(self, infContext: FakeContext, inputTokens: Tensor, startPos: int, lastRowOnly: bool = False) -> Tensor:
        tokens = inputTokens.data.tolist()
        assert startPos + len(tokens) <= infContext.sequence_length, "Forward past the KV cache"
        self.calls.append((tokens, startPos))
        self.last_row_only.append(lastRowOnly)
        logits = np.zeros((1 if lastRowOnly else len(tokens), self.vocab), dtype=np.float32)
        logits[-1, self.script[len(self.calls) - 1]] = 10.0
        return Tensor.from_numpy(logits)


class FakeTokenizer:
    """ids 3.. are letters; 10..13 are the four bytes of "😀"; 14 is " x" (a leading space)."""

    kind = "sentencepiece"
    bos_id, eos_id = BOS, EOS
    stop_ids = frozenset({EOS})
    special_tokens = {"<s>": BOS, "</s>": EOS}
    strip_leading_space_after_bos = True
    _bytes = {0: b"", BOS: b"", EOS: b"", 14: b" x", 15: b"\xe4"} | {i: bytes([ord("a") + i - 3]) for i in range(3, 10)}
    _bytes |= {10 + i: bytes([b]) for i, b in enumerate("😀".encode())}

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        return [BOS] * bos + [ord(c) - ord("a") + 3 for c in text] + [EOS] * eos

    def id_to_piece(self, id: int) -> str:
        return {BOS: "<s>", EOS: "</s>"}.get(id, f"<{id}>")

    def piece_bytes(self, id: int) -> bytes:
        return self._bytes[id]


def run(script: list[int], prompt: list[int] | None = None, **kwargs):
    model = ScriptedModel(script, max_seq_len=kwargs.pop("max_seq_len", 32))
    engine = InferenceEngine(model, FakeTokenizer(), InferenceArgs(**kwargs))
    parts = list(engine.Generate(prompt if prompt is not None else [BOS]))
    return model, engine, parts


def test_prefill_in_one_call_then_one_token_per_call() -> None:
    model, engine, parts = run([3, 4, 5, EOS], prompt=[BOS, 6, 7])
    assert model.calls == [([BOS, 6, 7], 0), ([3], 3), ([4], 4), ([5], 5)]
    assert [p.token_id for p in parts] == [3, 4, 5, EOS]
    assert "".join(p.text for p in parts) == "abc"
    assert engine.stats.prompt_tokens == 3 and engine.stats.generated_tokens == 4


def test_generation_asks_forward_for_the_last_rows_logits_only() -> None:
    # the other rows of the prompt predict tokens already known: computing them is wasted work
    model, _, _ = run([3, 4, EOS], prompt=[BOS, 6, 7])
    assert model.last_row_only == [True, True, True]


def test_stops_on_eos() -> None:
    _, engine, parts = run([3, EOS, 4])
    assert [p.state for p in parts] == [GenerationState.RUNNING, GenerationState.FINISHED_EOS]
    assert parts[-1].text == "" and engine.stats.finish_reason == "end of sequence"


def test_stops_on_bos_only_for_llama2c_models() -> None:
    _, _, parts = run([3, BOS, 4], stop_on_bos=True)
    assert [p.token_id for p in parts] == [3, BOS] and parts[-1].state is GenerationState.FINISHED_EOS
    _, _, parts = run([3, BOS, 4], max_new_tokens=3)
    assert [p.token_id for p in parts] == [3, BOS, 4] and parts[-1].state is GenerationState.FINISHED_MAX_TOKENS


def test_stops_at_max_tokens() -> None:
    model, engine, parts = run([3, 4, 5, 6, 7], max_new_tokens=3)
    assert [p.token_id for p in parts] == [3, 4, 5]
    assert parts[-1].state is GenerationState.FINISHED_MAX_TOKENS
    assert len(model.calls) == 3  # the last token is never fed back
    _, _, parts = run([3], max_new_tokens=0)
    assert parts == []


def test_stops_at_sequence_length_like_run_c() -> None:
    """With the cache holding 4 positions, [BOS] + 4 tokens: the 4th is never fed back."""
    model, _, parts = run([3, 4, 5, 6, 7, 8], sequence_length=4)
    assert [p.token_id for p in parts] == [3, 4, 5, 6]
    assert parts[-1].state is GenerationState.FINISHED_SEQUENCE_LENGTH
    assert model.calls[-1] == ([5], 3)
    _, _, parts = run([3, 4], prompt=[BOS, 3, 4, 5], sequence_length=4)
    assert [p.state for p in parts] == [GenerationState.FINISHED_SEQUENCE_LENGTH]


def test_prompt_longer_than_sequence_length_is_a_clear_error() -> None:
    with pytest.raises(SequenceLengthError, match="sequence length"):
        run([3], prompt=[BOS, 3, 4, 5, 6], sequence_length=4)
    with pytest.raises(SequenceLengthError):
        run([3], sequence_length=64, max_seq_len=32)
    with pytest.raises(LlamaError):
        run([3], prompt=[])


def test_incomplete_character_waits_then_prints_whole() -> None:
    _, _, parts = run([10, 11, 12, 13, 3, EOS])
    assert [p.text for p in parts] == ["", "", "", "😀", "a", ""]
    assert [p.waiting_bytes for p in parts[:3]] == [b"\xf0", b"\xf0\x9f", b"\xf0\x9f\x98"]


def test_dangling_character_at_the_end_becomes_replacement() -> None:
    _, _, parts = run([3, 15, EOS])
    assert "".join(p.text for p in parts) == "a\ufffd"
    assert parts[-1].waiting_bytes == b""
    _, _, parts = run([3, 10, 11], max_new_tokens=3)
    assert "".join(p.text for p in parts) == "a\ufffd"


def test_leading_space_dropped_only_right_after_bos() -> None:
    _, _, parts = run([14, 14, EOS])
    assert "".join(p.text for p in parts) == "x x"
    _, _, parts = run([14, EOS], prompt=[BOS, 3])
    assert "".join(p.text for p in parts) == " x"


def test_interrupted_generation_is_reported() -> None:
    model = ScriptedModel([3, 4, 5, 6, 7])
    engine = InferenceEngine(model, FakeTokenizer(), InferenceArgs())
    generator = engine.Generate([BOS])
    next(generator)
    generator.close()
    assert engine.stats.finish_reason == "interrupted"


def test_debug_log_has_the_stages_and_steps(tmp_path: Path) -> None:
    log = tmp_path / "debug.log"
    GLogger.Init(debug=True, debug_path=str(log))
    try:
        model = ScriptedModel([3, 4, EOS])
        engine = InferenceEngine(model, FakeTokenizer(), InferenceArgs())
        list(engine.Generate(engine.TokenizeText("ab")))
    finally:
        GLogger.Init(debug=False)
    text = log.read_text()
    for line in (
        "==== STAGE 01: TOKENIZATION ====",
        "==== STAGE 02: CREATING THE TOKENS TENSOR ====",
        "==== STAGE 03: LOOPING THROUGH THE SEQUENCE LENGTH ====",
        "Prompt tokens (3): [1, 3, 4]",
        "Running Forward for curPos: 3, prevPos: 0, tokens [1, 3, 4]",
        "Running Forward for curPos: 4, prevPos: 3, tokens [3]",
        "Generated token id 4, piece '<4>'",
        "Generation finished: end of sequence",
    ):
        assert line in text, line


def test_stats_have_time_to_first_token_and_speed() -> None:
    _, engine, _ = run([3, 4, 5, 6, EOS])
    assert engine.stats.time_to_first_token is not None and engine.stats.time_to_first_token >= 0
    assert engine.stats.tokens_per_second is not None and engine.stats.tokens_per_second > 0
    assert "generated tokens: 5" in engine.stats.summary()


def test_seeded_sampling_is_reproducible_through_the_engine() -> None:
    class NoisyModel(ScriptedModel):
        def Forward(self, infContext, inputTokens, startPos, lastRowOnly=False):
            self.calls.append((inputTokens.data.tolist(), startPos))
            rng = np.random.default_rng(startPos)
            return Tensor.from_numpy(rng.standard_normal((inputTokens.shape[0], VOCAB)).astype(np.float32))

    def ids(seed: int) -> list[int]:
        engine = InferenceEngine(NoisyModel([]), FakeTokenizer(), InferenceArgs(max_new_tokens=12, temperature=1.0, top_p=0.95, seed=seed))
        return [p.token_id for p in engine.Generate([BOS])]

    assert ids(5) == ids(5)
    assert ids(5) != ids(6)


def test_llama3_chat_uses_the_header_template_and_stops_on_eot() -> None:
    path = Path(__file__).resolve().parents[2].parent / "shared" / "refs" / "llama3-tokenizer.model"
    if not path.exists():
        pytest.skip(f"{path} is absent (shared reference files not available)")
    from llamanuts.inference.prompt import build_dialog
    from llamanuts.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(path)
    eot = tokenizer.special_tokens["<|eot_id|>"]
    hello = tokenizer.encode("Hello!")
    model = ScriptedModel(hello + [eot], max_seq_len=64, vocab=tokenizer.vocab_size)
    engine = InferenceEngine(model, tokenizer, InferenceArgs())
    prompt = engine.TokenizeChat(build_dialog("Hi", system="Always answer with emojis"))
    assert prompt[0] == tokenizer.special_tokens["<|begin_of_text|>"]
    assert prompt[-4:-1] == [tokenizer.special_tokens["<|start_header_id|>"], *tokenizer.encode("assistant"), tokenizer.special_tokens["<|end_header_id|>"]]
    parts = list(engine.Generate(prompt))
    assert "".join(p.text for p in parts) == "Hello!"
    assert parts[-1].token_id == eot and parts[-1].state is GenerationState.FINISHED_EOS


# ---- a kept context: prefill only what the cache does not hold yet (conversations) ---------------
def test_with_a_context_only_the_tokens_after_start_pos_are_prefilled() -> None:
    model = ScriptedModel([3, 4, EOS, 5, EOS])
    engine = InferenceEngine(model, FakeTokenizer(), InferenceArgs())
    context = engine.NewContext()
    first = [p.token_id for p in engine.Generate([BOS, 6, 7], context=context, start_pos=0)]
    assert first == [3, 4, EOS]
    assert engine.context_tokens == [BOS, 6, 7, 3, 4]  # EOS was sampled but never fed back
    assert "prompt tokens: 3 (0 from the cache)" in engine.stats.summary()
    second_prompt = engine.context_tokens + [EOS, 8]
    second = [p.token_id for p in engine.Generate(second_prompt, context=context, start_pos=5)]
    assert second == [5, EOS]
    assert model.calls[3] == ([EOS, 8], 5)  # the new tokens only, at the position after the cache
    assert engine.stats.prompt_tokens == 7 and engine.stats.cached_tokens == 5
    assert "prompt tokens: 7 (5 from the cache)" in engine.stats.summary()


def test_without_a_context_the_summary_has_no_cache_count() -> None:
    _, engine, _ = run([3, EOS])
    assert engine.stats.cached_tokens is None and "from the cache" not in engine.stats.summary()


def test_context_tokens_after_an_interruption_are_the_positions_forward_finished() -> None:
    model = ScriptedModel([3, 4, 5, 6, 7])
    engine = InferenceEngine(model, FakeTokenizer(), InferenceArgs())
    parts = engine.Generate([BOS, 6], context=engine.NewContext())
    next(parts), next(parts)  # 3 and 4 sampled; 3 went through Forward
    parts.close()
    assert engine.context_tokens == [BOS, 6, 3]


def test_an_exception_inside_forward_leaves_the_context_tokens_exact() -> None:
    class FailingModel(ScriptedModel):
        def Forward(self, infContext, inputTokens, startPos, lastRowOnly=False):
            if startPos == 3:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the second decode step
            return super().Forward(infContext, inputTokens, startPos)

    engine = InferenceEngine(FailingModel([3, 4, 5]), FakeTokenizer(), InferenceArgs())
    with pytest.raises(KeyboardInterrupt):
        list(engine.Generate([BOS, 6], context=engine.NewContext()))
    assert engine.context_tokens == [BOS, 6, 3]  # position 3 was being written: it does not count
    assert engine.stats.finish_reason == "interrupted"


def test_bad_start_pos_or_context_is_a_clear_error() -> None:
    model = ScriptedModel([3])
    engine = InferenceEngine(model, FakeTokenizer(), InferenceArgs(sequence_length=8))
    with pytest.raises(LlamaError, match="start_pos"):
        engine.Generate([BOS, 3], start_pos=1)
    with pytest.raises(LlamaError, match="at least one prompt token"):
        engine.Generate([BOS, 3], context=engine.NewContext(), start_pos=2)
    with pytest.raises(LlamaError, match="NewContext"):
        engine.Generate([BOS, 3], context=FakeContext(16), start_pos=0)


def test_repeat_penalty_sees_the_prompt_and_the_generated_ids() -> None:
    class TwoWayModel(ScriptedModel):
        """Token 3 always scores 2.0, token 4 scores 1.9: greedy picks 3 unless 3 is penalised."""

        def Forward(self, infContext, inputTokens, startPos, lastRowOnly=False):
            self.calls.append((inputTokens.data.tolist(), startPos))
            logits = np.zeros((inputTokens.shape[0], VOCAB), dtype=np.float32)
            logits[-1, 3], logits[-1, 4] = 2.0, 1.9
            return Tensor.from_numpy(logits)

    def ids(prompt: list[int], **kwargs) -> list[int]:
        engine = InferenceEngine(TwoWayModel([]), FakeTokenizer(), InferenceArgs(max_new_tokens=4, **kwargs))
        return [p.token_id for p in engine.Generate(prompt)]

    assert ids([BOS]) == [3, 3, 3, 3]
    # 3 is in the prompt, so 2.0 / 1.1 < 1.9 gives 4; once both were seen, 3 leads again
    assert ids([BOS, 3], repeat_penalty=1.1) == [4, 3, 3, 3]
    assert ids([BOS], repeat_penalty=1.1) == [3, 4, 3, 3]
    assert ids([BOS], repeat_penalty=1.1, repeat_last_n=1) == [3, 4, 3, 4]
