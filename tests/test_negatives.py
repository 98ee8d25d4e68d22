"""In-batch negatives with a sampling cap and adaptive top-k negatives as batch transforms."""

from __future__ import annotations

import pytest
import torch

from lightning_seqrec.objectives.negatives import InBatchNegatives, TopKNegatives, in_batch_negatives


def batch_of(item_seq: list[list[int]], target_seq: list[list[int]]) -> dict:
    return {"item_seq": torch.tensor(item_seq), "target_seq": torch.tensor(target_seq)}


@pytest.fixture
def batch() -> dict:
    # positives in the batch: {1, 2, 3, 5, 6, 7, 8, 9}; row 0 has seen 5 (input only) and 1, 2, 3
    return batch_of(
        [[0, 5, 1, 2], [0, 0, 4, 6], [0, 7, 8, 9], [0, 0, 0, 0]],
        [[0, 1, 2, 3], [0, 0, 6, 5], [0, 8, 9, 7], [0, 0, 0, 0]],
    )


def test_in_batch_negatives_are_other_positives_without_own_items(batch):
    torch.manual_seed(0)
    negatives = in_batch_negatives(batch, cap=100)
    positives = {1, 2, 3, 5, 6, 7, 8, 9}
    for row in range(4):
        own = set(batch["item_seq"][row].tolist()) | set(batch["target_seq"][row].tolist())
        drawn = [i for i in negatives[row].tolist() if i > 0]
        assert len(drawn) == len(set(drawn)), "negatives are drawn without replacement"
        assert set(drawn) == positives - own, "with a cap above the pool, every allowed positive is used"
    assert 5 not in negatives[0].tolist(), "an item of the user's own input sequence is never a negative"


def test_cap_is_respected_and_draws_are_uniform(batch):
    torch.manual_seed(0)
    draws = torch.stack([in_batch_negatives(batch, cap=2) for _ in range(2000)])  # [T, B, 2]
    assert draws.shape[1:] == (4, 2)
    row0 = draws[:, 0]
    assert ((row0 > 0).sum(1) == 2).all() and set(row0.unique().tolist()) == {6, 7, 8, 9}
    frequency = torch.bincount(row0.flatten(), minlength=10)[6:].float() / len(row0)
    torch.testing.assert_close(frequency, torch.full((4,), 0.5), atol=0.05, rtol=0)
    assert InBatchNegatives(cap=2)(batch)["negatives"].shape == (4, 2)


def test_top_k_keeps_the_most_similar_pool_items(batch):
    torch.manual_seed(0)
    items = torch.randn(10, 6)
    hidden = torch.randn(4, 4, 6)
    out = TopKNegatives(k=2, cap=100)(batch, hidden, items)["negatives"]
    assert out.shape == (4, 4, 2)
    pool = [6, 7, 8, 9]  # row 0's allowed in-batch negatives
    for t in range(4):
        sims = torch.nn.functional.cosine_similarity(hidden[0, t][None], items[pool])
        expected = [pool[i] for i in sims.argsort(descending=True)[:2].tolist()]
        assert out[0, t].tolist() == expected
    assert set(out[3].flatten().tolist()) <= {1, 2, 3, 5, 6, 7, 8, 9}  # an empty row may use any positive


def test_empty_batch_of_positives_gives_no_negatives():
    empty = batch_of([[0, 1]], [[0, 0]])
    assert in_batch_negatives(empty, cap=5).shape == (1, 0)
