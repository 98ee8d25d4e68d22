"""`TrainingCurves`: at the end of fit, `training_curves.png` in the run folder: the mean training loss of each
epoch and the validation NDCG@10 / HR@10 after it, on two labelled panels."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

PLOT_FILE = "training_curves.png"


class TrainingCurves(L.Callback):
    """Records, per epoch, the mean of the training steps' losses (averaged over processes under DDP) and the
    validation metrics named in `metrics` (logged by the module, e.g. `val/ndcg@10`), and on the global rank 0
    draws them when fit ends into `output_dir` (default: the trainer's `default_root_dir`, a Hydra run's folder).

    The per-step cost is one tensor addition on the loss's device (no host sync); the history travels in
    checkpoints, so a resumed run's plot starts at its first epoch. `last_plot` is the path written last.
    """

    def __init__(self, metrics: tuple[str, ...] = ("val/ndcg@10", "val/hr@10"), output_dir: str | None = None):
        self.metrics, self.output_dir = tuple(metrics), output_dir
        self.train_loss: dict[int, float] = {}
        self.validation: dict[str, dict[int, float]] = {name: {} for name in self.metrics}
        self.last_plot: Path | None = None
        self._sum: torch.Tensor | None = None
        self._steps = 0

    # ----------------------------------------------------------------- recording
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._sum, self._steps = None, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:  # a skipped step
            return
        loss = loss.detach().float()
        self._sum = loss if self._sum is None else self._sum + loss
        self._steps += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        total = self._sum if self._sum is not None else torch.zeros((), device=pl_module.device)
        mean = total / max(self._steps, 1)
        mean = trainer.strategy.reduce(mean, reduce_op="mean")  # every process calls it: a collective under DDP
        if self._steps:
            self.train_loss[trainer.current_epoch] = float(mean)

    def on_validation_end(self, trainer, pl_module) -> None:
        # after the module's epoch-end logging, so callback_metrics hold this validation's values
        if trainer.sanity_checking:
            return
        for name in self.metrics:
            if name in trainer.callback_metrics:
                self.validation[name][trainer.current_epoch] = float(trainer.callback_metrics[name])

    def state_dict(self) -> dict:
        return {"train_loss": dict(self.train_loss), "validation": {k: dict(v) for k, v in self.validation.items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.train_loss = {int(k): float(v) for k, v in state_dict.get("train_loss", {}).items()}
        for name, values in state_dict.get("validation", {}).items():
            self.validation[name] = {int(k): float(v) for k, v in values.items()}

    # ----------------------------------------------------------------- drawing
    def figure(self):
        """The curves as a matplotlib `Figure` (object API, no pyplot state): training loss on the left panel,
        the validation metrics on the right, epochs counted from 1."""
        from matplotlib.figure import Figure

        figure = Figure(figsize=(9, 3.6), layout="constrained")
        loss_axes, metric_axes = figure.subplots(1, 2)
        epochs = sorted(self.train_loss)
        loss_axes.plot([e + 1 for e in epochs], [self.train_loss[e] for e in epochs], marker="o", label="train loss")
        loss_axes.set(xlabel="epoch", ylabel="mean training loss", title="training loss")
        for name, values in self.validation.items():
            points = sorted(values)
            metric_axes.plot([e + 1 for e in points], [values[e] for e in points], marker="o", label=name)
        metric_axes.set(xlabel="epoch", ylabel="validation metric", title="validation")
        for axes in (loss_axes, metric_axes):
            axes.xaxis.get_major_locator().set_params(integer=True)
            axes.grid(alpha=0.3)
            axes.legend()
        return figure

    def save_plot(self, path: str | Path) -> Path:
        """Write the curves to `path` (PNG)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.figure().savefig(path, format="png", dpi=100)
        return path

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.train_loss:
            self.last_plot = self.save_plot(Path(self.output_dir or trainer.default_root_dir) / PLOT_FILE)
