"""Word2Vec item embeddings (skip-gram over item sequences), the IKEA pipeline's frozen input layer.

gensim is an optional dependency (`pip install "lightning-seqrec[w2v]"`), imported only when training.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from lightning_seqrec.data.sequences import Sequences
from lightning_seqrec.data.splits import _resolve_cutoff
from lightning_seqrec.errors import ConfigError, DataError

FALLBACKS = ("random", "mean")


def early_sequences(sequences: Sequences, cutoff: float = 0.5) -> list[np.ndarray]:
    """Each user's items with a timestamp before `cutoff` (a quantile in (0, 1) or a timestamp): the first
    chronological part of the data, so the embeddings never see the interactions the model is evaluated on."""
    if sequences.times is None:
        raise DataError("Chronological Word2Vec data needs timestamps; this log has none.")
    early = sequences.times < _resolve_cutoff(sequences.times, cutoff)
    return [row[keep] for row, keep in zip(sequences.rows(), np.split(early, sequences.indptr[1:-1]), strict=True)]


def word2vec_embeddings(
    sequences: Iterable[Sequence[int]],
    num_items: int,
    dim: int = 64,
    window: int = 5,
    min_count: int = 1,
    epochs: int = 10,
    fallback: str = "random",
    seed: int = 0,
    workers: int = 1,
) -> torch.Tensor:
    """Skip-gram Word2Vec vectors `[num_items + 1, dim]` for item indices 1..num_items (row 0, padding, is 0).

    Items Word2Vec never kept (absent from `sequences` or rarer than `min_count`) get the `fallback`:
    `"random"` (default) draws a Gaussian vector with the per-dimension spread of the trained ones, which has
    cosine ≈ 0 with everything, so under cosine scoring an unseen item is neither favoured nor penalised and
    unseen items stay distinct; `"mean"` uses the centroid of the trained vectors, a neutral *input* but one
    that makes every unseen item identical and close to typical predictions, so they cluster in retrieval.
    """
    if fallback not in FALLBACKS:
        raise ConfigError(f"fallback={fallback!r} is not valid; use one of {FALLBACKS}.")
    try:
        from gensim.models import Word2Vec
    except ImportError as err:
        raise ImportError(
            'Word2Vec item embeddings need gensim: pip install "lightning-seqrec[w2v]" (or pip install gensim).'
        ) from err
    corpus = [[str(int(i)) for i in seq] for seq in sequences if len(seq) > 0]
    if not corpus:
        raise DataError("Word2Vec got no non-empty sequences to train on.")
    model = Word2Vec(
        corpus,
        vector_size=dim,
        window=window,
        min_count=min_count,
        sg=1,
        epochs=epochs,
        seed=seed,
        workers=workers,
    )
    known = np.array([int(k) for k in model.wv.index_to_key], dtype=np.int64)
    if len(known) == 0:
        raise DataError(f"No item occurs min_count={min_count} times; lower min_count or give more sequences.")
    if known.min() < 1 or known.max() > num_items:
        raise DataError(f"Sequences must hold item indices 1..{num_items}; got {known.min()}..{known.max()}.")
    trained = model.wv.vectors.astype(np.float32)
    rng = np.random.default_rng(seed)
    if fallback == "mean":
        table = np.tile(trained.mean(0), (num_items + 1, 1))
    else:
        table = rng.normal(0.0, trained.std(0), size=(num_items + 1, dim)).astype(np.float32)
    table[known] = trained
    table[0] = 0.0
    return torch.from_numpy(table)


class Word2VecEmbeddings:
    """Word2Vec vectors for a datamodule's catalog, trained on its `embedding_corpus()`: the hook that puts
    pretrained item embeddings into a Hydra run (`embeddings=word2vec`); arguments as `word2vec_embeddings`."""

    def __init__(self, dim: int = 64, window: int = 5, min_count: int = 1, epochs: int = 10, **kwargs):
        self.kwargs = {"dim": dim, "window": window, "min_count": min_count, "epochs": epochs, **kwargs}

    def __call__(self, datamodule) -> torch.Tensor:
        return word2vec_embeddings(datamodule.embedding_corpus(), datamodule.num_items, **self.kwargs)
