"""Row filters applied before the vocabulary is built: de-duplication and iterative k-core."""

from __future__ import annotations

from lightning_seqrec.data.interactions import Interactions
from lightning_seqrec.errors import DataError


def drop_duplicates(data: Interactions, keep: str = "first", consecutive_only: bool = False) -> Interactions:
    """Remove repeated (user, item) rows, keeping the `first` or `last` occurrence in time order.

    `consecutive_only=True` removes only immediate repeats (a user re-viewing the same item twice in a row),
    which keeps genuine re-consumption later in the sequence.
    """
    if keep not in ("first", "last"):
        raise DataError(f"drop_duplicates(keep={keep!r}) is not valid; use 'first' or 'last'.")
    frame = data.sorted().frame
    if consecutive_only:
        same_user = frame["user_id"].eq(frame["user_id"].shift())
        same_item = frame["item_id"].eq(frame["item_id"].shift())
        return data.replace(frame[~(same_user & same_item)])
    return data.replace(frame.drop_duplicates(["user_id", "item_id"], keep=keep))


def k_core(data: Interactions, user_k: int = 5, item_k: int = 5, max_rounds: int = 100) -> Interactions:
    """Iteratively drop users with fewer than `user_k` and items with fewer than `item_k` interactions.

    Repeats until both constraints hold at once (a single pass is not a k-core: dropping items can push a
    user below `user_k`). Raises when nothing survives, since training on an empty set is never intended.
    """
    frame = data.frame
    for _ in range(max_rounds):
        user_counts = frame["user_id"].map(frame["user_id"].value_counts())
        item_counts = frame["item_id"].map(frame["item_id"].value_counts())
        keep = (user_counts >= user_k) & (item_counts >= item_k)
        if keep.all():
            break
        frame = frame[keep]
        if frame.empty:
            raise DataError(
                f"The {user_k}-user/{item_k}-item core of {data.name!r} is empty; lower user_core/item_core."
            )
    return data.replace(frame)
