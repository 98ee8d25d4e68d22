"""Thin per-backbone modules: the backbone is fixed and its defaults are the published ones."""

from __future__ import annotations

from collections.abc import Mapping

from lightning_seqrec.modules.seqrec import SeqRecModule
from lightning_seqrec.objectives import Objective


class SASRec(SeqRecModule):
    """SASRec: causal self-attention over the last `max_len` items (Kang & McAuley, ICDM 2018)."""

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 64,
        max_len: int = 50,
        num_blocks: int = 2,
        num_heads: int = 2,
        ffn_dim: int | None = None,
        dropout: float = 0.2,
        objectives: Mapping[str, Objective] | None = None,
        **module_kwargs,
    ):
        backbone_kwargs = dict(
            embedding_dim=embedding_dim,
            max_len=max_len,
            num_blocks=num_blocks,
            num_heads=num_heads,
            ffn_dim=ffn_dim,
            dropout=dropout,
        )
        super().__init__(
            num_items,
            backbone="sasrec",
            backbone_kwargs=backbone_kwargs,
            embedding_dim=embedding_dim,
            max_len=max_len,
            objectives=objectives,
            **module_kwargs,
        )


class GRU4Rec(SeqRecModule):
    """GRU4Rec: a recurrent encoder of the session / user sequence (Hidasi et al., ICLR 2016)."""

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 64,
        max_len: int = 50,
        hidden_dim: int = 128,
        num_layers: int = 1,
        dropout: float = 0.2,
        objectives: Mapping[str, Objective] | None = None,
        **module_kwargs,
    ):
        backbone_kwargs = dict(
            embedding_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout
        )
        super().__init__(
            num_items,
            backbone="gru4rec",
            backbone_kwargs=backbone_kwargs,
            embedding_dim=embedding_dim,
            max_len=max_len,
            objectives=objectives,
            **module_kwargs,
        )


class LSTMRec(SeqRecModule):
    """LSTM predicting the next item's embedding, matched to items by cosine (Karlis et al., IKEA Retail).

    Pass Word2Vec vectors (`lightning_seqrec.embeddings.word2vec_embeddings`) as `pretrained_embeddings`
    with `freeze_embeddings=True` for the paper's frozen input layer, and train with the embedding losses of
    `lightning_seqrec.objectives.embedding_losses`.
    """

    def __init__(
        self,
        num_items: int,
        embedding_dim: int = 64,
        max_len: int = 100,
        hidden_dim: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
        objectives: Mapping[str, Objective] | None = None,
        scoring: str = "cosine",
        **module_kwargs,
    ):
        backbone_kwargs = dict(
            embedding_dim=embedding_dim, hidden_dim=hidden_dim, num_layers=num_layers, dropout=dropout
        )
        super().__init__(
            num_items,
            backbone="lstm",
            backbone_kwargs=backbone_kwargs,
            embedding_dim=embedding_dim,
            max_len=max_len,
            objectives=objectives,
            scoring=scoring,
            **module_kwargs,
        )
