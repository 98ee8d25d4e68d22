"""The `Interactions` table: the one in-memory form every reader produces and every split consumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lightning_seqrec.errors import DataError

REQUIRED_COLUMNS = ("user_id", "item_id")
OPTIONAL_COLUMNS = ("timestamp", "event", "market", "rating")


@dataclass
class Interactions:
    """A log of (user, item[, timestamp, event, market]) rows plus an optional item side table.

    Rows keep the order they were read in; `sorted()` orders them chronologically per user with a stable
    sort, so datasets without timestamps (one sequence per line) keep their file order.
    `items` is indexed by raw item ID and may carry `title`, `category`, `attributes` columns.
    """

    frame: pd.DataFrame
    items: pd.DataFrame | None = None
    name: str = "custom"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in self.frame.columns]
        if missing:
            raise DataError(
                f"Interactions for {self.name!r} lack column(s) {missing}; have {list(self.frame.columns)}. "
                "Map your columns with `columns={'user_id': <your user column>, 'item_id': <your item column>}`."
            )
        keep = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in self.frame.columns]
        self.frame = self.frame[keep]
        if len(self.frame) == 0:
            raise DataError(f"Interactions for {self.name!r} are empty: the source has no rows after reading.")
        for col in REQUIRED_COLUMNS:
            if self.frame[col].isna().any():
                bad = int(self.frame[col].isna().sum())
                raise DataError(
                    f"{bad} row(s) of {self.name!r} have an empty {col}; drop or fill them before building "
                    "Interactions."
                )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        columns: Mapping[str, str] | None = None,
        items: pd.DataFrame | None = None,
        name: str = "custom",
    ) -> Interactions:
        """Build from any DataFrame; `columns` maps our names (user_id, item_id, timestamp, ...) to yours."""
        columns = dict(columns or {})
        unknown = set(columns) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS)
        if unknown:
            raise DataError(
                f"Unknown target column(s) {sorted(unknown)} in the column mapping; valid names are "
                f"{list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}."
            )
        absent = [src for src in columns.values() if src not in frame.columns]
        if absent:
            raise DataError(
                f"Column(s) {absent} named in the column mapping are not in the table; it has "
                f"{list(frame.columns)}. Fix the mapping, e.g. columns={{'user_id': '{frame.columns[0]}', ...}}."
            )
        renamed = frame.rename(columns={src: dst for dst, src in columns.items()})
        return cls(renamed, items=items, name=name)

    @property
    def has_time(self) -> bool:
        return "timestamp" in self.frame.columns

    @property
    def num_users(self) -> int:
        return int(self.frame["user_id"].nunique())

    @property
    def num_items(self) -> int:
        return int(self.frame["item_id"].nunique())

    def __len__(self) -> int:
        return len(self.frame)

    def replace(self, frame: pd.DataFrame) -> Interactions:
        """The same dataset with another row set (used by filters)."""
        return Interactions(frame.reset_index(drop=True), items=self.items, name=self.name, meta=dict(self.meta))

    def sorted(self) -> Interactions:
        """Rows grouped by user, chronological within a user; ties and untimed data keep file order."""
        frame = self.frame.assign(_row=np.arange(len(self.frame)))
        keys = ["user_id", "timestamp", "_row"] if self.has_time else ["user_id", "_row"]
        frame = frame.sort_values(keys, kind="stable").drop(columns="_row")
        return self.replace(frame)

    def titles(self) -> dict | None:
        """Raw item ID -> title, when the item side table has titles."""
        if self.items is None or "title" not in self.items.columns:
            return None
        return self.items["title"].to_dict()

    def __repr__(self) -> str:
        return (
            f"Interactions(name={self.name!r}, rows={len(self)}, users={self.num_users}, "
            f"items={self.num_items}, time={self.has_time})"
        )
