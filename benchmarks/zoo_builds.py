"""Build zoo entries as a resumable grid: each seed of each entry's recipe is one `seqrec train` run (N at a time; an
interrupted run continues from its last checkpoint), then `seqrec zoo build NAME` cards the entry from those runs
(reused, not trained again): the best-validated seed's weights, the seeds' mean ± sd.

    python benchmarks/zoo_builds.py --jobs 2 --threads 1 --resume          # every entry not yet built
    python benchmarks/zoo_builds.py sasrec.ce-toys gru4rec.ce-ml-1m --resume
    python benchmarks/zoo_builds.py sasrec.ce-ml-1m --output zoo_builds_ml1m --resume   # beside a running grid

The cards hold the metrics the runs measured; benchmarks/results/<output>.json adds each run's wall time.
"""

from __future__ import annotations

import argparse
import json
import sys

from _common import RESULTS, use_shared_data
from _grid import cell_folder, grid_dir, run_grid

from lightning_seqrec import zoo as model_zoo

COLUMNS = ("hr@10", "ndcg@10")


def build_rows(names: list[str]) -> list[dict]:
    """One grid row per entry: its recipe's overrides and seeds (the config's seed for a recipe without `seeds:`)."""
    rows = []
    for name in names:
        model = model_zoo.entry(name)
        seeds = model.seeds() or [int(model_zoo.train_config(model.overrides()).seed)]
        rows.append({"entry": name, "overrides": model.overrides(), "seeds": seeds})
    return rows


def card(row: dict, output: str, overrides: list[str]) -> None:
    """`seqrec zoo build` of a row's entry over the grid's run folders once its seeds have all run: the runs are
    reused, the Hub folder and card written."""
    if not set(row["seeds"]) <= {r["seed"] for r in row["runs"]}:
        print(f"{row['entry']}: not carded, seeds {row['seeds']} have not all run", flush=True)
        return
    pattern = cell_folder(grid_dir(output), row["overrides"], "{seed}")
    built = model_zoo.build(row["entry"], extra_overrides=[f"hydra.run.dir={pattern}", *overrides])
    print(f"{row['entry']}: carded from {len(built.runs)} seeds into {built.folder}", flush=True)


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
    table = run_grid(
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
    for row in table:
        card(row, args.output, args.override)
    for entry in model_zoo.list_entries():
        spread = f" (± sd over {entry.num_seeds} seeds)" if entry.num_seeds > 1 else ""
        print(f"{entry.name}: {entry.status}{spread}", *(f"{k} {v:.4f}" for k, v in entry.metrics.items()))


if __name__ == "__main__":
    main()
