"""Statistics of an interaction log as the library trains on it (`seqrec data stats`): sizes, density, the
distribution of history lengths and of item popularity, the time span, and two plots (the long tail of item
popularity and the histogram of history lengths) drawn with matplotlib's object API, without pyplot's global state.

Pass the `interactions` of a set-up DataModule, which are the log after the data config's filters (deduplication,
k-core) with timestamps in seconds, so the figures describe the data a model sees, not the raw file.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lightning_seqrec.data.interactions import Interactions
from lightning_seqrec.metrics.beyond_accuracy import gini_coefficient

TOP_SHARES = (0.01, 0.10, 0.20)
"""Shares of the catalog (most popular first) whose share of all interactions is reported."""
RARE_ITEM_MAX = 5
"""Items with at most this many interactions are counted as rare."""
PLOT_FILES = ("popularity.png", "history_length.png")
SUMMARY_FILE = "data_stats.json"


@dataclass(frozen=True)
class DataStats:
    """The figures of one log. `history_lengths` holds each user's interaction count, `item_counts` each item's,
    most popular first; `time_span` is the (first, last) timestamp in seconds, or None for a log without time."""

    name: str
    users: int
    items: int
    interactions: int
    history_lengths: np.ndarray = field(repr=False)
    item_counts: np.ndarray = field(repr=False)
    time_span: tuple[float, float] | None = None

    @property
    def density(self) -> float:
        """Interactions / (users x items); a repeated (user, item) pair counts each time."""
        return self.interactions / (self.users * self.items)

    def history_summary(self) -> dict[str, float]:
        """min / median / mean / p90 / max of the users' history lengths."""
        lengths = self.history_lengths
        return {
            "min": int(lengths.min()),
            "median": float(np.median(lengths)),
            "mean": float(lengths.mean()),
            "p90": float(np.percentile(lengths, 90)),
            "max": int(lengths.max()),
        }

    def popularity_summary(self) -> dict[str, float]:
        """The share of interactions on the top 1 / 10 / 20 % of items (at least one item each, rounded up), the
        items with at most `RARE_ITEM_MAX` interactions, and the Gini coefficient of the item counts."""
        summary = {}
        for share in TOP_SHARES:
            top = max(1, math.ceil(share * self.items))
            summary[f"top_{round(share * 100)}pct_share"] = float(self.item_counts[:top].sum() / self.interactions)
        summary[f"items_le_{RARE_ITEM_MAX}"] = int((self.item_counts <= RARE_ITEM_MAX).sum())
        summary["gini"] = float(gini_coefficient(torch.from_numpy(self.item_counts)))
        return summary

    def summary(self) -> dict:
        """Every figure as plain JSON-ready data."""
        out = {
            "name": self.name,
            "users": self.users,
            "items": self.items,
            "interactions": self.interactions,
            "density": self.density,
            "history_length": self.history_summary(),
            "item_popularity": self.popularity_summary(),
        }
        if self.time_span is not None:
            first, last = self.time_span
            out["time_span"] = {"first": _date(first), "last": _date(last), "days": (last - first) / 86400}
        return out

    def report(self) -> str:
        """The figures as the lines `seqrec data stats` prints."""
        history, popularity = self.history_summary(), self.popularity_summary()
        rare = popularity[f"items_le_{RARE_ITEM_MAX}"]
        tops = ", ".join(
            f"top {round(s * 100)} %: {popularity[f'top_{round(s * 100)}pct_share']:.1%}" for s in TOP_SHARES
        )
        lines = [
            f"{self.name} (after the data config's filters)",
            f"  users         {self.users:,}",
            f"  items         {self.items:,}",
            f"  interactions  {self.interactions:,}",
            f"  density       {self.density:.4%}",
            "  history length per user: "
            + ", ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in history.items()),
            f"  item popularity: share of interactions on the {tops}",
            f"                   items with <= {RARE_ITEM_MAX} interactions: {rare:,} ({rare / self.items:.1%}), "
            f"Gini {popularity['gini']:.3f}",
        ]
        if self.time_span is not None:
            span = self.summary()["time_span"]
            lines.append(f"  time span     {span['first']} to {span['last']} ({span['days']:,.0f} days, UTC)")
        else:
            lines.append("  time span     (no timestamps)")
        return "\n".join(lines)


def _date(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def interaction_stats(data: Interactions) -> DataStats:
    """The statistics of `data` (e.g. `datamodule.interactions` after `setup()`); reads it, changes nothing."""
    frame = data.frame
    span = None
    if data.has_time:
        times = frame["timestamp"].to_numpy(dtype=np.float64)
        span = (float(times.min()), float(times.max()))
    item_counts = frame["item_id"].value_counts().to_numpy()
    return DataStats(
        name=data.name,
        users=int(frame["user_id"].nunique()),
        items=len(item_counts),
        interactions=len(frame),
        history_lengths=frame["user_id"].value_counts().to_numpy(),
        item_counts=np.sort(item_counts)[::-1].copy(),
        time_span=span,
    )


def popularity_figure(stats: DataStats):
    """The long tail: each item's interactions against its popularity rank, log-scale y, the top 20 % shaded."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    ranks = np.arange(1, stats.items + 1)
    axes.plot(ranks, stats.item_counts, label="interactions per item")
    head = max(1, math.ceil(0.2 * stats.items))
    share = stats.popularity_summary()["top_20pct_share"]
    axes.axvspan(1, head, alpha=0.2, color="tab:orange", label=f"top 20 % of items: {share:.0%} of interactions")
    axes.set_yscale("log")
    axes.set(xlabel="item rank by interactions", ylabel="interactions (log scale)", title=f"{stats.name}: popularity")
    axes.legend()
    return figure


def history_length_figure(stats: DataStats):
    """Users per history length, on log-spaced bins (lengths are long-tailed), with the median and p90 marked."""
    from matplotlib.figure import Figure

    lengths = stats.history_lengths
    low, high = int(lengths.min()), int(lengths.max())
    log_bins = high > 4 * low
    bins = np.unique(np.geomspace(low, high + 1, 40).round()) if log_bins else np.arange(low, high + 2) - 0.5
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    axes.hist(lengths, bins=bins, color="tab:blue", alpha=0.8, label="users")
    summary = stats.history_summary()
    for key, style in (("median", "--"), ("p90", ":")):
        axes.axvline(summary[key], color="black", linestyle=style, label=f"{key} {summary[key]:,.0f}")
    if log_bins:
        axes.set_xscale("log")
    axes.set(xlabel="history length (interactions per user)", ylabel="users", title=f"{stats.name}: history length")
    axes.legend()
    return figure


def save_report(stats: DataStats, folder: str | Path) -> Sequence[Path]:
    """Write the two plots (PNG) and the figures (`data_stats.json`) into `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in zip(PLOT_FILES, (popularity_figure, history_length_figure), strict=True):
        draw(stats).savefig(folder / name, format="png", dpi=100)
        paths.append(folder / name)
    (folder / SUMMARY_FILE).write_text(json.dumps(stats.summary(), indent=1))
    return [*paths, folder / SUMMARY_FILE]
