"""The `Interactions` table: the one in-memory form every reader produces and every split consumes."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lightning_seqrec.errors import DataError

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("user_id", "item_id")
OPTIONAL_COLUMNS = ("timestamp", "event", "market", "rating")
NO_ATTRIBUTE = frozenset({"", "(no genres listed)", "unknown"})  # genre placeholders, not attributes
TIMESTAMP_POLICIES = ("strict", "parse_dates", "drop_invalid")
SHOWN_ROWS = 5


def row_label(index: pd.Index, position: int):
    """The index label at `position` as a plain Python value, to name a row of a DataFrame in a message."""
    label = index[position]
    return label.item() if isinstance(label, np.generic) else label


def _as_dates(values: pd.Series) -> pd.Series:
    """`values` as UTC datetimes: datetime columns as they are, text as ISO 8601 dates (naive = UTC), NaT for
    anything else (numbers are not dates here)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    if pd.api.types.is_numeric_dtype(values):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[s, UTC]")
    if values.dtype == object:
        values = values.map(lambda v: v if isinstance(v, (str, datetime.date)) else None)
    return pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")


def _timestamp_values(values: pd.Series, parse_dates: bool) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """`values` as float seconds / numbers, the mask of missing cells and the mask of other invalid ones.

    Numbers must be finite and >= 0: a negative number in an event log is usually a placeholder such as -1 for
    "unknown", which would silently become the user's oldest event. Dates (datetime columns, or ISO 8601 text
    with `parse_dates`) may be any date.
    """
    missing = values.isna().to_numpy()
    if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_datetime64_any_dtype(values):
        missing = missing | values.astype(str).str.strip().eq("").to_numpy()
    if parse_dates or pd.api.types.is_datetime64_any_dtype(values):
        dated = _as_dates(values)
        good = dated.notna().to_numpy()
        numbers = pd.Series(np.nan, index=values.index)
        numbers[good] = dated[good].dt.tz_localize(None).to_numpy().astype("datetime64[s]").astype(np.int64)
        return numbers, missing, ~good & ~missing
    numbers = values if pd.api.types.is_numeric_dtype(values) else pd.to_numeric(values, errors="coerce")
    numbers = numbers.astype("float64")
    return numbers, missing, ~missing & ~(np.isfinite(numbers.to_numpy()) & (numbers.to_numpy() >= 0))


def holds_dates(values: pd.Series, policy: str) -> bool:
    """Whether `clean_timestamps` reads `values` as dates (which it turns into unix seconds), not as numbers."""
    return policy == "parse_dates" or pd.api.types.is_datetime64_any_dtype(values)


def _describe(value, parse_dates: bool) -> str:
    """Why one invalid timestamp cell is invalid, for the error message."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, (int, float)) and value < 0:
        return f"is {value!r} (negative)"
    return f"is {value!r}" + (" (not an ISO 8601 date such as 2021-01-01 10:00)" if parse_dates else "")


def clean_timestamps(
    frame: pd.DataFrame,
    column: str = "timestamp",
    policy: str = "strict",
    where: str = "The table",
    name_rows: Callable[[np.ndarray], list[str]] | None = None,
) -> pd.DataFrame:
    """`frame` with `column` as numbers (int64 when all whole), or a DataError naming the invalid rows.

    `policy`: `"strict"` refuses missing, non-numeric and negative timestamps (datetime columns become unix
    seconds); `"parse_dates"` reads ISO 8601 text (e.g. `2021-01-01 10:00`, naive = UTC) as unix seconds;
    `"drop_invalid"` drops the invalid rows and logs how many. Invalid rows would otherwise sort last (missing)
    or first (negative) and silently become test targets or histories. `name_rows` turns row positions into
    names such as "line 4"; by default rows are named by their index label.
    """
    if policy not in TIMESTAMP_POLICIES:
        raise DataError(f"timestamps={policy!r} is not valid; use one of {list(TIMESTAMP_POLICIES)}.")
    parse_dates = policy == "parse_dates"
    numbers, missing, invalid = _timestamp_values(frame[column], parse_dates)
    bad = np.flatnonzero(missing | invalid)
    if bad.size:
        first = bad[:SHOWN_ROWS]
        names = name_rows(first) if name_rows else [f"index {row_label(frame.index, r)!r}" for r in first]
        reasons = ["is empty" if missing[r] else _describe(frame[column].iloc[r], parse_dates) for r in first]
        shown = ", ".join(f"{n} {reason}" for n, reason in zip(names, reasons, strict=True))
        shown += ", ..." if bad.size > SHOWN_ROWS else ""
        if policy == "drop_invalid":
            message = "%s: dropped %d of %d row(s) with an invalid %r (%s)."
            log.warning(message, where, bad.size, len(frame), column, shown)
            keep = ~(missing | invalid)
            frame, numbers = frame[keep], numbers[keep]
        else:
            values = frame[column].iloc[np.flatnonzero(invalid)]
            text = not parse_dates and bool(pd.to_numeric(values, errors="coerce").isna().any())
            dates = "pass timestamps='parse_dates' to read ISO dates such as 2021-01-01 10:00, " if text else ""
            raise DataError(
                f"{where}: {bad.size} row(s) have an invalid timestamp in column {column!r}: {shown}. Fix: "
                f"{dates}fill in or delete these rows, or pass timestamps='drop_invalid' to drop them (numbers "
                "must be >= 0, e.g. unix seconds; shift genuinely negative, epoch-relative times by a constant)."
            )
    whole = bool((numbers % 1 == 0).all()) and bool((numbers.abs() < 2**53).all())
    return frame.assign(**{column: numbers.astype("int64") if whole else numbers})


def _check_id_types(frame: pd.DataFrame, name: str) -> None:
    """One value type per ID column: with 7 and "007" in one column, a raw ID's type would decide its identity."""
    for col in REQUIRED_COLUMNS:
        if frame[col].dtype == object and pd.api.types.infer_dtype(frame[col], skipna=True).startswith("mixed"):
            types = sorted({type(v).__name__ for v in frame[col]})
            raise DataError(
                f"Column {col!r} of {name!r} mixes ID types {types}; make them one type, e.g. "
                f"df[{col!r}] = df[{col!r}].astype(str) (7 and '7' would otherwise be two different IDs)."
            )


