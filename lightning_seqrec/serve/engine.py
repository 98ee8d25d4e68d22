"""The scoring side of the service: raw-ID requests checked into item indices, and concurrent queries answered in
batches (one encoder pass and one FAISS search for all the requests waiting), on a single worker thread that also
owns the user-state store, so the model and the states are never used by two threads at once."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lightning_seqrec.retrieval import Recommender

UNKNOWN_POLICIES = ("reject", "skip")


class RequestError(Exception):
    """A request the service refuses: its HTTP status and a one-line reason; raised before any state changes."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, " ".join(reason.split())


@dataclass
class Query:
    """One recommendation to compute: item indices (oldest first) and their times, or a precomputed `hidden` query
    (a recurrent user's state); `k`; and the item indices never to return (seen items), or None."""

    items: np.ndarray | None
    times: np.ndarray | None
    k: int
    exclude: np.ndarray | None
    hidden: np.ndarray | None = None


class Engine:
    """A loaded module behind a FAISS index (`kind` flat: exact; hnsw / ivf for large catalogs), answering batches
    of `Query`s with raw item IDs, scores and titles."""

    def __init__(self, module, kind: str = "flat", **index_kwargs):
        self.module = module.eval()
        self.recommender = Recommender(module, kind=kind, **index_kwargs)
        self.kind = kind

    def indices(self, raw_ids: Sequence, unknown: str) -> tuple[np.ndarray, list, np.ndarray]:
        """Item indices of raw IDs, the raw IDs not in the vocabulary, and the mask of those kept: unknown IDs are
        refused (`unknown="reject"`, a 422 naming them) or left out (`"skip"`, and reported)."""
        vocab = self.module.vocab
        known = np.array([raw in vocab for raw in raw_ids], dtype=bool)
        missing = [raw for raw, ok in zip(raw_ids, known, strict=True) if not ok]
        if missing and unknown == "reject":
            shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise RequestError(
                422,
                f"{len(missing)} item ID(s) are not in the model's vocabulary: {shown}; send IDs the model was trained "
                'on, or unknown="skip" to leave them out',
            )
        kept = vocab.encode([raw for raw, ok in zip(raw_ids, known, strict=True) if ok]) if known.any() else None
        return (kept if kept is not None else np.zeros(0, np.int64)), missing, known

    def run(self, queries: list[Query]) -> list[list[dict]]:
        """Top-k entries of every query: those without a precomputed query are encoded in one batch, then all are
        searched at once (the largest k, each query's own exclusions) and cut to their own k."""
        to_encode = [q for q in queries if q.hidden is None]
        encoded = {}
        if to_encode:
            times = [q.times for q in to_encode] if self.module.uses_time else None
            vectors = self.recommender.encode([q.items for q in to_encode], times)
            encoded = {id(q): v for q, v in zip(to_encode, vectors, strict=True)}
        matrix = np.stack([encoded[id(q)] if q.hidden is None else q.hidden.reshape(-1) for q in queries])
        exclude = [q.exclude if q.exclude is not None else np.zeros(0, np.int64) for q in queries]
        k = max(q.k for q in queries)
        items, scores = self.recommender.search(matrix, min(k, self.module.num_items), exclude)
        return [
            self.describe(row_items[: q.k], row_scores[: q.k])
            for q, row_items, row_scores in zip(queries, items, scores, strict=True)
        ]

    def describe(self, items: np.ndarray, scores: np.ndarray) -> list[dict]:
        """`{"item_id", "score"(, "title")}` for found item indices (0 = none found is left out)."""
        found = items > 0
        raw = self.module.vocab.decode(items[found])
        return [self.module._describe(r, float(s)) for r, s in zip(raw, scores[found], strict=True)]


class MicroBatcher:
    """Collects the queries that arrive while the worker is busy and hands them to `engine.run` together, at most
    `max_batch` at a time: under load one encoder pass and one search serve many requests; alone, a request waits
    for nothing."""

    def __init__(self, engine: Engine, worker: concurrent.futures.Executor, max_batch: int = 64):
        self.engine, self.worker, self.max_batch = engine, worker, max_batch
        self.pending: list[tuple[Query, asyncio.Future]] = []
        self.draining = False
        self.batches = self.queries = 0  # encoder passes run, queries received

    async def submit(self, query: Query) -> list[dict]:
        self.queries += 1
        future = asyncio.get_running_loop().create_future()
        self.pending.append((query, future))
        if not self.draining:
            self.draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                taken = [(q, f) for q, f in self.pending[: self.max_batch] if not f.done()]  # done: timed out
                del self.pending[: self.max_batch]
                if not taken:
                    continue
                self.batches += 1
                try:
                    results = await loop.run_in_executor(self.worker, self.engine.run, [q for q, _ in taken])
                except Exception as err:  # one bad batch fails its requests, not the service
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(err)
                    continue
                for (_, future), result in zip(taken, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.draining = False
