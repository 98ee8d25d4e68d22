"""LightningModules: the generic `SeqRecModule` and thin per-backbone classes."""

from lightning_seqrec.modules.models import TMEPSR, GRU4Rec, LRURec, LSTMRec, SASRec
from lightning_seqrec.modules.seqrec import SeqRecModule

__all__ = ["TMEPSR", "GRU4Rec", "LRURec", "LSTMRec", "SASRec", "SeqRecModule"]
