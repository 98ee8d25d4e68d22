"""GRU4Rec (Hidasi et al., 2016) as a sequence encoder for next-item prediction."""

from __future__ import annotations

import torch
from torch import nn

from lightning_seqrec.backbones.dropout import ByteDropout
from lightning_seqrec.backbones.registry import register_backbone


@register_backbone("gru4rec")
class GRU4RecBackbone(nn.Module):
    """A GRU over the real items only: each left-padded row is rotated so that its items come first and its
    padding trails them, where a forward recurrence never reaches the real positions; the state at the newest
    item then does not depend on how much padding the sequence had. Packing the real items computes the same
    outputs, but its backward pass on CPU is many times slower (benchmarks/rnn_padding.py)."""

    def __init__(self, embedding_dim: int = 64, hidden_dim: int = 128, num_layers: int = 1, dropout: float = 0.2):
        super().__init__()
        self.input_drop = ByteDropout(dropout)
        self.gru = nn.GRU(embedding_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.out = nn.Linear(hidden_dim, embedding_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        length = x.shape[1]
        pad = length - mask.sum(1)
        # left-padded -> items first: row b, column t reads column t + pad_b
        shift = (torch.arange(length, device=x.device)[None, :] + pad[:, None]) % length
        first = x.gather(1, shift[..., None].expand_as(x))
        out, _ = self.gru(self.input_drop(first))
        back = (torch.arange(length, device=x.device)[None, :] - pad[:, None]) % length
        h = out.gather(1, back[..., None].expand_as(out))
        return self.out(h) * mask[..., None]
