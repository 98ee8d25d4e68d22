"""SASRec accuracy against the published plain SASRec: the packaged recipes, 3 seeds each, on the S3-Rec protocol
(leave-one-out, full ranking over the catalog, seen items masked).

    python benchmarks/sasrec_accuracy.py --datasets beauty sports toys ml-1m --seeds 0 1 2 --resume
    python benchmarks/sasrec_accuracy.py --report

Rows per dataset: the old recipe (`experiment=sasrec_<d>_ce`), the tuned one (`experiment=sasrec_<d>_best`, at the
peers' published size: 64 dims, 2 blocks, 2 heads, so it is also the matched-size row) and the tuned one with RCL on
top. Every cell is one `seqrec train` run with early stopping on validation NDCG@10 that tests its best checkpoint
once; a zoo entry whose recipe is a row (overrides and seeds) is carded from the runs once they are done. Prints
HR@10 and NDCG@10 as mean ± sd, the change against the published plain SASRec, and seconds to the best validation epoch;
writes benchmarks/results/sasrec_accuracy.json after every run (run folders under
`$SEQREC_GRID_DIR/sasrec_accuracy/`, so `--resume` continues a grid longer than one sitting). A row whose config
does not compose is skipped with its reason.
"""

from __future__ import annotations

import argparse
import json
import statistics

from _common import RESULTS, use_shared_data
from _grid import grid_arguments, run_rows, summary

# Published plain SASRec, test NDCG@10 on the same protocol and data (sources in ../shared/papers/digests.md):
# SASRec + sampled softmax from the eSASRec paper's table (Beauty, Sports, Toys), CE SASRec from LRURec's (ML-1M).
PUBLISHED = {"beauty": 0.0531, "sports": 0.0314, "toys": 0.0580, "ml-1m": 0.1902}
COLUMNS = ("hr@10", "ndcg@10")


def rows(dataset: str) -> list[tuple[str, list[str]]]:
    """(row name, overrides) of one dataset's table."""
    best = f"experiment=sasrec_{dataset}_best"
    return [
        ("old recipe", [f"experiment=sasrec_{dataset}_ce"]),
        ("tuned recipe", [best]),
        ("tuned + RCL", [best, "objective=rcl"]),
    ]


def print_table(table: list[dict]) -> None:
    print(
        "\n| dataset | recipe | seeds | HR@10 | NDCG@10 | published SASRec NDCG@10 | vs published | s to best |"
        "\n|---|---|---|---|---|---|---|---|"
    )
    for r in table:
        if not r["runs"]:
            continue
        published = PUBLISHED[r["dataset"]]
        ndcg = statistics.fmean(x["ndcg@10"] for x in r["runs"])
        cells = " | ".join(summary([x[c] for x in r["runs"]]) for c in COLUMNS)
        to_best = [x["seconds_to_best"] for x in r["runs"] if "seconds_to_best" in x]
        seconds = f"{statistics.fmean(to_best):.0f}" if to_best else ""
        print(
            f"| {r['dataset']} | {r['model']} | {len(r['runs'])} | {cells} | {published} "
            f"| {100 * (ndcg / published - 1):+.1f} % | {seconds} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(PUBLISHED), choices=list(PUBLISHED))
    parser.add_argument("--rows", nargs="+", default=None, help="row names to run (default: all)")
    grid_arguments(parser)
    args = parser.parse_args()
    if args.report:
        print_table(json.loads((RESULTS / "sasrec_accuracy.json").read_text())["results"])
        return
    use_shared_data()
    payload = {"published_sasrec_ndcg@10": PUBLISHED}
    print_table(run_rows("sasrec_accuracy", rows, args.datasets, args.rows, args, COLUMNS, payload))


if __name__ == "__main__":
    main()
