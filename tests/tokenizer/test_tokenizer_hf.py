"""HFTokenizer / load_hf_tokenizer on two tiny Hugging Face directories (hf_testdata.py).

The reference for every id, flag and decoded text is transformers' own tokenizer for the same
directory (`AutoTokenizer.from_pretrained(dir)`), encoding special-token text as text
(`split_special_tokens=True`), as ours does for user text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from corpus_testdata import corpus
from hf_testdata import CHATML_TEMPLATE, LLAMA2_TEMPLATE, byte_level_dir, sentencepiece_style_dir, transformers_tokenizer
from llamanuts.common import LlamaError, TokenizerError
from llamanuts.inference.prompt import ChatMessage, JinjaChatTemplate
from llamanuts.tokenizer import HFTokenizer, InvalidTextError, load_hf_tokenizer
from tokenizer_testdata import VARIED_TEXTS

BUILDERS = {"byte-level": byte_level_dir, "sentencepiece-style": sentencepiece_style_dir}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[HFTokenizer, Any]:
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    return load_hf_tokenizer(folder), transformers_tokenizer(folder)


def hf_ids(hf: Any, text: str) -> list[int]:
    return list(hf.encode(text, add_special_tokens=False, split_special_tokens=True))


def test_corpus_ids_equal_transformers(pair: tuple[HFTokenizer, Any]) -> None:
    ours, hf = pair
    texts = list(corpus()) + VARIED_TEXTS
    assert [t for t in texts if ours.encode(t) != hf_ids(hf, t)] == []


def test_decode_equals_transformers(pair: tuple[HFTokenizer, Any]) -> None:
    ours, hf = pair
    texts = list(corpus()) + VARIED_TEXTS
    assert [t for t in texts if ours.decode(ours.encode(t)) != hf.decode(ours.encode(t), skip_special_tokens=True)] == []


def test_printing_piece_by_piece_after_bos_gives_the_text(pair: tuple[HFTokenizer, Any]) -> None:
    ours, _ = pair
    for text in VARIED_TEXTS + list(corpus())[:300]:
        ids = [ours.bos_id] + ours.encode(text)  # type: ignore[list-item]
        printed = b"".join(ours.output_bytes(prev, id) for prev, id in zip([None, *ids], ids))
        assert printed == text.encode("utf-8")


def test_special_ids_and_bos_rule_equal_transformers(pair: tuple[HFTokenizer, Any]) -> None:
    ours, hf = pair
    assert (ours.bos_id, ours.eos_id, ours.unk_id) == (hf.bos_token_id, hf.eos_token_id, hf.unk_token_id)
    assert ours.add_bos == (hf.encode("x", add_special_tokens=True)[0] == hf.bos_token_id)
    assert ours.special_tokens == {token.content: id for id, token in hf.added_tokens_decoder.items() if token.special}
    assert all(ours.piece_bytes(id) == b"" for id in ours.special_tokens.values())


def test_typed_special_tokens_stay_text(pair: tuple[HFTokenizer, Any]) -> None:
    ours, hf = pair
    for name, id in ours.special_tokens.items():
        ids = ours.encode(f"a {name} b")
        assert id not in ids
        assert ids == hf_ids(hf, f"a {name} b")


def test_byte_level_directory_facts(tmp_path: Path) -> None:
    ours = load_hf_tokenizer(byte_level_dir(tmp_path))
    assert ours.kind == "huggingface"
    assert ours.stop_ids == frozenset({2, 0})  # generation_config's eos_token_id list
    assert ours.add_bos is False
    assert ours.strip_leading_space_after_bos is False
    assert ours.chat_template == CHATML_TEMPLATE
    think = ours.piece_to_id("<think>")  # a non-special added token: matched whole, prints its text
    assert ours.encode("<think>") == [think] and ours.piece_bytes(think) == b"<think>"
    high = [i for i in range(ours.vocab_size) if ours.is_byte_piece(i)]
    assert len(high) == 128 and all(len(ours.piece_bytes(i)) == 1 and ours.piece_bytes(i)[0] >= 0x80 for i in high)


def test_sentencepiece_style_directory_facts(tmp_path: Path) -> None:
    ours = load_hf_tokenizer(sentencepiece_style_dir(tmp_path))
    assert ours.add_bos is True  # the post-processor puts <s> first
    assert ours.strip_leading_space_after_bos is True  # the decoder strips the dummy prefix
    assert ours.chat_template == LLAMA2_TEMPLATE  # from chat_template.jinja
    f0 = ours.piece_to_id("<0xF0>")
    assert ours.is_byte_piece(f0) and ours.piece_bytes(f0) == b"\xf0"
    assert ours.piece_bytes(ours.piece_to_id("\u2581the")) == b" the"


def test_chat_template_jinja_file_wins_over_the_config(tmp_path: Path) -> None:
    folder = byte_level_dir(tmp_path)
    (folder / "chat_template.jinja").write_text("{{ 'file' }}", encoding="utf-8")
    assert load_hf_tokenizer(folder).chat_template == "{{ 'file' }}"


def test_a_lone_surrogate_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidTextError, match="lone surrogate"):
        load_hf_tokenizer(byte_level_dir(tmp_path)).encode("x\udc80")


# ---- bad directories -----------------------------------------------------------------------------
def edit_json(path: Path, **changes: Any) -> None:
    value = json.loads(path.read_text(encoding="utf-8"))
    value.update(changes)
    path.write_text(json.dumps(value), encoding="utf-8")


def test_a_missing_directory_or_tokenizer_json_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match="not a directory"):
        load_hf_tokenizer(tmp_path / "nowhere")
    with pytest.raises(TokenizerError, match="has no tokenizer.json"):
        load_hf_tokenizer(tmp_path)


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json", "generation_config.json", "chat_template.jinja"])
def test_a_tokenizer_file_that_is_a_fifo_is_named_not_skipped_or_waited_on(tmp_path: Path, name: str) -> None:
    # is_file() would pass over a FIFO (a config silently ignored, or "has no tokenizer.json");
    # opening one to read would block until a writer comes
    folder = byte_level_dir(tmp_path)
    (folder / name).unlink(missing_ok=True)
    os.mkfifo(folder / name)
    with pytest.raises(TokenizerError, match=rf"{name}: {name} file is a named pipe \(FIFO\), not a regular file"):
        load_hf_tokenizer(folder)


def test_a_tokenizer_config_linked_to_dev_zero_is_not_read(tmp_path: Path) -> None:
    folder = byte_level_dir(tmp_path)
    (folder / "tokenizer_config.json").unlink()
    (folder / "tokenizer_config.json").symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(TokenizerError, match=r"tokenizer_config.json file is a character device, not a regular file"):
        load_hf_tokenizer(folder)


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("tokenizer.json", "{not json", r"tokenizer.json: is not valid JSON"),
        ("tokenizer.json", '{"model": {"type": "Nope"}}', r"tokenizer.json: not a tokenizer.json the tokenizers package can read"),
        ("tokenizer_config.json", "[1, 2]", r"tokenizer_config.json: should hold a JSON object, got list"),
        ("generation_config.json", '{"eos_token_id": [2, 99999]}', r"generation_config.json: eos_token_id \[2, 99999\] is not a token id"),
        ("tokenizer_config.json", '{"eos_token": "<nope>"}', r"tokenizer_config.json: eos_token '<nope>' is not a token of tokenizer.json"),
        ("tokenizer_config.json", '{"chat_template": 5}', r"tokenizer_config.json: chat_template should be a string or a list of named templates"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, file: str, content: str, message: str) -> None:
    folder = byte_level_dir(tmp_path)
    (folder / file).write_text(content, encoding="utf-8")
    with pytest.raises(TokenizerError, match=message):
        load_hf_tokenizer(folder)


def test_an_unsupported_decoder_is_an_error_not_a_guess(tmp_path: Path) -> None:
    folder = byte_level_dir(tmp_path)
    edit_json(folder / "tokenizer.json", decoder={"type": "WordPiece", "prefix": "##", "cleanup": True})
    with pytest.raises(TokenizerError, match=r"decoder 'WordPiece' is not supported; supported: ByteLevel"):
        load_hf_tokenizer(folder)


def test_a_named_template_list_picks_the_default(tmp_path: Path) -> None:
    folder = byte_level_dir(tmp_path)
    edit_json(folder / "tokenizer_config.json", chat_template=[{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}])
    assert load_hf_tokenizer(folder).chat_template == "D"


def test_a_post_processor_naming_a_missing_token_is_an_error_not_a_panic(tmp_path: Path) -> None:
    # found by the fuzz suite: the tokenizers library panics (PanicException, a BaseException
    # that `except Exception` lets through) when its post-processor needs a token the vocab lacks.
    folder = byte_level_dir(tmp_path)
    processor = {"type": "TemplateProcessing", "pair": [], "special_tokens": {},
                 "single": [{"SpecialToken": {"id": "<nope>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]}
    edit_json(folder / "tokenizer.json", post_processor=processor)
    with pytest.raises(TokenizerError, match=r"tokenizer.json: the tokenizers package failed on it \(PanicException: .*no entry found for key"):
        load_hf_tokenizer(folder)


@pytest.mark.parametrize("where", ["chat_template.jinja", "tokenizer_config.json"])
def test_a_template_that_fails_is_named_by_the_file_that_holds_it(tmp_path: Path, where: str) -> None:
    # not just the directory: a model folder may hold both files, and the .jinja one wins
    folder = byte_level_dir(tmp_path)
    endless = "{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}"
    if where == "chat_template.jinja":
        (folder / where).write_text(endless, encoding="utf-8")
    else:
        edit_json(folder / where, chat_template=endless)
    with pytest.raises(LlamaError, match=rf"^the chat template of {folder / where} did not finish"):
        JinjaChatTemplate.from_tokenizer(load_hf_tokenizer(folder)).Render([ChatMessage("user", "hi")])
