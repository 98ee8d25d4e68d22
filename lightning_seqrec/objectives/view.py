"""`ModelView`: the part of a model an objective may use, and the one scoring rule it shares with evaluation.

Objectives never receive the LightningModule. They get a `ModelView`, which offers the catalog size, the scoring
kind, item vectors (sparse-gradient aware), scores of hidden states against items, and `encode(batch)` for a
second forward pass. Scores follow `scoring_operands`, the same rule `SeqRecModule.score_hidden` ranks by, so a
dot-scoring module trains on dot products and a cosine-scoring one (`scoring="cosine"`, e.g. `LSTMRec`) on
cosines / τ, for every objective alike.

A backbone with several interests (`num_interests = H`, e.g. the multihead LRU with `interests="max"`) packs H
vectors into each hidden state, `[..., H·d]`; an item's score is then its best-matching interest's, `max_h s(u_h,
item)`, by the same functions (`score_items`, `score_each_item`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_seqrec.batch import trim_padding
from lightning_seqrec.errors import ConfigError

SCORINGS = ("dot", "cosine")


def scoring_operands(
    hidden: torch.Tensor, items: torch.Tensor, scoring: str = "dot", temperature: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(queries, keys)` whose products `queries @ keys.T` are the scores of hidden states `[..., d]` against item
    vectors `[..., d]`: the tensors themselves for `scoring="dot"`; for `"cosine"` unit vectors, the queries divided
    by `temperature` when one is given (cos(h, item) / τ). The temperature applies to cosine scoring only: dot
    products carry their own scale, which the model learns."""
    if scoring == "cosine":
        hidden, items = F.normalize(hidden, dim=-1), F.normalize(items, dim=-1)
        if temperature is not None:
            hidden = hidden / temperature
    return hidden, items


def split_interests(hidden: torch.Tensor, interests: int) -> torch.Tensor:
    """`[..., H·d]` -> `[..., H, d]`: the H interest vectors a hidden state packs."""
    return hidden.unflatten(-1, (interests, hidden.shape[-1] // interests))


def score_items(
    hidden: torch.Tensor,
    items: torch.Tensor,
    scoring: str = "dot",
    temperature: float | None = None,
    interests: int = 1,
) -> torch.Tensor:
    """Scores `[..., K]` of hidden states `[..., H·d]` against item vectors `[K, d]`: `queries @ keys.T` of
    `scoring_operands`, and with `interests` H > 1 the best interest's score per item."""
    if interests == 1:
        queries, keys = scoring_operands(hidden, items, scoring, temperature)
        return queries @ keys.T
    queries, keys = scoring_operands(split_interests(hidden, interests), items, scoring, temperature)
    return (queries @ keys.T).amax(dim=-2)


def score_each_item(
    hidden: torch.Tensor,
    items: torch.Tensor,
    scoring: str = "dot",
    temperature: float | None = None,
    interests: int = 1,
) -> torch.Tensor:
    """Scores of hidden states `[M, H·d]` against per-row item vectors `[M, d]` (-> `[M]`) or `[M, K, d]`
    (-> `[M, K]`), by the rule of `score_items`."""
    queries, keys = scoring_operands(split_interests(hidden, interests), items, scoring, temperature)  # [M, H, d]
    if keys.dim() == 2:  # one item per row
        return (queries * keys[:, None]).sum(-1).amax(dim=-1)
    return torch.einsum("mhd,mkd->mhk", queries, keys).amax(dim=1)


class ModelView:
    """What an objective sees of the model it trains.

    - `num_items`, `scoring` ("dot" | "cosine"), `interests` (H), `embedding_dim`, `device`
    - `item_table`: the whole item table `[N+1, d]` (row 0 = padding; its gradient is dense)
    - `item_vectors(items)`: rows of the table; sparse gradients when the module has `sparse_item_grad`
    - `operands(hidden, items, temperature)`: `scoring_operands` with the module's scoring kind (one interest only)
    - `score_all(hidden, temperature)`: `[..., N]` scores against every real item (column c = item c + 1)
    - `score(hidden, items, temperature)`: `[..., K]` scores against a shared set of item ids `[K]`
    - `score_each(hidden, items, temperature)`: scores of `hidden [M, d]` against per-row ids `[M]` or `[M, K]`
    - `encode(batch)`: `[B, H·d]`, the newest hidden state of another forward pass (same dropout state, gradients)

    `temperature` divides cosines only (see `scoring_operands`). The view reads its module at every call, so it
    always reflects the module's current weights and mode. Anything with an `item_embedding` (and `num_items`,
    `item_vectors`, `scoring`, a forward pass where those are used) can be viewed, which keeps objectives testable
    with small stand-ins.
    """

    def __init__(self, module):
        self._module = module

    @property
    def num_items(self) -> int:
        return int(self._module.num_items)

    @property
    def scoring(self) -> str:
        return getattr(self._module, "scoring", "dot")

    @property
    def interests(self) -> int:
        return int(getattr(self._module, "num_interests", 1))

    @property
    def item_table(self) -> torch.Tensor:
        return self._module.item_embedding.weight

    @property
    def embedding_dim(self) -> int:
        return self.item_table.shape[1]

    @property
    def device(self) -> torch.device:
        return self.item_table.device

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Vectors of item indices `items`, through the module's sparse-aware lookup when it has one."""
        lookup = getattr(self._module, "item_vectors", None)
        return lookup(items) if lookup is not None else F.embedding(items, self.item_table)

    def operands(
        self, hidden: torch.Tensor, items: torch.Tensor, temperature: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.interests > 1:
            raise ConfigError(
                f"This objective needs one vector per position, but the backbone gives {self.interests} interests; "
                "score through score_all / score / score_each (for full CE: chunk_size=null)."
            )
        return scoring_operands(hidden, items, self.scoring, temperature)

    def score_all(self, hidden: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        return score_items(hidden, self.item_table[1:], self.scoring, temperature, self.interests)

    def score(self, hidden: torch.Tensor, items: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        return score_items(hidden, self.item_vectors(items), self.scoring, temperature, self.interests)

    def score_each(self, hidden: torch.Tensor, items: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        return score_each_item(hidden, self.item_vectors(items), self.scoring, temperature, self.interests)

    def encode(self, batch: dict) -> torch.Tensor:
        """The newest hidden state `[B, d]` of a forward pass over `batch` (all-padding columns trimmed first)."""
        return self._module(trim_padding(batch))["hidden"][:, -1]


def as_view(model) -> ModelView:
    """`model` itself if it is a `ModelView`, else a view of it."""
    return model if isinstance(model, ModelView) else ModelView(model)
