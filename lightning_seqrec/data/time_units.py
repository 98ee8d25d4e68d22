"""Timestamps in one unit: every log's times become float seconds since the epoch before they reach `time_seq`, so a
time-aware model reads seconds whatever unit the file had.

The unit is the reader's (`Interactions.meta["time_unit"]`: MovieLens, Amazon and XMRec dates are seconds,
RetailRocket's `events.csv` milliseconds; dates parsed from text or datetime columns are seconds), or the one given
as `time_unit` (`s`, `ms`, `d`). `auto` takes the reader's unit, else reads numbers below 1e11 as seconds and from
1e11 to 1e14 as milliseconds (1e11 s is the year 5138, 1e11 ms is 1973), and refuses larger ones. Days are never
guessed: a log counted in days says `time_unit=d`.
"""

from __future__ import annotations

import logging

import numpy as np

from lightning_seqrec.data.interactions import Interactions
from lightning_seqrec.errors import DataError

log = logging.getLogger(__name__)

SECONDS_PER_UNIT = {"s": 1.0, "ms": 1e-3, "d": 86400.0}
TIME_UNITS = ("auto", *SECONDS_PER_UNIT)
MILLISECONDS_FROM, TOO_LARGE_FROM = 1e11, 1e14


def check_time_unit(time_unit: str) -> str:
    """`time_unit` if it is one of TIME_UNITS, else a DataError naming them."""
    if time_unit not in TIME_UNITS:
        raise DataError(f"time_unit={time_unit!r} is not valid; use one of {list(TIME_UNITS)} (data.time_unit=...).")
    return time_unit


def resolve_time_unit(data: Interactions, time_unit: str = "auto") -> str:
    """The unit `data`'s timestamps are in: the given one, the reader's, or by the `auto` rule of the module doc."""
    known = data.meta.get("time_unit")
    if check_time_unit(time_unit) != "auto":
        if known is not None and known != time_unit:
            raise DataError(
                f"time_unit={time_unit!r} contradicts {data.name!r}, whose reader gives its timestamps in {known!r}; "
                "leave time_unit=auto for a known dataset."
            )
        return time_unit
    if known is not None:
        return known
    largest = float(np.max(data.frame["timestamp"].to_numpy(dtype=np.float64)))
    if largest >= TOO_LARGE_FROM:
        raise DataError(
            f"Timestamps of {data.name!r} reach {largest:.6g}, too large for seconds or milliseconds (microseconds?); "
            "convert them to seconds, or pass time_unit=s|ms|d."
        )
    unit = "ms" if largest >= MILLISECONDS_FROM else "s"
    log.info("%s: timestamps read as %s (time_unit=auto; pass time_unit=s|ms|d to choose)", data.name, unit)
    return unit


def in_seconds(data: Interactions, time_unit: str = "auto") -> Interactions:
    """`data` with its timestamps as float seconds since the epoch (`meta["time_unit"] = "s"`); untimed data as it
    is. The unit it came in is kept as `meta["source_time_unit"]`."""
    if not data.has_time:
        check_time_unit(time_unit)
        return data
    unit = resolve_time_unit(data, time_unit)
    seconds = data.frame["timestamp"].to_numpy(dtype=np.float64) * SECONDS_PER_UNIT[unit]
    meta = {**data.meta, "time_unit": "s", "source_time_unit": unit}
    return Interactions(data.frame.assign(timestamp=seconds), items=data.items, name=data.name, meta=meta)
