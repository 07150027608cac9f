"""The fuzz suite (issue 13): seeded, bounded mutations of every format the loaders read.

Every case must end in a correct load (then exercised: a forward pass, an encode/decode, a chat
prompt) or in a LlamaError, which the CLI prints and exits 2 with; never another exception, a
hang, a crash or memory beyond the cap. The harness is tools/fuzz.py (`python -m tools.fuzz
--cases 5000` runs more); here a fixed seed and a case count per format keep the run deterministic
and under two minutes on two busy cores (about 1,700 cases; the formats whose cases cost most, a
forward pass or a chat render each, get fewer). The count of cases per format is printed in the
"fuzz" section at the end of the pytest run.
"""

from __future__ import annotations

import time

import pytest

from tools import fuzz

SEED = 13
# Cases per format, the costliest first (the order the children start in, two at a time).
CASES = {
    "jinja": 100,
    "hf-directory": 120,
    "safetensors": 120,
    "params": 120,
    "llama2c": 120,
    "gguf": 150,
    "gguf-tokenizer": 150,
    "pickle": 140,
    "zip": 140,
    "tiktoken": 140,
    "llama2c-tokenizer": 140,
    "sentencepiece": 140,
}


def test_every_format_has_a_case_count() -> None:
    assert set(CASES) == set(fuzz.FORMATS)


def test_every_format_ends_each_mutated_case_in_a_load_or_a_named_error(fuzz_summary: list[str]) -> None:
    started = time.monotonic()
    reports = fuzz.run_formats(list(CASES), SEED, CASES)
    seconds = time.monotonic() - started
    SUMMARY = fuzz_summary
    SUMMARY.extend(report.line() for report in reports)
    ran = [r for r in reports if not r.skipped]
    total = sum(r.cases for r in ran)
    SUMMARY.append(f"fuzz: {total} cases over {len(ran)} formats in {seconds:.0f} s (seed {SEED}); skipped: "
                   f"{', '.join(r.name for r in reports if r.skipped) or 'none'}")
    print("\n".join(SUMMARY))
    failures = [f for r in reports for f in r.failures]
    assert not failures, "\n".join(failures[:20])
    for report in ran:
        assert report.cases == CASES[report.name], report.line()
        # a mutation budget that only ever produced refusals, or only loads, would test little
        assert report.loaded > 0 and sum(report.refused.values()) > 0, report.line()
    # the formats whose seeds live in the repository always run
    assert {"pickle", "zip", "params", "sentencepiece", "tiktoken", "gguf", "gguf-tokenizer", "jinja", "safetensors",
            "hf-directory"} <= {r.name for r in ran}


def test_the_harness_reports_every_kind_of_failure() -> None:
    # The selftest format misbehaves on purpose; each misbehaviour must become a named failure.
    # Cases 9-15 of seed 13 draw each of the seven kinds once (found by replaying case_rng).
    first, cases = 9, 7
    kinds = [fuzz.SELFTEST_KINDS[fuzz.case_rng(SEED, "selftest", i).randrange(len(fuzz.SELFTEST_KINDS))]
             for i in range(first, first + cases)]
    assert set(kinds) == set(fuzz.SELFTEST_KINDS), "not every kind is drawn: choose another window"
    [report] = fuzz.run_formats(["selftest"], SEED, cases, case_seconds=1, first=first, startup_seconds=3)
    assert report.cases == cases
    assert report.loaded == kinds.count("ok")
    assert report.refused == {"ModelFileError": kinds.count("llama-error")}
    expected_words = {
        "value-error": "ValueError: a stray exception",
        "python-hang": "timeout",
        "c-hang": "a hang in C code",
        "segfault": "killed by signal 11",
        "memory": "MemoryError",
    }
    failed = {int(f.split(" case ")[1].split()[0]): f for f in report.failures}
    for index, kind in enumerate(kinds, start=first):
        if kind in expected_words:
            assert expected_words[kind] in failed[index] and kind in failed[index], failed.get(index)
    assert len(failed) == sum(kind in expected_words for kind in kinds)


@pytest.mark.parametrize("name", sorted(fuzz.FORMATS))
def test_a_case_is_the_same_input_every_time(tmp_path, name: str) -> None:
    try:
        material = fuzz.FORMATS[name].prepare(tmp_path)
    except fuzz.Skip as reason:
        pytest.skip(str(reason))
    made = []
    for run in range(2):
        case = tmp_path / f"run{run}"
        case.mkdir()
        path, description = fuzz.FORMATS[name].mutate(fuzz.case_rng(SEED, name, 7), material, case)
        files = sorted(p for p in case.rglob("*") if p.is_file() and not p.is_symlink())
        made.append((description, [(p.relative_to(case), p.read_bytes()) for p in files]))
    assert made[0] == made[1]
