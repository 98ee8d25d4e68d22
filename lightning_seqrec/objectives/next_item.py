"""Next-item losses: full softmax cross-entropy, sampled softmax with logQ correction, BCE and gBCE with negatives; all
score through the `ModelView`, in the module's scoring rule."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.objectives.base import Objective, next_item_positions
from lightning_seqrec.objectives.chunked_ce import chunked_cross_entropy
from lightning_seqrec.objectives.negatives import CatalogNegatives
from lightning_seqrec.objectives.view import ModelView


class FullCrossEntropy(Objective):
    """Softmax cross-entropy over the whole catalog at every position (SASRec+ / "CE SASRec").

    The strongest plain objective on public benchmarks. The padding row is not a class. Dense logits cost
    positions x catalog memory; `chunk_size` computes the same loss and gradients chunk by chunk instead
    (see `chunked_cross_entropy`), and `SampledSoftmax` approximates it for very large catalogs. Logits follow
    the module's scoring, so training optimises the ranking that evaluation uses: dot products, or cosines /
    `temperature` for a module with `scoring="cosine"`.
    """

    def __init__(
        self,
        weight: float = 1.0,
        label_smoothing: float = 0.0,
        chunk_size: int | None = None,
        temperature: float = 0.1,
    ):
        super().__init__(weight)
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}.")
        self.label_smoothing, self.chunk_size, self.temperature = label_smoothing, chunk_size, temperature

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        hidden, target = next_item_positions(outputs, batch)
        if self.chunk_size:
            hidden, items = model.operands(hidden, model.item_table[1:], self.temperature)  # class c = item c + 1
            return chunked_cross_entropy(hidden, items, target - 1, self.chunk_size, self.label_smoothing)
        logits = model.score_all(hidden, self.temperature)
        return F.cross_entropy(logits, target - 1, label_smoothing=self.label_smoothing)


class _CatalogSampled(Objective):
    """A next-item loss against `num_negatives` items drawn from the catalog by `CatalogNegatives` (uniformly, or
    proportional to popularity ** `alpha` with `distribution="popularity"`); scores follow the module's scoring, and
    `temperature` divides cosines only, as in `FullCrossEntropy`."""

    sparse_item_grad = True

    def __init__(
        self,
        weight: float = 1.0,
        num_negatives: int = 1,
        distribution: str = "uniform",
        alpha: float = 1.0,
        temperature: float = 0.1,
    ):
        super().__init__(weight)
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}.")
        self.num_negatives, self.temperature = num_negatives, temperature
        self.sampler = CatalogNegatives(distribution, alpha)

    def setup(self, datamodule) -> None:
        self.sampler.setup(datamodule)


class SampledSoftmax(_CatalogSampled):
    """Softmax over the target and `num_negatives` sampled items shared by all positions of the batch.

    Subtracting log q(item) from each logit makes the sampled softmax an unbiased estimate of the full one
    under popularity sampling (Bengio & Senecal 2008; Yi et al. 2019). Negatives equal to the target are
    masked, so the target is never its own negative. `sampling`: `distribution`, `alpha`, `temperature`.
    """

    def __init__(self, weight: float = 1.0, num_negatives: int = 256, logq_correction: bool = True, **sampling):
        super().__init__(weight, num_negatives, **sampling)
        self.logq_correction = logq_correction

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        hidden, target = next_item_positions(outputs, batch)
        negatives, log_q = self.sampler.sample((self.num_negatives,), model.num_items, hidden.device)
        pos = model.score_each(hidden, target, self.temperature)[:, None]
        neg = model.score(hidden, negatives, self.temperature)
        if self.logq_correction and log_q is not None:
            pos = pos - self.sampler.log_prob(target)[:, None]
            neg = neg - log_q[None, :]
        neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
        logits = torch.cat([pos, neg], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


class BinaryCrossEntropy(_CatalogSampled):
    """Binary cross-entropy of the target against `num_negatives` negatives per position.

    The original SASRec loss (one uniform negative). It is much weaker than full CE; kept for comparisons.
    """

    def positive_weight(self, num_items: int) -> float:
        """The weight of the positive's term (1: plain BCE; `GeneralisedBCE` calibrates it)."""
        return 1.0

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        hidden, target = next_item_positions(outputs, batch)
        negatives, _ = self.sampler.sample((len(target), self.num_negatives), model.num_items, hidden.device)
        pos = model.score_each(hidden, target, self.temperature)
        neg = model.score_each(hidden, negatives, self.temperature)
        valid = negatives != target[:, None]
        beta = self.positive_weight(model.num_items)
        return (beta * F.softplus(-pos) + (F.softplus(neg) * valid).sum(-1)).mean()


class GeneralisedBCE(BinaryCrossEntropy):
    """gBCE (gSASRec: Petrov & Macdonald, RecSys 2023): BCE whose positive term is `-log σ(s⁺)^β`, which undoes the
    overconfidence that training on a few sampled negatives gives the model.

    With k negatives drawn uniformly from the N − 1 other items, α = k / (N − 1) and β = α·(t·(1 − 1/α) + 1/α)
    = 1 − t·(1 − α), so `calibration` t = 0 is plain BCE and t = 1 is β = α. The paper's default: 256 negatives,
    t = 0.75.
    """

    def __init__(self, weight: float = 1.0, num_negatives: int = 256, calibration: float = 0.75, **sampling):
        super().__init__(weight, num_negatives, **sampling)
        if not 0.0 <= calibration <= 1.0:
            raise ConfigError(f"calibration={calibration} must lie in [0, 1] (0: plain BCE); gSASRec uses 0.75.")
        self.calibration = calibration

    def positive_weight(self, num_items: int) -> float:
        alpha = min(1.0, self.num_negatives / max(1, num_items - 1))
        return 1.0 - self.calibration * (1.0 - alpha)
