"""What travels between a market and the server: the backbone (sequence encoder) and the embedding rows of the items
that two or more markets sell, indexed by one global order over the union of the catalogs (sorted raw IDs), so every
market's arrays have the same keys and shapes. Market-only rows and anything else stay on the client."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import numpy as np
import torch

from lightning_seqrec.data.vocab import ItemVocab
from lightning_seqrec.errors import DataError

SHARED_ROWS = "item_embedding.shared"
"""Array key of the shared items' embedding table `[S, d]`, in `shared_items` order."""
ITEM_COUNTS = "item_counts.shared"
"""Array key of a market's training interactions per shared item `[S]` (sent only to the count-weighted strategy)."""
BACKBONE_PREFIX = "backbone."


def shared_items(catalogs: Mapping[str, Iterable], min_markets: int = 2) -> list[str]:
    """Raw item IDs sold in at least `min_markets` of the catalogs, sorted: the global order of the shared table."""
    seen = Counter(item for catalog in catalogs.values() for item in set(catalog))
    items = sorted(str(item) for item, markets in seen.items() if markets >= min_markets)
    if not items:
        raise DataError(
            f"No item is in {min_markets} or more of the markets {sorted(catalogs)}; nothing can be shared."
        )
    return items


class SharedPart:
    """The travelling part of one market's module: `rows[j]` is shared item j's row in the market's item table, 0
    where the market does not sell it (such rows are sent back as received, with count 0)."""

    def __init__(self, items: list[str], vocab: ItemVocab):
        index = {str(raw): i + 1 for i, raw in enumerate(vocab.raw_ids)}
        self.rows = torch.tensor([index.get(item, 0) for item in items], dtype=torch.long)
        self.present = self.rows > 0

    def arrays(self, module, received: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The backbone state and the shared table of `module`; rows the market lacks are `received`'s."""
        state = {BACKBONE_PREFIX + k: v.detach().cpu().numpy().copy() for k, v in module.backbone.state_dict().items()}
        table = np.array(received[SHARED_ROWS], dtype=np.float32, copy=True)
        weight = module.item_embedding.weight.detach().cpu()
        table[self.present.numpy()] = weight[self.rows[self.present]].numpy()
        state[SHARED_ROWS] = table
        return state

    def load(self, module, arrays: Mapping[str, np.ndarray]) -> None:
        """Put the global backbone and the shared rows the market sells into `module`, in place."""
        backbone = {
            k[len(BACKBONE_PREFIX) :]: torch.as_tensor(np.asarray(v))
            for k, v in arrays.items()
            if k.startswith(BACKBONE_PREFIX)
        }
        module.backbone.load_state_dict(backbone)
        table = torch.as_tensor(np.asarray(arrays[SHARED_ROWS]))
        with torch.no_grad():
            weight = module.item_embedding.weight
            weight[self.rows[self.present]] = table[self.present].to(weight)

    def counts(self, datamodule) -> np.ndarray:
        """Training interactions of this market per shared item (0 where it does not sell it)."""
        counts = datamodule.item_counts().to(torch.float64)
        return np.where(self.present.numpy(), counts[self.rows].numpy(), 0.0)
