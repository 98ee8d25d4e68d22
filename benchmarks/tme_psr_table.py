"""TME-PSR accuracy table: SASRec, LRURec, LRURec + the dual-view time encoder (each gating strategy), the multihead
LRU and full TME-PSR; leave-one-out, full ranking over the catalog, seen items masked, mean ± sd over seeds.

    python benchmarks/tme_psr_table.py --datasets ml-latest-small beauty --seeds 0 1 2 --resume
    python benchmarks/tme_psr_table.py --datasets ml-1m --seeds 0 --resume     # SASRec, LRURec, multihead LRU
    python benchmarks/tme_psr_table.py --report

Every cell is one `seqrec train experiment=... [overrides]` run with early stopping on validation NDCG@10, testing
the best checkpoint once; a zoo entry whose recipe is a row (its overrides, its seeds all run) is carded from those
runs by `seqrec zoo build`, which reuses them. ml-latest-small (seconds) and Beauty (days, from the TiCoSeRec time file)
have real timestamps; `ml-1m.txt` has none, so ML-1M gets only the rows without the time encoder. A row whose
config does not compose on this checkout is skipped with its reason. Run folders go under
`$SEQREC_GRID_DIR/tme_psr_table/`, so a grid longer than one sitting resumes (`--resume`) from each run's last
checkpoint; results are rewritten to benchmarks/results/tme_psr_table.json after every run.
"""

from __future__ import annotations

import argparse
import json
import statistics

from _common import RESULTS, use_shared_data
from _grid import grid_arguments, run_rows, summary

SASREC = {"ml-latest-small": "sasrec_ml-latest-small_ce", "beauty": "sasrec_beauty_ce", "ml-1m": "sasrec_ml-1m_ce"}
TIMED = ("ml-latest-small", "beauty")
MULTIHEAD = ["model.num_heads=4", "model.interests=max"]


def rows(dataset: str) -> list[tuple[str, list[str]]]:
    """(row name, overrides) of one dataset's table."""
    lru = f"experiment=lru_{dataset}"
    table = [
        ("SASRec", [f"experiment={SASREC[dataset]}"]),
        ("LRURec", [lru]),
        ("multihead LRU (4, max)", [lru, *MULTIHEAD]),
    ]
    if dataset in TIMED:
        table += [(f"LRURec + time ({gate})", [lru, f"inputs=dual_time_{gate}"]) for gate in ("sum", "global", "user")]
        table += [("LRURec + time (position)", [lru, "inputs=dual_time_position"])]
        table += [("TME-PSR", [f"experiment=tme_psr_{dataset}"])]
    return table


COLUMNS = ("hr@10", "ndcg@10")


def print_table(table: list[dict]) -> None:
    print(
        "\n| dataset | model | seeds | HR@10 | NDCG@10 | NDCG@10 vs LRURec | s / run |\n|---|---|---|---|---|---|---|"
    )
    base = {r["dataset"]: r for r in table if r["model"] == "LRURec" and r["runs"]}
    for r in table:
        if not r["runs"]:
            continue
        ndcg = statistics.fmean(x["ndcg@10"] for x in r["runs"])
        reference = base.get(r["dataset"])
        versus = ""
        if reference and r is not reference:
            versus = f"{100 * (ndcg / statistics.fmean(x['ndcg@10'] for x in reference['runs']) - 1):+.1f} %"
        cells = " | ".join(summary([x[c] for x in r["runs"]]) for c in COLUMNS)
        seconds = statistics.fmean(x["seconds"] for x in r["runs"])
        print(f"| {r['dataset']} | {r['model']} | {len(r['runs'])} | {cells} | {versus} | {seconds:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-latest-small", "beauty"], choices=sorted(SASREC))
    parser.add_argument("--models", nargs="+", default=None, help="only these row names (default: all)")
    grid_arguments(parser)
    args = parser.parse_args()
    if args.report:
        print_table(json.loads((RESULTS / "tme_psr_table.json").read_text())["results"])
        return
    use_shared_data()
    print_table(run_rows("tme_psr_table", rows, args.datasets, args.models, args, COLUMNS))


if __name__ == "__main__":
    main()
