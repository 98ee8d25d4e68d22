"""Training windows as contrastive positives: their model inputs, and their representations encoded by id."""

from __future__ import annotations

import torch

from lightning_seqrec.batch import ITEM_SEQ, TARGET_SEQ
from lightning_seqrec.objectives.view import as_view


def input_windows(train_tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model inputs of the training windows (`item_seq`, `time_seq`, ...; not the targets)."""
    return {k: v for k, v in train_tensors.items() if k.endswith("_seq") and k != TARGET_SEQ}


def encode_windows(
    model, windows: dict[str, torch.Tensor], ids: torch.Tensor, group_size: int | None = 64
) -> torch.Tensor:
    """Representations `[n, d]` of training windows by id, encoded by `model` (a `ModelView` or a module; gradients
    flow when enabled).

    Windows are encoded in groups of `group_size` of similar length (None: one group), each trimmed to its
    longest window: randomly drawn positives are mostly short, and padding them all to the longest of the
    draw made the positives' passes cost several times the training pass.
    """
    model = as_view(model)
    ids = ids.to(next(iter(windows.values())).device)
    if group_size is None or len(ids) <= group_size:
        return model.encode({k: v[ids].to(model.device) for k, v in windows.items()})
    order = torch.argsort((windows[ITEM_SEQ][ids] > 0).sum(1), stable=True)
    parts = [encode_windows(model, windows, ids[group], None) for group in order.split(group_size)]
    return torch.cat(parts)[torch.argsort(order)]
