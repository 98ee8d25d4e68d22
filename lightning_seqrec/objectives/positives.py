"""Positive pairs of training windows for contrastive objectives: strong positives (same target item) and weak
positives (similar input sequences with another target), mined by n-gram Jaccard, TF-IDF or embedding cosine.

The contrastive objectives draw their positives here (`StrongPositiveIndex.sample`, `WeakPositiveTable.sample`);
`WeakPositiveMiner` builds the weak tables. Everything is addressed by window id, the row number of
`SeqRecDataModule.train_tensors`, and vectorised in numpy / scipy.sparse / FAISS so that mining 150,000 windows
takes minutes on two CPU cores.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from lightning_seqrec.data.sequences import ranges


class StrongPositiveIndex:
    """Training windows grouped by target item (CSR: target -> window ids) to sample same-target positives.

    Built with one stable argsort; `sample` draws, for each anchor, one *other* window with the same target
    uniformly, or -1 when the anchor's target has no other window.
    """

    def __init__(self, targets: np.ndarray):
        targets = np.asarray(targets, dtype=np.int64)
        self.targets = targets
        self.order = np.argsort(targets, kind="stable")  # window ids grouped by target
        counts = np.bincount(targets)
        self.start = (np.cumsum(counts) - counts)[targets]  # where each window's target group begins in `order`
        self.count = counts[targets]  # windows sharing each window's target (itself included)
        self.position = np.empty_like(self.order)  # each window's place inside its group
        self.position[self.order] = np.arange(len(targets))
        self.position -= self.start

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One other window with the same target per anchor window id, -1 where there is none."""
        anchors = np.asarray(anchors, dtype=np.int64)
        count = self.count[anchors]
        offset = (rng.random(len(anchors)) * np.maximum(count - 1, 1)).astype(np.int64)
        offset += offset >= self.position[anchors]  # skip the anchor itself
        index = np.minimum(self.start[anchors] + offset, len(self.order) - 1)
        return np.where(count > 1, self.order[index], -1)


