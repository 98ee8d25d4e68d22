"""RCL quality table: SASRec + full CE vs + RCL vs + supervised contrastive on Beauty and Sports, GRU4Rec + CE vs
+ RCL on Beauty; S3-Rec protocol (leave-one-out, full ranking over the catalog, seen items masked).

    python benchmarks/rcl_table.py --seeds 0 1 2 --jobs 2 --threads 1

Every cell is one `seqrec train experiment=<row>` run with early stopping on validation NDCG@10, testing the
best checkpoint, so the table measures the packaged experiments. Prints mean ± sd over seeds of HR@5/10 and
NDCG@5/10, each objective's NDCG@10 change against its backbone's CE row and against RCL's published full-ranking
NDCG@10, and writes benchmarks/results/rcl_table.json after every run (`--resume` continues).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from _common import RESULTS, use_shared_data
from _grid import run_grid, summary

ROWS = [  # (dataset, backbone, objective, experiment)
    ("beauty", "sasrec", "ce", "sasrec_beauty_ce"),
    ("beauty", "sasrec", "rcl", "sasrec_beauty_rcl"),
    ("beauty", "sasrec", "supcon", "sasrec_beauty_supcon"),
    ("beauty", "gru4rec", "ce", "gru4rec_beauty_ce"),
    ("beauty", "gru4rec", "rcl", "gru4rec_beauty_rcl"),
    ("sports", "sasrec", "ce", "sasrec_sports_ce"),
    ("sports", "sasrec", "rcl", "sasrec_sports_rcl"),
    ("sports", "sasrec", "supcon", "sasrec_sports_supcon"),
]
# RCL (Wang et al., CIKM 2024) Table 2, SASRec + RCL, full ranking; their SASRec baseline is BCE.
PUBLISHED_RCL_NDCG10 = {"beauty": 0.0476, "sports": 0.0287}
COLUMNS = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")


def print_table(table: list[dict], seeds: list[int]) -> None:
    """Mean ± sd per row, NDCG@10 change against the backbone's CE row (on the seeds both have) and against
    the published SASRec + RCL figure (SASRec rows only)."""
    print("\nTest metrics (S3-Rec protocol), mean ± sd over seeds " + ", ".join(map(str, seeds)))
    print(f"| dataset | model | seeds | {' | '.join(COLUMNS)} | NDCG@10 vs CE | vs published RCL | seconds |")
    print("|---" * (len(COLUMNS) + 6) + "|")
    ndcg = {(r["dataset"], r["backbone"], r["objective"]): {x["seed"]: x["ndcg@10"] for x in r["runs"]} for r in table}
    for r in table:
        if not r["runs"]:
            continue
        own = ndcg[(r["dataset"], r["backbone"], r["objective"])]
        mean = statistics.fmean(own.values())
        ce = ndcg.get((r["dataset"], r["backbone"], "ce"), {})
        shared = [seed for seed in own if seed in ce]  # compare on the same seeds only
        vs_ce = ""
        if shared and r["objective"] != "ce":
            ratio = statistics.fmean(own[s] for s in shared) / statistics.fmean(ce[s] for s in shared)
            vs_ce = f"{100 * (ratio - 1):+.1f} %"
        published = PUBLISHED_RCL_NDCG10[r["dataset"]] if r["backbone"] == "sasrec" else None  # SASRec's figure
        vs_paper = f"{100 * (mean / published - 1):+.1f} %" if published else ""
        cells = [summary([x[c] for x in r["runs"]]) for c in COLUMNS]
        seconds = statistics.fmean(x["seconds"] for x in r["runs"])
        print(
            f"| {r['dataset']} | {r['backbone']} + {r['objective']} | {len(r['runs'])} | {' | '.join(cells)} "
            f"| {vs_ce} | {vs_paper} | {seconds:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["beauty", "sports"], choices=["beauty", "sports"])
    parser.add_argument("--backbones", nargs="+", default=["sasrec", "gru4rec"], choices=["sasrec", "gru4rec"])
    parser.add_argument("--objectives", nargs="+", default=["ce", "rcl", "supcon"], choices=["ce", "rcl", "supcon"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs")
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each run (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (e.g. --jobs 2 --threads 1 on 2 cores)")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in the results file")
    parser.add_argument("--report", action="store_true", help="print the table of the results file and stop")
    parser.add_argument(
        "--override", action="append", default=[], help="extra `seqrec train` override for every run, e.g. trainer=gpu"
    )
    args = parser.parse_args()
    if args.report:
        saved = json.loads((RESULTS / "rcl_table.json").read_text())
        print_table(saved["results"], saved["args"]["seeds"])
        return
    use_shared_data()
    table = [
        {"dataset": d, "backbone": b, "objective": o, "overrides": [f"experiment={e}"]}
        for d, b, o, e in ROWS
        if d in args.datasets and b in args.backbones and o in args.objectives
    ]
    run_grid(
        table,
        args.seeds,
        "rcl_table",
        {"args": vars(args), "command": " ".join(sys.argv), "published_rcl_ndcg@10": PUBLISHED_RCL_NDCG10},
        lambda r: f"{r['dataset']} {r['backbone']} + {r['objective']}",
        COLUMNS,
        common=(
            f"trainer.max_epochs={args.max_epochs}",
            f"callbacks.early_stopping.patience={args.patience}",
            *args.override,
        ),
        jobs=args.jobs,
        threads=args.threads,
        resume=args.resume,
    )
    print_table(table, args.seeds)


if __name__ == "__main__":
    main()
