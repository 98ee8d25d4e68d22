"""GRU4Rec (Hidasi et al., 2016) as a sequence encoder for next-item prediction."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lightning_seqrec.backbones.dropout import ByteDropout
from lightning_seqrec.backbones.registry import register_backbone


@register_backbone("gru4rec")
class GRU4RecBackbone(nn.Module):
    """A GRU over the real items only: left padding is removed before the recurrence, so the state at the
    newest item does not depend on how much padding preceded the sequence."""

    def __init__(self, embedding_dim: int = 64, hidden_dim: int = 128, num_layers: int = 1, dropout: float = 0.2):
        super().__init__()
        self.input_drop = ByteDropout(dropout)
        self.gru = nn.GRU(embedding_dim, hidden_dim, num_layers=num_layers, batch_first=True)
        self.out = nn.Linear(hidden_dim, embedding_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, batch: dict | None = None) -> torch.Tensor:
        length = x.shape[1]
        lengths = mask.sum(1).clamp(min=1)
        pad = length - lengths
        # left-padded -> right-aligned start: row b, column t reads column t + pad_b
        shift = (torch.arange(length, device=x.device)[None, :] + pad[:, None]) % length
        right = x.gather(1, shift[..., None].expand_as(x))
        packed = pack_padded_sequence(self.input_drop(right), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=length)
        back = (torch.arange(length, device=x.device)[None, :] - pad[:, None]) % length
        h = out.gather(1, back[..., None].expand_as(out))
        return self.out(h) * mask[..., None]
