"""`RankingEvaluator`: every full-ranking metric at every cutoff, fed by one rank and one top-K per batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lightning_seqrec.metrics.beyond_accuracy import CatalogCoverage, Gini, PopularityHitRate
from lightning_seqrec.metrics.ranking import MRR, NDCG, HitRate, target_ranks


class RankingEvaluator(nn.Module):
    """HR, NDCG, MRR, coverage, Gini (and HR by popularity bucket if `item_counts` is given) at each k.

    A module so the metric states move with the model and are summed across processes on `compute()`.
    """

    def __init__(self, num_items: int, ks: Sequence[int] = (5, 10, 20), item_counts: Tensor | None = None):
        super().__init__()
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be a non-empty sequence of cutoffs >= 1, got {ks}.")
        if item_counts is not None and item_counts.shape != (num_items + 1,):
            raise ValueError(f"item_counts must have shape ({num_items + 1},) = [N+1], got {tuple(item_counts.shape)}.")
        self.num_items = num_items
        self.ks = tuple(sorted(set(ks)))
        self.rank_metrics = nn.ModuleDict(
            {f"{name}@{k}": cls(k) for k in self.ks for name, cls in (("hr", HitRate), ("ndcg", NDCG), ("mrr", MRR))}
        )
        self.exposure_metrics = nn.ModuleDict(
            {
                f"{name}@{k}": cls(k, num_items)
                for k in self.ks
                for name, cls in (("coverage", CatalogCoverage), ("gini", Gini))
            }
        )
        self.popularity_metrics = nn.ModuleDict(
            {} if item_counts is None else {str(k): PopularityHitRate(k, item_counts) for k in self.ks}
        )

    @torch.no_grad()
    def update(self, scores: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """Add a batch: `scores [B, N+1]` with masked entries already -inf, `target [B]` in 1..N. Returns the
        targets' 0-based ranks `[B]` and the top-max(k) item lists `[B, K]` (0 = none), for callbacks to reuse."""
        if scores.dim() != 2 or scores.shape[1] != self.num_items + 1:
            raise ValueError(f"scores must be [B, {self.num_items + 1}] (N + 1 columns), got {tuple(scores.shape)}.")
        ranks = target_ranks(scores, target)
        top_scores, top_index = scores[:, 1:].topk(min(self.ks[-1], self.num_items), dim=1)
        topk_items = torch.where(top_scores == float("-inf"), 0, top_index + 1)
        self.update_ranks(ranks, topk_items, target)
        return ranks, topk_items

    def update_ranks(self, ranks: Tensor, topk_items: Tensor, target: Tensor) -> None:
        """Add a batch given as the targets' 0-based `ranks [B]` (a miss: any rank >= max(k)), the top-max(k) item
        lists `[B, K]` (0 = none) and `target [B]`: what `update` derives from scores, or what a predictions file of
        another library says (`lightning_seqrec.external_eval`)."""
        for metric in self.rank_metrics.values():
            metric.update(ranks)
        for metric in self.exposure_metrics.values():
            metric.update(topk_items)
        for metric in self.popularity_metrics.values():
            metric.update(ranks, target)

    def compute(self) -> dict[str, Tensor]:
        """Scalar per metric, keyed like "hr@10", "gini@10", "hr_tail@10"; synced across processes."""
        out = {name: metric.compute() for name, metric in self.rank_metrics.items()}
        out |= {name: metric.compute() for name, metric in self.exposure_metrics.items()}
        for metric in self.popularity_metrics.values():
            out |= {f"hr_{bucket}@{metric.k}": value for bucket, value in metric.compute().items()}
        return out

    def reset(self) -> None:
        """Clear every metric's state, e.g. at the start of an evaluation epoch."""
        for metrics in (self.rank_metrics, self.exposure_metrics, self.popularity_metrics):
            for metric in metrics.values():
                metric.reset()
