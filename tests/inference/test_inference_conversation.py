"""Conversation: the history is rendered whole each turn, and the KV cache is reused up to the
longest common prefix, so a turn prefills only its new tokens.

The reuse is checked two ways: by counts (the Forward calls a scripted model receives, the
statistics' "from the cache"), and by logits on a real (random-weight) Llama: prefilling turn 2's
new tokens on the kept cache must give the same next-token logits as prefilling the whole dialog
from an empty cache, which is what a fresh run computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llamanuts.inference import ContextFullError, Conversation, InferenceArgs, InferenceEngine
from llamanuts.inference.conversation import common_prefix_length, default_answer_room
from llamanuts.model import tokens_tensor
from llamanuts.tokenizer import load_tokenizer

from ..model.randommodel import random_model
from .test_inference_engine import EOS, FakeTokenizer, ScriptedModel

REPO = Path(__file__).resolve().parents[2]
TINY_TOKENIZER = REPO / "tests" / "fixtures" / "models" / "tiny-gqa" / "tokenizer.model"
LLAMA3_TOKENIZER = REPO.parent / "shared" / "refs" / "llama3-tokenizer.model"


def scripted_conversation(script: list[int], max_new_tokens: int | None = None, sequence_length: int | None = None):
    model = ScriptedModel(script, max_seq_len=64)
    engine = InferenceEngine(model, FakeTokenizer(), InferenceArgs(max_new_tokens=max_new_tokens, sequence_length=sequence_length))
    return model, Conversation(engine, answer_room=2)


def answer(conversation: Conversation, text: str) -> str:
    return "".join(part.text for part in conversation.Ask(text))


# ---- the mechanics, on a scripted model and a letter tokenizer ---------------------------------
def test_common_prefix_length() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0


def test_turn_two_prefills_only_what_follows_the_cached_prefix() -> None:
    model, conversation = scripted_conversation([3, 4, EOS, 5, EOS])
    assert answer(conversation, "ab") == "ab"
    first = conversation.engine.TokenizeChat(conversation.dialog("x"))  # not run: just the ids
    turn1 = model.calls[0][0]
    assert model.calls[0][1] == 0 and conversation.stats.cached_tokens == 0
    # the cache holds turn 1's prompt and the answer's ids (the EOS was sampled, never fed back)
    assert conversation.cached_ids == turn1 + [3, 4]
    calls_before = len(model.calls)
    plan = conversation.plan("c")
    assert plan.tokens[: len(turn1)] == turn1  # the dialog's rendering starts with turn 1's prompt
    assert plan.cached == common_prefix_length(plan.tokens, turn1 + [3, 4]) and plan.cached >= len(turn1)
    assert answer(conversation, "c") == "c"
    tokens, start = model.calls[calls_before]
    assert start == plan.cached and tokens == plan.tokens[plan.cached :]
    assert conversation.stats.cached_tokens == plan.cached and conversation.stats.prompt_tokens == len(plan.tokens)
    assert f"prompt tokens: {len(plan.tokens)} ({plan.cached} from the cache)" in conversation.stats.summary()
    assert [(t.user, t.answer) for t in conversation.turns] == [("ab", "ab"), ("c", "c")]
    assert first  # the rendering is not empty


def test_the_history_is_rendered_with_the_template() -> None:
    _, conversation = scripted_conversation([3, EOS])
    conversation.set_system("be")
    answer(conversation, "ab")
    dialog = conversation.dialog("c")
    assert [(m.role, m.content) for m in dialog] == [("system", "be"), ("user", "ab"), ("assistant", "a"), ("user", "c")]


def test_an_interrupted_answer_stays_in_the_history_as_far_as_it_went() -> None:
    _, conversation = scripted_conversation([3, 4, 5, 6, EOS])
    parts = conversation.Ask("ab")
    next(parts), next(parts)
    parts.close()
    assert [(t.user, t.answer, t.interrupted) for t in conversation.turns] == [("ab", "ab", True)]
    assert conversation.stats.finish_reason == "interrupted"
    assert conversation.cached_ids == conversation.engine.context_tokens


def test_an_answer_interrupted_before_its_first_token_drops_the_message() -> None:
    _, conversation = scripted_conversation([3, EOS])
    parts = conversation.Ask("ab")
    parts.close()
    assert conversation.turns == []


def test_context_full_is_an_error_before_any_work_and_never_a_silent_cut() -> None:
    model, conversation = scripted_conversation([3, 4, 5, 6, 7, 8, 9, EOS] * 4, sequence_length=24)
    answer(conversation, "abcdef")  # Llama 2 layout: BOS, "[INST] abcdef [/INST]" -> 21 ids
    calls = len(model.calls)
    with pytest.raises(ContextFullError, match="context full: the conversation .* more than the context size of 24 tokens") as error:
        conversation.Ask("a")
    assert error.value.turns == 1 and error.value.answer_room == 2
    assert len(model.calls) == calls  # nothing ran
    assert conversation.fit("a") == 1  # dropping the oldest turn makes room
    assert conversation.turns == []
    with pytest.raises(ContextFullError, match="context full: the message"):
        conversation.fit("abcdefghi" * 3)


def test_reset_forgets_the_turns_and_reuses_the_cache_from_the_start() -> None:
    model, conversation = scripted_conversation([3, EOS, 4, EOS])
    answer(conversation, "ab")
    context = conversation.context
    conversation.reset()
    assert conversation.turns == [] and conversation.plan("ab").cached == 0
    before = len(model.calls)
    answer(conversation, "ab")
    assert conversation.context is context and model.calls[before][1] == 0


def test_default_answer_room() -> None:
    assert default_answer_room(2048, None) == 256
    assert default_answer_room(64, None) == 16
    assert default_answer_room(64, 10) == 10
    assert default_answer_room(64, 1000) == 32  # a large --max-tokens still leaves room for a chat


# ---- the cache is the one a fresh prefill would build: logits on a random-weight Llama ---------
def real_engine(tokenizer_path: Path, vocab: int, max_new_tokens: int = 6) -> InferenceEngine:
    tokenizer = load_tokenizer(tokenizer_path)
    model = random_model("f32", vocab=vocab, max_seq_len=256, seed=3)
    return InferenceEngine(model, tokenizer, InferenceArgs(max_new_tokens=max_new_tokens))


def assert_turn_two_logits_equal_a_fresh_prefill(engine: InferenceEngine) -> None:
    conversation = Conversation(engine, system="Answer briefly.")
    answer(conversation, "Hello there")
    turn1_prompt = conversation.stats.prompt_tokens
    plan = conversation.plan("And then?")
    # all of turn 1's prompt is reused at least (random answers may re-encode to other ids)
    assert turn1_prompt <= plan.cached < len(plan.tokens)
    model = engine.model
    reused = model.Forward(conversation.context, tokens_tensor(plan.tokens[plan.cached :]), plan.cached).numpy()[-1]
    fresh = model.Forward(model.NewInferenceContext(engine.sequence_length), tokens_tensor(plan.tokens), 0).numpy()[-1]
    np.testing.assert_allclose(reused, fresh, rtol=1e-4, atol=1e-5)


def test_llama2_template_turn_two_on_the_cache_gives_the_logits_of_a_fresh_prefill() -> None:
    assert_turn_two_logits_equal_a_fresh_prefill(real_engine(TINY_TOKENIZER, vocab=320))


def test_llama3_template_turn_two_on_the_cache_gives_the_logits_of_a_fresh_prefill() -> None:
    if not LLAMA3_TOKENIZER.exists():
        pytest.skip(f"{LLAMA3_TOKENIZER} is absent (shared reference files not available)")
    engine = real_engine(LLAMA3_TOKENIZER, vocab=128256)
    assert engine.chat_template.name == "llama3"
    assert_turn_two_logits_equal_a_fresh_prefill(engine)


def test_a_whole_conversation_on_the_cache_generates_what_fresh_runs_generate() -> None:
    """Greedy: each turn's answer through the kept cache equals a fresh Generate of the same dialog."""
    engine = real_engine(TINY_TOKENIZER, vocab=320, max_new_tokens=5)
    conversation = Conversation(engine)
    for question in ("Hi", "What now?", "Why"):
        tokens = engine.TokenizeChat(conversation.dialog(question))
        expected = [p.token_id for p in engine.Generate(tokens)]
        got = [p.token_id for p in conversation.Ask(question)]
        assert got == expected
    assert conversation.stats.cached_tokens > 0
