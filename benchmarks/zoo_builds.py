"""Build zoo entries as a resumable grid: each entry is one `seqrec zoo build NAME` (its recipe's training run, test,
Hub folder and card), run N at a time; an interrupted build continues from its last checkpoint.

    python benchmarks/zoo_builds.py --jobs 2 --threads 1 --resume          # every entry not yet built
    python benchmarks/zoo_builds.py sasrec.ce-toys gru4rec.ce-ml-1m --resume
    python benchmarks/zoo_builds.py sasrec.ce-ml-1m --output zoo_builds_ml1m --resume   # beside a running grid

The cards hold the metrics each build measured; benchmarks/results/<output>.json adds each build's wall time.
"""

from __future__ import annotations

import argparse
import json
import sys

from _common import RESULTS, use_shared_data
from _grid import run_grid

from lightning_seqrec import zoo as model_zoo

COLUMNS = ("hr@10", "ndcg@10")


def build_rows(names: list[str]) -> list[dict]:
    """One grid row per entry: its recipe's overrides, and its recipe's seed mapped to the entry (so the grid runs
    it as `seqrec zoo build NAME`)."""
    rows = []
    for name in names:
        overrides = model_zoo.entry(name).overrides()
        seed = int(model_zoo.train_config(overrides).seed)
        rows.append({"entry": name, "overrides": overrides, "seeds": [seed], "zoo": {seed: name}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo entries to build (default: every entry not yet built)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each build (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="builds at once (e.g. --jobs 2 --threads 1 on 2 cores)")
    parser.add_argument("--resume", action="store_true", help="keep finished builds and continue interrupted ones")
    parser.add_argument("--override", action="append", default=[], help="extra override, e.g. trainer=gpu")
    parser.add_argument(
        "--output", default="zoo_builds", help="results name (a second grid running at once needs its own)"
    )
    args = parser.parse_args()
    use_shared_data()
    names = args.names or [e.name for e in model_zoo.list_entries() if not e.built]
    path = RESULTS / f"{args.output}.json"
    # builds of entries not named here stay in the results file, each with the command that ran it
    previous = json.loads(path.read_text()) if path.exists() else {"results": []}
    kept = tuple({"command": previous["command"], **r} for r in previous["results"] if r["entry"] not in names)
    run_grid(
        build_rows(names),
        [],
        args.output,
        {"args": vars(args), "command": " ".join(sys.argv)},
        lambda r: r["entry"],
        COLUMNS,
        common=tuple(args.override),
        jobs=args.jobs,
        threads=args.threads,
        resume=args.resume,
        kept=kept,
    )
    for entry in model_zoo.list_entries():
        print(f"{entry.name}: {entry.status}", *(f"{k} {v:.4f}" for k, v in entry.metrics.items()))


if __name__ == "__main__":
    main()
