"""LlamaTransformer: token ids in, float32 logits out. The whole forward pass, stage by stage.

    Forward(infContext, inputTokens, startPos) -> logits [n_tokens, vocab] F32
    Forward(infContext, inputTokens, startPos, lastRowOnly=True) -> logits [1, vocab] F32 (generation)

  STAGE 04  input embedding: one row of tok_embeddings per token
            + the rotary table freqs_cis sliced at startPos, and the causal mask
  STAGE 05  for each transformer block (06-18 happen inside, see llamatransformerblock.py)
  STAGE 19  output norm, output linear transformation, ToFloat32

Stages 01-03 (tokenization, the tokens tensor, the generation loop) belong to the inference engine.
"""

from __future__ import annotations

import math

import numpy as np

from ..common import GLogger, SequenceLengthError, ShapeError
from ..common.memory import check_allocation
from ..ml import (
    DT_BF16,
    DT_F16,
    DT_F32,
    DT_INT64,
    Embedding,
    Full,
    LinearTransformation,
    Slice,
    Tensor,
    ToBFloat16,
    ToFloat32,
    TriangularUpper,
)
from .inferencecontext import InferenceContext, compute_dtype, sequence_length_advice
from .llamatransformerblock import LlamaTransformerBlock
from .modelargs import ModelArgs
from .rmsnorm import RMSNorm
from .rope import ROPE_PAIRINGS, precomputeFreqsCis
from .weights import LayerWeights, ModelWeights


def _weights_for_mode(weights: ModelWeights, mode: str) -> ModelWeights:
    """bf16 mode needs bf16 weights (float32 files, such as llama2.c's, are rounded once: a copy).
    f32 mode keeps matrices as stored (bf16 is widened inside the kernels) and widens only the small
    norm vectors, so element-wise multiplies see one dtype. F16 and block-quantized matrices (GGUF
    files) stay as stored in both modes: their kernels read the blocks with either activation dtype,
    and rounding them to bf16 would change the model."""
    if mode == "bf16":
        convert = ToBFloat16

        def convert_matrix(t: Tensor) -> Tensor:
            return t if t.dtype is DT_F16 or t.dtype.is_quantized else ToBFloat16(t)

    else:
        convert = ToFloat32
        convert_matrix = lambda t: t  # noqa: E731 - weights stay as stored

    def layer(lw: LayerWeights) -> LayerWeights:
        return LayerWeights(
            attention_norm=convert(lw.attention_norm),
            wq=convert_matrix(lw.wq),
            wk=convert_matrix(lw.wk),
            wv=convert_matrix(lw.wv),
            wo=convert_matrix(lw.wo),
            ffn_norm=convert(lw.ffn_norm),
            w1=convert_matrix(lw.w1),
            w2=convert_matrix(lw.w2),
            w3=convert_matrix(lw.w3),
        )

    tok = convert_matrix(weights.tok_embeddings)
    output = tok if weights.shared_classifier else convert_matrix(weights.output)
    return ModelWeights(
        tok_embeddings=tok, layers=[layer(lw) for lw in weights.layers], norm=convert(weights.norm), output=output,
        rope_pairing=weights.rope_pairing,
    )


def _check_model_memory(args: ModelArgs, weights: ModelWeights, mode: str) -> None:
    """What building the model allocates, checked before it is: the bf16 copies of float32 weights
    (bf16 mode). The RoPE table is sized by the sequence length a context asks for (_check_rope_memory)."""
    if mode == "bf16":
        converted = sum(
            t.numel() * DT_BF16.itemsize
            for _, t in weights.named_tensors()
            if t.dtype is not DT_BF16 and t.dtype is not DT_F16 and not t.dtype.is_quantized
        )
        check_allocation(
            "the bf16 copy of the float32 weights",
            converted,
            "bf16 compute rounds the file's float32 weights once, 2 bytes per weight",
            "run in f32 mode, which uses the weights as stored",
        )


