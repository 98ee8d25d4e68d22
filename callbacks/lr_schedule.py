"""`LearningRateSchedule`: linear warm-up, then cosine or linear decay of the module's learning rate, per step."""

from __future__ import annotations

import math

import lightning as L

from lightning_seqrec.errors import ConfigError

DECAYS = ("constant", "cosine", "linear")


def schedule_factor(step: int, total: int, warmup: int, decay: str, min_ratio: float) -> float:
    """The multiple of the base learning rate at optimiser step `step` (0-based) of `total`: rising linearly over
    the first `warmup` steps to 1, then held (`constant`) or brought down to `min_ratio` at the last step along a
    half cosine (`cosine`) or a straight line (`linear`)."""
    if step < warmup:
        return (step + 1) / warmup
    if decay == "constant" or total <= warmup + 1:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup - 1))
    shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if decay == "cosine" else 1.0 - progress
    return min_ratio + (1.0 - min_ratio) * shape


class LearningRateSchedule(L.Callback):
    """Sets every parameter group's learning rate to `module.lr` × `schedule_factor` before each optimiser step.

    The step count is the trainer's `global_step` and the total its `estimated_stepping_batches` (max_epochs or
    max_steps), so a resumed run goes on with the rate it stopped at. `warmup` is a number of steps (an int >= 1)
    or a share of all steps (a float in [0, 1)). The rate is logged as `train/lr`.
    """

    def __init__(self, warmup: float = 0.0, decay: str = "cosine", min_ratio: float = 0.0):
        if decay not in DECAYS:
            raise ConfigError(f"decay={decay!r} is not one of {DECAYS}; pass e.g. decay=cosine.")
        if warmup < 0 or (isinstance(warmup, float) and not warmup.is_integer() and warmup >= 1):
            raise ConfigError(f"warmup={warmup} must be a step count (>= 0) or a share of the steps in [0, 1).")
        if not 0.0 <= min_ratio <= 1.0:
            raise ConfigError(f"min_ratio={min_ratio} must lie in [0, 1] (the last step's share of the base rate).")
        self.warmup, self.decay, self.min_ratio = warmup, decay, min_ratio
        self.lr = None

    def _warmup_steps(self, total: int) -> int:
        return int(self.warmup * total) if 0 < self.warmup < 1 else int(self.warmup)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        total = int(trainer.estimated_stepping_batches)
        factor = schedule_factor(trainer.global_step, total, self._warmup_steps(total), self.decay, self.min_ratio)
        self.lr = pl_module.lr * factor
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = self.lr

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        pl_module.log("train/lr", self.lr, on_step=True, on_epoch=False, batch_size=1)
