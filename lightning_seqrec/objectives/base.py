"""The objective interface: a weighted loss object computed from model outputs and a batch."""

from __future__ import annotations

import torch
from torch import nn


class Objective(nn.Module):
    """A loss term `weight * forward(outputs, batch, module)`; the module sums all of its objectives.

    `outputs["hidden"]` is the backbone's `[B, L, d]` output; `module` gives access to item embeddings
    and scoring so objectives stay independent of the backbone. `setup` receives the datamodule once, for
    objectives that need data statistics (item popularity, strong positives).
    """

    sparse_item_grad = False  # True: touches item rows only through `module.item_vectors` (sparse-table safe)

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight

    def setup(self, datamodule) -> None:  # noqa: B027 - optional hook, empty by default
        """Read what the objective needs from the data (called once per fit)."""

    def forward(self, outputs: dict, batch: dict, module) -> torch.Tensor:
        raise NotImplementedError


def next_item_positions(outputs: dict, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states `[M, d]` and targets `[M]` at every position that has a next item to predict."""
    target = batch["target_seq"]
    valid = target > 0
    return outputs["hidden"][valid], target[valid]
