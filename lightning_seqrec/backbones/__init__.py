"""Sequence encoders: plain nn.Modules mapping embedded item sequences to hidden states."""

from lightning_seqrec.backbones.gru4rec import GRU4RecBackbone
from lightning_seqrec.backbones.lru import LRUBackbone
from lightning_seqrec.backbones.lstm import LSTMBackbone
from lightning_seqrec.backbones.registry import (
    create_backbone,
    get_backbone,
    list_backbones,
    register_backbone,
)
from lightning_seqrec.backbones.sasrec import SASRecBackbone

__all__ = [
    "GRU4RecBackbone",
    "LRUBackbone",
    "LSTMBackbone",
    "SASRecBackbone",
    "create_backbone",
    "get_backbone",
    "list_backbones",
    "register_backbone",
]
