"""Full-catalog target ranks and the per-user accuracy metrics computed from them (HR, NDCG, MRR)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

NOT_RANKED: int = torch.iinfo(torch.long).max
"""Rank given to a target whose own score is -inf (masked, e.g. already seen): a miss at every cutoff."""


def check_scores_and_target(scores: Tensor, target: Tensor) -> None:
    """Raise ValueError unless `scores` is [B, N+1] without NaN and `target` is [B] with indices in 1..N."""
    if scores.dim() != 2 or target.dim() != 1 or scores.shape[0] != target.shape[0]:
        raise ValueError(
            f"Expected scores [B, N+1] and target [B], got {tuple(scores.shape)} and {tuple(target.shape)}."
        )
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer item indices, got dtype {target.dtype}.")
    bad_target = (target < 1) | (target >= scores.shape[1])
    if bad_target.any():
        raise ValueError(
            f"target must hold item indices in 1..{scores.shape[1] - 1} (0 is padding); "
            f"rows {bad_target.nonzero().flatten().tolist()} do not."
        )
    nan_rows = scores.isnan().any(dim=1)
    if nan_rows.any():
        raise ValueError(
            f"scores contain NaN in rows {nan_rows.nonzero().flatten().tolist()}; the model diverged or "
            "a mask was applied with NaN instead of -inf."
        )


def target_ranks(scores: Tensor, target: Tensor) -> Tensor:
    """0-based rank of each target among the real items, pessimistic under ties; `NOT_RANKED` if masked.

    The rank is the number of OTHER real items scoring >= the target, so a model scoring every item the
    same gets no credit. Column 0 (padding) is never counted. One [B, N] comparison per batch.
    """
    check_scores_and_target(scores, target)
    target = target.long()
    target_score = scores.gather(1, target.unsqueeze(1))
    ranks = (scores[:, 1:] >= target_score).sum(dim=1) - 1
    return ranks.masked_fill(target_score.squeeze(1) == float("-inf"), NOT_RANKED)


def require_users(metric: Metric, users: Tensor) -> None:
    """Raise RuntimeError when `metric` is computed without a single user seen (across all processes)."""
    if users.item() == 0:
        raise RuntimeError(
            f"{type(metric).__name__}.compute() was called before any user was evaluated; "
            "call update() with at least one batch first."
        )


def check_ranks(ranks: Tensor) -> None:
    """Raise ValueError unless `ranks` is a 1-D integer tensor as returned by `target_ranks`."""
    if ranks.dim() != 1 or ranks.dtype.is_floating_point or ranks.dtype == torch.bool:
        raise ValueError(
            f"ranks must be a 1-D integer tensor from target_ranks(), got {ranks.dtype} {tuple(ranks.shape)}."
        )


class RankCutoffMetric(Metric):
    """Mean over users of a gain that depends only on the target's rank, and is 0 when rank >= k."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, k: int, **kwargs: Any):
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"{type(self).__name__} needs a cutoff k >= 1, got {k}.")
        self.k = k
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("users", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> nn.Module:
        """Move the float64 sum with the module but keep its dtype, e.g. under Lightning's "bf16-true"."""
        this = super()._apply(fn, exclude_state=(*exclude_state, "total"))
        this._defaults["total"] = this._defaults["total"].to(this.device)
        this.total = this.total.to(this.device)
        return this

    @abstractmethod
    def _gain(self, ranks: Tensor) -> Tensor:
        """Gain of a hit at each 0-based rank (float64, every rank < k)."""

    def update(self, ranks: Tensor) -> None:
        """Add the users whose 0-based target ranks are `ranks [B]` (from `target_ranks`)."""
        check_ranks(ranks)
        hit = ranks < self.k
        gains = self._gain(ranks.to(torch.float64))
        self.total += torch.where(hit, gains, 0.0).sum()
        self.users += ranks.numel()

    def compute(self) -> Tensor:
        """Mean gain over all users seen; RuntimeError if none were."""
        require_users(self, self.users)
        return self.total / self.users


class HitRate(RankCutoffMetric):
    """HR@k: the fraction of users whose target is among the top k."""

    def _gain(self, ranks: Tensor) -> Tensor:
        return torch.ones_like(ranks)


class NDCG(RankCutoffMetric):
    """NDCG@k with one relevant item (IDCG = 1): 1 / log2(rank + 2) for a hit."""

    def _gain(self, ranks: Tensor) -> Tensor:
        return 1.0 / torch.log2(ranks + 2.0)


class MRR(RankCutoffMetric):
    """MRR@k: 1 / (rank + 1) for a hit, 0 otherwise."""

    def _gain(self, ranks: Tensor) -> Tensor:
        return 1.0 / (ranks + 1.0)
