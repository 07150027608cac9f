"""Sampling: greedy is argmax, top_k=1 is greedy, a seed makes a run repeatable, cuts keep the right set."""

from __future__ import annotations

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
