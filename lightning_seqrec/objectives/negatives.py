"""Negative sampling for objectives, one implementation per kind.

- `CatalogNegatives`: item indices 1..N drawn uniformly or proportional to popularity ** alpha, with their
  log-probabilities (the sampled softmax's logQ correction); `SampledSoftmax` and `BinaryCrossEntropy` draw theirs
  through it.
- `InBatchNegatives(cap)` and `TopKNegatives(k, cap)`: batch transforms that add `batch["negatives"]` (item
  indices, 0 = none), either `[B, K]` shared by every position of a row or `[B, L, K]` per position; the embedding
  losses take one as their `negatives`. False negatives are excluded: a row's negatives never include an item of
  its own input or target sequence.

All randomness comes from torch's global generator, which `SeqRecModule` seeds per (seed, step, rank).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_seqrec.errors import ConfigError

DISTRIBUTIONS = ("uniform", "popularity")


class CatalogNegatives:
    """Draws negative item indices (1..N) uniformly or proportional to popularity ** `alpha` (training counts of
    the datamodule, read in `setup`)."""

    def __init__(self, distribution: str = "uniform", alpha: float = 1.0):
        if distribution not in DISTRIBUTIONS:
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

    def log_prob(self, items: torch.Tensor) -> torch.Tensor | None:
        """log q(items), None for uniform sampling."""
        return None if self.probs is None else self.probs.to(items.device)[items].log()


def in_batch_negatives(batch: dict, cap: int) -> torch.Tensor:
    """`[B, min(cap, U)]`: for each row, up to `cap` of the batch's U distinct positives (targets of any row),
    drawn uniformly without replacement among those absent from the row's own `item_seq` and `target_seq`."""
    item_seq, target_seq = batch["item_seq"], batch["target_seq"]
    candidates = torch.unique(target_seq[target_seq > 0])  # sorted
    rows, size = len(item_seq), min(cap, len(candidates))
    if size == 0:
        return item_seq.new_zeros(rows, 0)
    own = torch.cat([item_seq, target_seq], dim=1)
    slot = torch.searchsorted(candidates, own).clamp(max=len(candidates) - 1)
    hit = (candidates[slot] == own) & (own > 0)
    allowed = torch.ones(rows, len(candidates), dtype=torch.bool, device=own.device)
    allowed[torch.arange(rows, device=own.device)[:, None].expand_as(own)[hit], slot[hit]] = False
    keys = torch.rand(allowed.shape, device=own.device).masked_fill(~allowed, -1.0)
    keys, index = keys.topk(size, dim=1)
    return torch.where(keys >= 0, candidates[index], 0)


class InBatchNegatives:
    """In-batch negatives with a sampling cap (Prakash et al.; Karlis et al.): the other positives of the
    batch, minus the row's own items, at most `cap` per row, shared by all positions of the row."""

    def __init__(self, cap: int = 100):
        if cap < 1:
            raise ConfigError(f"cap must be >= 1, got {cap}.")
        self.cap = cap

    def __call__(self, batch: dict, hidden: torch.Tensor | None = None, items: torch.Tensor | None = None) -> dict:
        return {**batch, "negatives": in_batch_negatives(batch, self.cap)}


class TopKNegatives:
    """Adaptive top-k hard negatives: from a pool of in-batch negatives per row (sampling cap `cap`), keep for
    each position the `k` whose item vectors are most cosine-similar to that position's prediction `hidden`."""

    def __init__(self, k: int = 5, cap: int = 100):
        if not 1 <= k <= cap:
            raise ConfigError(f"Need 1 <= k <= cap, got k={k}, cap={cap}.")
        self.k, self.cap = k, cap

    @torch.no_grad()
    def __call__(self, batch: dict, hidden: torch.Tensor | None = None, items: torch.Tensor | None = None) -> dict:
        """`hidden [B, L, d]` are the predictions and `items [N+1, d]` the item vectors they are compared to."""
        if hidden is None or items is None:
            raise ConfigError("TopKNegatives needs the predictions `hidden` and the item vectors `items`.")
        pool = in_batch_negatives(batch, self.cap)  # [B, P]
        sims = torch.einsum("bld,bpd->blp", F.normalize(hidden, dim=-1), F.normalize(items[pool], dim=-1))
        sims = sims.masked_fill(pool[:, None, :] == 0, float("-inf"))
        top, index = sims.topk(min(self.k, pool.shape[1]), dim=-1)
        chosen = pool[:, None, :].expand(*sims.shape).gather(2, index)
        return {**batch, "negatives": torch.where(top > float("-inf"), chosen, 0)}
