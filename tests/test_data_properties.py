"""Property test of the data layer: random logs through read -> filters -> split either fail with a DataError
for a reason the input has, or give splits whose every row traces back to an input row."""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightning_seqrec.data import Interactions, ItemVocab
from lightning_seqrec.data.filters import drop_duplicates, k_core
from lightning_seqrec.data.readers import read_table
from lightning_seqrec.data.sequences import Sequences
from lightning_seqrec.data.splits import leave_one_out, temporal
from lightning_seqrec.errors import DataError

# IDs of one column are drawn from one pool: integers, numeric-looking strings (which must stay distinct from
# each other and from the integers), text (with the CSV separator, a quote and pandas' NA spellings), or a mix.
POOLS = {
    "int": [0, 7, 10, 42, 1001],
    "numeric": ["007", "7", "07", "7.0", "-3", "1e3", " 7"],
    "text": ["a", "b c", "x,y", 'q"t', "NA", "null", "nan", "é"],
}
POOLS["mixed"] = [7, "7", "007", 42, "a"]
INVALID = {"missing": None, "negative": -1}


@st.composite
def logs(draw) -> pd.DataFrame:
    """A log of 3-30 rows with ties in time, duplicates, maybe one invalid timestamp, in random order."""
    users = st.sampled_from(POOLS[draw(st.sampled_from(sorted(POOLS)))])
    items = st.sampled_from(POOLS[draw(st.sampled_from(sorted(POOLS)))])
    rows = draw(st.lists(st.tuples(users, items, st.integers(0, 5)), min_size=3, max_size=30))
    broken = draw(st.sampled_from(["none", "none", "none", "missing", "negative"]))
    if broken != "none":
        at = draw(st.integers(0, len(rows) - 1))
        rows[at] = (*rows[at][:2], INVALID[broken])
    order = draw(st.permutations(range(len(rows))))
    return pd.DataFrame([rows[k] for k in order], columns=["user", "item", "ts"], dtype=object)


COLUMNS = {"user_id": "user", "item_id": "item", "timestamp": "ts"}


def triples(data: Interactions) -> list[tuple]:
    """(user, item, timestamp) of every row, as plain Python values."""
    frame = data.frame
    return list(zip(frame["user_id"].tolist(), frame["item_id"].tolist(), frame["timestamp"].tolist(), strict=True))


def valid(ts) -> bool:
    return ts is not None and ts >= 0


def mixes_types(values: pd.Series) -> bool:
    return len({type(v) for v in values}) > 1


def read_csv_log(log: pd.DataFrame, folder: Path, timestamps: str) -> Interactions:
    path = folder / f"log-{timestamps}.csv"
    log.to_csv(path, index=False)
    return read_table(path, columns=COLUMNS, timestamps=timestamps)


def check_read(log: pd.DataFrame, folder: Path) -> list[Interactions]:
    """Read the log from a CSV (strict and drop_invalid) and as a DataFrame; the ones that must succeed did, with
    exactly the input rows (a text file's IDs as the strings written, a DataFrame's as they are)."""
    written = [(str(u), str(i), t) for u, i, t in log.itertuples(index=False)]
    kept = [row for row in written if valid(row[2])]
    has_invalid = len(kept) < len(written)
    read = []
    if has_invalid:
        with pytest.raises(DataError, match="invalid timestamp"):
            read_csv_log(log, folder, "strict")
    else:
        read.append(read_csv_log(log, folder, "strict"))
        assert triples(read[-1]) == written
    if kept:
        read.append(read_csv_log(log, folder, "drop_invalid"))
        assert triples(read[-1]) == kept
    else:
        with pytest.raises(DataError, match="empty"):
            read_csv_log(log, folder, "drop_invalid")
    if has_invalid or mixes_types(log["user"]) or mixes_types(log["item"]):
        with pytest.raises(DataError, match="invalid timestamp|mixes ID types"):
            read_table(log, columns=COLUMNS)
    else:
        read.append(read_table(log, columns=COLUMNS))
        assert triples(read[-1]) == list(log.itertuples(index=False, name=None))
    return read


def chronological(rows: list[tuple]) -> dict:
    """The oracle: each user's (item, timestamp) in time order, ties in row order."""
    by_user = defaultdict(list)
    for user, item, ts in rows:
        by_user[user].append((item, ts))
    return {user: sorted(events, key=lambda e: e[1]) for user, events in by_user.items()}


