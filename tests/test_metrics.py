"""Metrics against hand-computed values and a slow pure-Python reference."""

from __future__ import annotations

import math

import pytest
import torch

from lightning_seqrec.metrics import (
    MRR,
    NDCG,
    NOT_RANKED,
    CatalogCoverage,
    Gini,
    HitRate,
    PopularityHitRate,
    RankingEvaluator,
    popularity_buckets,
    target_ranks,
)

INF = float("inf")
NO_UPDATE_WARNING = "ignore:.*was called before the ``update`` method"


def _compute(metric, *updates):
    """Feed each update (a tuple of arguments) to `metric` and return its compute()."""
    for args in updates:
        metric.update(*args)
    return metric.compute()


# ---------------------------------------------------------------- target_ranks


def test_ranks_are_pessimistic_under_ties():
    scores = torch.tensor(
        [
            [-INF, 0.5, 0.9, 0.1, 0.9, 0.3],  # target 2 (0.9) ties with item 4 -> 1 other >= -> rank 1
            [-INF, 1.0, 1.0, 1.0, 1.0, 1.0],  # every item equal: 4 others >= target 3 -> rank 4 (no credit)
            [-INF, 0.1, 0.2, 0.3, 0.4, 0.5],  # target 5 is the unique best -> rank 0
        ]
    )
    assert target_ranks(scores, torch.tensor([2, 3, 5])).tolist() == [1, 4, 0]


def test_masked_target_is_not_ranked():
    # target 2 was masked (-inf, e.g. already seen) -> the NOT_RANKED sentinel, not rank 4 or 5.
    scores = torch.tensor([[-INF, 0.2, -INF, 0.4, 0.1, 0.3]])
    ranks = target_ranks(scores, torch.tensor([2]))
    assert ranks.tolist() == [NOT_RANKED]
    assert ranks.dtype == torch.long


