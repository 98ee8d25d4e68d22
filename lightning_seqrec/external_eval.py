"""External evaluation (`seqrec eval predictions=FILE data=...`): top-k lists made by any library, scored with this
library's metrics against this library's split, so results compare like for like.

The file is CSV, TSV or Parquet with columns `user_id, item_id, rank` (raw IDs; rank 1 = best). Ranking rule, the
same as `RankingEvaluator`'s on scores: an item listed at rank r has r - 1 items above it, and every other item
listed at a rank <= r counts as above it too (ties count against the model). With `mask_seen`, items the user has
already seen (the whole history, as evaluation masks them) are removed from the list first and the items below move
up. A target not in its user's list is a miss at every k. Nothing is dropped silently: the report counts users of
the split without a list (misses), users of the file not in the split (ignored), item IDs not in the catalog (they
keep their slot, can never be a hit, and are left out of coverage and Gini), duplicate (user, item) rows (the best
rank is kept) and removed seen items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lightning_seqrec.errors import DataError
from lightning_seqrec.metrics import NOT_RANKED, RankingEvaluator

COLUMNS = ("user_id", "item_id", "rank")


@dataclass
class ExternalResult:
    """The metrics (keyed like `test/ndcg@10`) and the counts of what the file held that the split did not."""

    metrics: dict[str, float]
    counts: dict[str, int] = field(default_factory=dict)


def read_predictions(path: str | Path) -> pd.DataFrame:
    """The `user_id, item_id, rank` table of a CSV, TSV or Parquet file, with integer ranks >= 1."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"predictions file {str(path)!r} does not exist; pass predictions=<CSV or parquet file>.")
    try:
        if path.suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise DataError(f"{path} could not be read as a table ({' '.join(str(err).split())[:200]}).") from err
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {missing}; it needs {list(COLUMNS)} (rank 1 = best).")
    ranks = pd.to_numeric(frame["rank"], errors="coerce")
    if ranks.isna().any() or (ranks < 1).any() or (ranks % 1 != 0).any():
        raise DataError(f"{path}: 'rank' must hold whole numbers >= 1 (1 = best); some rows do not.")
    return frame.assign(rank=ranks.astype(np.int64))[list(COLUMNS)]


def _as_key(raw) -> str:
    """A raw ID as a string, so that 42 in a CSV and "42" in the split (or the reverse) are the same user."""
    return str(raw.item() if isinstance(raw, np.generic) else raw)


def evaluate_predictions(
    predictions: pd.DataFrame,
    datamodule,
    split: str = "test",
    ks: Sequence[int] = (5, 10, 20),
    mask_seen: bool = True,
) -> ExternalResult:
    """Score `predictions` (`read_predictions`) against the targets of `datamodule`'s `split` (set up first)."""
    eval_set = datamodule.split.test if split == "test" else datamodule.split.valid
    vocab = datamodule.vocab
    keys = [_as_key(u) for u in predictions["user_id"].to_numpy()]
    unique_items = pd.unique(predictions["item_id"])
    index_of = {_as_key(raw): (vocab.encode([raw], unknown="drop").tolist() or [0])[0] for raw in unique_items}
    frame = pd.DataFrame(
        {"user": keys, "item": [index_of[_as_key(r)] for r in predictions["item_id"]], "rank": predictions["rank"]}
    )
    unknown_rows = int((frame["item"] == 0).sum())
    known = frame[frame["item"] > 0]
    before = len(known)
    known = known.sort_values("rank", kind="stable").drop_duplicates(["user", "item"])
    frame = pd.concat([known, frame[frame["item"] == 0]]).sort_values(["user", "rank"], kind="stable")
    lists = {user: (group["item"].to_numpy(), group["rank"].to_numpy()) for user, group in frame.groupby("user")}

    users = [_as_key(u) for u in eval_set.history.users]
    history = eval_set.history
    evaluator = RankingEvaluator(datamodule.num_items, ks, item_counts=datamodule.item_counts())
    top = evaluator.ks[-1]
    ranks = np.full(len(users), NOT_RANKED, dtype=np.int64)
    topk = np.zeros((len(users), top), dtype=np.int64)
    removed_seen, without = 0, 0
    for row, user in enumerate(users):
        if user not in lists:
            without += 1
            continue
        items, given = lists[user]
        if mask_seen:
            seen = np.isin(items, history.items[history.indptr[row] : history.indptr[row + 1]]) & (items > 0)
            removed_seen += int(seen.sum())
            above_removed = np.searchsorted(np.sort(given[seen]), given, side="left")
            items, given, above_removed = items[~seen], given[~seen], above_removed[~seen]
        else:
            above_removed = np.zeros(len(items), dtype=np.int64)
        hits = np.flatnonzero(items == eval_set.targets[row])
        if len(hits):
            at = hits[0]
            ahead = int((given <= given[at]).sum()) - 1
            ranks[row] = max(int(given[at] - 1 - above_removed[at]), ahead)
        shown = items[:top]
        topk[row, : len(shown)] = shown
    evaluator.update_ranks(torch.from_numpy(ranks), torch.from_numpy(topk), torch.from_numpy(eval_set.targets).long())
    metrics = {f"{split}/{name}": float(value) for name, value in evaluator.compute().items()}
    counts = {
        "split_users": len(users),
        "users_without_predictions": without,
        "file_users_not_in_split": len(set(lists) - set(users)),
        "unknown_item_rows": unknown_rows,
        "duplicate_rows": before - len(known),
        "seen_items_removed": removed_seen,
        "longest_list": int(frame.groupby("user").size().max()) if len(frame) else 0,
    }
    return ExternalResult(metrics, counts)


@torch.no_grad()
def write_predictions(module, datamodule, path: str | Path, k: int = 20, split: str = "test") -> Path:
    """`module`'s top-`k` for every user of `split`, scored exactly as evaluation scores them (seen items masked when
    the module masks them), as a `user_id, item_id, rank` file; a rank is the count of items scored at least as
    high (so tied items share the lower rank, as evaluation counts ties)."""
    from lightning_seqrec.modules.seqrec import evaluating

    path = Path(path)
    loader = datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    eval_set = datamodule.split.test if split == "test" else datamodule.split.valid
    rows = []
    with evaluating(module):
        for batch in loader:
            scores = module.score(batch)[:, 1:]
            values, indices = scores.topk(min(k, module.num_items), dim=1)
            counts = (scores[:, None, :] >= values[:, :, None]).sum(-1)
            for user_row, row_values, row_items, row_counts in zip(
                batch["user"].tolist(), values, indices + 1, counts, strict=True
            ):
                user = eval_set.history.users[user_row]
                finite = torch.isfinite(row_values)
                raws = datamodule.vocab.decode(row_items[finite].tolist())
                rows += [(user, raw, int(c)) for raw, c in zip(raws, row_counts[finite].tolist(), strict=True)]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame.to_parquet(path) if path.suffix in (".parquet", ".pq") else frame.to_csv(path, index=False)
    return path
