"""LlamaTransformer.Forward on a tiny random model whose matrices are block-quantized (or F16), against
the same model run with those matrices dequantized to float32.

The quantized blocks come from gguf-py: `gguf.quants.quantize` of random float weights for Q8_0, Q4_0
and Q4_1; random valid blocks for Q4_K and Q6_K (gguf-py cannot quantize those), float16 values for
F16. The reference model's float32 weights are gguf-py's `dequantize` of the same blocks, run in f32
mode through numpy's BLAS. The quantized model multiplies exactly those weights, so the logits may
differ only by float32 summation order: the tolerance is 1e-4 of the logits' scale (the one
test_model_forward uses for KV-cache decoding against one full forward; measured here: prefill, which
dequantizes and uses the same BLAS, 0; decode, through the GEMV kernels, at most 7e-6). A misplaced
weight or a mis-read scale changes the logits by their own order of magnitude.
"""

from __future__ import annotations

import numpy as np
import pytest

from llamanuts.ml import DT_F16, DT_F32, DataType, Tensor
from llamanuts.model import LayerWeights, LlamaTransformer, ModelArgs, ModelWeights, ffn_hidden_dim, tokens_tensor

gguf = pytest.importorskip("gguf", reason="the gguf package (gguf-py) makes and dequantizes the reference blocks")
from gguf import GGMLQuantizationType  # noqa: E402

TOKENS = [1, 7, 23, 4, 42, 9, 17, 3]
VOCAB = 48
# matrices of this type; the embedding (and, when tied, the classifier) of the second; dim; tied?
CASES = {
    "SmolLM2-like Q4_1 + tied Q8_0": ("Q4_1", "Q8_0", 64, True),
    "Q8_0": ("Q8_0", "Q8_0", 64, False),
    "Q4_0": ("Q4_0", "Q4_0", 64, False),
    "F16": ("F16", "F16", 64, False),
    "Q4_K": ("Q4_K", "Q8_0", 256, False),
    "Q6_K + tied Q6_K": ("Q6_K", "Q6_K", 256, True),
}


