"""Side-by-side with RecBole 1.2.1: SASRec with matched settings on the same data and machine, in one run.

    python benchmarks/compare_recbole.py --datasets ml-100k beauty

Settings on both sides: 64 dims, 2 blocks, 2 heads, FFN 256, dropout 0.5, max length 50, full-softmax CE, Adam(W)
lr 1e-3, early stopping on validation NDCG@10 with patience 10, RecBole's leave-one-out full-ranking evaluation
without seen-item filtering. Both read the same interactions: ours are written to a RecBole atomic file whose
timestamp column is each row's rank in our chronological order, so both sides split identically. What differs
is each library's own way of training: RecBole makes every prefix of a user's history a sample (batch 2048,
loss at the last position); ours cuts histories into max-length windows and predicts every next item of a
window (batch 128 windows; `--window-stride N` overlaps them so every target has at least 50 - N items of
history), or, with `--prefix-windows --window-stride 1`, makes every prefix a sample as RecBole does (`--batch-size`
of them per batch): on short histories (Beauty) one window per user trains a clearly worse model (best validation
NDCG@10 0.0445 against 0.05 with prefixes); `--return-freed-memory` trades our step time for resident memory as the
`ReturnFreedMemory` callback does. Each side runs in a fresh process that reports its own peak memory
(VmHWM).

RecBole needs its own virtual environment (as of now it needs setuptools<81, numpy<2, pandas<2.3 and, for
scipy's removed `.A`, scipy<1.14 on Python 3.11); create it next to the repository with

    python -m venv ../recbole-venv
    ../recbole-venv/bin/pip install torch==2.13.0
    ../recbole-venv/bin/pip install recbole==1.2.1 "setuptools<81" "numpy<2" "pandas<2.3" "scipy<1.14"

RecBole's run of a dataset can take longer than one sitting on a small machine: it is saved after every epoch
under `--state-dir` (benchmarks/results/recbole_state/<data>/), and running the same command again resumes it;
its wall time is summed over the sittings and every validation records the machine's load average.

Prints the table and writes benchmarks/results/compare_recbole.json (after each dataset).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import REPO, RESULTS, peak_rss_mb, use_shared_data, write_json

MATCHED = dict(embedding_dim=64, max_len=50, num_blocks=2, num_heads=2, ffn_dim=256, dropout=0.5)


ATOMIC_COLUMNS = {"user_id": "user_id:token", "item_id": "item_id:token", "timestamp": "timestamp:float"}


def write_atomic_file(dataset: str, folder: Path, max_users: int | None = None) -> tuple[Path, dict]:
    """Our interactions of `dataset` (the first `max_users` users, for a quick check) as a RecBole atomic file
    `<folder>/seqrec_<dataset>/seqrec_<dataset>.inter`, which both sides then read. The timestamp is the row's
    rank in our (user, time, file order) sort, so RecBole's time ordering reproduces ours exactly, ties included."""
    from lightning_seqrec.data import SeqRecDataModule

    dm = SeqRecDataModule(dataset, max_len=MATCHED["max_len"])
    data = dm.filtered(dm.read()).sorted().frame
    if max_users:
        data = data[data["user_id"].isin(data["user_id"].unique()[:max_users])]
    # not RecBole's own name (it would load its bundled example copy); a subset has a name of its own
    name = "seqrec_" + dataset.replace("-", "_") + (f"_first{max_users}" if max_users else "")
    path = folder / name / f"{name}.inter"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = data[["user_id", "item_id"]].assign(timestamp=np.arange(len(data)))
    table.rename(columns=ATOMIC_COLUMNS).to_csv(path, sep="\t", index=False)
    return path, {
        "interactions": len(data),
        "users": int(data["user_id"].nunique()),
        "items": int(data["item_id"].nunique()),
    }


def run_ours(inter_path: str, seed: int, patience: int, max_epochs: int, args) -> dict:
    """Our SASRec with the matched settings; validation NDCG@10 after every epoch with the wall time since fit
    started, the test metrics of the best checkpoint and this process's peak memory."""
    import lightning as L
    from _fit import fit_and_test

    from lightning_seqrec import SASRec
    from lightning_seqrec.data import SeqRecDataModule, read_table
    from lightning_seqrec.memory import fix_mmap_threshold

    L.seed_everything(seed, workers=True)
    start = time.perf_counter()
    data = read_table(inter_path, columns=ATOMIC_COLUMNS, sep="\t")
    dm = SeqRecDataModule(
        data,
        max_len=MATCHED["max_len"],
        window_stride=args.window_stride,
        prefix_windows=args.prefix_windows,
        batch_size=args.batch_size,
        eval_batch_size=512,
        seed=seed,
    )
    dm.setup()
    prepare_seconds = time.perf_counter() - start
    module = SASRec(dm.num_items, **MATCHED, lr=1e-3, mask_seen=False, seed=seed)
    if args.return_freed_memory:  # what the ReturnFreedMemory callback does when fit starts
        fix_mmap_threshold()
    fit = fit_and_test(module, dm, max_epochs, patience, label="ours ")
    return {
        "library": "lightning-seqrec",
        "prepare_seconds": prepare_seconds,
        "fit_seconds": fit.fit_seconds,
        "epoch_seconds": fit.trace.epoch_seconds,
        "validations": fit.trace.validations,
        "best_valid_ndcg@10": fit.best_val_ndcg,
        "test": {"hr@10": fit.test["test/hr@10"], "ndcg@10": fit.test["test/ndcg@10"]},
        "peak_rss_mb": peak_rss_mb(),
        "train_sequences": len(dm.train_tensors["item_seq"]),
    }


