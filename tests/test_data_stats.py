"""`seqrec data stats`: the statistics of a log as the library trains on it (after its filters), and its plots."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import require_shared
from matplotlib.figure import Figure
from plot_checks import assert_labelled, assert_real_png

from lightning_seqrec import Interactions, cli
from lightning_seqrec.data import MovieLensLatestSmall
from lightning_seqrec.data.stats import history_length_figure, interaction_stats, popularity_figure, save_report


def small_log(with_time: bool = True) -> Interactions:
    """3 users with 1, 3 and 6 events; item a has 5 interactions, b 3, c 1, d 1 (10 in all)."""
    rows = [("u1", "a")] + [("u2", i) for i in "abc"] + [("u3", i) for i in "aaabbd"]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    if with_time:
        frame["timestamp"] = np.arange(len(frame)) * 86400
    return Interactions(frame, name="small")


def test_figures_of_a_small_log_are_the_hand_counted_ones():
    stats = interaction_stats(small_log())
    assert (stats.users, stats.items, stats.interactions) == (3, 4, 10)
    assert stats.density == pytest.approx(10 / 12)
    expected = {"min": 1, "median": 3.0, "mean": 10 / 3, "p90": 5.4, "max": 6}  # p90 of 1, 3, 6: 3 + 0.8 * 3
    assert stats.history_summary() == pytest.approx(expected)
    popularity = stats.popularity_summary()
    # top 1 % / 10 % / 20 % of 4 items round up to 1 item (a: 5 of 10); every item has <= 5 interactions
    assert [popularity[f"top_{p}pct_share"] for p in (1, 10, 20)] == [0.5, 0.5, 0.5]
    assert popularity["items_le_5"] == 4
    counts = np.sort([5, 3, 1, 1])  # G = sum_i (2i - n - 1) x_(i) / (n sum x)
    assert popularity["gini"] == pytest.approx(((2 * np.arange(1, 5) - 5) * counts).sum() / (4 * 10))
    summary = stats.summary()
    assert summary["time_span"] == {"first": "1970-01-01 00:00", "last": "1970-01-10 00:00", "days": 9.0}
    assert json.loads(json.dumps(summary)) == summary


def test_a_log_without_timestamps_has_no_time_span():
    stats = interaction_stats(small_log(with_time=False))
    assert stats.time_span is None and "time_span" not in stats.summary()
    assert "(no timestamps)" in stats.report()


def test_statistics_are_of_the_filtered_data_the_model_sees():
    dm = MovieLensLatestSmall()
    dm.setup()
    stats = interaction_stats(dm.interactions)
    raw = dm.read()  # 9,724 movies before the 5-core filter
    assert stats.items == dm.num_items == 3650 < raw.num_items
    assert stats.users == len(dm.sequences) == 610
    assert stats.interactions == len(dm.sequences.items) == 90274
    assert stats.history_lengths.sum() == stats.item_counts.sum() == stats.interactions


def test_plots_have_labelled_axes_a_log_scale_and_real_pixels(tmp_path):
    stats = interaction_stats(small_log())
    popularity, lengths = popularity_figure(stats), history_length_figure(stats)
    assert isinstance(popularity, Figure) and isinstance(lengths, Figure)
    for figure in (popularity, lengths):
        assert_labelled(figure.axes[0])
    assert popularity.axes[0].get_yscale() == "log"
    paths = save_report(stats, tmp_path / "out")
    assert [p.name for p in paths] == ["popularity.png", "history_length.png", "data_stats.json"]
    for png in paths[:2]:
        assert_real_png(png)
    blank = tmp_path / "blank.png"
    Figure(figsize=(6, 4)).subplots().figure.savefig(blank, dpi=100)  # axes without data: the check must refuse it
    with pytest.raises(AssertionError):
        assert_real_png(blank)


def test_seqrec_data_stats_prints_the_known_statistics_of_beauty(tmp_path, capsys):
    beauty = require_shared("Beauty")
    cli.main(["data", "stats", "data=beauty", f"data.path={beauty}", f"out={tmp_path}", f"hydra.run.dir={tmp_path}"])
    lines = capsys.readouterr().out.splitlines()
    assert "  users         22,363" in lines
    assert "  items         12,101" in lines
    assert "  interactions  198,502" in lines
    assert any(line.startswith("  time span     2002-06-12") for line in lines)
    for name in ("popularity.png", "history_length.png"):
        assert_real_png(tmp_path / name)
    summary = json.loads((tmp_path / "data_stats.json").read_text())
    assert (summary["users"], summary["items"], summary["interactions"]) == (22363, 12101, 198502)


def test_seqrec_data_without_a_known_sub_command_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["data", "summary"])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error == "seqrec: error: seqrec data takes one of: stats, e.g. `seqrec data stats`."
