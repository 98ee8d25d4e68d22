"""Does the order of same-second ratings move ML-1M's leave-one-out figures? The same CE SASRec trained on the users
of ML-1M whose timestamps we have, once with tied ratings in random order and once sorted by item id.

    SEQREC_GRID_DIR=<dir> python benchmarks/ml1m_tie_order.py --seeds 0 --jobs 2 --threads 1 --resume
    python benchmarks/ml1m_tie_order.py --report

In ML-1M over half of a user's consecutive ratings share their second. `ml-1m.txt`, our ML-1M, orders such ties at
random (half of the tied pairs ascend by item id); LRURec's preprocessing (`sort_values(['timestamp', 'sid'])`), whose
paper gives the 0.1902 / 0.1930 NDCG@10 that issue 22 targets, sorts them by item id, so within a burst the next item
always has a larger id than the last, a pattern a model can learn and an ML-1M test target often follows. Only users
1-2999 have timestamps here (`ratings_users_0001-2999.dat`), so both files hold those users: their ratings as read,
tied ratings shuffled (seed 0) or sorted by item id, then sorted stably by time. Each is read as a `ratings*.dat` by
`data=ml-1m` (`experiment=sasrec_ml-1m_ce`: 200-item windows, full CE, leave-one-out, full ranking, seen items
masked). The data files are written once into `$SEQREC_GRID_DIR/ml1m_tie_order/data/`, the run folders beside them.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from _common import RESULTS, use_shared_data
from _grid import grid_arguments, grid_dir, run_rows, summary

from lightning_seqrec.data.readers import read_movielens_1m

OUTPUT = "ml1m_tie_order"
SOURCE = Path("ml-1m") / "ratings_users_0001-2999.dat.gz"
ORDERS = {"random": "ties in random order (as ml-1m.txt)", "item_id": "ties sorted by item id (as LRURec)"}
DATA_ENV = "SEQREC_TIE_ORDER_DIR"
"""Where the run configs find the data files: set by this script, read by `${oc.env:...}` in `data.path`."""
COLUMNS = ("hr@10", "ndcg@10")


def ordered(ratings: pd.DataFrame, order: str) -> pd.DataFrame:
    """The ratings sorted by user and time, ties broken at random (seed 0) or by item id."""
    if order == "random":
        ratings = ratings.sample(frac=1.0, random_state=0)
        return ratings.sort_values(["user", "time"], kind="stable")
    return ratings.sort_values(["user", "time", "item"], kind="stable")


def tie_statistics(ratings: pd.DataFrame) -> dict:
    """How much of the data the tie order decides: tied consecutive pairs, and test targets tied with the validation
    item (leave-one-out: the last rating is the test target, the one before it the validation target)."""
    same_user = ratings["user"].to_numpy()[1:] == ratings["user"].to_numpy()[:-1]
    tied = same_user & (np.diff(ratings["time"].to_numpy()) == 0)
    ascending = tied & (np.diff(ratings["item"].to_numpy()) > 0)
    last_two = ratings.groupby("user", sort=False).tail(2).groupby("user", sort=False)
    test_tied = last_two["time"].agg(lambda t: t.iloc[-1] == t.iloc[0])
    return {
        "users": int(ratings["user"].nunique()),
        "ratings": len(ratings),
        "tied_consecutive_pairs": round(float(tied.sum() / same_user.sum()), 4),
        "tied_pairs_ascending_by_id": round(float(ascending.sum() / max(tied.sum(), 1)), 4),
        "test_target_tied_with_validation_item": round(float(test_tied.mean()), 4),
    }


def prepare(folder: Path, data_dir: Path) -> dict[str, dict]:
    """Write the two ratings files (once; a file is renamed into place when complete) and return their
    statistics."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = read_movielens_1m(data_dir / SOURCE).frame  # in file order
    names = {"user_id": "user", "item_id": "item", "rating": "rating", "timestamp": "time"}
    ratings = frame[list(names)].rename(columns=names).astype({"rating": "int64"})
    stats = {}
    for order in ORDERS:
        frame = ordered(ratings, order)
        stats[order] = tie_statistics(frame)
        path = folder / f"ratings_ties-{order}.dat"
        if not path.is_file():
            partial = path.with_suffix(".partial")
            partial.write_text("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in frame.itertuples(index=False)))
            partial.rename(path)
    return stats


def rows(dataset: str) -> list[tuple[str, list[str]]]:
    """One SASRec row per tie order, reading its file through the data folder's environment variable."""
    return [
        (name, ["experiment=sasrec_ml-1m_ce", f"data.path=${{oc.env:{DATA_ENV}}}/ratings_ties-{order}.dat"])
        for order, name in ORDERS.items()
    ]


def print_table(table: list[dict], stats: dict) -> None:
    for order, values in stats.items():
        print(f"{ORDERS[order]}: {json.dumps(values)}")
    print("\n| ML-1M users 1-2999, CE SASRec | seeds | HR@10 | NDCG@10 | s / run |\n|---|---|---|---|---|")
    for row in table:
        if row["runs"]:
            cells = " | ".join(summary([r[c] for r in row["runs"]]) for c in COLUMNS)
            seconds = np.mean([r["seconds"] for r in row["runs"]])
            print(f"| {row['model']} | {len(row['runs'])} | {cells} | {seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    grid_arguments(parser)
    args = parser.parse_args()
    if args.report:
        saved = json.loads((RESULTS / f"{OUTPUT}.json").read_text())
        print_table(saved["results"], saved["ties"])
        return
    data_dir = use_shared_data()
    folder = grid_dir(OUTPUT) / "data"
    stats = prepare(folder, data_dir)
    os.environ[DATA_ENV] = str(folder)
    table = run_rows(OUTPUT, rows, ["ml-1m users 1-2999"], None, args, COLUMNS, payload={"ties": stats})
    print_table(table, stats)


if __name__ == "__main__":
    main()
