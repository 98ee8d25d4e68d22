"""Cross-entropy over a large catalog without materialising the `[positions, items]` logit matrix.

Forward and backward walk the positions in chunks and recompute each chunk's logits in the backward pass:
memory is O(chunk x items) instead of O(positions x items), for one extra matmul. Use it when the dense
logits would not fit (long sequences, big batches, catalogs of 100k+ items).
"""

from __future__ import annotations

import torch


def _chunk_logits(hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Logits of one chunk, in at least float32 (bf16/fp16 inputs are upcast for the softmax)."""
    return (hidden @ weight.T).to(torch.promote_types(hidden.dtype, torch.float32))


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, target, chunk_size: int, smoothing: float):
        total = 0.0
        for start in range(0, len(hidden), chunk_size):
            logits = _chunk_logits(hidden[start : start + chunk_size], weight)
            picked = logits.gather(1, target[start : start + chunk_size, None]).squeeze(1)
            loss = torch.logsumexp(logits, dim=1) - (1 - smoothing) * picked
            if smoothing:
                loss = loss - smoothing * logits.mean(1)
            total = total + loss.sum()
        ctx.save_for_backward(hidden, weight, target)
        ctx.chunk_size, ctx.smoothing = chunk_size, smoothing
        return total / len(hidden)

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, target = ctx.saved_tensors
        scale = grad_out / len(hidden)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight)
        for start in range(0, len(hidden), ctx.chunk_size):
            h, t = hidden[start : start + ctx.chunk_size], target[start : start + ctx.chunk_size]
            grad = torch.softmax(_chunk_logits(h, weight), dim=1)
            grad.scatter_add_(1, t[:, None], grad.new_full((len(t), 1), -(1 - ctx.smoothing)))
            if ctx.smoothing:
                grad -= ctx.smoothing / weight.shape[0]
            grad = (grad * scale).to(hidden.dtype)
            grad_hidden[start : start + ctx.chunk_size] = grad @ weight
            grad_weight.addmm_(grad.T, h)
        return grad_hidden, grad_weight, None, None, None


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    chunk_size: int = 1024,
    smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean softmax cross-entropy of logits `hidden [M, d] @ weight [C, d].T` against `target [M]` (0..C-1);
    equal to `F.cross_entropy(hidden @ weight.T, target, label_smoothing=smoothing)`."""
    return _ChunkedCrossEntropy.apply(hidden, weight, target, chunk_size, smoothing)
