"""Contrastive objectives against loop computations of their formulas, the positive samplers, the similarity
measures against brute force, and the CL4SRec augmentations."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from conftest import make_chain_datamodule, tiny_sasrec

from lightning_seqrec import GRU4Rec
from lightning_seqrec.modules.seqrec import trim_padding
from lightning_seqrec.objectives import CL4SRec, InBatchInfoNCE, RelativeContrastive, SupervisedContrastive
from lightning_seqrec.objectives.augment import crop, left_pack, mask, random_augment, reorder
from lightning_seqrec.objectives.contrastive import (
    encode_windows,
    info_nce_loss,
    pair_losses,
    relative_contrastive_loss,
)
from lightning_seqrec.objectives.positives import (
    EmbeddingCosine,
    NgramJaccard,
    StrongPositiveIndex,
    TfidfCosine,
    WeakPositiveTable,
    mine_weak_positives,
)


def loop_pair_loss(z: torch.Tensor, u: int, positive: int, negatives: list[int], weights=None) -> float:
    """-log(w_p exp(z_up) / (w_p exp(z_up) + Σ_n w_n exp(z_un))) with plain Python sums."""
    w = weights if weights is not None else torch.ones_like(z)
    top = float(w[u, positive]) * math.exp(float(z[u, positive]))
    return -math.log(top / (top + sum(float(w[u, c]) * math.exp(float(z[u, c])) for c in negatives)))


# ----------------------------------------------------------------- losses
@pytest.mark.parametrize("use_targets", [False, True])
def test_info_nce_matches_loop(use_targets):
    torch.manual_seed(0)
    view1, view2 = torch.randn(5, 3), torch.randn(5, 3)
    targets = torch.tensor([4, 4, 6, 7, 4])
    tau = 0.5
    views = torch.cat([view1, view2])
    z = views @ views.T / tau
    both = torch.cat([targets, targets])
    expected = []
    for i in range(10):
        partner = (i + 5) % 10
        negatives = [j for j in range(10) if j not in (i, partner) and not (use_targets and both[j] == both[i])]
        expected.append(loop_pair_loss(z, i, partner, negatives))
    got = info_nce_loss(view1, view2, tau, targets if use_targets else None)
    assert float(got) == pytest.approx(sum(expected) / 10, rel=1e-5)


def test_info_nce_cosine_option_normalises():
    torch.manual_seed(0)
    view1, view2 = torch.randn(4, 3), torch.randn(4, 3)
    scaled = info_nce_loss(view1 * 7, view2 * 3, 0.2, normalize=True)
    assert float(scaled) == pytest.approx(float(info_nce_loss(view1, view2, 0.2, normalize=True)), rel=1e-5)


def rcl_case():
    """5 anchors and 5 extra candidates, hand-built to cover every branch of the RCL loss.

    anchor 0 (target 7): strong col 5, weak col 7; anchor 1 shares its target (a false negative for it);
    anchor 1 (target 7): strong = anchor 0 itself (col 0), no weak;
    anchor 2 (target 8): no strong positive anywhere, weak col 8 -> weak term alone;
    anchor 3 (target 9): strong col 6 far away, weak col 9 very close -> the max picks the strong boundary;
    anchor 4 (target 10): neither.
    """
    anchors = torch.tensor([[1.0, 0.2], [0.8, 0.1], [0.1, 1.0], [1.0, 0.0], [-0.5, -0.5]])
    extra = torch.tensor([[0.9, 0.3], [-1.0, 0.0], [0.3, 0.9], [0.0, 1.0], [3.0, 0.0]])
    ids = torch.tensor([0, 1, 2, 3, 4])
    targets = torch.tensor([7, 7, 8, 9, 10])
    cand_ids = torch.tensor([0, 1, 2, 3, 4, 11, 12, 20, 21, 22])
    cand_targets = torch.tensor([7, 7, 8, 9, 10, 7, 9, 3, 4, 5])
    strong = torch.tensor([5, 0, -1, 6, -1])
    weak = torch.tensor([7, -1, 8, 9, -1])
    similarity = torch.tensor(
        [
            [1.0, 0.5, 0.0, 0.2, 0.1, 0.6, 0.0, 0.4, 0.0, 0.3],
            [0.5, 1.0, 0.1, 0.0, 0.0, 0.2, 0.1, 0.0, 0.2, 0.0],
            [0.0, 0.1, 1.0, 0.3, 0.0, 0.0, 0.2, 0.1, 0.7, 0.0],
            [0.2, 0.0, 0.3, 1.0, 0.2, 0.1, 0.5, 0.2, 0.0, 0.9],
            [0.1, 0.0, 0.0, 0.2, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    return anchors, torch.cat([anchors, extra]), ids, targets, cand_ids, cand_targets, strong, weak, similarity


def loop_rcl(anchors, candidates, ids, targets, cand_ids, cand_targets, strong, weak, similarity, tau, mask=True):
    """Eq. 12-17 with loops: per anchor, its strong pair loss plus max(weighted weak loss, strong boundary)."""
    z = anchors @ candidates.T / tau
    total, details = 0.0, []
    for u in range(len(anchors)):
        negatives = [
            c for c in range(len(candidates)) if cand_ids[c] != ids[u] and (not mask or cand_targets[c] != targets[u])
        ]
        strong_set = [c for c in range(len(candidates)) if cand_ids[c] != ids[u] and cand_targets[c] == targets[u]]
        term = 0.0
        if strong[u] >= 0:
            term += loop_pair_loss(z, u, int(strong[u]), [c for c in negatives if c != strong[u]])
        boundary = max((loop_pair_loss(z, u, a, [c for c in negatives if c != a]) for a in strong_set), default=None)
        weighted = None
        if weak[u] >= 0:
            b = int(weak[u])
            weighted = loop_pair_loss(z, u, b, [c for c in negatives if c != b], similarity)
            term += weighted if boundary is None else max(weighted, boundary)
        details.append((weighted, boundary))
        total += term
    return total / len(anchors), details


def test_relative_contrastive_matches_loop_formula():
    case = rcl_case()
    tau = 0.5
    expected, details = loop_rcl(*case, tau)
    got = relative_contrastive_loss(*case, tau)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    weighted0, boundary0 = details[0]
    weighted3, boundary3 = details[3]
    assert weighted3 < boundary3  # anchor 3: the max boundary term is what counts
    assert weighted0 > boundary0  # anchor 0: the weighted weak term is what counts
    assert details[2][1] is None and details[2][0] > 0  # anchor 2: weak term alone, no strong positive


def test_relative_contrastive_masks_same_target_candidates():
    case = rcl_case()
    unmasked, _ = loop_rcl(*case, 0.5, mask=False)
    assert float(relative_contrastive_loss(*case, 0.5)) != pytest.approx(unmasked, rel=1e-3)
    # anchor 0 alone: its same-target batch mate (candidate 1) is no negative, so moving it changes nothing
    anchors, candidates, ids, targets, cand_ids, cand_targets, strong, weak, similarity = case
    first = dict(anchor_ids=ids[:1], anchor_targets=targets[:1], candidate_ids=cand_ids, candidate_targets=cand_targets)
    first.update(strong=strong[:1], weak=weak[:1], similarity=similarity[:1], temperature=0.5)
    moved = candidates.clone()
    moved[1] = torch.tensor([5.0, -5.0])
    before = relative_contrastive_loss(anchors[:1], candidates, **first)
    after = relative_contrastive_loss(anchors[:1], moved, **first)
    assert float(after) == pytest.approx(float(before), rel=1e-6)
    moved[2] = torch.tensor([5.0, -5.0])  # candidate 2 has another target: a negative, so it counts
    assert float(relative_contrastive_loss(anchors[:1], moved, **first)) != pytest.approx(float(before), rel=1e-3)


def test_loss_rows_without_negatives_are_zero_with_finite_gradients():
    logits = torch.randn(3, 4, requires_grad=True)
    negatives = torch.tensor([[False] * 4, [False, True, True, False], [False] * 4])
    losses = pair_losses(logits, negatives)
    assert torch.all(losses[0] == 0) and torch.all(losses[2] == 0)
    losses.sum().backward()
    assert torch.isfinite(logits.grad).all()
    case = [t.clone() for t in rcl_case()]
    case[0].requires_grad_(True)
    relative_contrastive_loss(*case, 0.1).backward()
    assert torch.isfinite(case[0].grad).all()


# ----------------------------------------------------------------- objectives on a real module
@pytest.fixture(scope="module")
def chain():
    dm = make_chain_datamodule()
    module = tiny_sasrec(dm, dropout=0.0)
    batch = trim_padding(next(iter(dm.train_dataloader())))
    return dm, module, batch


def test_relative_contrastive_objective_feeds_the_formula(chain):
    dm, module, batch = chain
    objective = RelativeContrastive(temperature=0.5, alpha=0.3, normalize=False)
    objective.setup(dm)
    item_seq = dm.train_tensors["item_seq"].numpy()
    similarity = NgramJaccard(item_seq, 2)
    table = mine_weak_positives(similarity, objective.targets, np.arange(len(item_seq)), k=5)
    objective.set_weak_positives(table, similarity)
    outputs = module(batch)
    torch.manual_seed(3)
    loss = objective(outputs, batch, module)
    assert torch.isfinite(loss) and loss > 0
    torch.manual_seed(3)
    rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
    ids = batch["index"].numpy()
    strong, (weak, _) = objective.strong.sample(ids, rng), table.sample(ids, rng)
    assert (strong >= 0).any() and (weak >= 0).any()
    extra = np.concatenate([strong[strong >= 0], weak[weak >= 0]])
    cand_ids = np.concatenate([ids, extra])
    candidates = torch.cat(
        [outputs["hidden"][:, -1], encode_windows(module, objective.windows, torch.from_numpy(extra))]
    )
    # window id -> its column (a window drawn twice is encoded twice, identically: dropout is 0)
    col = {int(w): len(ids) + i for i, w in enumerate(extra[: (strong >= 0).sum()])}
    strong_col = torch.tensor([col[int(s)] if s >= 0 else -1 for s in strong])
    weak_start = len(ids) + (strong >= 0).sum()
    weak_col = torch.full((len(ids),), -1)
    weak_col[torch.from_numpy(weak >= 0)] = torch.arange(weak_start, weak_start + (weak >= 0).sum())
    t = objective.targets
    expected, _ = loop_rcl(
        outputs["hidden"][:, -1].detach(),
        candidates.detach(),
        ids,
        t[ids],
        cand_ids,
        t[cand_ids],
        strong_col,
        weak_col,
        torch.from_numpy(similarity.pairs(ids, cand_ids)),
        0.5,
    )
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_supervised_contrastive_uses_same_target_positives(chain):
    dm, module, batch = chain
    objective = SupervisedContrastive(temperature=0.5, normalize=False)
    objective.setup(dm)
    torch.manual_seed(5)
    loss = objective(module(batch), batch, module)
    torch.manual_seed(5)
    rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
    ids = batch["index"].numpy()
    positives = objective.strong.sample(ids, rng)
    positives = np.where(positives >= 0, positives, ids)
    anchor = encode_windows(module, objective.windows, torch.from_numpy(ids))
    positive = encode_windows(module, objective.windows, torch.from_numpy(positives))
    targets = torch.from_numpy(objective.targets[ids])
    assert loss.item() == pytest.approx(info_nce_loss(anchor, positive, 0.5, targets).item(), rel=1e-4)


def test_length_grouped_encoding_equals_one_padded_pass(chain):
    dm, module, _ = chain
    windows = {k: v for k, v in dm.train_tensors.items() if k == "item_seq"}
    ids = torch.randperm(len(windows["item_seq"]), generator=torch.Generator().manual_seed(0))[:37]
    grouped = encode_windows(module, windows, ids, group_size=4)
    assert grouped.requires_grad
    assert torch.allclose(grouped, encode_windows(module, windows, ids, group_size=None), atol=1e-5)


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec"])
@pytest.mark.parametrize("objective", [InBatchInfoNCE(), CL4SRec(), SupervisedContrastive(), RelativeContrastive()])
def test_objectives_give_finite_losses_and_gradients(chain, objective, backbone):
    dm, _, batch = chain
    if backbone == "sasrec":
        module = tiny_sasrec(dm)  # with dropout: the training configuration
    else:
        module = GRU4Rec(dm.num_items, embedding_dim=16, hidden_dim=16, max_len=dm.max_len, dropout=0.1)
    objective.setup(dm)
    warns = isinstance(objective, RelativeContrastive)  # no mined table: it says so and uses the strong term
    with pytest.warns(UserWarning, match="WeakPositiveMiner") if warns else contextlib.nullcontext():
        loss = objective(module(batch), batch, module)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)


# ----------------------------------------------------------------- samplers
def test_strong_positive_sampler():
    targets = np.array([3, 5, 3, 9, 3, 5, 7])
    index = StrongPositiveIndex(targets)
    rng = np.random.default_rng(0)
    anchors = np.repeat(np.arange(len(targets)), 300)
    drawn = index.sample(anchors, rng)
    alone = np.isin(anchors, [3, 6])  # targets 9 and 7 occur once
    assert (drawn[alone] == -1).all()
    assert (drawn[~alone] != anchors[~alone]).all()
    assert (targets[drawn[~alone]] == targets[anchors[~alone]]).all()
    from_zero = drawn[anchors == 0]
    assert set(from_zero.tolist()) == {2, 4}
    assert abs((from_zero == 2).mean() - 0.5) < 0.1


def test_weak_positive_sampler_is_proportional_to_similarity():
    table = WeakPositiveTable(
        np.array([0, 4, 4, 6]), np.array([10, 11, 12, 13, 20, 21]), np.array([1, 2, 3, 4, 1, 1.0])
    )
    rng = np.random.default_rng(0)
    ids, weights = table.sample(np.zeros(40_000, dtype=np.int64), rng)
    freq = np.array([(ids == i).mean() for i in (10, 11, 12, 13)])
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.01)
    np.testing.assert_array_equal(weights, ids - 9)
    ids, weights = table.sample(np.array([1, 2, 1]), rng)
    assert ids[0] == -1 and ids[2] == -1 and weights[0] == 0 and ids[1] in (20, 21)


def test_mined_weak_positives_have_other_targets(chain):
    dm = chain[0]
    item_seq = dm.train_tensors["item_seq"].numpy()
    targets = dm.train_tensors["target_seq"][:, -1].numpy()
    table = mine_weak_positives(NgramJaccard(item_seq, 2), targets, np.arange(len(targets)), k=4, block_size=7)
    assert (table.lengths <= 4).all() and (table.lengths > 0).mean() > 0.9
    rows = np.repeat(np.arange(len(table)), table.lengths)
    assert (targets[table.indices] != targets[rows]).all() and (table.indices != rows).all()
    assert (table.weights > 0).all()
    drawn, _ = table.sample(np.arange(len(table)), np.random.default_rng(0))
    has = drawn >= 0
    assert (targets[drawn[has]] != targets[np.arange(len(table))[has]]).all()


def test_strided_shards_assemble_into_the_full_table(chain):
    dm = chain[0]
    item_seq = dm.train_tensors["item_seq"].numpy()
    targets = dm.train_tensors["target_seq"][:, -1].numpy()
    similarity = TfidfCosine(item_seq, 2)
    full = mine_weak_positives(similarity, targets, np.arange(len(targets)), k=6)
    parts = [(np.arange(r, len(targets), 3), None) for r in range(3)]
    parts = [(rows, mine_weak_positives(similarity, targets, rows, k=6, block_size=5)) for rows, _ in parts]
    assembled = WeakPositiveTable.assemble(parts, len(targets))
    np.testing.assert_array_equal(assembled.indptr, full.indptr)
    np.testing.assert_array_equal(assembled.indices, full.indices)
    np.testing.assert_array_equal(assembled.weights, full.weights)


# ----------------------------------------------------------------- similarity against brute force
def random_windows(rows=40, length=8, items=12, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros((rows, length), dtype=np.int64)
    for r in range(rows):
        n = rng.integers(1, length + 1)
        out[r, length - n :] = rng.integers(1, items + 1, n)
    return out


def grams(row: np.ndarray, n: int) -> list[tuple]:
    real = row[row > 0].tolist()
    return [tuple(real[i : i + g]) for g in range(1, n + 1) for i in range(len(real) - g + 1)]


def brute_jaccard(item_seq: np.ndarray, n: int) -> np.ndarray:
    sets = [set(grams(r, n)) for r in item_seq]
    return np.array([[len(a & b) / len(a | b) for b in sets] for a in sets])


def brute_tfidf(item_seq: np.ndarray, n: int) -> np.ndarray:
    vocab = sorted({g for r in item_seq for g in grams(r, n)})
    where = {g: i for i, g in enumerate(vocab)}
    counts = np.zeros((len(item_seq), len(vocab)))
    for i, r in enumerate(item_seq):
        for g in grams(r, n):
            counts[i, where[g]] += 1
    idf = np.log((1 + len(item_seq)) / (1 + (counts > 0).sum(0))) + 1
    x = counts * idf
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def assert_top_k_matches(table: WeakPositiveTable, dense: np.ndarray, targets: np.ndarray, k: int) -> None:
    for u in range(len(dense)):
        eligible = np.flatnonzero((targets != targets[u]) & (dense[u] > 1e-9))
        best = np.sort(dense[u, eligible])[::-1][:k]
        got = table.indices[table.indptr[u] : table.indptr[u + 1]]
        weights = table.weights[table.indptr[u] : table.indptr[u + 1]]
        np.testing.assert_allclose(weights, best, rtol=1e-5)  # the k best values, best first
        np.testing.assert_allclose(dense[u, got], weights, rtol=1e-5)  # and the right windows carry them
        assert (targets[got] != targets[u]).all()


@pytest.mark.parametrize("n", [1, 2])
def test_ngram_jaccard_matches_brute_force(n):
    item_seq = random_windows()
    targets = np.random.default_rng(1).integers(1, 6, len(item_seq))
    similarity = NgramJaccard(item_seq, n)
    dense = brute_jaccard(item_seq, n)
    np.testing.assert_allclose(similarity.scores(np.arange(len(item_seq))).toarray(), dense, rtol=1e-6)
    rows, cols = np.array([3, 0, 7]), np.array([5, 3, 3, 39])
    np.testing.assert_allclose(similarity.pairs(rows, cols), dense[np.ix_(rows, cols)], rtol=1e-6)
    table = mine_weak_positives(similarity, targets, np.arange(len(item_seq)), k=3, block_size=6)
    assert_top_k_matches(table, dense, targets, 3)


def test_tfidf_cosine_matches_brute_force():
    item_seq = random_windows(seed=2)
    targets = np.random.default_rng(3).integers(1, 6, len(item_seq))
    similarity = TfidfCosine(item_seq, 2)
    dense = brute_tfidf(item_seq, 2)
    np.testing.assert_allclose(similarity.scores(np.arange(len(item_seq))).toarray(), dense, rtol=1e-5, atol=1e-6)
    table = mine_weak_positives(similarity, targets, np.arange(len(item_seq)), k=4, block_size=9)
    assert_top_k_matches(table, dense, targets, 4)


def test_embedding_cosine_matches_brute_force():
    rng = np.random.default_rng(4)
    embeddings = rng.normal(size=(50, 6)).astype(np.float32)
    targets = rng.integers(1, 4, 50)  # large same-target groups: the search must look past them
    similarity = EmbeddingCosine(embeddings)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    dense = np.clip(unit @ unit.T, 0, None)
    np.testing.assert_allclose(similarity.pairs(np.arange(50), np.arange(50)), dense, atol=1e-5)
    table = mine_weak_positives(similarity, targets, np.arange(50), k=5, block_size=8)
    assert_top_k_matches(table, dense, targets, 5)


# ----------------------------------------------------------------- augmentations
def padded_batch(seed=0) -> torch.Tensor:
    torch.manual_seed(seed)
    lengths = torch.tensor([0, 1, 2, 5, 9, 12, 12, 3])
    seq = torch.zeros(len(lengths), 12, dtype=torch.long)
    for r, n in enumerate(lengths.tolist()):
        seq[r, 12 - n :] = torch.randint(1, 50, (n,))
    return seq


def assert_left_padded(seq: torch.Tensor) -> torch.Tensor:
    real = seq > 0
    lengths = real.sum(1)
    positions = torch.arange(seq.shape[1])
    assert torch.equal(real, positions[None, :] >= seq.shape[1] - lengths[:, None])
    return lengths


def real_items(row: torch.Tensor) -> list[int]:
    return row[row > 0].tolist()


def test_left_pack_keeps_order_and_padding():
    seq = torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]])
    keep = torch.tensor([[False, False, True, False, True, True], [True, False, False, False, False, True]])
    assert torch.equal(left_pack(seq, keep), torch.tensor([[0, 0, 0, 3, 5, 6], [0, 0, 0, 0, 1, 6]]))


def test_crop_mask_reorder_keep_sequences_valid():
    seq = padded_batch()
    lengths = (seq > 0).sum(1)
    for seed in range(5):
        torch.manual_seed(seed)
        cropped, masked, reordered = crop(seq, 0.5), mask(seq, 0.5), reorder(seq, 0.5)
        expected_crop = torch.minimum((0.5 * lengths).floor().long().clamp(min=1), lengths)
        assert torch.equal(assert_left_padded(cropped), expected_crop)
        assert torch.equal(
            assert_left_padded(masked),
            lengths - torch.minimum((0.5 * lengths).floor().long(), (lengths - 1).clamp(min=0)),
        )
        assert torch.equal(assert_left_padded(reordered), lengths)
        for r in range(len(seq)):
            original, c, m = real_items(seq[r]), real_items(cropped[r]), real_items(masked[r])
            assert any(original[i : i + len(c)] == c for i in range(len(original) - len(c) + 1))  # contiguous run
            it = iter(original)
            assert all(item in it for item in m)  # a subsequence, order kept
            assert sorted(real_items(reordered[r])) == sorted(original)
    assert_left_padded(random_augment(seq, 0.2, 0.7, 0.2))
    assert torch.equal(reorder(seq, 0.0), seq)  # a run of one item: nothing moves
