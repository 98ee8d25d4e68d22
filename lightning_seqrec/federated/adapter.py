"""FeCoSR's local stage: a market adapter, a small residual bottleneck on the user representation, trained after the
federated stage with the encoder frozen, through the library's fine-tuning path.

`market_adapter` is a registered backbone wrapping another: `hidden = inner(...)`, then `hidden + up(act(down(hidden)))`
with `up` zero at the start, so a wrapped model scores exactly as the one it wraps until the adapter trains. Loading a
checkpoint or Hub folder that names it needs this module imported (`SEQREC_PLUGINS=lightning_seqrec.federated.adapter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import torch
from torch import nn

from lightning_seqrec.backbones import create_backbone, register_backbone
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.finetune import FreezeBackbone
from lightning_seqrec.modules import SeqRecModule

ADAPTER = "market_adapter"


@register_backbone(ADAPTER)
class MarketAdapter(nn.Module):
    """The `inner` backbone (built from `inner_kwargs`) plus a residual bottleneck of `bottleneck` units on its
    output; `embedding_dim` is the hidden size the inner backbone returns."""

    def __init__(
        self, inner: str = "sasrec", inner_kwargs: Mapping | None = None, bottleneck: int = 16, embedding_dim: int = 64
    ):
        super().__init__()
        if inner == ADAPTER:
            raise ConfigError("market_adapter cannot wrap itself; name the backbone it adapts (e.g. inner=sasrec).")
        self.inner = create_backbone(inner, **dict(inner_kwargs or {}))
        self.uses_time = bool(getattr(self.inner, "uses_time", False))
        self.down, self.up = nn.Linear(embedding_dim, bottleneck), nn.Linear(bottleneck, embedding_dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor, batch) -> torch.Tensor:
        hidden = self.inner(embeddings, mask, batch)
        return hidden + self.up(nn.functional.gelu(self.down(hidden)))


def with_adapter(source: SeqRecModule, bottleneck: int = 16) -> SeqRecModule:
    """`source` with its backbone wrapped in a fresh (identity) market adapter: same weights, vocabulary and scores."""
    architecture = dict(source.architecture)
    architecture["backbone_kwargs"] = {
        "inner": architecture["backbone"],
        "inner_kwargs": architecture["backbone_kwargs"],
        "bottleneck": bottleneck,
        "embedding_dim": architecture["embedding_dim"],
    }
    architecture["backbone"] = ADAPTER
    settings = {"weight_decay": source.weight_decay, "eval_ks": source.eval_ks, "seed": source.seed, "lr": source.lr}
    module = SeqRecModule(**architecture, **settings)
    module.backbone.inner.load_state_dict(source.backbone.state_dict())
    with torch.no_grad():
        module.item_embedding.weight.copy_(source.item_embedding.weight)
    module.vocab, module.item_titles = source.vocab, dict(source.item_titles)
    return module


class FreezeEncoder(FreezeBackbone):
    """`FreezeBackbone` for the adapted encoder (`backbone.inner`) only: it stays fixed for the first `epochs`
    epochs (by default all of them) while the adapter and the item embeddings train."""

    def __init__(self, epochs: int = 1000):
        super().__init__(epochs)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        super().on_before_optimizer_step(trainer, SimpleNamespace(backbone=pl_module.backbone.inner), optimizer)
