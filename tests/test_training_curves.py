"""`TrainingCurves`: training_curves.png at the end of fit, from the epochs' mean losses and validation metrics."""

from __future__ import annotations

import io
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from conftest import make_chain_datamodule, quiet_trainer, tiny_sasrec
from lightning_seqrec.callbacks import TrainingCurves
from lightning_seqrec.callbacks.training_curves import PLOT_FILE
from plot_checks import assert_labelled, assert_real_png


class Recorder(L.Callback):
    """What the module logged: each step's `train/loss`, and the validation metrics after each epoch."""

    def __init__(self):
        self.steps: dict[int, list[float]] = {}
        self.after_epoch: dict[int, dict[str, float]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.setdefault(trainer.current_epoch, []).append(float(trainer.callback_metrics["train/loss"]))

    def on_train_epoch_end(self, trainer, pl_module):  # runs after that epoch's validation
        self.after_epoch[trainer.current_epoch] = {k: float(v) for k, v in trainer.callback_metrics.items()}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("curves")
    curves, recorder = TrainingCurves(output_dir=str(folder)), Recorder()
    dm = make_chain_datamodule()
    quiet_trainer(max_epochs=3, callbacks=[curves, recorder]).fit(tiny_sasrec(dm), dm)
    return curves, recorder, folder


def test_each_epoch_has_its_mean_training_loss_and_its_own_validation_metrics(fitted):
    curves, recorder, _ = fitted
    assert sorted(curves.train_loss) == [0, 1, 2]
    for epoch, losses in recorder.steps.items():
        assert curves.train_loss[epoch] == pytest.approx(sum(losses) / len(losses), rel=1e-5)
    for name in ("val/ndcg@10", "val/hr@10"):  # the epoch's own value, not the one before it
        assert curves.validation[name] == {e: pytest.approx(m[name]) for e, m in recorder.after_epoch.items()}
    assert len(set(curves.validation["val/ndcg@10"].values())) > 1  # the model learned: the curve moves


def test_the_plot_is_written_at_fit_end_with_labelled_axes_and_a_legend(fitted):
    curves, _, folder = fitted
    assert curves.last_plot == folder / PLOT_FILE
    assert_real_png(curves.last_plot)
    loss_axes, metric_axes = curves.figure().axes
    for axes in (loss_axes, metric_axes):
        assert_labelled(axes)
    assert [t.get_text() for t in metric_axes.get_legend().get_texts()] == ["val/ndcg@10", "val/hr@10"]
    assert [t.get_text() for t in loss_axes.get_legend().get_texts()] == ["train loss"]


def test_only_the_global_rank_zero_writes(fitted, tmp_path):
    curves, _, _ = fitted
    other = TrainingCurves(output_dir=str(tmp_path))
    other.load_state_dict(curves.state_dict())
    other.on_fit_end(SimpleNamespace(is_global_zero=False, default_root_dir=str(tmp_path)), None)
    assert other.last_plot is None and not (tmp_path / PLOT_FILE).exists()


def test_the_history_survives_a_checkpoint_read_with_weights_only(fitted):
    curves, _, _ = fitted
    buffer = io.BytesIO()
    torch.save(curves.state_dict(), buffer)
    buffer.seek(0)
    resumed = TrainingCurves()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.train_loss == curves.train_loss and resumed.validation == curves.validation
