"""Nearest-neighbour retrieval over item embeddings with FAISS, and a `Recommender` that serves raw item IDs.

Exact search (`flat`) ranks exactly like `SeqRecModule.score`; `hnsw` (graph) and `ivf` (inverted lists) trade
a little recall for sub-linear query time on large catalogs.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
import torch

from lightning_seqrec.batch import inference_batch
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.modules.seqrec import check_top_k, evaluating

KINDS = ("flat", "hnsw", "ivf")
METRICS = ("ip", "cosine")


def _as_float32(vectors) -> np.ndarray:
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)


class ItemIndex:
    """A FAISS index over item vectors `[N+1, d]` (row 0, padding, is left out) answering top-k item indices.

    `metric="ip"` ranks by inner product, `"cosine"` by inner product of unit vectors. `kind="hnsw"` takes
    `hnsw_m`, `ef_construction`, `ef_search`; `kind="ivf"` takes `nlist` (default 4·√N, at most N/39) and `nprobe`.
    """

    def __init__(
        self,
        item_vectors,
        kind: str = "flat",
        metric: str = "ip",
        hnsw_m: int = 32,
        ef_construction: int = 200,
        ef_search: int = 128,
        nlist: int | None = None,
        nprobe: int = 16,
    ):
        if kind not in KINDS or metric not in METRICS:
            raise ConfigError(
                f"Index kind must be one of {KINDS} and metric one of {METRICS}; got {kind!r}, {metric!r}."
            )
        vectors = self._prepare(item_vectors[1:], metric)
        self.kind, self.metric, self.num_items = kind, metric, len(vectors)
        dim = vectors.shape[1]
        if kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        elif kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction, self.index.hnsw.efSearch = ef_construction, ef_search
        else:
            nlist = nlist or max(1, min(int(np.sqrt(self.num_items)), self.num_items // 39))  # FAISS: ≥ 39 per list
            self.index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.train(vectors)
            self.index.nprobe = nprobe
        self.index.add(vectors)

    def _prepare(self, vectors, metric: str) -> np.ndarray:
        """float32 rows for FAISS; cosine normalises a copy, never the caller's array or a module's weights."""
        vectors = _as_float32(vectors)
        if metric == "cosine":
            vectors = vectors.copy()
            faiss.normalize_L2(vectors)
        return vectors

    def search(self, queries, k: int, exclude: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-`k` item indices (1..N, 0 = none found) and scores `[B, k]` per query `[B, d]`, best first.

        `exclude[b]` lists item indices never to return for query b (e.g. its seen items); the search asks
        FAISS for k + the longest exclusion list and drops the excluded ones.
        """
        queries = self._prepare(queries, self.metric)
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        fetch = min(k + extra, self.num_items)
        scores, ids = self.index.search(queries, fetch)
        items = ids.astype(np.int64) + 1  # FAISS id i is item i + 1; -1 (not found) becomes 0
        keep = items > 0
        if exclude is not None:
            rows = np.repeat(np.arange(len(exclude)), [len(e) for e in exclude])
            banned = rows * (self.num_items + 1) + np.concatenate(
                [np.zeros(0, np.int64), *(np.asarray(e, np.int64) for e in exclude)]
            )
            keep &= ~np.isin(np.arange(len(items))[:, None] * (self.num_items + 1) + items, banned)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept results first, in rank order
        items, scores, keep = (np.take_along_axis(a, order, 1) for a in (items, scores, keep))
        pad = k - items.shape[1]
        items, scores = np.where(keep, items, 0), np.where(keep, scores, -np.inf).astype(np.float32)
        if pad > 0:
            items = np.pad(items, ((0, 0), (0, pad)))
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        return items, scores


class Recommender:
    """Serves a trained `SeqRecModule` through an `ItemIndex`: raw-ID histories in, top-k raw item IDs out.

    The module encodes each history (newest `max_len` items) into a query; the index is built over the
    module's item embeddings with the module's own scoring (`ip` for dot, `cosine` for cosine), so a `flat`
    index returns what `module.recommend` returns. Histories are served in batches of `batch_size`.
    """

    def __init__(self, module, kind: str = "flat", batch_size: int = 1024, **index_kwargs):
        if module.vocab is None:
            raise ConfigError("The module has no item vocabulary: train it on a datamodule or load a checkpoint.")
        self.module, self.batch_size = module, batch_size
        metric = "cosine" if module.scoring == "cosine" else "ip"
        self.index = ItemIndex(module.item_embedding.weight, kind=kind, metric=metric, **index_kwargs)

    @torch.no_grad()
    def encode(self, encoded: list[np.ndarray], timestamps: Sequence | None = None) -> np.ndarray:
        """Query vectors `[B, H·d]`: the module's hidden state at the newest item of each index history, with
        `timestamps` (one per item of each history) as the batch's `time_seq`."""
        module = self.module
        with evaluating(module):
            batch = inference_batch(encoded, module.max_len, timestamps, device=module.device)
            return _as_float32(module(batch)["hidden"][:, -1])

    def search(self, query: np.ndarray, k: int, exclude: Sequence[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """`ItemIndex.search` of queries `[B, H·d]`. With H interests (`module.num_interests`) each interest is
        searched and the lists are merged by each item's best score: exact for a flat index, since an item in the
        top-k by its best interest is in that interest's own top-k."""
        interests = self.module.num_interests
        if interests == 1:
            return self.index.search(query, k, exclude=exclude)
        rows = len(query)
        per_interest = query.reshape(rows * interests, -1)
        repeated = None if exclude is None else [e for e in exclude for _ in range(interests)]
        items, scores = (a.reshape(rows, -1) for a in self.index.search(per_interest, k, exclude=repeated))
        order = np.lexsort((-scores, items), axis=1)  # by item, best score first
        items, scores = np.take_along_axis(items, order, 1), np.take_along_axis(scores, order, 1)
        repeat = np.zeros_like(items, dtype=bool)
        repeat[:, 1:] = items[:, 1:] == items[:, :-1]  # a later (lower-scored) copy of an item
        scores = np.where(repeat | (items == 0), -np.inf, scores).astype(np.float32)
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        items, scores = np.take_along_axis(items, best, 1), np.take_along_axis(scores, best, 1)
        return np.where(np.isfinite(scores), items, 0), scores

    def recommend(
        self,
        histories: Sequence[Sequence],
        k: int = 10,
        exclude_seen: bool = True,
        unknown: str = "raise",
        timestamps: Sequence[Sequence] | None = None,
    ) -> list[list[dict]]:
        """Top-`k` `{"item_id", "score"(, "title")}` per history of raw item IDs (oldest first); IDs not in the
        vocabulary raise, or with `unknown="drop"` are left out (and logged), and `timestamps` (one per item of each
        history; needed by a backbone that reads time) are checked, as in `SeqRecModule.recommend`."""
        k = check_top_k(k)
        vocab = self.module.vocab
        all_encoded, all_times = self.module.encode_inputs(histories, timestamps, unknown)
        results = []
        for start in range(0, len(all_encoded), self.batch_size):
            encoded = all_encoded[start : start + self.batch_size]
            times = all_times[start : start + self.batch_size] if all_times is not None else None
            query = self.encode(encoded, times)
            items, scores = self.search(query, k, exclude=encoded if exclude_seen else None)
            for row_items, row_scores in zip(items, scores, strict=True):
                found = row_items > 0
                raw = vocab.decode(row_items[found])
                results.append(
                    [self.module._describe(r, float(s)) for r, s in zip(raw, row_scores[found], strict=True)]
                )
        return results
