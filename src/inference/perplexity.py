"""Perplexity of a text under the model, in the spirit of llama.cpp's perplexity tool.

Protocol (the same one tools/train_default_model.py uses with PyTorch, so the numbers compare):
encode the whole text as one token stream (no BOS/EOS), cut it into consecutive chunks of `ctx`
tokens (a final partial chunk is dropped), put BOS before each chunk, run BOS+chunk through Forward in
one call, and average the negative log-likelihood (natural log) of every chunk token given the
tokens before it. Perplexity is exp(mean NLL).

The uncertainty is reported as llama.cpp's `llama-perplexity` does (`PPL = x +/- y`): the standard
error of the mean NLL over the scored tokens, sqrt((mean(nll^2) - mean(nll)^2) / (n - 1)), carried
to the perplexity to first order, d(exp(m)) = exp(m) dm, so +/- ppl * stderr(NLL).
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
    nll_stderr: float = float("nan")  # standard error of mean_nll (nan for a single token)

    @property
    def perplexity_stderr(self) -> float:
        """The perplexity's standard error, propagated from the NLL's: perplexity * nll_stderr."""
        return self.perplexity * self.nll_stderr

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")


def chunk_tokens(stream: Sequence[int], ctx: int, max_chunks: int | None = None) -> list[list[int]]:
    """Consecutive non-overlapping chunks of `ctx` tokens; the final partial chunk is dropped."""
    count = len(stream) // ctx
    if max_chunks is not None:
        count = min(count, max_chunks)
    return [list(stream[i * ctx : (i + 1) * ctx]) for i in range(count)]


def chunk_nll(logits: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Per row, -log softmax(logits[i])[targets[i]], in float64."""
    rows = logits.astype(np.float64)
    peak = rows.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(rows - peak).sum(axis=1)) + peak[:, 0]
    picked = rows[np.arange(len(targets)), np.asarray(targets)]
    return log_sum - picked


def chunk_nll_sum(logits: np.ndarray, targets: Sequence[int]) -> float:
    """Sum over rows of -log softmax(logits[i])[targets[i]], in float64 for a stable sum."""
    return float(chunk_nll(logits, targets).sum())


def nll_standard_error(total: float, total_sq: float, count: int) -> float:
    """Standard error of the mean of `count` values with sum `total` and sum of squares `total_sq`."""
    if count < 2:
        return float("nan")
    mean = total / count
    variance = max(0.0, total_sq / count - mean * mean)
    return float(np.sqrt(variance / (count - 1)))


def perplexity(
    model: LlamaTransformer,
    stream: Sequence[int],
    bos_id: int,
    ctx: int | None = None,
    max_chunks: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    running: Callable[[int, int, float], None] | None = None,
) -> PerplexityResult:
    """Run the protocol above over a token stream. `ctx` defaults to max_seq_len - 1.

    `progress(done, total)` and `running(done, total, perplexity so far)` are called after each chunk."""
    ctx = ctx or model.args.max_seq_len - 1
    if not 1 <= ctx <= model.args.max_seq_len - 1:
        raise LlamaError(f"perplexity: ctx {ctx} must be between 1 and max_seq_len - 1 ({model.args.max_seq_len - 1})")
    chunks = chunk_tokens(stream, ctx, max_chunks)
    if not chunks:
        raise LlamaError(f"perplexity: the text has {len(stream)} tokens, fewer than one chunk of {ctx}")
    total = total_sq = 0.0
    start = time.perf_counter()
    for i, chunk in enumerate(chunks):
        ctxt = model.NewInferenceContext(ctx + 1)
        logits = model.Forward(ctxt, tokens_tensor([bos_id] + chunk), 0).data
        # row j predicts token j+1 of BOS+chunk, i.e. chunk[j]; the last row predicts past the chunk
        nll = chunk_nll(logits[:-1], chunk)
        total += float(nll.sum())
        total_sq += float((nll * nll).sum())
        if progress is not None:
            progress(i + 1, len(chunks))
        if running is not None:
            running(i + 1, len(chunks), float(np.exp(total / ((i + 1) * ctx))))
    seconds = time.perf_counter() - start
    n = len(chunks) * ctx
    mean = total / n
    return PerplexityResult(len(chunks), ctx, n, mean, float(np.exp(mean)), seconds, nll_standard_error(total, total_sq, n))
