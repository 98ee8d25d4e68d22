"""Tensor datasets whose batches are index slices of pre-padded tensors (no per-sample Python)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from lightning_seqrec.batch import gather_left_padded
from lightning_seqrec.data.sequences import Sequences, ranges
from lightning_seqrec.data.splits import EvalSet
from lightning_seqrec.errors import DataError


def _identity(batch):
    """DataLoader collate: `__getitems__` already returns a collated batch."""
    return batch


class TensorDictDataset(Dataset):
    """Rows of several aligned tensors; a batch is one fancy-index per tensor, returned as a dict."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"All tensors need the same first dimension, got {lengths}.")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        return {k: v[idx] for k, v in self.tensors.items()}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.tensors.items()}


def padded_histories(history: Sequences, max_len: int) -> dict[str, torch.Tensor]:
    """`item_seq` (and `time_seq` when timed): each row's newest `max_len` items, left-padded."""
    starts, ends = history.indptr[:-1], history.indptr[1:]
    tensors = {"item_seq": torch.from_numpy(gather_left_padded(history.items, starts, ends, max_len))}
    if history.times is not None:
        tensors["time_seq"] = torch.from_numpy(gather_left_padded(history.times, starts, ends, max_len))
    return tensors


class EvalDataset(TensorDictDataset):
    """Evaluation users: padded inputs and targets plus each user's full history for seen-item masking.

    The history is kept whole (not truncated to `max_len`) so masking covers everything the user has seen.
    Batches carry `seen_rows`/`seen_items`: coordinates of seen items in the batch's score matrix.
    """

    def __init__(self, eval_set: EvalSet, max_len: int):
        tensors = {
            **padded_histories(eval_set.history, max_len),
            "target": torch.from_numpy(eval_set.targets.astype(np.int64)),
            "user": torch.arange(len(eval_set), dtype=torch.long),
        }
        super().__init__(tensors)
        self.history = eval_set.history

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        batch = super().__getitems__(indices)
        rows = np.asarray(indices, dtype=np.int64)
        lengths = self.history.lengths[rows]
        flat = ranges(self.history.indptr[:-1][rows], lengths)
        batch["seen_rows"] = torch.from_numpy(np.repeat(np.arange(len(rows)), lengths))
        batch["seen_items"] = torch.from_numpy(self.history.items[flat])
        return batch


def train_windows(
    train: Sequences, max_len: int, stride: int | None = None, prefixes: bool = False
) -> dict[str, torch.Tensor]:
    """Cut each training sequence into windows of `max_len` next-item predictions, newest window first.

    Windows end at n, n - stride, n - 2*stride, ... (`stride` defaults to `max_len`). Every next item is a
    target exactly once, in the window where it has the longest history: a window keeps the targets of its
    newest `stride` positions (the oldest window keeps all of its own) and the others are 0, which objectives
    skip. With the default, windows do not overlap and a sequence no longer than `max_len + 1` gives the single
    window SASRec uses; a smaller stride gives every target at least `max_len - stride` items of history, as
    training on every prefix does, at `max_len / stride` times the windows.

    Windows stop once the oldest covers the sequence's start; with `prefixes` they go on every `stride` items
    to the first target, so short sequences are cut too: with `stride=1` every prefix is a sample of its own
    that predicts only its last item, with its own dropout noise (RecBole's and GRU4Rec's augmentation; on
    short-history data such as Amazon Beauty it trains a better SASRec than one window per user).
    """
    stride = max_len if stride is None else stride
    if not 1 <= stride <= max_len:
        raise DataError(
            f"window_stride must be between 1 and max_len ({max_len}), got {stride}; "
            "null (the default) cuts training sequences into windows that do not overlap."
        )
    targets = np.maximum(train.lengths - 1, 0)
    if prefixes:
        n_windows = -(-targets // stride)
    else:
        n_windows = np.where(targets > 0, -(-np.maximum(targets - max_len, 0) // stride) + 1, 0)
    owner = np.repeat(np.arange(len(train)), n_windows)
    k = np.arange(n_windows.sum()) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    starts = train.indptr[:-1][owner]
    ends = train.indptr[1:][owner] - k * stride
    target_seq = gather_left_padded(train.items, starts + 1, ends, max_len)
    if stride < max_len:  # positions older than the newest `stride` belong to an older window, but the oldest's
        older = np.arange(max_len)[None, :] < max_len - stride
        target_seq[older & (k < n_windows[owner] - 1)[:, None]] = 0
    tensors = {
        "item_seq": torch.from_numpy(gather_left_padded(train.items, starts, ends - 1, max_len)),
        "target_seq": torch.from_numpy(target_seq),
        "user": torch.from_numpy(owner),
        "index": torch.arange(len(owner)),  # window id: lets transforms look up positives of this sequence
    }
    if train.times is not None:
        tensors["time_seq"] = torch.from_numpy(gather_left_padded(train.times, starts, ends - 1, max_len))
    return tensors


def label_windows(examples: EvalSet, max_len: int) -> dict[str, torch.Tensor]:
    """One row per labelled example: its newest `max_len` inputs, with the label as the target of the last
    position only (every other target is 0, so objectives train on the label alone)."""
    tensors = padded_histories(examples.history, max_len)
    target_seq = torch.zeros_like(tensors["item_seq"])
    target_seq[:, -1] = torch.from_numpy(examples.targets.astype(np.int64))
    return {
        **tensors,
        "target_seq": target_seq,
        "user": torch.arange(len(examples)),
        "index": torch.arange(len(examples)),
    }


class LengthBucketSampler(Sampler[int]):
    """Shuffled order in which every run of `batch_size` indices holds sequences of similar length.

    Indices are shuffled, cut into pools of `pool_batches` batches, sorted by length inside each pool, cut
    into batches, and the batches shuffled. Combined with trimming all-padding columns per batch
    (`SeqRecModule` does it) this skips most padding work on short-sequence data such as Amazon reviews.
    The order is a function of (seed, epoch) only: Lightning calls `set_epoch`, so a run resumed from a
    checkpoint draws the same batches as one that never stopped.
    """

    def __init__(self, lengths: torch.Tensor, batch_size: int, seed: int = 0, pool_batches: int = 50):
        self.lengths, self.batch_size, self.seed, self.pool_batches = lengths, batch_size, seed, pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator)
        pool = self.batch_size * self.pool_batches
        batches = []
        for start in range(0, len(order), pool):
            chunk = order[start : start + pool]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches.extend(chunk.split(self.batch_size))
        full = [b for b in batches if len(b) == self.batch_size]
        ragged = [b for b in batches if len(b) < self.batch_size]  # kept last so batch boundaries stay aligned
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        return iter(torch.cat(shuffled + ragged).tolist()) if batches else iter([])


class UnpaddedDistributedSampler(DistributedSampler):
    """Strided evaluation shards with no padding, so no user is counted twice under DDP.

    PyTorch's DistributedSampler repeats samples to even out shards; for metrics that is a silent bias.
    Shards differ in length by at most one; metric states are summed across processes afterwards.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = math.ceil((len(dataset) - rank) / num_replicas) if len(dataset) > rank else 0
        self.total_size = len(dataset)

    def __iter__(self):
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples
