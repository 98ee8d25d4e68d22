"""The objective interface: a weighted loss object computed from model outputs, a batch and a view of the model."""

from __future__ import annotations

import torch
from torch import nn

from lightning_seqrec.objectives.view import ModelView, as_view


class Objective(nn.Module):
    """A loss term `weight * forward(outputs, batch, model)`; the module sums all of its objectives.

    `outputs["hidden"]` is the backbone's `[B, L, d]` output and `model` a `ModelView`: item vectors, scores in the
    module's scoring rule and a second forward pass, so objectives stay independent of the backbone and of the
    LightningModule. Calling an objective with a module (or a stand-in with an `item_embedding`) views it. `setup`
    receives the datamodule, for objectives that need data statistics (item popularity, strong positives);
    `configure_callbacks` names the Lightning callbacks an objective needs to train (RCL: its weak-positive miner).
    """

    sparse_item_grad = False  # True: touches item rows only through `model.item_vectors` (sparse-table safe)

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def setup(self, datamodule) -> None:  # noqa: B027 - optional hook, empty by default
        """Read what the objective needs from the data. `SeqRecModule.attach_data` calls it whenever the module is
        attached to a datamodule: at every Trainer setup (fit, validate, test, predict), so it must be cheap to
        repeat and give the same result each time."""

    def configure_callbacks(self) -> list:
        """Lightning callbacks this objective needs (a fresh list per call). `SeqRecModule.configure_callbacks`
        hands them to the Trainer, one per type; a callback of that type the user configured is kept instead."""
        return []

    def __call__(self, outputs: dict, batch: dict, model) -> torch.Tensor:
        return super().__call__(outputs, batch, as_view(model))

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        raise NotImplementedError


def next_item_positions(outputs: dict, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states `[M, d]` and targets `[M]` at every position that has a next item to predict."""
    target = batch["target_seq"]
    valid = target > 0
    return outputs["hidden"][valid], target[valid]
