"""Semantic Soft Cross-Entropy (S²CE): cross-entropy against a soft target that keeps `1 - alpha` of the mass on the
true next item and spreads `alpha` over the other items by their semantic similarity to it.

    q_j = (1 - alpha) * [j = y] + alpha * softmax_{k != y}(cos(s_y, s_k) / tau)_j,    L = -sum_j q_j log p_j

`p = softmax(scores)` over the catalog (the module's scoring rule, as `FullCrossEntropy`), `s` are item semantic
vectors: item side information where the data has it (`set_semantics` with feature vectors), otherwise a frozen
copy of the item table (in federated training, the global model's shared item embeddings received at the start of a
round). With `alpha = 0` it is exactly full cross-entropy. Our design: the FeCoSR paper publishes no formula.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.objectives.base import Objective, next_item_positions
from lightning_seqrec.objectives.view import ModelView


def soft_targets(semantics: torch.Tensor, target: torch.Tensor, alpha: float, tau: float) -> torch.Tensor:
    """`q [M, N]` of the module docstring for 1-based `target [M]` and item vectors `semantics [N+1, d]` (row 0 =
    padding, never a class); column c is item c + 1."""
    vectors = F.normalize(semantics[1:].float(), dim=-1)
    similarity = vectors[target - 1] @ vectors.T / tau
    truth = F.one_hot(target - 1, num_classes=len(vectors)).bool()
    spread = similarity.masked_fill(truth, float("-inf")).softmax(-1)
    return (1 - alpha) * truth.float() + alpha * spread


class SemanticSoftCE(Objective):
    """S²CE (see the module docstring): `alpha` is the mixing weight moved off the true item, `tau` the temperature
    of the similarity softmax, `temperature` divides cosine scores as in `FullCrossEntropy`."""

    def __init__(self, weight: float = 1.0, alpha: float = 0.1, tau: float = 0.1, temperature: float = 0.1):
        super().__init__(weight)
        if not 0 <= alpha <= 1:
            raise ConfigError(f"S2CE alpha must lie in [0, 1], got {alpha}; e.g. objective.s2ce.alpha=0.1.")
        if tau <= 0 or temperature <= 0:
            raise ConfigError(f"S2CE tau and temperature must be > 0, got {tau} and {temperature}.")
        self.alpha, self.tau, self.temperature = alpha, tau, temperature
        self.semantics: torch.Tensor | None = None

    def set_semantics(self, vectors: torch.Tensor) -> None:
        """Fix the item vectors similarity is read from (`[N+1, d]`, row 0 padding), detached: side information, or
        the global model's item embeddings at the start of a federated round."""
        self.semantics = vectors.detach().clone()

    def forward(self, outputs: dict, batch: dict, model: ModelView) -> torch.Tensor:
        hidden, target = next_item_positions(outputs, batch)
        logits = model.score_all(hidden, self.temperature)
        if self.alpha == 0:
            return F.cross_entropy(logits, target - 1)
        semantics = self.semantics if self.semantics is not None else model.item_table.detach()
        if len(semantics) != model.num_items + 1:
            raise ConfigError(
                f"S2CE semantic vectors cover {len(semantics) - 1} items but the model has {model.num_items}; "
                "give set_semantics one row per item plus the padding row."
            )
        q = soft_targets(semantics.to(logits.device), target, self.alpha, self.tau)
        return -(q * logits.log_softmax(-1)).sum(-1).mean()