def test_masked_other_items_do_not_count():
    # items 1, 3, 4, 5 are -inf, so target 2 (0.2) has no competitor -> rank 0.
    scores = torch.tensor([[-INF, -INF, 0.2, -INF, -INF, -INF]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [0]


def test_padding_column_is_never_ranked_even_if_unmasked():
    # the caller forgot to mask column 0 (score 100); target 5 (0.5) is still the best real item -> rank 0.
    scores = torch.tensor([[100.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
    assert target_ranks(scores, torch.tensor([5])).tolist() == [0]


def test_nan_raises_naming_the_rows():
    scores = torch.tensor(
        [
            [math.nan, 0.1, 0.2],  # NaN in the padding column still counts as a broken row
            [-INF, 0.1, 0.2],
            [-INF, 0.3, math.nan],
        ]
    )
    with pytest.raises(ValueError, match=r"NaN in rows \[0, 2\]"):
        target_ranks(scores, torch.tensor([1, 1, 1]))


@pytest.mark.parametrize("target", [[0], [3]])
def test_target_outside_the_catalog_raises(target):
    # N = 2: 0 is padding and 3 does not exist.
    with pytest.raises(ValueError, match=r"1\.\.2"):
        target_ranks(torch.tensor([[-INF, 0.1, 0.2]]), torch.tensor(target))


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="Expected scores"):
        target_ranks(torch.zeros(2, 4), torch.tensor([1]))


# ---------------------------------------------------------------- HR / NDCG / MRR

RANKS = torch.tensor([0, 1, 4, NOT_RANKED])


@pytest.mark.parametrize(
    ("cls", "k", "expected"),
    [
        (HitRate, 1, 0.25),  # only rank 0 -> 1/4
        (HitRate, 2, 0.5),  # ranks 0, 1 -> 2/4
        (HitRate, 5, 0.75),  # ranks 0, 1, 4 -> 3/4
        (HitRate, 10**9, 0.75),  # NOT_RANKED is a miss even at a huge k -> 3/4
        (NDCG, 1, 0.25),  # 1/log2(2) / 4
        (NDCG, 2, 0.40773243839286435),  # (1 + 1/log2(3)) / 4 = (1 + 0.6309297535714575) / 4
        (NDCG, 5, 0.5044456402014998),  # (1 + 0.6309297535714575 + 1/log2(6) = 0.38685280723454163) / 4
        (MRR, 1, 0.25),  # 1/1 / 4
        (MRR, 2, 0.375),  # (1 + 1/2) / 4
        (MRR, 5, 0.425),  # (1 + 1/2 + 1/5) / 4
        (MRR, 10**9, 0.425),  # NOT_RANKED adds 0
    ],
)
def test_rank_metrics_hand_computed(cls, k, expected):
    value = _compute(cls(k), (RANKS,))
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (HitRate, 2 / 3),  # ranks 0, 3 hit at k=5, 9 misses -> 2/3
        (NDCG, 0.47689218602446435),  # (1 + 1/log2(5) = 0.43067655807339306) / 3
        (MRR, 0.4166666666666667),  # (1 + 1/4) / 3
    ],
)
def test_rank_metrics_accumulate_over_batches(cls, expected):
    value = _compute(cls(5), (torch.tensor([0]),), (torch.tensor([3, 9]),))
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_rank_metric_reset_clears_state():
    metric = HitRate(1)
    metric.update(torch.tensor([5]))
    metric.reset()
    assert _compute(metric, (torch.tensor([0]),)).item() == 1.0  # only the post-reset user (a hit) counts


@pytest.mark.filterwarnings(NO_UPDATE_WARNING)
@pytest.mark.parametrize(
    "metric",
    [HitRate(5), NDCG(5), MRR(5), CatalogCoverage(5, 3), Gini(5, 3), PopularityHitRate(5, torch.ones(4))],
    ids=lambda metric: type(metric).__name__,
)
def test_compute_without_users_raises(metric):
    with pytest.raises(RuntimeError, match="before any user was evaluated"):
        metric.compute()


@pytest.mark.parametrize("cls", [HitRate, NDCG, MRR])
def test_invalid_k_raises(cls):
    with pytest.raises(ValueError, match="k >= 1"):
        cls(0)


def test_float_ranks_are_rejected():
    with pytest.raises(ValueError, match="integer"):
        HitRate(5).update(torch.tensor([0.0, 1.0]))


# ---------------------------------------------------------------- coverage / Gini


def test_coverage_ignores_zero_entries():
    # items {1, 3} appear (0 = no recommendation is ignored) -> 2 of N=5 -> 0.4
    topk = torch.tensor([[1, 0], [0, 0], [3, 1]])
    assert _compute(CatalogCoverage(2, 5), (topk,)).item() == pytest.approx(0.4, rel=1e-12)


def test_coverage_uses_only_the_first_k_columns():
    # k=1 keeps items 2 and 5 (4 and 1 are at position 2) -> 2/5
    topk = torch.tensor([[2, 4], [5, 1]])
    assert _compute(CatalogCoverage(1, 5), (topk,)).item() == pytest.approx(0.4, rel=1e-12)


def test_coverage_accumulates_over_batches():
    # batch 1 covers {1, 2}, batch 2 covers {2, 4} -> {1, 2, 4} of N=4 -> 0.75
    value = _compute(CatalogCoverage(2, 4), (torch.tensor([[1, 2]]),), (torch.tensor([[2, 4]]),))
    assert value.item() == pytest.approx(0.75, rel=1e-12)


@pytest.mark.parametrize(
    ("k", "topk", "expected"),
    [
        # every item once: counts [1, 1, 1, 1] -> perfectly equal -> 0
        (2, [[1, 2], [3, 4]], 0.0),
        # item 2 gets every slot: ascending [0, 0, 0, 3], weights [-3, -1, 1, 3] -> 9/(4*3) = (N-1)/N
        (1, [[2], [2], [2]], 0.75),
        # padding ignored: counts item1=4, item2=1 -> ascending [0, 0, 1, 4] -> (1*1 + 3*4)/(4*5) = 13/20
        (2, [[1, 0], [1, 0], [1, 2], [1, 0]], 0.65),
    ],
)
def test_gini_hand_computed(k, topk, expected):
    assert _compute(Gini(k, 4), (torch.tensor(topk),)).item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_gini_accumulates_over_batches():
    # counts item1=3, item2=1 over N=4 -> ascending [0, 0, 1, 3] -> (1*1 + 3*3)/(4*4) = 10/16
    value = _compute(Gini(1, 4), (torch.tensor([[1], [1]]),), (torch.tensor([[1], [2]]),))
    assert value.item() == pytest.approx(0.625, rel=1e-12)


def test_gini_is_nan_when_nothing_was_recommended():
    # users were seen, but every slot was empty: exposure inequality is undefined (0/0)
    assert math.isnan(_compute(Gini(2, 3), (torch.zeros(2, 2, dtype=torch.long),)).item())


def test_exposure_rejects_items_outside_the_catalog():
    with pytest.raises(ValueError, match=r"0\.\.3"):
        CatalogCoverage(2, 3).update(torch.tensor([[4, 1]]))


# ---------------------------------------------------------------- popularity buckets

# index 0 (padding) gets a huge count that must be ignored.
ITEM_COUNTS = torch.tensor([999, 5, 50, 7, 7, 0, 100, 1, 7, 2, 30])
# order by count, ties by lower index: 6(100) 2(50) 10(30) 3(7) 4(7) 8(7) 1(5) 9(2) 7(1) 5(0)
# head = floor(0.2*10) = 2 -> {6, 2}; tail = floor(0.5*10) = 5 -> {8, 1, 9, 7, 5}; mid -> {10, 3, 4}
# (the count-7 tie splits by index: 3 and 4 are mid, 8 is tail)
EXPECTED_BUCKETS = [-1, 2, 0, 1, 1, 2, 0, 2, 2, 2, 1]


def test_popularity_buckets_hand_built():
    assert popularity_buckets(ITEM_COUNTS).tolist() == EXPECTED_BUCKETS


def test_popularity_hit_rate_by_bucket():
    target = torch.tensor([6, 2, 3, 8, 5, 7])
    ranks = torch.tensor([0, 5, 2, 1, NOT_RANKED, 3])
    result = _compute(PopularityHitRate(3, ITEM_COUNTS), (ranks, target))
    # head: 6 hit (rank 0), 2 miss (rank 5) -> 1/2; mid: 3 hit (rank 2) -> 1/1
    # tail: 8 hit (rank 1), 5 masked miss, 7 miss (rank 3 = k) -> 1/3
    assert {name: value.item() for name, value in result.items()} == pytest.approx(
        {"head": 0.5, "mid": 1.0, "tail": 1 / 3}, rel=1e-12
    )


def test_popularity_hit_rate_empty_bucket_is_nan():
    # targets only in head (6) and tail (5): mid has no user -> NaN
    result = _compute(PopularityHitRate(3, ITEM_COUNTS), (torch.tensor([0, 0]), torch.tensor([6, 5])))
    assert result["head"].item() == 1.0 and result["tail"].item() == 1.0
    assert math.isnan(result["mid"].item())


@pytest.mark.parametrize(("head", "tail"), [(0.6, 0.5), (-0.1, 0.5)])
def test_popularity_invalid_fractions_raise(head, tail):
    with pytest.raises(ValueError, match="head \\+ tail <= 1"):
        popularity_buckets(ITEM_COUNTS, head, tail)


# ---------------------------------------------------------------- RankingEvaluator


def test_evaluator_keys():
    evaluator = RankingEvaluator(10, ks=(10, 5), item_counts=ITEM_COUNTS)
    evaluator.update(torch.randn(3, 11), torch.tensor([1, 2, 3]))
    names = ("hr", "ndcg", "mrr", "coverage", "gini", "hr_head", "hr_mid", "hr_tail")
    assert set(evaluator.compute()) == {f"{name}@{k}" for name in names for k in (5, 10)}


def test_evaluator_without_item_counts_has_no_buckets():
    evaluator = RankingEvaluator(3, ks=(2,))
    evaluator.update(torch.randn(1, 4), torch.tensor([1]))
    assert set(evaluator.compute()) == {"hr@2", "ndcg@2", "mrr@2", "coverage@2", "gini@2"}


def test_evaluator_k_larger_than_catalog():
    scores = torch.tensor(
        [
            [-INF, 0.3, 0.2, 0.1],  # target 3 -> rank 2; top list [1, 2, 3]
            [-INF, -INF, 0.5, 0.7],  # target 1 masked -> miss; top list [3, 2, 0] (item 1 is -inf)
        ]
    )
    evaluator = RankingEvaluator(3, ks=(10,), item_counts=torch.tensor([0, 3, 2, 1]))
    evaluator.update(scores, torch.tensor([3, 1]))
    result = {name: value.item() for name, value in evaluator.compute().items()}
    # buckets for N=3: head floor(0.6)=0 items, tail floor(1.5)=1 -> item 3; mid -> {1, 2}
    assert result == pytest.approx(
        {
            "hr@10": 0.5,  # 1 hit of 2
            "ndcg@10": 0.25,  # 1/log2(2+2) = 0.5, / 2
            "mrr@10": 1 / 6,  # 1/(2+1), / 2
            "coverage@10": 1.0,  # {1, 2, 3} of N=3
            "gini@10": 2 / 15,  # counts [1, 2, 2], weights [-2, 0, 2] -> (-2 + 4)/(3*5)
            "hr_head@10": math.nan,  # no head items
            "hr_mid@10": 0.0,  # user 2 (target 1) missed
            "hr_tail@10": 1.0,  # user 1 (target 3) hit
        },
        rel=1e-12,
        nan_ok=True,
    )


def test_evaluator_accumulates_and_resets():
    evaluator = RankingEvaluator(4, ks=(1,))
    # batch 1: target 1 best -> hit, top item 1; batch 2: target 2 below item 4 -> miss, top item 4
    evaluator.update(torch.tensor([[-INF, 0.9, 0.1, 0.2, 0.3]]), torch.tensor([1]))
    evaluator.update(torch.tensor([[-INF, 0.1, 0.2, 0.3, 0.9]]), torch.tensor([2]))
    result = evaluator.compute()
    assert result["hr@1"].item() == 0.5  # 1 hit of 2 users
    assert result["coverage@1"].item() == 0.5  # {1, 4} of 4
    assert result["gini@1"].item() == pytest.approx(0.5, rel=1e-12)  # ascending [0, 0, 1, 1] -> (1 + 3)/(4*2)
    evaluator.reset()
    evaluator.update(torch.tensor([[-INF, 0.9, 0.1, 0.2, 0.3]]), torch.tensor([1]))
    assert evaluator.compute()["hr@1"].item() == 1.0  # only the post-reset user


def test_evaluator_uniform_scores_get_no_credit():
    # a constant model: every target has rank N-1 = 4, a miss at every k < 5
    evaluator = RankingEvaluator(5, ks=(1, 4, 5))
    evaluator.update(torch.ones(3, 6), torch.tensor([1, 3, 5]))
    result = evaluator.compute()
    assert result["hr@4"].item() == 0.0 and result["mrr@4"].item() == 0.0
    assert result["hr@5"].item() == 1.0 and result["mrr@5"].item() == pytest.approx(0.2, rel=1e-12)  # 1/(4+1)


def test_evaluator_sums_stay_float64_under_a_low_precision_module_cast():
    # Lightning's "bf16-true" calls module.to(torch.bfloat16); a bf16 sum of 300 ones would stop at 256.
    evaluator = RankingEvaluator(3, ks=(1,)).to(torch.bfloat16)
    evaluator.update(torch.tensor([[-INF, 1.0, 0.0, 0.0]] * 300), torch.ones(300, dtype=torch.long))
    assert evaluator.rank_metrics["hr@1"].total.dtype == torch.float64
    assert evaluator.compute()["hr@1"].item() == 1.0  # 300 hits / 300 users


def test_evaluator_rejects_wrong_catalog_width():
    with pytest.raises(ValueError, match=r"\[B, 4\]"):
        RankingEvaluator(3).update(torch.randn(2, 5), torch.tensor([1, 2]))


def test_evaluator_rejects_nan():
    with pytest.raises(ValueError, match=r"NaN in rows \[1\]"):
        RankingEvaluator(2).update(torch.tensor([[-INF, 0.1, 0.2], [-INF, math.nan, 0.2]]), torch.tensor([1, 2]))


@pytest.mark.filterwarnings(NO_UPDATE_WARNING)
def test_evaluator_compute_without_users_raises():
    with pytest.raises(RuntimeError, match="before any user was evaluated"):
        RankingEvaluator(3).compute()


# ---------------------------------------------------------------- slow reference


def _reference_rank(row: list[float], target: int) -> int | None:
    """Pessimistic 0-based rank among columns 1..N by plain loops; None if the target is masked."""
    if row[target] == -INF:
        return None
    return sum(1 for j in range(1, len(row)) if j != target and row[j] >= row[target])


def _reference_gini(counts: list[int]) -> float:
    """Gini by the mean-absolute-difference definition, independent of the sorted formula."""
    n = len(counts)
    return sum(abs(a - b) for a in counts for b in counts) / (2 * n * sum(counts))


def _random_scores(gen: torch.Generator, users: int, items: int, distinct: bool) -> torch.Tensor:
    """Scores with many ties (or none), ~20% of entries masked to -inf and column 0 sometimes unmasked."""
    if distinct:
        scores = torch.stack([torch.randperm(items + 1, generator=gen) for _ in range(users)]).double()
    else:
        scores = torch.randint(0, 4, (users, items + 1), generator=gen).double()
    scores[torch.rand(users, items + 1, generator=gen) < 0.2] = -INF
    scores[torch.rand(users, generator=gen) < 0.5, 0] = -INF
    return scores


@pytest.mark.parametrize("seed", range(20))
def test_rank_metrics_match_slow_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    users, items = 13, int(torch.randint(1, 9, (1,), generator=gen))
    scores = _random_scores(gen, users, items, distinct=False)
    target = torch.randint(1, items + 1, (users,), generator=gen)
    expected = [_reference_rank(scores[u].tolist(), int(target[u])) for u in range(users)]

    ranks = target_ranks(scores, target)
    assert ranks.tolist() == [NOT_RANKED if r is None else r for r in expected]

    for k in (1, 2, 3, items, items + 5):
        hits = [r for r in expected if r is not None and r < k]
        metrics = {HitRate(k): len(hits), NDCG(k): sum(1 / math.log2(r + 2) for r in hits)}
        metrics[MRR(k)] = sum(1 / (r + 1) for r in hits)
        for metric, total in metrics.items():
            value = _compute(metric, (ranks[:5],), (ranks[5:],))  # two batches
            assert value.item() == pytest.approx(total / users, rel=1e-12, abs=1e-15), (type(metric), k)


@pytest.mark.parametrize("seed", range(10))
def test_exposure_metrics_match_slow_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    users, items = 11, int(torch.randint(1, 9, (1,), generator=gen))
    scores = _random_scores(gen, users, items, distinct=True)  # distinct: the top-k set is unambiguous
    target = torch.randint(1, items + 1, (users,), generator=gen)
    for k in (1, 3, items + 2):
        counts = [0] * items
        for row in scores.tolist():
            ordered = sorted((j for j in range(1, items + 1) if row[j] != -INF), key=lambda j: -row[j])
            for j in ordered[:k]:
                counts[j - 1] += 1
        evaluator = RankingEvaluator(items, ks=(k,))
        evaluator.update(scores[:4], target[:4])
        evaluator.update(scores[4:], target[4:])
        result = evaluator.compute()
        assert result[f"coverage@{k}"].item() == pytest.approx(sum(c > 0 for c in counts) / items, rel=1e-12)
        if sum(counts):
            assert result[f"gini@{k}"].item() == pytest.approx(_reference_gini(counts), rel=1e-12, abs=1e-15)
        else:
            assert math.isnan(result[f"gini@{k}"].item())


# ---------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_evaluator_on_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(0)
    scores = _random_scores(gen, 16, 30, distinct=True)
    target = torch.randint(1, 31, (16,), generator=gen)
    counts = torch.randint(0, 50, (31,), generator=gen)
    cpu = RankingEvaluator(30, ks=(1, 5, 40), item_counts=counts)
    gpu = RankingEvaluator(30, ks=(1, 5, 40), item_counts=counts).cuda()
    cpu.update(scores, target)
    gpu.update(scores.cuda().float(), target.cuda())
    expected, actual = cpu.compute(), gpu.compute()
    assert all(value.device.type == "cuda" for value in actual.values())
    for name, value in expected.items():
        torch.testing.assert_close(actual[name].cpu(), value, rtol=1e-12, atol=0, equal_nan=True, msg=name)
