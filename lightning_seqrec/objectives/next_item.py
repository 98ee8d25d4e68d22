"""Next-item losses: full softmax cross-entropy, sampled softmax with logQ correction, BCE with negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.objectives.base import Objective, next_item_positions
from lightning_seqrec.objectives.chunked_ce import chunked_cross_entropy


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

    def forward(self, outputs: dict, batch: dict, module) -> torch.Tensor:
        hidden, target = next_item_positions(outputs, batch)
        items = module.item_embedding.weight[1:]  # class c = item c + 1
        if getattr(module, "scoring", "dot") == "cosine":
            hidden, items = F.normalize(hidden, dim=-1) / self.temperature, F.normalize(items, dim=-1)
        if self.chunk_size:
            return chunked_cross_entropy(hidden, items, target - 1, self.chunk_size, self.label_smoothing)
        return F.cross_entropy(hidden @ items.T, target - 1, label_smoothing=self.label_smoothing)


class _NegativeSampler:
    """Draws negative item indices (1..N) uniformly or proportional to popularity ** `alpha`."""

    def __init__(self, distribution: str, alpha: float):
        if distribution not in ("uniform", "popularity"):
            raise ConfigError(f"Unknown negative distribution {distribution!r}; use 'uniform' or 'popularity'.")
        self.distribution, self.alpha = distribution, alpha
        self.probs: torch.Tensor | None = None

    def setup(self, datamodule) -> None:
        if self.distribution == "popularity":
            counts = datamodule.item_counts().double().clamp(min=0) ** self.alpha
            counts[0] = 0
            self.probs = (counts / counts.sum()).float()

    def sample(self, shape: tuple, num_items: int, device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Negatives of `shape` and their log-probabilities (None for uniform, where it is constant)."""
        if self.probs is None:
            return torch.randint(1, num_items + 1, shape, device=device), None
        probs = self.probs.to(device)
        flat = torch.multinomial(probs, int(torch.tensor(shape).prod()), replacement=True)
        return flat.view(shape), probs[flat].log().view(shape)


class SampledSoftmax(Objective):
    """Softmax over the target and `num_negatives` shared sampled items, with logQ correction.

    Subtracting log q(item) from each logit makes the sampled softmax an unbiased estimate of the full one
    under popularity sampling (Bengio & Senecal 2008; Yi et al. 2019). Negatives equal to the target are
    masked, so the target is never its own negative.
    """

    sparse_item_grad = True

    def __init__(
        self,
        weight: float = 1.0,
        num_negatives: int = 256,
        distribution: str = "uniform",
        alpha: float = 1.0,
        logq_correction: bool = True,
    ):
        super().__init__(weight)
        self.num_negatives, self.logq_correction = num_negatives, logq_correction
        self.sampler = _NegativeSampler(distribution, alpha)

    def setup(self, datamodule) -> None:
        self.sampler.setup(datamodule)

    def forward(self, outputs: dict, batch: dict, module) -> torch.Tensor:
        hidden, target = next_item_positions(outputs, batch)
        negatives, log_q = self.sampler.sample((self.num_negatives,), module.num_items, hidden.device)
        pos = (hidden * module.item_vectors(target)).sum(-1, keepdim=True)
        neg = hidden @ module.item_vectors(negatives).T
        if self.logq_correction and log_q is not None:
            pos = pos - self.sampler.probs.to(hidden.device)[target].log()[:, None]
            neg = neg - log_q[None, :]
        neg = neg.masked_fill(negatives[None, :] == target[:, None], float("-inf"))
        logits = torch.cat([pos, neg], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


class BinaryCrossEntropy(Objective):
    """Binary cross-entropy of the target against `num_negatives` uniform negatives per position.

    The original SASRec loss (one negative). It is much weaker than full CE; kept for comparisons.
    """

    sparse_item_grad = True

    def __init__(self, weight: float = 1.0, num_negatives: int = 1):
        super().__init__(weight)
        self.num_negatives = num_negatives

    def forward(self, outputs: dict, batch: dict, module) -> torch.Tensor:
        hidden, target = next_item_positions(outputs, batch)
        negatives = torch.randint(1, module.num_items + 1, (len(target), self.num_negatives), device=hidden.device)
        pos = (hidden * module.item_vectors(target)).sum(-1)
        neg = torch.einsum("md,mkd->mk", hidden, module.item_vectors(negatives))
        valid = negatives != target[:, None]
        return (F.softplus(-pos) + (F.softplus(neg) * valid).sum(-1)).mean()
