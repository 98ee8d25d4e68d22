"""CL4SRec sequence augmentations (crop, mask, reorder) as vectorised transforms of left-padded `[B, L]` batches.

Every transform keeps at least one item per non-empty row and returns a valid left-padded batch: real items
contiguous at the right end, padding (0) on the left, so any backbone reads the result like real data.
Randomness comes from torch's global generator, which `SeqRecModule` seeds per step.

Given the batch's `time_seq` too, a transform returns `(item_seq, time_seq)`: every timestamp moves with its item
(cropped or masked items take theirs along, a reordered item keeps its own), so a time-aware backbone reads each
item with its time; the random draws are the same with or without times.
"""

from __future__ import annotations

import torch

Views = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
"""`item_seq`, or `(item_seq, time_seq)` when a transform is given the batch's `time_seq`."""


def _gather(item_seq: torch.Tensor, time_seq: torch.Tensor | None, order: torch.Tensor, pad=None) -> Views:
    """Columns `order` of `item_seq` (and of `time_seq` when given), 0 where `pad`."""
    out = tuple(x.gather(1, order) for x in (item_seq, time_seq) if x is not None)
    if pad is not None:
        out = tuple(x.masked_fill(pad, 0) for x in out)
    return out if time_seq is not None else out[0]


def left_pack(item_seq: torch.Tensor, keep: torch.Tensor, time_seq: torch.Tensor | None = None) -> Views:
    """The items where `keep` is True, in their order, moved to the right end; everything else becomes padding."""
    positions = torch.arange(item_seq.shape[1], device=item_seq.device)
    order = torch.where(keep, positions, -1).argsort(dim=1, stable=True)  # dropped first, kept in order
    return _gather(item_seq, time_seq, order, positions < item_seq.shape[1] - keep.sum(1, keepdim=True))


def _random_run(item_seq: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mask `[B, L]` of one random contiguous run of max(1, floor(ratio * n)) real items per row of n items."""
    length = (item_seq > 0).sum(1, keepdim=True)
    run = torch.minimum((ratio * length).floor().long().clamp(min=1), length)
    first = item_seq.shape[1] - length  # column of the oldest real item
    start = first + (torch.rand(length.shape, device=item_seq.device) * (length - run + 1)).long()
    positions = torch.arange(item_seq.shape[1], device=item_seq.device)
    return (positions >= start) & (positions < start + run)


def crop(item_seq: torch.Tensor, ratio: float, time_seq: torch.Tensor | None = None) -> Views:
    """Keep one random contiguous run of max(1, floor(ratio * n)) items of each sequence."""
    return left_pack(item_seq, _random_run(item_seq, ratio), time_seq)


def mask(item_seq: torch.Tensor, ratio: float, time_seq: torch.Tensor | None = None) -> Views:
    """Remove floor(ratio * n) random items of each sequence (at least one item is kept).

    CL4SRec replaces them with a [mask] token; the shared item embedding has no such row, and a padding id in
    the middle of a sequence would break backbones that read left padding as one block, so masked items are
    dropped and the remainder packed to the right (each with its own timestamp).
    """
    real = item_seq > 0
    length = real.sum(1, keepdim=True)
    count = torch.minimum((ratio * length).floor().long(), (length - 1).clamp(min=0))
    noise = torch.rand(item_seq.shape, device=item_seq.device).masked_fill(~real, 2.0)  # padding is never picked
    rank = noise.argsort(dim=1).argsort(dim=1)
    return left_pack(item_seq, real & (rank >= count), time_seq)


def reorder(item_seq: torch.Tensor, ratio: float, time_seq: torch.Tensor | None = None) -> Views:
    """Shuffle one random contiguous run of max(1, floor(ratio * n)) items of each sequence."""
    run = _random_run(item_seq, ratio)
    positions = torch.arange(item_seq.shape[1], device=item_seq.device).expand_as(item_seq).float()
    first = torch.where(run, positions, float("inf")).amin(1, keepdim=True)
    size = run.sum(1, keepdim=True)
    # keys inside the run are uniform on [first - 0.5, first + size - 0.5): a random order strictly between
    # the integer keys of the items before and after the run
    keys = torch.where(run, first - 0.5 + torch.rand(item_seq.shape, device=item_seq.device) * size, positions)
    return _gather(item_seq, time_seq, keys.argsort(dim=1))


def random_augment(
    item_seq: torch.Tensor,
    crop_ratio: float,
    mask_ratio: float,
    reorder_ratio: float,
    time_seq: torch.Tensor | None = None,
) -> Views:
    """One CL4SRec view: each sequence gets crop, mask or reorder, chosen uniformly at random per row."""
    choice = torch.randint(0, 3, (len(item_seq), 1), device=item_seq.device)
    views = (
        crop(item_seq, crop_ratio, time_seq),
        mask(item_seq, mask_ratio, time_seq),
        reorder(item_seq, reorder_ratio, time_seq),
    )

    def pick(first, second, third):
        return torch.where(choice == 0, first, torch.where(choice == 1, second, third))

    if time_seq is None:
        return pick(*views)
    return pick(*(v[0] for v in views)), pick(*(v[1] for v in views))