def core(rows: list[tuple], user_k: int, item_k: int) -> list[tuple]:
    """The oracle k-core: drop rows of too-rare users or items until none is left to drop."""
    while True:
        users, items = Counter(r[0] for r in rows), Counter(r[1] for r in rows)
        kept = [r for r in rows if users[r[0]] >= user_k and items[r[1]] >= item_k]
        if len(kept) == len(rows):
            return rows
        rows = kept


def check_filters(data: Interactions, dedupe: str | None, user_k: int, item_k: int) -> Interactions | None:
    """Dedupe and k-core keep a sub-multiset of the rows, with the documented guarantees; None: nothing survived."""
    rows = triples(data)
    if dedupe is not None:
        consecutive = dedupe == "consecutive"
        data = drop_duplicates(data, keep="first" if consecutive else dedupe, consecutive_only=consecutive)
        after = triples(data)
        assert not Counter(after) - Counter(rows)
        assert {r[:2] for r in after} == {r[:2] for r in rows}  # every (user, item) pair is still there
        if not consecutive:
            assert len(after) == len({r[:2] for r in after})
        for events in chronological(after).values():
            assert not consecutive or all(a[0] != b[0] for a, b in pairwise(events))
        rows = after
    if user_k or item_k:
        expected = core(rows, user_k, item_k)
        if not expected:
            with pytest.raises(DataError, match="core of .* is empty"):
                k_core(data, user_k, item_k)
            return None
        data = k_core(data, user_k, item_k)
        assert Counter(triples(data)) == Counter(expected)
    return data


def decoded(vocab: ItemVocab, seqs: Sequences) -> dict:
    return {user: vocab.decode(row) for user, row in zip(seqs.users.tolist(), seqs.rows(), strict=True)}


def check_splits(data: Interactions) -> None:
    """Leave-one-out and temporal splits hold exactly the users' chronological events they document."""
    vocab = ItemVocab.from_ids(data.frame["item_id"])
    assert set(vocab.raw_ids) == set(data.frame["item_id"].tolist())  # raw IDs unchanged, type included
    seqs = Sequences.from_interactions(data, vocab)
    full = {user: [item for item, _ in events] for user, events in chronological(triples(data)).items()}
    times = {user: [ts for _, ts in events] for user, events in chronological(triples(data)).items()}
    assert decoded(vocab, seqs) == full
    long = {user for user, items in full.items() if len(items) >= 3}
    if not long:
        with pytest.raises(DataError, match="at least 3 interactions"):
            leave_one_out(seqs)
    else:
        split = leave_one_out(seqs)
        assert decoded(vocab, split.train) == {u: full[u][:-2] for u in long}
        assert decoded(vocab, split.test.history) == {u: full[u][:-1] for u in long}
        users = split.test.history.users.tolist()
        assert vocab.decode(split.test.targets) == [full[u][-1] for u in users]
        assert vocab.decode(split.valid.targets) == [full[u][-2] for u in split.valid.history.users.tolist()]
    all_times = np.array([t for ts in times.values() for t in ts], dtype=np.float64)
    v_cut, t_cut = np.quantile(all_times, 0.5), np.quantile(all_times, 0.8)
    try:
        split = temporal(seqs, valid_cutoff=0.5, test_cutoff=0.8)
    except DataError as error:
        assert "No user has history before the test cutoff" in str(error)
        assert not any(ts[0] < t_cut <= ts[-1] for ts in times.values())
        return
    before = {u: sum(t < v_cut for t in times[u]) for u in full}
    assert decoded(vocab, split.train) == {u: full[u][: before[u]] for u in full}
    for part, cut, ends in ((split.valid, v_cut, t_cut), (split.test, t_cut, np.inf)):
        users = part.history.users.tolist()
        for user, history, target in zip(users, part.history.rows(), vocab.decode(part.targets), strict=True):
            n = sum(t < cut for t in times[user])
            assert n >= 1 and vocab.decode(history) == full[user][:n] and target == full[user][n]
            assert times[user][n] < ends  # the target lies between its part's cut-offs
        starts = cut if part is split.test else v_cut
        expected = {u for u in full if times[u][0] < starts and any(starts <= t < ends for t in times[u])}
        assert set(users) == expected


@settings(max_examples=80, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    log=logs(),
    dedupe=st.sampled_from([None, "first", "last", "consecutive"]),
    user_k=st.integers(0, 3),
    item_k=st.integers(0, 3),
)
def test_random_logs_fail_clearly_or_split_into_their_own_rows(log, dedupe, user_k, item_k):
    with tempfile.TemporaryDirectory() as folder:
        for data in check_read(log, Path(folder)):
            filtered = check_filters(data, dedupe, user_k, item_k)
            if filtered is not None:
                check_splits(filtered)
