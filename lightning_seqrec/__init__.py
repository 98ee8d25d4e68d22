"""lightning-seqrec: sequential recommendation on PyTorch Lightning."""

import os

from lightning_seqrec import quiet
from lightning_seqrec.checkpoint import load_checkpoint
from lightning_seqrec.data import Interactions, ItemVocab, SeqRecDataModule
from lightning_seqrec.finetune import FreezeBackbone, adapt_to_data
from lightning_seqrec.modules import TMEPSR, GRU4Rec, LRURec, LSTMRec, SASRec, SeqRecModule
from lightning_seqrec.version import __version__

if os.environ.get(quiet.ENV) == "1":  # a process a quiet `seqrec` command started (a DDP worker): quiet as well
    quiet.quiet()

__all__ = [
    "FreezeBackbone",
    "GRU4Rec",
    "LRURec",
    "TMEPSR",
    "Interactions",
    "ItemVocab",
    "LSTMRec",
    "SASRec",
    "SeqRecDataModule",
    "SeqRecModule",
    "adapt_to_data",
    "load_checkpoint",
    "__version__",
]
