"""`DiversityMetrics`: Gini and coverage of hand-built top-k lists, NDCG, and the exposure plot."""

from __future__ import annotations

import pytest
import torch
from conftest import make_chain_datamodule, quiet_trainer, tiny_sasrec
from lightning_seqrec.callbacks import DiversityMetrics


def test_uniform_exposure_has_zero_gini_and_full_coverage():
    callback = DiversityMetrics(k=2, num_items=4)
    callback.update(torch.tensor([[1, 2], [3, 4], [2, 1], [4, 3]]))
    metrics = callback.compute()
    assert metrics["gini@2"].item() == pytest.approx(0.0)
    assert metrics["coverage@2"].item() == pytest.approx(1.0)
    assert "ndcg@2" not in metrics  # no ranks given


def test_one_item_for_everyone_has_gini_near_one():
    callback = DiversityMetrics(k=1, num_items=100)
    callback.update(torch.full((50, 1), 7))
    metrics = callback.compute()
    assert metrics["gini@1"].item() == pytest.approx(99 / 100)  # (N - 1) / N: the maximum for N items
    assert metrics["coverage@1"].item() == pytest.approx(1 / 100)


def test_ndcg_and_exposure_curve():
    callback = DiversityMetrics(k=3, num_items=5)
    callback.update(torch.tensor([[1, 2, 3], [1, 2, 0]]), ranks=torch.tensor([0, 5]))
    assert callback.compute()["ndcg@3"].item() == pytest.approx(0.5)
    assert callback.exposure().tolist() == [2, 2, 1, 0, 0]


def test_callback_logs_metrics_and_writes_the_png(tmp_path):
    dm = make_chain_datamodule()
    callback = DiversityMetrics(k=10, output_dir=str(tmp_path / "plots"))
    trainer = quiet_trainer(max_epochs=1, callbacks=[callback], default_root_dir=tmp_path)
    model = tiny_sasrec(dm)
    trainer.fit(model, datamodule=dm)
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert metrics["test/diversity/coverage@10"] == pytest.approx(metrics["test/coverage@10"])
    assert metrics["test/diversity/gini@10"] == pytest.approx(metrics["test/gini@10"])
    assert metrics["test/diversity/ndcg@10"] == pytest.approx(metrics["test/ndcg@10"])
    assert callback.last_plot.name == "exposure_test_epoch001.png"
    assert callback.last_plot.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "plots" / "exposure_val_epoch000.png").is_file()


@pytest.mark.parametrize("k", [10, 50])
def test_callback_reuses_the_modules_ranking_and_scores_itself_beyond_its_cutoffs(tmp_path, k):
    """k=10 is within the module's cutoffs (5, 10, 20): no second scoring pass; k=50 is not: one per batch."""
    dm = make_chain_datamodule()
    model = tiny_sasrec(dm)
    calls = []
    score = model.score
    model.score = lambda *a, **kw: calls.append(1) or score(*a, **kw)
    callback = DiversityMetrics(k=k, plot=False)
    trainer = quiet_trainer(max_epochs=1, callbacks=[callback], default_root_dir=tmp_path)
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    batches = len(dm.test_dataloader())
    assert len(calls) == (batches if k == 10 else 2 * batches)
    if k == 10:
        assert metrics["test/diversity/coverage@10"] == pytest.approx(metrics["test/coverage@10"])
