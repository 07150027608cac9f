"""Every flag of llama_infer, one test each: it parses (with llama.cpp's spelling and ours) and it
has its effect. Run in-process (cmd.llama_infer.main) on the stories260K model, whose greedy story
is known (SOURCES.md), so each run costs a fraction of a second.

The effects are checked against what must hold whatever the implementation: top-k 1, a tiny top-p
and min-p 1 keep only the most likely token, so they give the greedy text at any temperature;
a repeat penalty that looks at no token changes nothing; -c N stops after N positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cli_module import load_cli

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_REFS = REPO_ROOT.parent / "shared" / "refs"
STORIES = SHARED_REFS / "stories260K.bin"
TOK512 = SHARED_REFS / "tok512.bin"
TINY = REPO_ROOT / "tests" / "fixtures" / "models" / "tiny-mha"
FIRST_SENTENCE = "Once upon a time, there was a little girl named Lily."


@pytest.fixture(scope="module")
def cli():
    return load_cli("llama_infer")


@pytest.fixture(scope="module")
def stories() -> list[str]:
    if not (STORIES.exists() and TOK512.exists()):
        pytest.skip(f"stories260K.bin / tok512.bin not found in {SHARED_REFS}")
    return ["--model", str(STORIES), "--tokenizer", str(TOK512), "--dtype", "f32"]


@pytest.fixture
def run(cli, capsys):
    def run(*flags: str) -> tuple[int, str, str]:
        code = cli.main(list(flags))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="module")
def greedy(cli, stories) -> str:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert cli.main([*stories, "-p", "", "-n", "60"]) == 0
    return out.getvalue()


def parse(cli, *flags: str):
    parser = cli.build_parser()
    namespace = parser.parse_args(list(flags))
    cli.check_flags(parser, namespace)
    return namespace


def test_model_flag_short_and_long(run) -> None:
    for flag in ("-m", "--model"):
        code, out, err = run(flag, str(TINY), "-p", "The cat", "-n", "3")
        assert code == 0, err
        assert "loaded meta model" in err and "vocab 320" in err and "generated tokens: 3" in err


def test_prompt_flag_short_and_long(run, stories, greedy) -> None:
    assert run(*stories, "-p", "", "-n", "60")[1] == greedy
    assert run(*stories, "--prompt", "", "-n", "60")[1] == greedy
    assert greedy.startswith(FIRST_SENTENCE)


def test_file_flag_reads_the_prompt_without_its_final_newline(run, stories, tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Once upon a time\n", encoding="utf-8")
    code, out, err = run(*stories, "-f", str(prompt), "-n", "11")
    assert code == 0, err
    assert out == run(*stories, "-p", "Once upon a time", "-n", "11")[1]
    assert out.startswith(", there was a little girl named Lily.") and "prompt tokens: 5" in err
    assert run(*stories, "--file", str(prompt), "-n", "11")[1] == out


def test_prompt_and_file_together_are_a_usage_error(cli, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit:
        parse(cli, "-p", "x", "-f", str(tmp_path / "p.txt"))
    assert exit.value.code == 2


@pytest.mark.parametrize("flag", ["-n", "--max-tokens", "--n-predict"])
def test_max_tokens_spellings(run, stories, flag: str) -> None:
    code, out, err = run(*stories, "-p", "", flag, "3")
    assert code == 0 and "finish reason: max tokens reached, prompt tokens: 1, generated tokens: 3," in err


def test_max_tokens_minus_one_means_no_limit(run, stories) -> None:
    code, _, err = run(*stories, "-p", "", "-n", "-1")
    assert code == 0 and "finish reason: end of sequence" in err and "generated tokens: 346," in err  # SOURCES.md


@pytest.mark.parametrize("flag", ["-s", "--seed"])
def test_seed_makes_a_sampled_run_repeatable(run, stories, flag: str) -> None:
    first = run(*stories, "-p", "Once upon a time", "-n", "30", "--temp", "1", flag, "7")
    second = run(*stories, "-p", "Once upon a time", "-n", "30", "--temp", "1", flag, "7")
    assert first[1] == second[1] and "seed: 7" in first[2]


def test_seed_minus_one_is_a_fresh_seed(cli) -> None:
    assert parse(cli, "-s", "-1", "--temp", "1").seed is None


@pytest.mark.parametrize("flag", ["-t", "--threads"])
def test_threads(run, stories, flag: str) -> None:
    from llamanuts.ml import GetThreads, SetThreads

    before = GetThreads()
    try:
        code, _, err = run(*stories, "-p", "", "-n", "2", flag, "1")
        assert code == 0 and "1 thread(s)" in err
    finally:
        SetThreads(before)


@pytest.mark.parametrize("flag", ["-c", "--ctx-size", "--sequence-length"])
def test_ctx_size_spellings_bound_the_kv_cache(run, stories, flag: str) -> None:
    code, _, err = run(*stories, "-p", "", flag, "8")
    assert code == 0 and "finish reason: sequence length reached, prompt tokens: 1, generated tokens: 8," in err


@pytest.mark.parametrize("flag", ["--temp", "--temperature"])
def test_temperature_spellings(run, stories, greedy, flag: str) -> None:
    sampled = run(*stories, "-p", "", "-n", "60", flag, "1.5", "-s", "3")
    assert sampled[0] == 0 and sampled[1] != greedy and "seed: 3" in sampled[2]
    other = "--temperature" if flag == "--temp" else "--temp"
    assert run(*stories, "-p", "", "-n", "60", other, "1.5", "-s", "3")[1] == sampled[1]


def test_top_k_1_gives_the_greedy_text_at_any_temperature(run, stories, greedy) -> None:
    assert run(*stories, "-p", "", "-n", "60", "--temp", "1.5", "--top-k", "1", "-s", "1")[1] == greedy
    assert run(*stories, "-p", "", "-n", "60", "--temp", "1.5", "--top-k", "40", "-s", "1")[1] != greedy


def test_a_tiny_top_p_gives_the_greedy_text(run, stories, greedy) -> None:
    assert run(*stories, "-p", "", "-n", "60", "--temp", "1.5", "--top-p", "0.000001", "-s", "2")[1] == greedy


def test_min_p_1_gives_the_greedy_text(run, stories, greedy) -> None:
    assert run(*stories, "-p", "", "-n", "60", "--temp", "1.5", "--min-p", "1", "-s", "2")[1] == greedy
    assert run(*stories, "-p", "", "-n", "60", "--temp", "1.5", "--min-p", "0.01", "-s", "2")[1] != greedy


def test_repeat_penalty_changes_greedy_text_and_repeat_last_n_0_turns_it_off(run, stories, greedy) -> None:
    code, penalised, err = run(*stories, "-p", "", "-n", "60", "--repeat-penalty", "1.5")
    assert code == 0 and penalised != greedy
    assert "warning" not in err  # a repeat penalty applies to greedy decoding too
    assert run(*stories, "-p", "", "-n", "60", "--repeat-penalty", "1.5", "--repeat-last-n", "0")[1] == greedy
    assert run(*stories, "-p", "", "-n", "60", "--repeat-penalty", "1.5", "--repeat-last-n", "64")[1] == penalised


@pytest.mark.parametrize("flag", ["-sys", "--system"])
def test_system_prompt_goes_into_the_chat_template(run, tmp_path: Path, flag: str) -> None:
    log = tmp_path / "debug.log"
    code, _, err = run("-m", str(TINY), flag, "Be brief.", "-p", "Hi", "-n", "2", "--debug", "--debug-log", str(log))
    assert code == 0, err
    assert "Rendered the llama2 chat template: '<s>[INST] <<SYS>>\\nBe brief.\\n<</SYS>>\\n\\nHi [/INST]'" in log.read_text(encoding="utf-8")


def test_chat_flag_uses_the_template(run, tmp_path: Path) -> None:
    log = tmp_path / "debug.log"
    code, _, err = run("-m", str(TINY), "--chat", "-p", "Hi", "-n", "2", "--debug", "--debug-log", str(log))
    assert code == 0, err
    assert "Rendered the llama2 chat template: '<s>[INST] Hi [/INST]'" in log.read_text(encoding="utf-8")
    assert "(0 from the cache)" in err


def test_sampling_flags_at_temperature_0_are_a_warning_not_silence(run, stories, greedy) -> None:
    """The issue's command: --top-p 0.5 --top-k 5 --seed 9 at the default temperature."""
    code, out, err = run(*stories, "-p", "", "-n", "60", "--top-p", "0.5", "--top-k", "5", "--seed", "9", "--min-p", "0.1")
    assert code == 0 and out == greedy
    for flag in ("--top-p", "--top-k", "--seed", "--min-p"):
        assert f"warning: {flag} has no effect at temperature 0 (greedy decoding); set --temp above 0 to sample" in err


