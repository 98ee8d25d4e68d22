"""FAISS item indexes (exact and approximate) and the raw-ID `Recommender`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_seqrec.retrieval import ItemIndex, Recommender
from tests.conftest import make_chain_datamodule, tiny_sasrec


def brute_force(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-(queries @ items[1:].T), axis=1, kind="stable")[:, :k] + 1


def test_exact_index_equals_brute_force_top_k():
    rng = np.random.default_rng(0)
    items, queries = rng.normal(size=(201, 16)).astype(np.float32), rng.normal(size=(20, 16)).astype(np.float32)
    found, scores = ItemIndex(items, kind="flat", metric="ip").search(queries, 10)
    np.testing.assert_array_equal(found, brute_force(items, queries, 10))
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ items.T, found, 1), rtol=1e-5)
    unit = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    cosine, _ = ItemIndex(items, metric="cosine").search(queries, 10)
    np.testing.assert_array_equal(cosine, brute_force(unit, queries, 10))


# Isotropic random vectors are the hard case for IVF (no cluster structure), hence its lower bound.
@pytest.mark.parametrize(
    ("kwargs", "bound"), [({"kind": "hnsw"}, 0.95), ({"kind": "ivf", "nlist": 16, "nprobe": 8}, 0.8)]
)
def test_approximate_indexes_have_high_recall(kwargs, bound):
    rng = np.random.default_rng(1)
    items, queries = rng.normal(size=(2001, 32)).astype(np.float32), rng.normal(size=(50, 32)).astype(np.float32)
    found, _ = ItemIndex(items, metric="cosine", **kwargs).search(queries, 10)
    unit = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    exact = brute_force(unit, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
    assert recall >= bound


def test_search_excludes_items_and_pads_when_too_few_remain():
    items = np.eye(4, dtype=np.float32)  # items 1..3 are e1, e2, e3
    found, scores = ItemIndex(items).search(np.array([[0, 3, 2, 1]], np.float32), 3, exclude=[np.array([1])])
    assert found.tolist() == [[2, 3, 0]] and scores[0, 2] == -np.inf


def test_recommender_speaks_raw_ids_and_matches_the_module():
    dm = make_chain_datamodule()
    model = tiny_sasrec(dm)
    model.attach_data(dm)
    users = dm.sequences.users[:5]
    histories = [dm.user_history(u) for u in users]
    recommender = Recommender(model, kind="flat", batch_size=2)
    served = recommender.recommend(histories, k=5)
    expected = model.recommend(histories, k=5)
    assert [[r["item_id"] for r in row] for row in served] == [[r["item_id"] for r in row] for row in expected]
    for history, row in zip(histories, served, strict=True):
        assert not {r["item_id"] for r in row} & set(history), "seen items are excluded"
        assert all(r["item_id"] in dm.vocab for r in row)
    unfiltered = recommender.recommend(histories[:1], k=dm.num_items, exclude_seen=False)[0]
    assert {r["item_id"] for r in unfiltered} >= set(histories[0])
    torch.testing.assert_close(
        torch.tensor([r["score"] for r in served[0]]),
        torch.tensor([r["score"] for r in expected[0]]),
        rtol=1e-4,
        atol=1e-5,
    )


def test_cosine_index_never_changes_the_callers_vectors():
    rng = np.random.default_rng(2)
    items, queries = rng.normal(size=(31, 8)).astype(np.float32), rng.normal(size=(4, 8)).astype(np.float32)
    items_before, queries_before = items.copy(), queries.copy()
    ItemIndex(items, metric="cosine").search(queries, 5)
    np.testing.assert_array_equal(items, items_before)
    np.testing.assert_array_equal(queries, queries_before)
    dm = make_chain_datamodule()
    module = tiny_sasrec(dm, scoring="cosine")
    module.vocab = dm.vocab
    weights = module.item_embedding.weight.detach().clone()
    Recommender(module).recommend([dm.user_history(dm.sequences.users[0])], k=3)
    assert torch.equal(module.item_embedding.weight.detach(), weights)  # a CPU module's table is not normalised
