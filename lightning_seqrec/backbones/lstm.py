"""LSTM sequence encoder, the backbone of the IKEA diversity-aware pipeline (Karlis et al.)."""

from __future__ import annotations

import torch
from torch import nn

from lightning_seqrec.backbones.gru4rec import GRU4RecBackbone
from lightning_seqrec.backbones.registry import register_backbone


@register_backbone("lstm")
class LSTMBackbone(GRU4RecBackbone):
    """An LSTM over the real items whose projected hidden state is a predicted item embedding.

    It reuses GRU4Rec's handling of left padding (moved behind the items, where the recurrence never reads it)
    and its output projection to the item-embedding size; only the recurrent cell differs (kept under the `gru`
    attribute that the shared forward pass calls).
    """

    def __init__(self, embedding_dim: int = 64, hidden_dim: int = 128, num_layers: int = 1, dropout: float = 0.0):
        super().__init__(embedding_dim, hidden_dim, num_layers, dropout)
        self.gru = nn.LSTM(embedding_dim, hidden_dim, num_layers=num_layers, batch_first=True)

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero hidden and cell states `[num_layers, B, hidden_dim]` each."""
        hidden = super().init_state(batch_size)
        return hidden, torch.zeros_like(hidden)
