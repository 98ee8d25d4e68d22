"""Full-ranking evaluation metrics (padding column 0 never ranked, pessimistic ties) and their evaluator."""

from lightning_seqrec.metrics.beyond_accuracy import (
    CatalogCoverage,
    Gini,
    PopularityHitRate,
    popularity_buckets,
)
from lightning_seqrec.metrics.evaluator import RankingEvaluator
from lightning_seqrec.metrics.ranking import MRR, NDCG, NOT_RANKED, HitRate, RankCutoffMetric, target_ranks

__all__ = [
    "MRR",
    "NDCG",
    "NOT_RANKED",
    "CatalogCoverage",
    "Gini",
    "HitRate",
    "PopularityHitRate",
    "RankCutoffMetric",
    "RankingEvaluator",
    "popularity_buckets",
    "target_ranks",
]
