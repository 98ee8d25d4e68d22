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
        pad = x.shape[1] - mask.sum(1)
        out, _ = self.gru(self.input_drop(rotate_rows(x, pad)))
        return self.out(rotate_rows(out, -pad)) * mask[..., None]

    def init_state(self, batch_size: int) -> torch.Tensor:
        """The recurrent state before any item: zeros `[num_layers, B, hidden_dim]` (what `forward` starts from)."""
        weight = self.out.weight
        return weight.new_zeros(self.gru.num_layers, batch_size, self.gru.hidden_size)

    def step(
        self, state, item_embedding: torch.Tensor, timestamp: torch.Tensor | None = None
    ) -> tuple[object, torch.Tensor]:
        """Fold one new item `[B, d]` into `state`: the new state and the hidden state `[B, d]` after it, which equals
        `forward`'s at the newest position of the whole history (`timestamp` is not read)."""
        out, state = self.gru(self.input_drop(item_embedding[:, None]), state)
        return state, self.out(out[:, 0])


def rotate_rows(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Row b, column t reads column t + shift_b (mod length): a left-padded row with `shift` = its padding gets
    its items first, and `-shift` puts them back."""
    length = x.shape[1]
    index = (torch.arange(length, device=x.device)[None, :] + shift[:, None]) % length
    return x.gather(1, index[..., None].expand_as(x))