@dataclass
class Interactions:
    """A log of (user, item[, timestamp, event, market]) rows plus an optional item side table.

    Rows keep the order they were read in; `sorted()` orders them chronologically per user with a stable
    sort, so datasets without timestamps (one sequence per line) keep their file order.
    `items` is indexed by raw item ID and may carry `title`, `category`, `attributes` columns.
    Timestamps must be numbers >= 0 or datetimes (which become unix seconds); see `clean_timestamps`.
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
        _check_id_types(self.frame, self.name)
        if self.has_time:
            self.frame = clean_timestamps(self.frame, where=f"Interactions {self.name!r}")

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        columns: Mapping[str, str] | None = None,
        items: pd.DataFrame | None = None,
        name: str = "custom",
        timestamps: str = "strict",
    ) -> Interactions:
        """Build from any DataFrame; `columns` maps our names (user_id, item_id, timestamp, ...) to yours and
        `timestamps` is the policy for invalid ones (`clean_timestamps`)."""
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
                f"{list(frame.columns)}. Fix the mapping, e.g. columns={{'user_id': '{frame.columns[0]}', ...}} "
                f"(data.columns.user_id={frame.columns[0]} on the command line); for a log without times leave "
                "timestamp out of it (data.columns.timestamp=null or ~data.columns.timestamp)."
            )
        renamed = frame.rename(columns={src: dst for dst, src in columns.items()})
        meta = {}
        if "timestamp" in renamed.columns:
            meta = {"time_unit": "s"} if holds_dates(renamed["timestamp"], timestamps) else {}
            renamed = clean_timestamps(renamed, policy=timestamps, where=f"Interactions {name!r}")
        return cls(renamed, items=items, name=name, meta=meta)

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

    def attributes(self) -> dict:
        """Raw item ID -> its attribute names: the `category` column split on '|' (MovieLens genres), and the
        `attributes` ID lists of the S3-Rec Amazon / Yelp files as `attribute <id>` (those files carry no names).
        Placeholders such as `(no genres listed)` are left out; {} when the side table has neither column."""
        if self.items is None:
            return {}
        found: dict = {}
        if "category" in self.items.columns:
            for item, text in self.items["category"].items():
                names = str(text).split("|") if isinstance(text, str) else []
                found[item] = [name for name in names if name not in NO_ATTRIBUTE]
        if "attributes" in self.items.columns:
            for item, ids in self.items["attributes"].items():
                found.setdefault(item, []).extend(f"attribute {i}" for i in ids)
        return found

    def __repr__(self) -> str:
        return (
            f"Interactions(name={self.name!r}, rows={len(self)}, users={self.num_users}, "
            f"items={self.num_items}, time={self.has_time})"
        )