def test_abbreviated_flags_are_errors(cli, capsys) -> None:
    for flags in (["--temper", "1"], ["--max-tok", "3"], ["--sys", "x"]):
        with pytest.raises(SystemExit) as exit:
            parse(cli, *flags)
        assert exit.value.code == 2
        assert "unrecognized arguments" in capsys.readouterr().err


def test_defaults_agree_across_the_three_tools() -> None:
    infer = load_cli("llama_infer").build_parser().parse_args([])
    perplexity = load_cli("llama_perplexity").build_parser().parse_args(["-f", "x.txt"])
    tokenize = load_cli("llama_tokenize").build_parser().parse_args(["x"])
    for name in ("model", "tokenizer", "dtype", "threads", "sequence_length", "verify"):
        assert getattr(infer, name) == getattr(perplexity, name), name
    assert infer.dtype == "auto" and infer.model is None and infer.threads is None and infer.sequence_length is None
    assert tokenize.model is None and tokenize.tokenizer is None


def test_shared_flags_have_the_same_spellings_across_the_tools() -> None:
    def spellings(parser) -> dict[str, set[str]]:
        return {action.dest: set(action.option_strings) for action in parser._actions}

    infer = spellings(load_cli("llama_infer").build_parser())
    perplexity = spellings(load_cli("llama_perplexity").build_parser())
    tokenize = spellings(load_cli("llama_tokenize").build_parser())
    for dest in ("model", "tokenizer", "dtype", "threads", "sequence_length", "verify"):
        assert infer[dest] == perplexity[dest], dest
    for dest in ("model", "tokenizer", "prompt", "file"):
        assert infer[dest] == tokenize[dest], dest
    assert {"-f", "--file"} <= perplexity["text"]
    assert infer["threads"] == {"-t", "--threads"} and infer["sequence_length"] == {"-c", "--ctx-size", "--sequence-length"}


