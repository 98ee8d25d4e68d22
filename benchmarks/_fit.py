"""Fit with early stopping on validation NDCG@10, then test the best checkpoint, tracing every epoch: the loop
shared by the benchmark scripts that train in-process."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint


class EpochTrace(Callback):
    """Wall time of each training epoch's training part (Lightning validates inside the epoch, so the clock stops
    when validation starts) and every validation NDCG@10 with the wall time since fit started, printed as it
    comes."""

    def __init__(self, label: str = ""):
        self.label = label
        self.epoch_seconds: list[float] = []
        self.validations: list[dict] = []
        self.epoch_start: float | None = None  # set while a training epoch's clock runs

    def on_fit_start(self, trainer, module):
        self.fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer, module):
        self.epoch_start = time.perf_counter()

    def _stop_clock(self) -> None:
        if self.epoch_start is not None:
            self.epoch_seconds.append(time.perf_counter() - self.epoch_start)
            self.epoch_start = None

    def on_validation_start(self, trainer, module):
        self._stop_clock()

    def on_train_epoch_end(self, trainer, module):
        self._stop_clock()  # epochs without validation

    def on_validation_end(self, trainer, module):  # after the module has logged this epoch's metrics
        ndcg = float(trainer.callback_metrics["val/ndcg@10"])
        seconds = time.perf_counter() - self.fit_start
        self.validations.append({"epoch": trainer.current_epoch, "seconds": seconds, "ndcg@10": ndcg})
        epoch = f"{self.label}epoch {trainer.current_epoch}"
        print(f"{epoch}: train {self.epoch_seconds[-1]:.1f}s, valid ndcg@10 {ndcg:.4f} at {seconds:.1f}s", flush=True)


@dataclass
class FitResult:
    trace: EpochTrace
    fit_seconds: float
    epochs: int
    best_val_ndcg: float
    test: dict[str, float]  # test metrics of the best checkpoint, keys like "test/ndcg@10"


def fit_and_test(module, datamodule, max_epochs: int, patience: int, label: str = "") -> FitResult:
    """Train `module` until validation NDCG@10 stops improving for `patience` epochs, test the best checkpoint."""
    trace = EpochTrace(label)
    with tempfile.TemporaryDirectory() as tmp:
        best = ModelCheckpoint(dirpath=tmp, monitor="val/ndcg@10", mode="max", save_top_k=1)
        trainer = L.Trainer(
            max_epochs=max_epochs,
            callbacks=[best, EarlyStopping("val/ndcg@10", mode="max", patience=patience), trace],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(module, datamodule)
        fit_seconds = time.perf_counter() - trace.fit_start
        test = trainer.test(module, datamodule, ckpt_path=best.best_model_path, verbose=False)[0]
    return FitResult(trace, fit_seconds, trainer.current_epoch, float(best.best_model_score), test)
