"""Per-user item sequences in CSR form and the vectorised gathers that turn them into padded tensors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightning_seqrec.batch import gather_left_padded  # noqa: F401  (re-exported: its old home)
from lightning_seqrec.data.interactions import Interactions
from lightning_seqrec.data.vocab import ItemVocab


@dataclass
class Sequences:
    """Chronological item sequences of many users: user u owns `items[indptr[u]:indptr[u+1]]`.

    `users` holds the raw user ID of each row; `times` (optional) is aligned with `items`.
    """

    users: np.ndarray
    indptr: np.ndarray
    items: np.ndarray
    times: np.ndarray | None = None

    @classmethod
    def from_interactions(cls, data: Interactions, vocab: ItemVocab) -> Sequences:
        """Group a (sorted) log by user into CSR sequences of vocabulary indices."""
        frame = data.sorted().frame
        users, starts = np.unique(frame["user_id"].to_numpy(), return_index=True)
        order = np.argsort(starts)  # users in order of first appearance in the sorted frame
        starts = starts[order]
        indptr = np.append(starts, len(frame)).astype(np.int64)
        items = vocab.encode_series(frame["item_id"])
        times = frame["timestamp"].to_numpy(dtype=np.float64) if data.has_time else None
        return cls(users=users[order], indptr=indptr, items=items, times=times)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def __len__(self) -> int:
        return len(self.users)

    def rows(self) -> list[np.ndarray]:
        """Each user's item indices as one array (views, no copies); none for no users (np.split would give one)."""
        return np.split(self.items, self.indptr[1:-1]) if len(self) else []

    def select(self, rows: np.ndarray, start_offset=0, end_offset=0) -> Sequences:
        """Keep `rows`, each trimmed to `[start + start_offset, end - end_offset)` (offsets may be arrays)."""
        starts = self.indptr[:-1][rows] + start_offset
        ends = self.indptr[1:][rows] - end_offset
        lengths = np.maximum(ends - starts, 0)
        idx = ranges(starts, lengths)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        times = self.times[idx] if self.times is not None else None
        return Sequences(users=self.users[rows], indptr=indptr, items=self.items[idx], times=times)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of `arange(s, s + n)` for every (s, n) pair, without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total) - offsets)
