"""`ModelView`: the part of a model an objective may use, and the one scoring rule it shares with evaluation.

Objectives never receive the LightningModule. They get a `ModelView`, which offers the catalog size, the scoring
kind, item vectors (sparse-gradient aware), scores of hidden states against items, and `encode(batch)` for a
second forward pass. Scores follow `scoring_operands`, the same rule `SeqRecModule.score_hidden` ranks by, so a
dot-scoring module trains on dot products and a cosine-scoring one (`scoring="cosine"`, e.g. `LSTMRec`) on
cosines / τ, for every objective alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_seqrec.batch import trim_padding

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


class ModelView:
    """What an objective sees of the model it trains.

    - `num_items`, `scoring` ("dot" | "cosine"), `embedding_dim`, `device`
    - `item_table`: the whole item table `[N+1, d]` (row 0 = padding; its gradient is dense)
    - `item_vectors(items)`: rows of the table; sparse gradients when the module has `sparse_item_grad`
    - `operands(hidden, items, temperature)`: `scoring_operands` with the module's scoring kind
    - `score_all(hidden, temperature)`: `[..., N]` scores against every real item (column c = item c + 1)
    - `score(hidden, items, temperature)`: `[..., K]` scores against a shared set of item ids `[K]`
    - `score_each(hidden, items, temperature)`: scores of `hidden [M, d]` against per-row ids `[M]` or `[M, K]`
    - `encode(batch)`: `[B, d]`, the newest hidden state of another forward pass (same dropout state, gradients)

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
        return scoring_operands(hidden, items, self.scoring, temperature)

    def score_all(self, hidden: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        queries, keys = self.operands(hidden, self.item_table[1:], temperature)
        return queries @ keys.T

    def score(self, hidden: torch.Tensor, items: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        queries, keys = self.operands(hidden, self.item_vectors(items), temperature)
        return queries @ keys.T

    def score_each(self, hidden: torch.Tensor, items: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        queries, keys = self.operands(hidden, self.item_vectors(items), temperature)
        if items.dim() == hidden.dim() - 1:  # one item per row
            return (queries * keys).sum(-1)
        return torch.einsum("md,mkd->mk", queries, keys)

    def encode(self, batch: dict) -> torch.Tensor:
        """The newest hidden state `[B, d]` of a forward pass over `batch` (all-padding columns trimmed first)."""
        return self._module(trim_padding(batch))["hidden"][:, -1]


def as_view(model) -> ModelView:
    """`model` itself if it is a `ModelView`, else a view of it."""
    return model if isinstance(model, ModelView) else ModelView(model)
