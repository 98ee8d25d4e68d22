"""Backbones, objectives against their formulas, training, and evaluation == recommend()."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_chain_datamodule, quiet_trainer, tiny_sasrec

from lightning_seqrec import GRU4Rec, SeqRecModule
from lightning_seqrec.backbones import create_backbone
from lightning_seqrec.errors import ConfigError, DataError, UnknownItemError
from lightning_seqrec.objectives import BinaryCrossEntropy, FullCrossEntropy, GeneralisedBCE, SampledSoftmax
from lightning_seqrec.objectives.chunked_ce import chunked_cross_entropy


def test_sasrec_is_finite_on_padded_rows_and_causal():
    backbone = create_backbone("sasrec", embedding_dim=8, max_len=5, num_blocks=2, num_heads=2, dropout=0.0).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[False] * 5, [False, False, True, True, True]])
    out = backbone(x, mask)
    assert torch.isfinite(out).all() and out[0].abs().sum() == 0  # fully padded row: zeros, not NaN
    changed = x.clone()
    changed[1, 4] = torch.randn(8)  # the newest item must not influence earlier positions
    assert torch.allclose(backbone(changed, mask)[1, :4], out[1, :4], atol=1e-6)
    assert not torch.allclose(backbone(changed, mask)[1, 4], out[1, 4])


@pytest.mark.parametrize("name", ["gru4rec", "lstm"])
def test_recurrent_output_does_not_depend_on_padding(name):
    """Every real position's output is the same with and without left padding, whatever the padding holds (the
    recurrence runs over the items first), and padded positions output zero."""
    backbone = create_backbone(name, embedding_dim=8, hidden_dim=6, dropout=0.0).eval()
    x = torch.randn(1, 3, 8)
    padded = torch.cat([10 * torch.randn(1, 4, 8), x], dim=1)
    short = backbone(x, torch.ones(1, 3, dtype=torch.bool))
    long = backbone(padded, torch.tensor([[False] * 4 + [True] * 3]))
    assert torch.allclose(short, long[:, 4:], atol=1e-6)
    assert long[:, :4].abs().max() == 0


def test_unknown_backbone_and_bad_arguments_are_named():
    with pytest.raises(ConfigError, match="Unknown backbone 'transformerxl'.*gru4rec.*sasrec"):
        create_backbone("transformerxl")
    with pytest.raises(ConfigError, match="rejected its arguments.*accepts.*num_blocks"):
        create_backbone("sasrec", num_layer=3)


class Stub:
    """The part of a module an objective uses: item embeddings and the catalog size."""

    def __init__(self, weight: torch.Tensor):
        self.item_embedding = torch.nn.Embedding.from_pretrained(weight, freeze=False)
        self.num_items = weight.shape[0] - 1

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(items)


def objective_inputs(seed=0, n_items=6, d=4):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, 3, d, generator=g, dtype=torch.float64)
    weight = torch.randn(n_items + 1, d, generator=g, dtype=torch.float64)
    batch = {"target_seq": torch.tensor([[0, 2, 5], [1, 0, 6]])}
    return {"hidden": hidden}, batch, Stub(weight)


def test_full_cross_entropy_matches_formula_and_ignores_padding():
    outputs, batch, module = objective_inputs()
    h = outputs["hidden"][batch["target_seq"] > 0]
    w = module.item_embedding.weight
    targets = [2, 5, 1, 6]
    manual = torch.stack([-(h[i] @ w[t]) + torch.logsumexp(h[i] @ w[1:].T, 0) for i, t in enumerate(targets)]).mean()
    assert torch.allclose(FullCrossEntropy()(outputs, batch, module), manual)
    chunked = FullCrossEntropy(chunk_size=3, label_smoothing=0.1)(outputs, batch, module)
    dense = FullCrossEntropy(label_smoothing=0.1)(outputs, batch, module)
    assert torch.allclose(chunked, dense)


def test_full_cross_entropy_follows_cosine_scoring():
    outputs, batch, module = objective_inputs()
    module.scoring = "cosine"
    h = torch.nn.functional.normalize(outputs["hidden"][batch["target_seq"] > 0], dim=-1)
    w = torch.nn.functional.normalize(module.item_embedding.weight, dim=-1)
    targets = [2, 5, 1, 6]
    logits = h @ w[1:].T / 0.5
    manual = torch.stack([-logits[i, t - 1] + torch.logsumexp(logits[i], 0) for i, t in enumerate(targets)]).mean()
    assert torch.allclose(FullCrossEntropy(temperature=0.5)(outputs, batch, module), manual)
    chunked = FullCrossEntropy(temperature=0.5, chunk_size=3)(outputs, batch, module)
    assert torch.allclose(chunked, manual)


def test_chunked_cross_entropy_gradients_match_dense():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(13, 5, dtype=torch.float64, requires_grad=True, generator=g)
    w = torch.randn(9, 5, dtype=torch.float64, requires_grad=True, generator=g)
    t = torch.randint(0, 9, (13,), generator=g)
    for smoothing in (0.0, 0.2):
        got = torch.autograd.grad(chunked_cross_entropy(h, w, t, chunk_size=4, smoothing=smoothing), (h, w))
        want = torch.autograd.grad(F.cross_entropy(h @ w.T, t, label_smoothing=smoothing), (h, w))
        assert all(torch.allclose(a, b) for a, b in zip(got, want, strict=True))


def test_sampled_softmax_with_logq_matches_formula(monkeypatch):
    outputs, batch, module = objective_inputs()
    objective = SampledSoftmax(num_negatives=3, distribution="popularity")
    objective.sampler.probs = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.1, 0.2, 0.1])
    negatives = torch.tensor([5, 3, 1])
    log_q = objective.sampler.probs[negatives].log()
    monkeypatch.setattr(objective.sampler, "sample", lambda shape, n, device: (negatives, log_q))
    h = outputs["hidden"][batch["target_seq"] > 0]
    w, q = module.item_embedding.weight, objective.sampler.probs
    losses = []
    for i, t in enumerate([2, 5, 1, 6]):
        logits = [h[i] @ w[t] - q[t].log()] + [h[i] @ w[j] - q[j].log() for j in negatives.tolist() if j != t]
        losses.append(-logits[0] + torch.logsumexp(torch.stack(logits), 0))  # a negative equal to t is masked
    assert torch.allclose(objective(outputs, batch, module), torch.stack(losses).mean())


def test_binary_cross_entropy_matches_formula():
    outputs, batch, module = objective_inputs()
    torch.manual_seed(3)
    loss = BinaryCrossEntropy(num_negatives=2)(outputs, batch, module)
    torch.manual_seed(3)
    negatives = torch.randint(1, 7, (4, 2))
    h, w = outputs["hidden"][batch["target_seq"] > 0], module.item_embedding.weight
    manual = []
    for i, t in enumerate([2, 5, 1, 6]):
        term = -F.logsigmoid(h[i] @ w[t])
        for j in negatives[i].tolist():
            term = term - (F.logsigmoid(-(h[i] @ w[j])) if j != t else 0.0)
        manual.append(term)
    assert torch.allclose(loss, torch.stack(manual).mean())


@pytest.mark.parametrize("calibration", [0.0, 0.75, 1.0])
def test_generalised_bce_calibrates_the_positive_term_as_gsasrec_defines(calibration):
    outputs, batch, module = objective_inputs()  # 6 items: alpha = 2 negatives / 5 other items
    torch.manual_seed(3)
    loss = GeneralisedBCE(num_negatives=2, calibration=calibration)(outputs, batch, module)
    torch.manual_seed(3)
    negatives = torch.randint(1, 7, (4, 2))
    h, w = outputs["hidden"][batch["target_seq"] > 0], module.item_embedding.weight
    alpha = 2 / 5
    beta = alpha * (calibration * (1 - 1 / alpha) + 1 / alpha)
    manual = []
    for i, t in enumerate([2, 5, 1, 6]):
        term = -torch.log(torch.sigmoid(h[i] @ w[t]) ** beta)
        for j in negatives[i].tolist():
            term = term - (torch.log(1 - torch.sigmoid(h[i] @ w[j])) if j != t else 0.0)
        manual.append(term)
    assert torch.allclose(loss, torch.stack(manual).mean(), atol=1e-6)
    if calibration == 0.0:
        torch.manual_seed(3)
        assert torch.equal(loss, BinaryCrossEntropy(num_negatives=2)(outputs, batch, module))
    with pytest.raises(ConfigError, match="calibration=1.5 must lie in"):
        GeneralisedBCE(calibration=1.5)


def test_module_rejects_bad_objectives_and_mismatched_data(chain_datamodule):
    with pytest.raises(ConfigError, match="at least one objective"):
        SeqRecModule(10, objectives={})
    with pytest.raises(ConfigError, match="must subclass"):
        SeqRecModule(10, objectives={"ce": torch.nn.MSELoss()})
    module = SeqRecModule(chain_datamodule.num_items + 5)
    with pytest.raises(ConfigError, match="built for 35 items but the data has 30"):
        quiet_trainer(max_epochs=1).fit(module, chain_datamodule)


@pytest.fixture(scope="module")
def trained(request):
    """A SASRec trained on the learnable chain log (next item = current + 1)."""
    dm = make_chain_datamodule()
    L.seed_everything(0)
    module = tiny_sasrec(dm)
    trainer = quiet_trainer(max_epochs=12)
    trainer.fit(module, dm)
    return module, dm, trainer


def test_training_learns_the_chain(trained):
    module, dm, trainer = trained
    metrics = trainer.test(module, dm, verbose=False)[0]
    assert metrics["test/hr@5"] > 0.8  # random ranking of 30 items gives ~0.17
    assert metrics["test/ndcg@10"] > 0.6


def test_evaluation_scores_equal_recommend(trained):
    module, dm, _ = trained
    module.eval()
    for batch in dm.test_dataloader():
        with torch.no_grad():
            eval_scores = module.score(batch)
        users = dm.split.test.history.users[batch["user"].numpy()]
        histories = [dm.user_history(u)[:-1] for u in users]  # everything before the test target
        assert max(len(h) for h in histories) > dm.max_len  # truncation is exercised
        assert torch.equal(module.score_histories(histories), eval_scores)
        top = module.recommend(histories, k=5)
        expected = torch.topk(eval_scores, 5).indices
        assert [[r["item_id"] for r in row] for row in top] == [dm.vocab.decode(row) for row in expected.tolist()]
        seen = set(histories[0])
        assert not seen & {r["item_id"] for r in top[0]}  # seen items are excluded


def test_recommend_bad_input(trained):
    module, dm, _ = trained
    with pytest.raises(UnknownItemError, match="not in this model's vocabulary: 'nope'"):
        module.recommend([[1, "nope"]])
    with pytest.raises(DataError, match="empty"):
        module.recommend([[]])
    top_all = module.recommend([[1, 2]], k=100, exclude_seen=True)[0]
    assert len(top_all) == 28  # K beyond the catalog returns every unseen item once
    assert np.all(np.diff([r["score"] for r in top_all]) <= 0)


def test_gru4rec_trains(chain_datamodule):
    L.seed_everything(0)
    module = GRU4Rec(chain_datamodule.num_items, embedding_dim=16, hidden_dim=32, max_len=8, lr=1e-2, dropout=0.0)
    trainer = quiet_trainer(max_epochs=15)
    trainer.fit(module, chain_datamodule)
    assert trainer.test(module, chain_datamodule, verbose=False)[0]["test/hr@10"] > 0.6


def test_trimming_padding_columns_is_exact(trained):
    from lightning_seqrec.modules.seqrec import trim_padding

    module, dm, _ = trained
    module.eval()
    batch = {"item_seq": torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5], [0, 0, 0, 0, 0, 0, 7, 8]])}
    trimmed = trim_padding(batch)
    assert trimmed["item_seq"].shape == (2, 3)
    with torch.no_grad():
        full = module(batch)["hidden"][:, -1]
        short = module(trimmed)["hidden"][:, -1]
    assert torch.allclose(full, short, atol=1e-6)


def test_inference_turns_dropout_off_and_restores_the_mode_it_found(chain_datamodule):
    module = tiny_sasrec(chain_datamodule, dropout=0.5)
    module.attach_data(chain_datamodule)
    history = [chain_datamodule.user_history(chain_datamodule.split.test.history.users[0])]
    module.train()
    first = module.recommend(history, k=5)
    assert module.training and all(m.training for m in module.modules())
    assert module.recommend(history, k=5) == first  # dropout was off both times
    module.eval()
    module.backbone.train()  # a submodule left training under an eval module still gets dropout turned off
    assert module.recommend(history, k=5) == first
