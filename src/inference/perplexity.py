"""Perplexity of a text under the model, in the spirit of llama.cpp's perplexity tool.

Protocol (the same one tools/train_default_model.py uses with PyTorch, so the numbers compare):
encode the whole text as one token stream (no BOS/EOS), cut it into consecutive chunks of `ctx`
tokens (a final partial chunk is dropped), put BOS before each chunk, run BOS+chunk through Forward in
one call, and average the negative log-likelihood (natural log) of every chunk token given the
tokens before it. Perplexity is exp(mean NLL).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..common import LlamaError
from ..common.files import read_text_file
from ..model import LlamaTransformer, tokens_tensor

# The text is read whole and tokenized whole. wikitext-2's test split is 1.3 MB, the whole of
# wikitext-103 about 540 MB; 256 MiB refuses /dev/zero-like inputs and keeps tokenizing in minutes.
MAX_TEXT_BYTES = 256 << 20


def read_text(path: str | Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a regular file of at most `max_bytes` bytes; anything else is a LlamaError
    saying what the path is (missing, a FIFO, a device, ...) or where the UTF-8 breaks."""
    return read_text_file(path, max_bytes, lambda p, m: LlamaError(f"{p}: {m}"), "text file")


@dataclass
class PerplexityResult:
    chunks: int
    ctx: int
    tokens: int  # tokens predicted (chunks * ctx)
    mean_nll: float
    perplexity: float
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")


def chunk_tokens(stream: Sequence[int], ctx: int, max_chunks: int | None = None) -> list[list[int]]:
    """Consecutive non-overlapping chunks of `ctx` tokens; the final partial chunk is dropped."""
    count = len(stream) // ctx
    if max_chunks is not None:
        count = min(count, max_chunks)
    return [list(stream[i * ctx : (i + 1) * ctx]) for i in range(count)]


def chunk_nll_sum(logits: np.ndarray, targets: Sequence[int]) -> float:
    """Sum over rows of -log softmax(logits[i])[targets[i]], in float64 for a stable sum."""
    rows = logits.astype(np.float64)
    peak = rows.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(rows - peak).sum(axis=1)) + peak[:, 0]
    picked = rows[np.arange(len(targets)), np.asarray(targets)]
    return float((log_sum - picked).sum())


def perplexity(
    model: LlamaTransformer,
    stream: Sequence[int],
    bos_id: int,
    ctx: int | None = None,
    max_chunks: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PerplexityResult:
    """Run the protocol above over a token stream. `ctx` defaults to max_seq_len - 1."""
    ctx = ctx or model.args.max_seq_len - 1
    if not 1 <= ctx <= model.args.max_seq_len - 1:
        raise LlamaError(f"perplexity: ctx {ctx} must be between 1 and max_seq_len - 1 ({model.args.max_seq_len - 1})")
    chunks = chunk_tokens(stream, ctx, max_chunks)
    if not chunks:
        raise LlamaError(f"perplexity: the text has {len(stream)} tokens, fewer than one chunk of {ctx}")
    total = 0.0
    start = time.perf_counter()
    for i, chunk in enumerate(chunks):
        ctxt = model.NewInferenceContext(ctx + 1)
        logits = model.Forward(ctxt, tokens_tensor([bos_id] + chunk), 0).data
        # row j predicts token j+1 of BOS+chunk, i.e. chunk[j]; the last row predicts past the chunk
        total += chunk_nll_sum(logits[:-1], chunk)
        if progress is not None:
            progress(i + 1, len(chunks))
    seconds = time.perf_counter() - start
    n = len(chunks) * ctx
    mean = total / n
    return PerplexityResult(len(chunks), ctx, n, mean, float(np.exp(mean)), seconds)
