"""Beyond-accuracy metrics: catalog coverage and Gini of exposure in top-K lists, HR by popularity bucket."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from lightning_seqrec.metrics.ranking import check_ranks, require_users

BUCKETS: tuple[str, str, str] = ("head", "mid", "tail")
"""Popularity buckets, in the order of their ids 0, 1, 2."""


class ExposureMetric(Metric):
    """Counts how often each real item appears in users' top-k lists; subclasses summarise the counts."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, k: int, num_items: int, **kwargs: Any):
        super().__init__(**kwargs)
        if k < 1 or num_items < 1:
            raise ValueError(f"{type(self).__name__} needs k >= 1 and num_items >= 1, got {k} and {num_items}.")
        self.k = k
        self.num_items = num_items
        self.add_state("counts", torch.zeros(num_items + 1, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("users", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, topk_items: Tensor) -> None:
        """Add `topk_items [B, K]` (columns in rank order, 0 = no recommendation); only the first k count."""
        if topk_items.dim() != 2 or topk_items.dtype.is_floating_point or topk_items.dtype == torch.bool:
            raise ValueError(f"topk_items must be a 2-D integer tensor [B, K], got {tuple(topk_items.shape)}.")
        if ((topk_items < 0) | (topk_items > self.num_items)).any():
            raise ValueError(f"topk_items must hold item indices in 0..{self.num_items} (0 = none).")
        self.counts += torch.bincount(topk_items[:, : self.k].flatten().long(), minlength=self.num_items + 1)
        self.users += topk_items.shape[0]


class CatalogCoverage(ExposureMetric):
    """Fraction of the N real items recommended to at least one user in a top-k list."""

    higher_is_better = True

    def compute(self) -> Tensor:
        """Covered items / N; RuntimeError if no user was seen."""
        require_users(self, self.users)
        return (self.counts[1:] > 0).sum().to(torch.float64) / self.num_items


class Gini(ExposureMetric):
    """Gini coefficient of exposure over all N real items (zero-count ones included): 0 = equal exposure.

    G = sum_i (2i - N - 1) x_(i) / (N * sum x) over the ascending counts x_(1..N); (N-1)/N if one item
    gets every slot. Computed in integers and divided once, so it is exact and order-independent. NaN
    when users were seen but no item was recommended at all (every top-k entry was 0).
    """

    higher_is_better = False

    def compute(self) -> Tensor:
        """Gini of the per-item recommendation counts; RuntimeError if no user was seen."""
        require_users(self, self.users)
        return gini_coefficient(self.counts[1:])


def gini_coefficient(counts: Tensor) -> Tensor:
    """Gini coefficient (float64) of the non-negative integer `counts` of N items, zeros included: 0 when all are
    equal, (N-1)/N when one item has everything, NaN when all are 0. Exact: integer sums divided once."""
    x = counts.sort().values
    n = x.numel()
    weights = 2 * torch.arange(1, n + 1, device=x.device) - n - 1
    return (weights * x).sum().to(torch.float64) / (n * x.sum()).to(torch.float64)


def popularity_buckets(item_counts: Tensor, head: float = 0.2, tail: float = 0.5) -> Tensor:
    """Bucket id (0 head, 1 mid, 2 tail) of every item index; entry 0 (padding) is -1.

    Items 1..N are ordered by training count, most popular first, ties broken by lower index first; the
    first floor(head * N) are head, the last floor(tail * N) are tail, the rest mid.
    """
    if item_counts.dim() != 1 or item_counts.numel() < 2:
        raise ValueError(f"item_counts must be a 1-D tensor [N+1] (index 0 = padding), got {tuple(item_counts.shape)}.")
    if not (0.0 <= head and 0.0 <= tail and head + tail <= 1.0):
        raise ValueError(f"head and tail must be fractions with head + tail <= 1, got {head} and {tail}.")
    if (item_counts[1:] < 0).any():
        raise ValueError("item_counts must be non-negative.")
    n = item_counts.numel() - 1
    n_head, n_tail = math.floor(head * n + 1e-9), math.floor(tail * n + 1e-9)
    order = torch.argsort(item_counts[1:], descending=True, stable=True) + 1
    buckets = torch.ones(n + 1, dtype=torch.long)
    buckets[0] = -1
    buckets[order[:n_head]] = 0
    buckets[order[n - n_tail :]] = 2
    return buckets


class PopularityHitRate(Metric):
    """HR@k separately for users whose target is a head, mid or tail item by training popularity.

    `compute()` returns {"head": hr, "mid": hr, "tail": hr}; a bucket no evaluated user's target falls in
    is NaN (no evidence either way), and computing with no user at all raises RuntimeError.
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, k: int, item_counts: Tensor, head: float = 0.2, tail: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        if k < 1:
            raise ValueError(f"PopularityHitRate needs a cutoff k >= 1, got {k}.")
        self.k = k
        self.register_buffer("buckets", popularity_buckets(item_counts.detach().cpu(), head, tail), persistent=False)
        self.add_state("hits", torch.zeros(len(BUCKETS), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("users", torch.zeros(len(BUCKETS), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranks: Tensor, target: Tensor) -> None:
        """Add users with 0-based target ranks `ranks [B]` (from `target_ranks`) and targets `target [B]`."""
        check_ranks(ranks)
        if target.shape != ranks.shape:
            raise ValueError(f"target {tuple(target.shape)} must match ranks {tuple(ranks.shape)}.")
        num_items = self.buckets.numel() - 1
        if ((target < 1) | (target > num_items)).any():
            raise ValueError(f"target must hold item indices in 1..{num_items} (0 is padding).")
        bucket = self.buckets[target.long()]
        self.hits += torch.bincount(bucket[ranks < self.k], minlength=len(BUCKETS))
        self.users += torch.bincount(bucket, minlength=len(BUCKETS))

    def compute(self) -> dict[str, Tensor]:
        """HR@k per bucket (NaN for an empty bucket); RuntimeError if no user was seen."""
        require_users(self, self.users.sum())
        hr = self.hits.to(torch.float64) / self.users.to(torch.float64)
        return {name: hr[i] for i, name in enumerate(BUCKETS)}