def seconds_to_reach(validations: list[dict], target: float) -> float | None:
    """Wall time since fit start of the first validation at or above `target` (None: never reached)."""
    return next((v["seconds"] for v in validations if v["ndcg@10"] >= target), None)


def child(command: list[str], out: Path, env: dict) -> dict:
    """Run one side in a fresh process (in the output's folder: RecBole writes log folders into its cwd)."""
    result = subprocess.run(command, env=env, text=True, capture_output=True, cwd=out.parent)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    return json.loads(out.read_text())


def compare(dataset: str, args, tmp: Path) -> dict:
    env = {**os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})}
    inter_path, stats = write_atomic_file(dataset, tmp, args.max_users)
    recbole_out = tmp / f"{dataset}-recbole.json"
    recbole = child(
        [
            args.recbole_python,
            str(REPO / "benchmarks" / "recbole_side.py"),
            f"--data-path={tmp}",
            f"--dataset={inter_path.stem}",
            f"--out={recbole_out}",
            f"--epochs={args.max_epochs}",
            f"--stopping-step={args.patience}",
            f"--seed={args.seed}",
            f"--state={Path(args.state_dir).absolute() / inter_path.stem}",
        ],
        recbole_out,
        env,
    )
    target = recbole["best_valid_ndcg@10"]
    recbole_best = max(recbole["validations"], key=lambda v: v["ndcg@10"])

    def run_seed(seed: int) -> dict:
        ours_out = tmp / f"{dataset}-ours-{seed}.json"
        result = child(
            [
                sys.executable,
                __file__,
                f"--ours={inter_path}",
                f"--out={ours_out}",
                f"--seed={seed}",
                f"--patience={args.patience}",
                f"--max-epochs={args.max_epochs}",
                f"--batch-size={args.batch_size}",
                *([f"--window-stride={args.window_stride}"] if args.window_stride else []),
                *(["--prefix-windows"] if args.prefix_windows else []),
                *(["--return-freed-memory"] if args.return_freed_memory else []),
            ],
            ours_out,
            env,
        )
        print(f"{dataset} ours seed {seed}: test ndcg@10 {result['test']['ndcg@10']:.4f}", flush=True)
        return with_summary({"seed": seed, **result}, seconds_to_reach(result["validations"], target))

    with ThreadPoolExecutor(args.jobs) as pool:  # each seed is its own process
        ours = list(pool.map(run_seed, args.our_seeds or [args.seed]))
    return {
        "dataset": dataset,
        "data": stats,
        "recbole_best_valid_ndcg@10": target,
        "recbole": with_summary(recbole, recbole_best["seconds"]),
        "ours": ours[0],
        **({"ours_seeds": ours} if len(ours) > 1 else {}),
    }


def with_summary(result: dict, seconds_to_target: float | None) -> dict:
    """One side's result with its mean epoch time and its time to RecBole's best validation NDCG@10."""
    seconds_per_epoch = sum(result["epoch_seconds"]) / len(result["epoch_seconds"])
    return {**result, "seconds_per_epoch": seconds_per_epoch, "seconds_to_recbole_best_valid": seconds_to_target}


def at_last_sitting_speed(recbole: dict) -> dict | None:
    """RecBole's epoch time and time to its best validation as if every sitting had run at the speed of its last
    one, which shares the machine with our side (a run resumed on another machine mixes speeds): the time of each
    epoch, validation included, is scaled by the ratio of the sittings' median training-epoch times. None for a
    run of one sitting."""
    epoch_seconds, validations = recbole["epoch_seconds"], recbole["validations"]
    starts = sorted({s["first_epoch"] for s in recbole["segments"] if s["first_epoch"] < len(epoch_seconds)})
    if len(starts) < 2:
        return None
    ends = [*starts[1:], len(epoch_seconds)]
    medians = [statistics.median(epoch_seconds[a:b]) for a, b in zip(starts, ends, strict=True)]
    scale = [medians[-1] / medians[bisect.bisect_right(starts, e) - 1] for e in range(len(epoch_seconds))]
    best = max(range(len(validations)), key=lambda e: validations[e]["ndcg@10"])  # the first to reach it
    previous = [0.0, *(v["seconds"] for v in validations)]
    return {
        "sittings": len(starts),
        "last_sitting_epochs": ends[-1] - starts[-1],
        "seconds_per_epoch": statistics.fmean(epoch_seconds[starts[-1] :]),
        "seconds_to_best_valid": sum((previous[e + 1] - previous[e]) * scale[e] for e in range(best + 1)),
    }


