"""The IKEA embedding losses against direct formulas, the cosine scoring head, frozen pretrained embeddings,
Word2Vec item embeddings and a short LSTMRec training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_chain_datamodule, quiet_trainer

from lightning_seqrec import load_checkpoint
from lightning_seqrec.backbones.lstm import LSTMBackbone
from lightning_seqrec.modules.models import LSTMRec
from lightning_seqrec.modules.seqrec import SeqRecModule
from lightning_seqrec.objectives import CosineEmbeddingLoss, EmbeddingCrossEntropy, WeightedCosineLoss
from lightning_seqrec.objectives.negatives import InBatchNegatives


class _Items:
    """Just what the losses read from a module: the item embedding table."""

    def __init__(self, table: torch.Tensor):
        self.item_embedding = torch.nn.Embedding.from_pretrained(table, freeze=False)


@pytest.fixture
def case():
    torch.manual_seed(0)
    hidden = torch.randn(2, 3, 4)
    items = _Items(torch.cat([torch.zeros(1, 4), torch.randn(6, 4)]))
    batch = {
        "target_seq": torch.tensor([[0, 2, 3], [0, 0, 5]]),
        "negatives": torch.tensor([[4, 5, 0], [1, 2, 5]]),  # row 0: 0 is none; row 1: 5 equals its target
    }
    return {"hidden": hidden}, batch, items


def sim(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a, b, dim=0).detach())


def test_cosine_loss_is_minus_mean_cosine(case):
    outputs, batch, module = case
    z, e = outputs["hidden"], module.item_embedding.weight
    expected = -(sim(z[0, 1], e[2]) + sim(z[0, 2], e[3]) + sim(z[1, 2], e[5])) / 3
    assert CosineEmbeddingLoss()(outputs, batch, module).item() == pytest.approx(expected, abs=1e-6)


def test_weighted_loss_matches_formula(case):
    outputs, batch, module = case
    z, e = outputs["hidden"], module.item_embedding.weight

    def term(zi, target, negatives):
        return -2.0 * sim(zi, e[target]) + 1.0 * np.mean([sim(zi, e[j]) for j in negatives])

    # row 0 has negatives {4, 5}; row 1's negatives {1, 2} (5 is its own target and is dropped)
    expected = (term(z[0, 1], 2, [4, 5]) + term(z[0, 2], 3, [4, 5]) + term(z[1, 2], 5, [1, 2])) / 3
    loss = WeightedCosineLoss(alpha=2.0, beta=1.0)(outputs, batch, module)
    assert loss.item() == pytest.approx(expected, abs=1e-5)


def test_cross_entropy_matches_formula_and_per_position_negatives(case):
    outputs, batch, module = case
    z, e = outputs["hidden"], module.item_embedding.weight
    tau = 0.05

    def term(zi, target, negatives):
        logits = [sim(zi, e[j]) / tau for j in [target, *negatives]]
        return -(logits[0] - math.log(sum(math.exp(x) for x in logits)))

    expected = (term(z[0, 1], 2, [4, 5]) + term(z[0, 2], 3, [4, 5]) + term(z[1, 2], 5, [1, 2])) / 3
    loss = EmbeddingCrossEntropy(temperature=tau)(outputs, batch, module)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    per_position = {**batch, "negatives": batch["negatives"][:, None, :].expand(2, 3, 3)}  # [B, L, K] form
    assert EmbeddingCrossEntropy(temperature=tau)(outputs, per_position, module).item() == pytest.approx(loss.item())


def test_losses_with_negatives_need_a_sampler(case):
    outputs, batch, module = case
    del batch["negatives"]
    with pytest.raises(ValueError, match="InBatchNegatives"):
        WeightedCosineLoss()(outputs, batch, module)


def test_cosine_scoring_and_frozen_pretrained_embeddings():
    table = torch.cat([torch.zeros(1, 8), torch.randn(5, 8)])
    module = SeqRecModule(
        5,
        backbone="lstm",
        embedding_dim=8,
        scoring="cosine",
        pretrained_embeddings=table,
        freeze_embeddings=True,
        backbone_kwargs={"embedding_dim": 8, "hidden_dim": 8},
    )
    assert torch.equal(module.item_embedding.weight, table) and not module.item_embedding.weight.requires_grad
    assert module.architecture["scoring"] == "cosine" and module.architecture["freeze_embeddings"]
    hidden = torch.randn(3, 8)
    scores = module.score_hidden(hidden)
    assert torch.isinf(scores[:, 0]).all()
    torch.testing.assert_close(scores[:, 1:], F.normalize(hidden, dim=-1) @ F.normalize(table[1:], dim=-1).T)
    with pytest.raises(ValueError, match="pretrained_embeddings"):
        SeqRecModule(5, embedding_dim=4, pretrained_embeddings=table)


def test_word2vec_trains_and_falls_back_for_unseen_items():
    pytest.importorskip("gensim", reason='gensim is missing: pip install "lightning-seqrec[w2v]"')
    from lightning_seqrec.embeddings import word2vec_embeddings

    corpus = [[1, 2, 3, 4], [2, 3, 4, 1], [3, 4, 1, 2]] * 20  # item 5 never occurs
    random_fallback = word2vec_embeddings(corpus, num_items=5, dim=8, window=2, epochs=5)
    assert random_fallback.shape == (6, 8) and torch.equal(random_fallback[0], torch.zeros(8))
    assert random_fallback[5].abs().sum() > 0  # a random vector, distinct from the trained ones
    mean_fallback = word2vec_embeddings(corpus, num_items=5, dim=8, window=2, epochs=5, fallback="mean")
    torch.testing.assert_close(mean_fallback[5], mean_fallback[1:5].mean(0))


def test_early_sequences_keep_the_first_chronological_part():
    from lightning_seqrec.embeddings import early_sequences

    dm = make_chain_datamodule()
    early = early_sequences(dm.sequences, cutoff=0.5)
    cutoff = np.quantile(dm.sequences.times, 0.5)
    assert sum(map(len, early)) == int((dm.sequences.times < cutoff).sum()) > 0


def test_lstm_cosine_weighted_in_batch_trains_and_evaluates(tmp_path):
    dm = make_chain_datamodule()
    objective = WeightedCosineLoss(negatives=InBatchNegatives(cap=10))
    model = LSTMRec(
        dm.num_items, embedding_dim=16, hidden_dim=16, max_len=dm.max_len, lr=5e-3, objectives={"weighted": objective}
    )
    trainer = quiet_trainer(max_epochs=2, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    assert math.isfinite(float(trainer.callback_metrics["train/loss"]))
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert 0 <= metrics["test/ndcg@10"] <= 1 and 0 < metrics["test/coverage@10"] <= 1
    history = [dm.user_history(dm.sequences.users[0])]
    trainer.save_checkpoint(tmp_path / "lstm.ckpt")
    restored = load_checkpoint(tmp_path / "lstm.ckpt")
    assert restored.scoring == "cosine" and isinstance(restored.backbone, LSTMBackbone)
    assert restored.recommend(history, k=3) == model.recommend(history, k=3) != [[]]