def _check_rope_memory(args: ModelArgs, positions: int) -> None:
    """The RoPE table for `positions` positions, checked before it is built."""
    # complex64 table (8 bytes) plus its float32 angle and magnitude temporaries (4 + 4 bytes)
    per_position = (args.head_dim // 2) * 16
    check_allocation(
        "the RoPE table freqs_cis",
        positions * per_position,
        f"{positions} positions x head_dim/2 {args.head_dim // 2} complex64 entries, with temporaries",
        lambda available: sequence_length_advice(available // per_position, args.max_seq_len),
    )


class LlamaTransformer:
    def __init__(self, args: ModelArgs, weights: ModelWeights, mode: str = "bf16") -> None:
        compute_dtype(mode)  # validates the mode name
        _check_model_memory(args, weights, mode)
        self.args = args
        self.mode = mode
        self.dtype = compute_dtype(mode)
        w = _weights_for_mode(weights, mode)
        self.tok_embd = w.tok_embeddings
        if w.rope_pairing not in ROPE_PAIRINGS:
            raise ShapeError(f"LlamaTransformer: unknown RoPE pairing {w.rope_pairing!r} (expected one of {', '.join(ROPE_PAIRINGS)})")
        self.rope_pairing = w.rope_pairing
        self.layers = [LlamaTransformerBlock(i, args, lw, w.rope_pairing) for i, lw in enumerate(w.layers)]
        self.output_norm = RMSNorm(args.norm_eps, w.norm, "LlamaTransformer.output_norm")
        self.output = w.output
        # The RoPE table, one row per position a context can hold: built by the first context (and
        # rebuilt for a longer one), not for max_seq_len up front. A model that says 131072
        # positions (Llama 3.2) but runs with a sequence length of 4096 builds 4096 rows. Each row
        # depends on its position alone, so the numbers are the same whatever the table's length.
        self.freqs_cis: Tensor | None = None

    def NewInferenceContext(self, sequence_length: int | None = None) -> InferenceContext:
        sequence_length = sequence_length or self.args.max_seq_len
        if 1 <= sequence_length <= self.args.max_seq_len:
            self.prepareFreqsCis(sequence_length)  # (a length out of range is InferenceContext's error)
        return InferenceContext(self.args, sequence_length, self.mode)

    def prepareFreqsCis(self, positions: int) -> Tensor:
        """The RoPE table with at least `positions` rows, built (after a memory check) if it is shorter."""
        if self.freqs_cis is None or self.freqs_cis.shape[0] < positions:
            _check_rope_memory(self.args, positions)
            self.freqs_cis = precomputeFreqsCis(self.args.head_dim, positions, self.args.rope_theta, self.args.rope_scaling)
        return self.freqs_cis

    # ---- Forward --------------------------------------------------------------------------------
    def Forward(self, infContext: InferenceContext, inputTokens: Tensor, startPos: int, lastRowOnly: bool = False) -> Tensor:
        sequenceLength = inputTokens.shape[0] if inputTokens.ndim == 1 else -1
        if sequenceLength < 1:
            raise ShapeError(f"Forward: inputTokens must be a non-empty 1-D tensor, got shape {list(inputTokens.shape)}")
        if infContext.mode != self.mode:
            raise ShapeError(f"Forward: the context was made for mode {infContext.mode}, the model runs in {self.mode}")
        if startPos < 0 or startPos + sequenceLength > infContext.sequence_length:
            raise SequenceLengthError(
                f"Forward: positions {startPos}..{startPos + sequenceLength - 1} go past the sequence length "
                f"{infContext.sequence_length} (the KV cache size)"
            )
        GLogger.DebugPrintf("LlamaTransformer.Forward started for inputTokens %s, startPos: %d, mode: %s", inputTokens, startPos, self.mode)
        currentTensor, freqs_cis, mask = self.prepare(infContext, inputTokens, startPos)

        GLogger.DebugStage(5, "Forward pass through each transformer block")
        for layerIdx, layer in enumerate(self.layers):
            GLogger.DebugSeparator("Layer %d", layerIdx)
            GLogger.DebugPrintf("Calling LlamaTransformerBlock.Forward for layer %d of %d, currentTensor %s", layerIdx + 1, len(self.layers), currentTensor)
            currentTensor = layer.Forward(infContext, currentTensor, startPos, freqs_cis, mask)

        GLogger.DebugStage(19, "Forward pass through the output")
        if lastRowOnly and sequenceLength > 1:
            # Generation needs only the prediction after the last token: the output matrix, the
            # largest of the model, then multiplies one row instead of sequenceLength rows.
            GLogger.DebugPrintf("Slicing the last row of currentTensor %s (only its logits are needed) -> tensor currentTensor", currentTensor)
            currentTensor = Slice(currentTensor, 0, sequenceLength - 1, sequenceLength)
        GLogger.DebugPrintf(
            "Calling RMSNorm for currentTensor %s (result of all transformer blocks) and LlamaTransformer.output_norm weights %s -> tensor currentTensor",
            currentTensor,
            self.output_norm.weights,
        )
        currentTensor = self.output_norm.Forward(currentTensor)
        self._record(infContext, "norm", currentTensor)
        GLogger.DebugPrintf("Calling LinearTransformation for currentTensor %s and LlamaTransformer.output weights %s -> tensor output", currentTensor, self.output)
        output = LinearTransformation(currentTensor, self.output)
        GLogger.DebugPrintf("Converting output tensor %s to float32 -> tensor logits", output)
        logits = ToFloat32(output)
        self._record(infContext, "logits", logits)
        GLogger.DebugPrintf("LlamaTransformer.Forward finished -> logits %s", logits)
        return logits

    def prepare(self, infContext: InferenceContext, inputTokens: Tensor, startPos: int) -> tuple[Tensor, Tensor, Tensor | None]:
        sequenceLength = inputTokens.shape[0]
        GLogger.DebugStage(4, "Creating the input tensor")
        GLogger.DebugPrintf("Calling Embedding for inputTokens %s and LlamaTransformer.tok_embd weights %s -> tensor x", inputTokens, self.tok_embd)
        x = Embedding(self.tok_embd, inputTokens)
        if x.dtype is not self.dtype:
            x = ToFloat32(x) if self.dtype is DT_F32 else ToBFloat16(x)
        self._record(infContext, "embedding", x)

        table = self.prepareFreqsCis(infContext.sequence_length)  # Forward checked the positions fit
        GLogger.DebugPrintf("Slicing freqs_cis %s at positions %d..%d -> tensor freqs_cis", table, startPos, startPos + sequenceLength - 1)
        freqs_cis = Slice(table, 0, startPos, startPos + sequenceLength)
        self._record(infContext, "freqs_cis", freqs_cis)

        mask = None
        if sequenceLength > 1:
            # Token i may attend to every cached position and to new positions up to itself.
            mask = TriangularUpper(Full([sequenceLength, startPos + sequenceLength], -math.inf, self.dtype), startPos + 1)
            GLogger.DebugPrintf("Created the causal mask %s (-inf above diagonal %d)", mask, startPos + 1)
            self._record(infContext, "mask", mask)
        return x, freqs_cis, mask

    def _record(self, infContext: InferenceContext, name: str, t: Tensor) -> None:
        if infContext.recorder is not None:
            infContext.recorder[name] = t.numpy().copy()


def tokens_tensor(tokens: list[int]) -> Tensor:
    """A 1-D INT64 tensor of token ids (STAGE 02: creating the tokens tensor)."""
    return Tensor.wrap(np.asarray(tokens, dtype=np.int64).reshape(-1), DT_INT64)