def test_perplexity_threads_flag_has_help() -> None:
    parser = load_cli("llama_perplexity").build_parser()
    assert "threads for the parallel kernels" in parser.format_help()


def test_verify_checks_the_checkpoint_crcs(run) -> None:
    code, _, err = run("-m", str(TINY), "--verify", "-p", "x", "-n", "1")
    assert code == 0, err


def test_verify_finds_a_corrupt_large_entry_that_a_normal_load_does_not_read(run, tmp_path: Path) -> None:
    # A byte flipped inside the default model's 2 MiB embedding: the normal load checks the CRC of
    # data.pkl and of entries up to 1 MiB only (the weights stay unread), --verify reads them all.
    import shutil
    import zlib

    from llamanuts.common.mmapfile import MmapFile
    from llamanuts.torch.zipfile import ZipArchive

    model = tmp_path / "kjv"
    shutil.copytree(REPO_ROOT / "models" / "kjv", model)
    checkpoint = model / "consolidated.00.pth"
    with MmapFile(checkpoint) as file:
        entry = max(ZipArchive(file).entries.values(), key=lambda e: e.compressed_size)
        offset, name, size, crc = entry.data_offset, entry.name, entry.compressed_size, entry.crc32
    assert size > 1 << 20
    data = bytearray(checkpoint.read_bytes())
    data[offset + 1000] ^= 0x40
    assert zlib.crc32(bytes(data[offset : offset + size])) != crc  # the flip really breaks the CRC
    checkpoint.write_bytes(bytes(data))
    code, _, err = run("-m", str(model), "-p", "In", "-n", "1")
    assert code == 0, err
    code, _, err = run("-m", str(model), "--verify", "-p", "In", "-n", "1")
    assert code == 2 and "CRC" in err and name.split("/")[-1] in err, err
