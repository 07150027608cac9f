"""Sampling: greedy is argmax, top_k=1 is greedy, a seed makes a run repeatable, cuts keep the right set."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from llamanuts.common.errors import LlamaError
from llamanuts.inference.sampling import Sampler, SamplingArgs, nucleus_size, softmax


def random_logits(seed: int, vocab: int = 512) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(vocab) * 3).astype(np.float32)


def test_greedy_is_argmax() -> None:
    sampler = Sampler(SamplingArgs())
    for seed in range(20):
        logits = random_logits(seed)
        assert sampler.Sample(logits) == int(np.argmax(logits))


def test_greedy_tie_takes_the_lowest_id() -> None:
    logits = np.array([0.0, 5.0, 5.0, 1.0], dtype=np.float32)
    assert Sampler(SamplingArgs()).Sample(logits) == 1
    assert Sampler(SamplingArgs(temperature=0.8, top_k=1, seed=3)).Sample(logits) == 1


def test_top_k_1_equals_greedy_at_any_temperature() -> None:
    for temperature in (0.1, 1.0, 5.0):
        sampler = Sampler(SamplingArgs(temperature=temperature, top_k=1, seed=7))
        for seed in range(10):
            logits = random_logits(seed)
            assert sampler.Sample(logits) == int(np.argmax(logits))


def test_same_seed_same_ids_different_seed_different_ids() -> None:
    def run(seed: int) -> list[int]:
        sampler = Sampler(SamplingArgs(temperature=1.0, top_p=0.9, top_k=40, seed=seed))
        return [sampler.Sample(random_logits(i)) for i in range(50)]

    assert run(42) == run(42)
    assert run(42) != run(43)


def test_unseeded_sampler_reports_its_seed_so_a_run_can_be_repeated() -> None:
    first = Sampler(SamplingArgs(temperature=1.0))
    again = Sampler(SamplingArgs(temperature=1.0, seed=first.seed))
    logits = [random_logits(i) for i in range(30)]
    assert [first.Sample(x) for x in logits] == [again.Sample(x) for x in logits]


def test_top_k_keeps_only_the_k_most_likely() -> None:
    logits = random_logits(5)
    sampler = Sampler(SamplingArgs(temperature=2.0, top_k=5, seed=0))
    allowed = set(np.argsort(-logits)[:5].tolist())
    assert {sampler.Sample(logits) for _ in range(300)} <= allowed
    ids, probs = sampler.candidates(logits)
    assert set(ids.tolist()) == allowed and probs.sum() == pytest.approx(1.0)


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    sampler = Sampler(SamplingArgs(temperature=1.0, top_p=0.7, seed=0))
    ids, probs = sampler.candidates(logits)
    assert ids.tolist() == [0, 1]  # 0.5 < 0.7 <= 0.5 + 0.3
    np.testing.assert_allclose(probs, [0.5 / 0.8, 0.3 / 0.8], rtol=1e-6)
    assert nucleus_size(np.array([0.5, 0.3, 0.2]), 0.5) == 1
    assert nucleus_size(np.array([0.5, 0.3, 0.2]), 1.0) == 3


def test_sampling_follows_the_distribution() -> None:
    logits = np.log(np.array([0.6, 0.3, 0.1], dtype=np.float32))
    sampler = Sampler(SamplingArgs(temperature=1.0, seed=11))
    counts = np.bincount([sampler.Sample(logits) for _ in range(6000)], minlength=3) / 6000
    np.testing.assert_allclose(counts, [0.6, 0.3, 0.1], atol=0.03)


def test_low_temperature_sharpens() -> None:
    probs = softmax(np.array([1.0, 2.0], dtype=np.float32) / np.float32(0.1))
    assert probs[1] > 0.9999


@pytest.mark.parametrize(
    "args", [SamplingArgs(temperature=-1), SamplingArgs(top_p=0.0), SamplingArgs(top_p=1.5), SamplingArgs(top_k=-2), SamplingArgs(seed=-1)]
)
def test_bad_arguments_raise_a_clear_error(args: SamplingArgs) -> None:
    with pytest.raises(LlamaError):
        Sampler(args)


# ---- issue 13, item 15: tiny temperatures -------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1e-40, 1e-300, 5e-324])
def test_tiny_temperature_puts_all_mass_on_the_argmax_without_warnings(temperature: float) -> None:
    # The limit of softmax(x / T) as T -> 0 is all mass on the maximum: the reference is that limit.
    # Before, logits / float32(T) overflowed to inf, inf - inf gave NaN probabilities, numpy
    # printed RuntimeWarnings and the token was drawn from NaN.
    logits = random_logits(3)
    sampler = Sampler(SamplingArgs(temperature=temperature, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids, probs = sampler.candidates(logits)
        tokens = {sampler.Sample(logits) for _ in range(20)}
    assert np.isfinite(probs).all()
    assert ids[0] == int(np.argmax(logits)) and probs[0] == 1.0 and probs[1:].sum() == 0.0
    assert tokens == {int(np.argmax(logits))}


def test_tiny_temperature_splits_the_mass_between_exact_ties() -> None:
    logits = np.array([1.0, 7.0, 3.0, 7.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids, probs = Sampler(SamplingArgs(temperature=1e-40, seed=1)).candidates(logits)
    assert sorted(ids[:2].tolist()) == [1, 3]
    np.testing.assert_array_equal(probs[:2], [0.5, 0.5])


def test_huge_temperature_is_uniform_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, probs = Sampler(SamplingArgs(temperature=1e300, seed=1)).candidates(random_logits(4))
    np.testing.assert_allclose(probs, np.full(512, 1 / 512))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_logits_are_a_clear_error(bad: float) -> None:
    logits = random_logits(5)
    logits[7] = bad
    for args in (SamplingArgs(), SamplingArgs(temperature=0.8, seed=1)):
        with pytest.raises(LlamaError, match="logits are not finite"):
            Sampler(args).Sample(logits)
# ---- min-p and the repeat penalty (llama.cpp's --min-p, --repeat-penalty, --repeat-last-n) -------
def reference_distribution(logits: np.ndarray, temperature: float, top_k: int, top_p: float, min_p: float) -> dict[int, float]:
    """The sampling distribution written out plainly, token by token, as the rules read:
    softmax(logits / T); the k most likely; the smallest prefix with mass >= p (Meta's rule: keep
    a token while the mass before it is <= p); the tokens with probability >= min_p * the top one."""
    scaled = [float(x) / temperature for x in logits]
    peak = max(scaled)
    weights = [np.exp(x - peak) for x in scaled]
    total = sum(weights)
    probs = {i: w / total for i, w in enumerate(weights)}
    ranked = sorted(probs, key=lambda i: (-probs[i], i))
    if top_k:
        ranked = ranked[:top_k]
    mass = sum(probs[i] for i in ranked)
    kept, before = [], 0.0
    for i in ranked:
        if kept and before >= top_p * mass:
            break
        kept.append(i)
        before += probs[i]
    top = probs[kept[0]]
    kept = [i for i in kept if probs[i] >= min_p * top]
    mass = sum(probs[i] for i in kept)
    return {i: probs[i] / mass for i in kept}


@pytest.mark.parametrize(
    "temperature, top_k, top_p, min_p",
    [(1.0, 0, 1.0, 0.05), (0.7, 0, 1.0, 0.2), (1.3, 40, 0.95, 0.05), (1.0, 0, 0.9, 0.5), (2.0, 0, 1.0, 1.0)],
)
def test_min_p_distribution_matches_a_plain_reference(temperature: float, top_k: int, top_p: float, min_p: float) -> None:
    for seed in range(5):
        logits = random_logits(seed, vocab=200)
        sampler = Sampler(SamplingArgs(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p, seed=1))
        ids, probs = sampler.candidates(logits)
        expected = reference_distribution(logits, temperature, top_k, top_p, min_p)
        assert sorted(ids.tolist()) == sorted(expected)
        for i, p in zip(ids.tolist(), probs.tolist()):
            assert p == pytest.approx(expected[i], rel=1e-5)


def test_min_p_keeps_exactly_the_tokens_above_the_threshold() -> None:
    # probabilities 0.5, 0.25, 0.15, 0.1 (logits are their logs): min_p 0.28 keeps p >= 0.14
    logits = np.log(np.array([0.25, 0.5, 0.1, 0.15])).astype(np.float32)
    ids, probs = Sampler(SamplingArgs(temperature=1.0, min_p=0.28, seed=0)).candidates(logits)
    assert ids.tolist() == [1, 0, 3]
    assert probs.tolist() == pytest.approx([0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9])


def test_min_p_sampling_follows_the_cut_distribution() -> None:
    logits = np.log(np.array([0.25, 0.5, 0.1, 0.15])).astype(np.float32)
    sampler = Sampler(SamplingArgs(temperature=1.0, min_p=0.28, seed=11))
    counts = np.bincount([sampler.Sample(logits) for _ in range(9000)], minlength=4)
    assert counts[2] == 0
    assert counts / counts.sum() == pytest.approx([0.25 / 0.9, 0.5 / 0.9, 0.0, 0.15 / 0.9], abs=0.02)


def reference_repeat_penalty(logits: np.ndarray, recent: list[int], penalty: float) -> np.ndarray:
    """llama.cpp's llama_sampler_penalties rule, one distinct token at a time."""
    out = logits.astype(np.float32).copy()
    for token in set(recent):
        out[token] = out[token] / penalty if out[token] > 0 else out[token] * penalty
    return out


