"""FedProx's client side: the squared proximal term mu/2 · ||w - w_global||² on the travelling parameters, added as
its gradient mu · (w - w_global) before each optimizer step (the module and its objectives stay unchanged)."""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback

from lightning_seqrec.federated.shared import SharedPart


class ProximalTerm(Callback):
    """Pull the backbone and the shared item rows towards their values at the start of the round (the global
    model's), with strength `mu`; market-only rows are not shared, so they are not pulled."""

    def __init__(self, mu: float, module, part: SharedPart):
        self.mu, self.rows = mu, part.rows[part.present]
        self.backbone = [p.detach().clone() for p in module.backbone.parameters()]
        self.shared_rows = module.item_embedding.weight.detach()[self.rows].clone()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        for param, start in zip(pl_module.backbone.parameters(), self.backbone, strict=True):
            if param.grad is not None:
                param.grad.add_(param.detach() - start, alpha=self.mu)
        table = pl_module.item_embedding.weight
        if table.grad is not None:
            with torch.no_grad():
                table.grad[self.rows] += self.mu * (table[self.rows] - self.shared_rows)
