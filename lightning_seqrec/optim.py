"""`SparseAwareAdamW`: AdamW that updates only the touched rows of parameters whose gradient is sparse.

With sampled softmax over a 1M-item catalog a step touches a few thousand rows of the item table, but dense AdamW
reads and writes all of it (and its two moment buffers) every step: at 917k items that was 55 % of a 2.3 s CPU
step. Parameters with a sparse gradient (an `nn.Embedding(sparse=True)` table) get lazy Adam instead, as
`torch.optim.SparseAdam` does: moments and weights change only on the rows in the gradient, with decoupled
weight decay applied to those rows. Dense parameters get plain AdamW. One optimizer, one state dict.
"""

from __future__ import annotations

import torch


class SparseAwareAdamW(torch.optim.AdamW):
    """AdamW for dense gradients, lazy (row-wise) AdamW for sparse ones; same hyper-parameters for both."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        sparse = [
            (group, p)
            for group in self.param_groups
            for p in group["params"]
            if p.grad is not None and p.grad.is_sparse
        ]
        grads = [p.grad for _, p in sparse]
        for _, p in sparse:
            p.grad = None  # hidden from the dense update
        super().step()
        for (group, p), grad in zip(sparse, grads, strict=True):
            p.grad = grad
            self._lazy_step(group, p, grad.coalesce())
        return loss

    def _lazy_step(self, group: dict, p: torch.Tensor, grad: torch.Tensor) -> None:
        rows, values = grad.indices()[0], grad.values()
        if rows.numel() == 0:
            return
        beta1, beta2 = group["betas"]
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        step = float(state["step"])
        exp_avg = state["exp_avg"][rows].mul_(beta1).add_(values, alpha=1 - beta1)
        exp_avg_sq = state["exp_avg_sq"][rows].mul_(beta2).addcmul_(values, values, value=1 - beta2)
        state["exp_avg"][rows], state["exp_avg_sq"][rows] = exp_avg, exp_avg_sq
        denom = (exp_avg_sq / (1 - beta2**step)).sqrt_().add_(group["eps"])
        weights = p[rows] * (1 - group["lr"] * group["weight_decay"])
        p[rows] = weights - group["lr"] * (exp_avg / (1 - beta1**step)) / denom
