"""The batch contract: the keys every batch may carry, and the helpers that build and trim batches.

A batch is a dict of tensors. Sequences are left-padded, so the newest item of every row is its last column; index 0
is padding, in items and targets alike. The data module, the objectives, the module and inference all speak these
keys, and every batch built for inference goes through `inference_batch`, so a key a backbone reads in training
(such as `time_seq`) also reaches it when it recommends.

This module sits below every other part of the library: it imports only numpy, torch and the library's exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from lightning_seqrec.errors import ConfigError, DataError

ITEM_SEQ = "item_seq"
"""`[B, L]` int64 item indices, left-padded with 0; the newest item is the last column. Every batch has it."""

TIME_SEQ = "time_seq"
"""`[B, L]` float64 timestamps aligned with `item_seq` (0 at padding), present when the data has times; backbones
with `uses_time = True` read it in training, evaluation and inference alike."""

TARGET_SEQ = "target_seq"
"""`[B, L]` int64 training targets: the next item of each position, 0 where a position trains nothing."""

TARGET = "target"
"""`[B]` int64 the item an evaluation row predicts."""

USER = "user"
"""`[B]` int64 the row of each sequence's user (in the training sequences, or in the evaluation set)."""

INDEX = "index"
"""`[B]` int64 training window id: lets contrastive objectives look up the positives of this sequence."""

SEEN_ROWS = "seen_rows"
SEEN_ITEMS = "seen_items"
"""Flat `[S]` coordinates (batch row, item index) of every item each row's user has seen, over the whole history,
not just the window: the scores there get -inf when seen items are masked."""

NEGATIVES = "negatives"
"""`[B, L, K]` or `[B, K]` int64 negative item indices (0 = none), added by the transforms of
`lightning_seqrec.objectives.negatives`."""

SEQUENCE_KEYS = (ITEM_SEQ, TIME_SEQ, TARGET_SEQ)
"""Keys of `[B, L]` tensors aligned with `item_seq` (any key ending in `_seq` is treated so by `trim_padding`)."""


def gather_left_padded(values: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_len: int, fill=0):
    """Rows of the last `max_len` values of each span `[start, end)`, left-padded with `fill`.

    Left padding puts the newest item in the last column for every row, which is what the backbones read.
    """
    idx = ends[:, None] - max_len + np.arange(max_len)[None, :]
    valid = idx >= starts[:, None]
    out = np.full(idx.shape, fill, dtype=values.dtype)
    out[valid] = values[idx[valid]]
    return out


def pad_histories(histories: list[np.ndarray], max_len: int, dtype=np.int64) -> torch.Tensor:
    """Left-pad (and truncate to the newest `max_len`) a list of arrays into one `[B, max_len]` tensor: item indices
    (the default `dtype`), or their timestamps with `dtype=np.float64`."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    if (lengths == 0).any():
        empty = np.flatnonzero(lengths == 0).tolist()
        raise DataError(
            f"History number(s) {empty} are empty: a sequential model needs at least one item to "
            "condition on. Recommend popular items for new users instead, or pass a non-empty history."
        )
    flat = np.concatenate(histories).astype(dtype)
    ends = np.cumsum(lengths)
    return torch.from_numpy(gather_left_padded(flat, ends - lengths, ends, max_len))


def check_timestamps(timestamps, lengths: Sequence[int]) -> list[np.ndarray]:
    """`timestamps` as one float64 array per history, refusing anything not aligned with histories of `lengths`."""
    example = "pass one list of timestamps per history, one per item, e.g. timestamps=[[1700000000, 1700000300]]"
    if isinstance(timestamps, (str, bytes)) or not isinstance(timestamps, Sequence | np.ndarray | torch.Tensor):
        raise ConfigError(f"timestamps={timestamps!r} is not a list of timestamp lists; {example}.")
    if len(timestamps) != len(lengths):
        raise ConfigError(f"Got {len(timestamps)} timestamp list(s) for {len(lengths)} histories; {example}.")
    arrays = []
    for row, (times, length) in enumerate(zip(timestamps, lengths, strict=True)):
        try:
            array = np.asarray(times, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"timestamps of history {row} are not numbers ({err}); {example}.") from err
        if array.ndim != 1 or len(array) != length:
            raise ConfigError(f"History {row} has {length} item(s) but {array.size} timestamp(s); {example}.")
        arrays.append(array)
    return arrays


def inference_batch(
    encoded_histories: list[np.ndarray],
    max_len: int,
    timestamps: Sequence | None = None,
    device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """The batch a module scores for histories of item indices (oldest first): `item_seq` (the newest `max_len`),
    `time_seq` when `timestamps` (one per item of each history) are given, and `seen_rows` / `seen_items` over each
    whole history. Every inference path (`SeqRecModule.score_histories`, `Recommender.encode`) builds its batch
    here."""
    item_seq = pad_histories(encoded_histories, max_len)
    lengths = [len(h) for h in encoded_histories]
    batch = {
        ITEM_SEQ: item_seq,
        SEEN_ROWS: torch.from_numpy(np.repeat(np.arange(len(encoded_histories)), lengths)),
        SEEN_ITEMS: torch.from_numpy(np.concatenate(encoded_histories)),
    }
    if timestamps is not None:
        batch[TIME_SEQ] = pad_histories(check_timestamps(timestamps, lengths), max_len, dtype=np.float64)
    return {key: value.to(device) for key, value in batch.items()} if device is not None else batch


def trim_padding(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop leading columns that are padding in every row of `[B, L]` sequence tensors.

    Exact for the built-in backbones: positions are counted from the newest item, padded keys are masked and
    padded outputs are zero, so only wasted work is removed.
    """
    item_seq = batch[ITEM_SEQ]
    if item_seq.numel() == 0:
        return dict(batch)
    longest = int((item_seq > 0).sum(1).max())
    keep = max(longest, 1)
    if keep == item_seq.shape[1]:
        return dict(batch)
    seq_keys = {k for k, v in batch.items() if k.endswith("_seq") and v.dim() >= 2 and v.shape[:2] == item_seq.shape}
    return {k: (v[:, -keep:] if k in seq_keys else v) for k, v in batch.items()}
