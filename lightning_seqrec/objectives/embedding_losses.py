"""Losses on a predicted item embedding (Karlis et al., IKEA Retail): cosine, weighted cosine with negatives,
and cross-entropy over the target and negatives, all on cosine similarities `sim(z, z_t)`.

z is the backbone's hidden state at every position with a next item (the LSTM's last state in the paper's
single-label protocol), z_t the target's item embedding and z_j the negatives' embeddings, taken from
`batch["negatives"]`, which a sampler from `lightning_seqrec.objectives.negatives` adds (pass it as `negatives`).
These losses are cosine by definition, whatever the module's scoring: they ask for cosine operands of the
`ModelView`'s item table (`scoring_operands(..., "cosine")`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.objectives.base import Objective
from lightning_seqrec.objectives.view import ModelView, scoring_operands


def _cosines(outputs: dict, batch: dict, model: ModelView) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `[B, L, d]` unit predictions, the unit item table `[N+1, d]` and the valid-position mask `[B, L]`."""
    if model.interests > 1:
        raise ConfigError(
            f"The embedding losses compare one prediction per position; the backbone gives {model.interests} interests."
        )
    z, items = scoring_operands(outputs["hidden"].float(), model.item_table.float(), "cosine")
    return z, items, batch["target_seq"] > 0


class CosineEmbeddingLoss(Objective):
    """`-sim(z, z_t)`, averaged over positions: the IKEA baseline, no negatives."""

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        z, items, valid = _cosines(outputs, batch, model)
        target = batch["target_seq"][valid]
        return -(z[valid] * items[target]).sum(-1).mean()


class _NegativeEmbeddingLoss(Objective):
    """Shared path of the losses with negatives: samples them (if a sampler is given) and computes
    `sim(z, z_t) [M]`, `sim(z, z_j) [M, K]` and which negatives are real `[M, K]` at the M valid positions."""

    def __init__(self, weight: float = 1.0, negatives: Callable[..., dict] | None = None):
        super().__init__(weight)
        self.negatives = negatives

    def similarities(
        self, outputs: dict, batch: dict, model: ModelView
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.negatives is not None:
            batch = self.negatives(batch, outputs["hidden"], model.item_table)
        if "negatives" not in batch:
            raise ConfigError(f"{type(self).__name__} needs negatives: pass negatives=InBatchNegatives(...).")
        z, items, valid = _cosines(outputs, batch, model)
        negatives = batch["negatives"]
        if negatives.dim() == 2:  # shared by all positions of a row
            sims = torch.einsum("bld,bkd->blk", z, items[negatives])
            negatives = negatives[:, None, :].expand(*sims.shape)
        else:
            sims = torch.einsum("bld,blkd->blk", z, items[negatives])
        target = batch["target_seq"][valid]
        positive = (z[valid] * items[target]).sum(-1)
        negatives = negatives[valid]
        return positive, sims[valid], (negatives > 0) & (negatives != target[:, None])


class WeightedCosineLoss(_NegativeEmbeddingLoss):
    """`-α·sim(z, z_t) + β·mean_j sim(z, z_j)` (Eq. 2; α=2, β=1): pulls z to the target and pushes it from
    the negatives' average; a position without negatives keeps only the first term."""

    def __init__(
        self, weight: float = 1.0, negatives: Callable[..., dict] | None = None, alpha: float = 2.0, beta: float = 1.0
    ):
        super().__init__(weight, negatives)
        self.alpha, self.beta = alpha, beta

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        positive, negative, real = self.similarities(outputs, batch, model)
        mean_negative = (negative * real).sum(-1) / real.sum(-1).clamp(min=1)
        return (-self.alpha * positive + self.beta * mean_negative).mean()


class EmbeddingCrossEntropy(_NegativeEmbeddingLoss):
    """`-log(exp(sim(z, z_t)/τ) / Σ_j exp(sim(z, z_j)/τ))` with j over the target and its negatives (Eq. 3,
    τ=0.05): classification of the target among the sampled candidates."""

    def __init__(self, weight: float = 1.0, negatives: Callable[..., dict] | None = None, temperature: float = 0.05):
        super().__init__(weight, negatives)
        self.temperature = temperature

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        positive, negative, real = self.similarities(outputs, batch, model)
        logits = torch.cat([positive[:, None], negative.masked_fill(~real, float("-inf"))], dim=1)
        return (logits / self.temperature).logsumexp(-1).sub(positive / self.temperature).mean()
