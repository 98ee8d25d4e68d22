"""CL4SRec sequence augmentations (crop, mask, reorder) as vectorised transforms of left-padded `[B, L]` batches.

Every transform keeps at least one item per non-empty row and returns a valid left-padded batch: real items
contiguous at the right end, padding (0) on the left, so any backbone reads the result like real data.
Randomness comes from torch's global generator, which `SeqRecModule` seeds per step.
"""

from __future__ import annotations

import torch


def left_pack(item_seq: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The items where `keep` is True, in their order, moved to the right end; everything else becomes padding."""
    positions = torch.arange(item_seq.shape[1], device=item_seq.device)
    order = torch.where(keep, positions, -1).argsort(dim=1, stable=True)  # dropped first, kept in order
    packed = item_seq.gather(1, order)
    return packed.masked_fill(positions < item_seq.shape[1] - keep.sum(1, keepdim=True), 0)


def _random_run(item_seq: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mask `[B, L]` of one random contiguous run of max(1, floor(ratio * n)) real items per row of n items."""
    length = (item_seq > 0).sum(1, keepdim=True)
    run = torch.minimum((ratio * length).floor().long().clamp(min=1), length)
    first = item_seq.shape[1] - length  # column of the oldest real item
    start = first + (torch.rand(length.shape, device=item_seq.device) * (length - run + 1)).long()
    positions = torch.arange(item_seq.shape[1], device=item_seq.device)
    return (positions >= start) & (positions < start + run)


def crop(item_seq: torch.Tensor, ratio: float) -> torch.Tensor:
    """Keep one random contiguous run of max(1, floor(ratio * n)) items of each sequence."""
    return left_pack(item_seq, _random_run(item_seq, ratio))


def mask(item_seq: torch.Tensor, ratio: float) -> torch.Tensor:
    """Remove floor(ratio * n) random items of each sequence (at least one item is kept).

    CL4SRec replaces them with a [mask] token; the shared item embedding has no such row, and a padding id in
    the middle of a sequence would break backbones that read left padding as one block, so masked items are
    dropped and the remainder packed to the right.
    """
    real = item_seq > 0
    length = real.sum(1, keepdim=True)
    count = torch.minimum((ratio * length).floor().long(), (length - 1).clamp(min=0))
    noise = torch.rand(item_seq.shape, device=item_seq.device).masked_fill(~real, 2.0)  # padding is never picked
    rank = noise.argsort(dim=1).argsort(dim=1)
    return left_pack(item_seq, real & (rank >= count))


def reorder(item_seq: torch.Tensor, ratio: float) -> torch.Tensor:
    """Shuffle one random contiguous run of max(1, floor(ratio * n)) items of each sequence."""
    run = _random_run(item_seq, ratio)
    positions = torch.arange(item_seq.shape[1], device=item_seq.device).expand_as(item_seq).float()
    first = torch.where(run, positions, float("inf")).amin(1, keepdim=True)
    size = run.sum(1, keepdim=True)
    # keys inside the run are uniform on [first - 0.5, first + size - 0.5): a random order strictly between
    # the integer keys of the items before and after the run
    keys = torch.where(run, first - 0.5 + torch.rand(item_seq.shape, device=item_seq.device) * size, positions)
    return item_seq.gather(1, keys.argsort(dim=1))


def random_augment(item_seq: torch.Tensor, crop_ratio: float, mask_ratio: float, reorder_ratio: float) -> torch.Tensor:
    """One CL4SRec view: each sequence gets crop, mask or reorder, chosen uniformly at random per row."""
    choice = torch.randint(0, 3, (len(item_seq), 1), device=item_seq.device)
    views = (crop(item_seq, crop_ratio), mask(item_seq, mask_ratio), reorder(item_seq, reorder_ratio))
    return torch.where(choice == 0, views[0], torch.where(choice == 1, views[1], views[2]))