def print_table(rows: list[dict]) -> None:
    """RecBole's run, each of our seeds, and (several seeds) their mean ± sd; the ratios use our seeds' means."""
    from _grid import summary

    print("\n| dataset | library | s/epoch | s to RecBole's best valid NDCG@10 | peak MB | test HR@10 | test NDCG@10 |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        ours = row.get("ours_seeds", [row["ours"]])
        sides = [("recbole", [row["recbole"]])]
        sides += [(f"ours, seed {r['seed']}" if "seed" in r else "ours", [r]) for r in ours]
        if len(ours) > 1:
            sides.append((f"ours, mean ± sd of {len(ours)} seeds", ours))
        for side, runs in sides:
            reached = [r["seconds_to_recbole_best_valid"] for r in runs if r["seconds_to_recbole_best_valid"]]
            reach = summary(reached, 0) if reached else "not reached"
            if reached and len(reached) < len(runs):
                reach += f" ({len(reached)} of {len(runs)} reached)"
            print(
                f"| {row['dataset']} | {side} | {summary([r['seconds_per_epoch'] for r in runs], 1)} | {reach} | "
                f"{summary([r['peak_rss_mb'] for r in runs], 0)} | {summary([r['test']['hr@10'] for r in runs])} | "
                f"{summary([r['test']['ndcg@10'] for r in runs])} |"
            )
        recbole = row["recbole"]
        recbole_seconds = recbole["seconds_to_recbole_best_valid"]
        rescaled = at_last_sitting_speed(recbole)
        if rescaled:  # the time ours is compared with: RecBole at the speed of the sitting ours ran in
            recbole_seconds = rescaled["seconds_to_best_valid"]
            print(
                f"| {row['dataset']} | recbole at its last sitting's speed ({rescaled['sittings']} sittings, the last "
                f"{rescaled['last_sitting_epochs']} epochs) | {rescaled['seconds_per_epoch']:.1f} | "
                f"{recbole_seconds:.0f} | | | |"
            )
        reached = [r["seconds_to_recbole_best_valid"] for r in ours if r["seconds_to_recbole_best_valid"]]
        if len(reached) == len(ours):
            speedup = recbole_seconds / statistics.fmean(reached)
            memory = recbole["peak_rss_mb"] / statistics.fmean(r["peak_rss_mb"] for r in ours)
            print(f"| {row['dataset']} | ours vs RecBole | | {speedup:.1f}x faster | {memory:.1f}x less | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "beauty"])
    parser.add_argument("--recbole-python", default=str(REPO.parent / "recbole-venv" / "bin" / "python"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--our-seeds", type=int, nargs="+", default=None, help="our side once per seed (default: --seed only)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="our seeds run this many at once (after RecBole's side)")
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of both sides")
    parser.add_argument(
        "--window-stride", type=int, default=None, help="our side: a training window every N items (data.window_stride)"
    )
    parser.add_argument(
        "--prefix-windows",
        action="store_true",
        help="our side: windows every --window-stride items back to each sequence's start (data.prefix_windows; "
        "with --window-stride 1 every prefix is a sample, as in RecBole)",
    )
    parser.add_argument("--batch-size", type=int, default=128, help="our side: training windows per batch")
    parser.add_argument(
        "--return-freed-memory",
        action="store_true",
        help="our side: glibc's mmap threshold fixed, as the ReturnFreedMemory callback does (less RSS, slower steps)",
    )
    parser.add_argument("--output", default="compare_recbole")
    parser.add_argument(
        "--state-dir",
        default=str(REPO / "benchmarks" / "results" / "recbole_state"),
        help="RecBole's run of each dataset is saved here after every epoch; the same command resumes it",
    )
    parser.add_argument("--max-users", type=int, default=None, help="only the first N users (a quick check)")
    parser.add_argument("--ours", help=argparse.SUPPRESS)  # internal: run our side on this atomic file
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--report", action="store_true", help="print the table of the results file and stop")
    args = parser.parse_args()
    if args.report:
        print_table(json.loads((RESULTS / f"{args.output}.json").read_text())["results"])
        return
    use_shared_data()
    if args.ours:
        ours = run_ours(args.ours, args.seed, args.patience, args.max_epochs, args)
        Path(args.out).write_text(json.dumps(ours))
        return
    if not Path(args.recbole_python).exists():
        raise SystemExit(f"No RecBole environment at {args.recbole_python}; create it as this script's docstring says.")
    rows, path = [], RESULTS / f"{args.output}.json"
    # rows of datasets this command does not measure are kept, each with the command that measured it
    kept = json.loads(path.read_text())["results"] if path.exists() else []
    kept = [r for r in kept if r["dataset"] not in args.datasets]
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            rows.append({**compare(dataset, args, Path(tmp)), "command": " ".join(sys.argv)})
            write_json(args.output, {"results": kept + rows})
    print_table(kept + rows)


if __name__ == "__main__":
    main()