class WeakPositiveTable:
    """Each anchor's weak-positive candidates and their similarity weights, as CSR rows.

    Row u holds the window ids `indices[indptr[u]:indptr[u+1]]` and weights `weights[...]` (all > 0), 8 bytes
    per pair. `sample` draws one per anchor with probability proportional to its weight, by inverse-CDF search
    on one cumulative sum over the batch's rows (no per-row Python).
    """

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray):
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int32)
        self.weights = np.asarray(weights, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def sample(self, anchors: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One weak positive per anchor (∝ weight) and its weight; -1 and 0 where the row is empty."""
        anchors = np.asarray(anchors, dtype=np.int64)
        lengths = self.lengths[anchors]
        found = lengths > 0
        take = ranges(self.indptr[anchors][found], lengths[found])  # the anchors' rows, one after another
        cumulative = np.concatenate([[0.0], np.cumsum(self.weights[take], dtype=np.float64)])
        bounds = np.concatenate([[0], np.cumsum(lengths[found])])
        low, high = cumulative[bounds[:-1]], cumulative[bounds[1:]]
        point = low + rng.random(len(low)) * (high - low)
        pick = take[np.clip(np.searchsorted(cumulative, point, side="right") - 1, bounds[:-1], bounds[1:] - 1)]
        ids = np.full(len(anchors), -1, dtype=np.int64)
        weights = np.zeros(len(anchors), dtype=np.float32)
        ids[found], weights[found] = self.indices[pick], self.weights[pick]
        return ids, weights

    @classmethod
    def assemble(cls, parts: list[tuple[np.ndarray, WeakPositiveTable]], num_rows: int) -> WeakPositiveTable:
        """One table of `num_rows` rows from tables of disjoint row sets, e.g. the anchor shards of DDP ranks."""
        rows = np.concatenate([np.asarray(r, dtype=np.int64) for r, _ in parts])
        lengths = np.concatenate([t.lengths for _, t in parts])
        offsets = np.cumsum([0] + [len(t.indices) for _, t in parts[:-1]])
        starts = np.concatenate([t.indptr[:-1] + o for (_, t), o in zip(parts, offsets, strict=True)])
        order = np.argsort(rows, kind="stable")
        take = ranges(starts[order], lengths[order])
        full = np.zeros(num_rows, dtype=np.int64)
        full[rows] = lengths
        indptr = np.concatenate([[0], np.cumsum(full)])
        indices = np.concatenate([t.indices for _, t in parts])[take]
        weights = np.concatenate([t.weights for _, t in parts])[take]
        return cls(indptr, indices, weights)


def ngram_counts(item_seq: np.ndarray, n: int) -> sp.csr_matrix:
    """Counts of every contiguous 1..n-gram of each left-padded row, as a sparse `[rows, distinct grams]` matrix.

    A g-gram is coded as a base-(max item + 1) number, so codes of different orders never collide.
    """
    item_seq = np.asarray(item_seq, dtype=np.int64)
    rows, length = item_seq.shape
    base = int(item_seq.max(initial=0)) + 1
    if n < 1 or base**n >= 2**63:
        raise ValueError(f"n-gram order must be >= 1 with (num_items + 1) ** n < 2 ** 63; got n={n}.")
    row_ids, codes = [], []
    for g in range(1, min(n, length) + 1):
        span = length - g + 1
        code = np.zeros((rows, span), dtype=np.int64)
        for j in range(g):
            code = code * base + item_seq[:, j : j + span]
        valid = item_seq[:, :span] > 0  # left padding: a gram is real iff its first item is
        row_ids.append(np.nonzero(valid)[0])
        codes.append(code[valid])
    _, columns = np.unique(np.concatenate(codes), return_inverse=True)
    data = np.ones(len(columns), dtype=np.float32)
    shape = (rows, int(columns.max(initial=-1)) + 1)
    return sp.csr_matrix((data, (np.concatenate(row_ids), columns.ravel())), shape=shape)  # duplicates summed


class SparseSimilarity:
    """Similarity from inner products of sparse n-gram feature rows; subclasses define features and scaling."""

    features: sp.csr_matrix

    def _from_inner(self, inner: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray | None) -> sp.csr_matrix:
        return inner

    def scores(self, rows: np.ndarray, cols: np.ndarray | None = None) -> sp.csr_matrix:
        """Sparse `[len(rows), len(cols)]` similarities (all windows when `cols` is None); absent = 0."""
        other = self.features if cols is None else self.features[cols]
        inner = (self.features[rows] @ other.T).tocsr()
        return self._from_inner(inner, rows, cols)

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Dense similarities `[len(rows), len(cols)]` of window ids (the weights of in-batch pairs)."""
        return self.scores(rows, cols).toarray()

    def candidates(self, rows: np.ndarray, k: int, targets: np.ndarray) -> sp.csr_matrix:
        """Every window with a non-zero similarity: a superset of each row's top-k."""
        return self.scores(rows)


class NgramJaccard(SparseSimilarity):
    """Jaccard similarity |A ∩ B| / |A ∪ B| of the sets of 1..n-grams of two windows' input sequences.

    n = 1 compares item sets; n = 2 also counts shared ordered pairs, so order matters. All orders up to n
    are kept because pure bigrams are too sparse: on Beauty most windows share no bigram with any other.
    """

    def __init__(self, item_seq: np.ndarray, n: int = 2):
        features = ngram_counts(item_seq, n)
        features.data[:] = 1.0
        self.features, self.sizes = features, features.getnnz(axis=1)

    def _from_inner(self, inner: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray | None) -> sp.csr_matrix:
        size_cols = self.sizes if cols is None else self.sizes[cols]
        row_of = np.repeat(np.arange(inner.shape[0]), np.diff(inner.indptr))
        union = self.sizes[rows][row_of] + size_cols[inner.indices] - inner.data
        inner.data = (inner.data / union).astype(np.float32)
        return inner


class TfidfCosine(SparseSimilarity):
    """Cosine similarity of TF-IDF vectors over 1..n-grams (idf = log((1 + N) / (1 + df)) + 1, as sklearn)."""

    def __init__(self, item_seq: np.ndarray, n: int = 2):
        counts = ngram_counts(item_seq, n)
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = np.log((1 + counts.shape[0]) / (1 + df)) + 1
        tfidf = counts @ sp.diags(idf.astype(np.float32))
        norms = np.sqrt(np.asarray(tfidf.multiply(tfidf).sum(axis=1)).ravel())
        self.features = sp.csr_matrix(sp.diags(1 / np.maximum(norms, 1e-12)) @ tfidf, dtype=np.float32)


class EmbeddingCosine:
    """Cosine similarity of learned sequence representations, searched exactly with a FAISS inner-product index.

    Negative cosines count as 0, so only positively similar windows can be weak positives.
    """

    def __init__(self, embeddings: np.ndarray):
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.embeddings = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)

    def pairs(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return np.clip(self.embeddings[rows] @ self.embeddings[cols].T, 0, None)

    def candidates(self, rows: np.ndarray, k: int, targets: np.ndarray) -> sp.csr_matrix:
        """The nearest k + (largest same-target group among `rows`) windows: at least k remain once the
        anchor's own target is excluded."""
        import faiss

        index = faiss.IndexFlatIP(self.embeddings.shape[1])  # built per block (a copy), so nothing unpicklable is kept
        index.add(self.embeddings)
        group = int(np.bincount(targets)[targets[rows]].max(initial=0))
        sims, ids = index.search(self.embeddings[rows], min(len(self.embeddings), k + group))
        found = ids >= 0
        indptr = np.concatenate([[0], np.cumsum(found.sum(axis=1))])
        return sp.csr_matrix((sims[found], ids[found], indptr), shape=(len(rows), len(self.embeddings)))


def top_weak_positives(
    scores: sp.csr_matrix, anchors: np.ndarray, targets: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of `scores`: the k most similar windows with similarity > 0 and a target other than the
    anchor's, as (row lengths, window ids, similarities), best first."""
    row = np.repeat(np.arange(scores.shape[0]), np.diff(scores.indptr))
    col, val = scores.indices.astype(np.int64), scores.data
    keep = (val > 0) & (targets[col] != targets[anchors][row])
    row, col, val = row[keep], col[keep], val[keep]
    order = np.lexsort((col, -val, row))
    row, col, val = row[order], col[order], val[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row)  # place inside the row, best first
    keep = rank < k
    return np.bincount(row[keep], minlength=scores.shape[0]), col[keep], val[keep]


def mine_weak_positives(
    similarity, targets: np.ndarray, anchors: np.ndarray, k: int, block_size: int = 2048
) -> WeakPositiveTable:
    """Top-k weak positives of each anchor (rows in `anchors` order), computed `block_size` anchors at a time
    so memory stays bounded by one block's candidates."""
    targets = np.asarray(targets, dtype=np.int64)
    anchors = np.asarray(anchors, dtype=np.int64)
    lengths, indices, weights = [], [], []
    for start in range(0, len(anchors), block_size):
        block = anchors[start : start + block_size]
        n, ids, sims = top_weak_positives(similarity.candidates(block, k, targets), block, targets, k)
        lengths.append(n)
        indices.append(ids)
        weights.append(sims)
    empty = [np.zeros(0, dtype=np.int64)]
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(lengths or empty))])
    return WeakPositiveTable(indptr, np.concatenate(indices or empty), np.concatenate(weights or empty))