def _blocks(name: str, rng: np.random.Generator, rows: int, cols: int, std: float) -> tuple[Tensor, np.ndarray]:
    """(the Tensor as a GGUF file stores it, gguf-py's dequantized float32 values)."""
    if name == "F16":
        values = (std * rng.standard_normal((rows, cols))).astype(np.float16)
        return Tensor.from_numpy(values), values.astype(np.float32)
    qtype = GGMLQuantizationType[name]
    if name in ("Q8_0", "Q4_0", "Q4_1"):
        data = gguf.quants.quantize((std * rng.standard_normal((rows, cols))).astype(np.float32), qtype)
    else:
        # random bytes are valid K-quant blocks; the float16 super-block scales set the weights' size
        dtype = DataType[name]
        blocks = rng.integers(0, 256, size=(rows, cols // 256, dtype.block_bytes), dtype=np.uint8)
        scale = std / (63 * 8) if name == "Q4_K" else std / (64 * 16)
        for offset in (0, 2) if name == "Q4_K" else (208,):
            d = (scale * rng.uniform(0.5, 1.5, size=(rows, cols // 256))).astype("<f2")
            blocks[:, :, offset : offset + 2] = d.view(np.uint8).reshape(rows, cols // 256, 2)
        data = blocks.reshape(rows, -1)
    return Tensor([rows, cols], DataType[name], data), gguf.quants.dequantize(data, qtype)


def build_models(case: str, mode: str = "f32") -> tuple[LlamaTransformer, LlamaTransformer, ModelWeights]:
    """(the quantized model in `mode`, the float32 model of its dequantized weights, the weights)."""
    matrix_type, embedding_type, dim, tied = CASES[case]
    rng = np.random.default_rng(sum(map(ord, case)))
    n_heads, n_kv_heads = 4, 2
    head_dim = dim // n_heads
    multiple_of = 256 if dim % 256 == 0 else 32
    hidden = ffn_hidden_dim(dim, multiple_of, None)
    pairs: list[tuple[Tensor, np.ndarray]] = []

    def matrix(rows: int, cols: int, name: str = matrix_type, std: float = 0.2) -> Tensor:
        pairs.append(_blocks(name, rng, rows, cols, std))
        return pairs[-1][0]

    def norm() -> Tensor:
        return Tensor.from_numpy((1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32))

    layers = [
        LayerWeights(
            attention_norm=norm(),
            wq=matrix(n_heads * head_dim, dim),
            wk=matrix(n_kv_heads * head_dim, dim),
            wv=matrix(n_kv_heads * head_dim, dim),
            wo=matrix(dim, n_heads * head_dim),
            ffn_norm=norm(),
            w1=matrix(hidden, dim),
            w2=matrix(dim, hidden, std=0.1),
            w3=matrix(hidden, dim),
        )
        for _ in range(2)
    ]
    tok = matrix(VOCAB, dim, embedding_type, std=1.0)
    output = tok if tied else matrix(VOCAB, dim, embedding_type, std=0.5)
    weights = ModelWeights(tok, layers, norm(), output)
    dequantized = {id(t): Tensor.from_numpy(values) for t, values in pairs}

    def f32(t: Tensor) -> Tensor:
        return dequantized.get(id(t), t)

    reference_weights = ModelWeights(
        f32(tok),
        [LayerWeights(**{field: f32(getattr(lw, field)) for field in lw.__dataclass_fields__}) for lw in layers],
        weights.norm,
        f32(output),
    )
    args = ModelArgs(
        dim=dim,
        n_layers=2,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        vocab_size=VOCAB,
        hidden_dim=hidden,
        multiple_of=multiple_of,
        max_seq_len=16,
    )
    return LlamaTransformer(args, weights, mode), LlamaTransformer(args, reference_weights, "f32"), weights


def assert_logits_close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


@pytest.mark.parametrize("case", CASES)
def test_quantized_prefill_gives_the_logits_of_the_dequantized_model(case: str) -> None:
    model, reference, _ = build_models(case)
    got = model.Forward(model.NewInferenceContext(), tokens_tensor(TOKENS), 0)
    expected = reference.Forward(reference.NewInferenceContext(), tokens_tensor(TOKENS), 0)
    assert got.dtype is DT_F32
    assert_logits_close(got.data, expected.data)


@pytest.mark.parametrize("case", CASES)
def test_quantized_decode_gives_the_logits_of_the_dequantized_model(case: str) -> None:
    # one token at a time: every matrix goes through the GEMV kernel that reads the blocks in place
    model, reference, _ = build_models(case)
    ctx, ref_ctx = model.NewInferenceContext(), reference.NewInferenceContext()
    for pos, token in enumerate(TOKENS):
        got = model.Forward(ctx, tokens_tensor([token]), pos)
        expected = reference.Forward(ref_ctx, tokens_tensor([token]), pos)
        assert_logits_close(got.data, expected.data)


@pytest.mark.parametrize("mode", ["f32", "bf16"])
@pytest.mark.parametrize("case", ["SmolLM2-like Q4_1 + tied Q8_0", "F16"])
def test_quantized_and_f16_matrices_stay_as_stored_in_both_modes(case: str, mode: str) -> None:
    model, _, weights = build_models(case, mode)
    layer = model.layers[0]
    assert layer.attention.attn_wq is weights.layers[0].wq
    assert layer.feedForward.ffn_down is weights.layers[0].w2
    assert model.tok_embd is weights.tok_embeddings
    if weights.shared_classifier:
        assert model.output is model.tok_embd  # the tied classifier stays one tensor
        assert model.output.dtype is DataType.Q8_0
    else:
        assert model.output is weights.output and model.output.dtype is DT_F16


@pytest.mark.parametrize("case", ["SmolLM2-like Q4_1 + tied Q8_0", "F16"])
def test_quantized_model_in_bf16_mode_stays_close_to_f32_mode(case: str) -> None:
    f32_model, _, _ = build_models(case, "f32")
    bf16_model, _, _ = build_models(case, "bf16")
    f32_logits = f32_model.Forward(f32_model.NewInferenceContext(), tokens_tensor(TOKENS), 0).data
    bf16_logits = bf16_model.Forward(bf16_model.NewInferenceContext(), tokens_tensor(TOKENS), 0).data
    # bf16 activations (8 significant bits) against float32 ones: the tolerance of test_model_forward
    assert np.abs(bf16_logits - f32_logits).max() < 0.05 * np.abs(f32_logits).max()