def test_repeat_penalty_changes_the_logits_of_recent_tokens_only() -> None:
    from llamanuts.inference.sampling import apply_repeat_penalty

    logits = np.array([2.0, -1.0, 0.5, -3.0, 4.0], dtype=np.float32)
    recent = [0, 1, 1, 3]
    got = apply_repeat_penalty(logits, recent, 1.5)
    assert got.tolist() == pytest.approx(reference_repeat_penalty(logits, recent, 1.5).tolist())
    assert got.tolist() == pytest.approx([2.0 / 1.5, -1.5, 0.5, -4.5, 4.0])
    assert logits.tolist() == [2.0, -1.0, 0.5, -3.0, 4.0]  # the caller's row is left alone


def test_repeat_penalty_applies_to_greedy_and_looks_only_at_the_last_n() -> None:
    logits = np.array([3.0, 2.9, 0.0], dtype=np.float32)
    plain = Sampler(SamplingArgs())
    penalised = Sampler(SamplingArgs(repeat_penalty=1.1, repeat_last_n=2))
    assert plain.Sample(logits, recent=[0]) == 0
    assert penalised.Sample(logits, recent=[0]) == 1  # 3.0 / 1.1 < 2.9
    assert penalised.Sample(logits, recent=[0, 2, 2]) == 0  # token 0 is older than the last 2
    everything = Sampler(SamplingArgs(repeat_penalty=1.1, repeat_last_n=-1))
    assert everything.Sample(logits, recent=[0, 2, 2, 2, 2]) == 1
    off = Sampler(SamplingArgs(repeat_penalty=1.1, repeat_last_n=0))
    assert off.Sample(logits, recent=[0]) == 0


def test_repeat_penalty_distribution_matches_the_reference() -> None:
    logits = random_logits(3, vocab=50)
    recent = [1, 5, 5, 7, 49, 0]
    sampler = Sampler(SamplingArgs(temperature=0.9, repeat_penalty=1.3, repeat_last_n=64, seed=0))
    from llamanuts.inference.sampling import apply_repeat_penalty

    ids, probs = sampler.candidates(apply_repeat_penalty(logits, recent, 1.3))
    expected = reference_distribution(reference_repeat_penalty(logits, recent, 1.3), 0.9, 0, 1.0, 0.0)
    assert dict(zip(ids.tolist(), probs.tolist())) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "args", [SamplingArgs(min_p=-0.1), SamplingArgs(min_p=1.5), SamplingArgs(repeat_penalty=0.0), SamplingArgs(repeat_last_n=-2)]
)
def test_bad_min_p_and_penalty_arguments_raise_a_clear_error(args: SamplingArgs) -> None:
    with pytest.raises(LlamaError):
        args.validate()
