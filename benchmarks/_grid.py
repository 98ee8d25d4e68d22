"""Grids of `seqrec train` runs (packaged experiments x seeds): run them N at a time, resume an interrupted
grid from its results file, and summarise each row as mean ± sd over seeds.

Every cell is one `seqrec train` subprocess, so a grid measures exactly the configs users run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import REPO, RESULTS, write_json

from lightning_seqrec import run
from lightning_seqrec import zoo as model_zoo
from lightning_seqrec.errors import SeqRecError


def train_run(overrides: list[str], seed: int, folder: Path, threads: int | None = None) -> dict:
    """One `seqrec train` run in `folder`; its test metrics (without the `test/` prefix) and wall time.

    A folder that holds an interrupted run's `checkpoints/last.ckpt` continues it from there (`ckpt_path=`, which
    restores the epoch, optimiser, early stopping and best checkpoint); its wall time then adds each earlier sitting
    up to its last checkpoint, the work after that being redone."""
    last = folder / "checkpoints" / "last.ckpt"
    sittings_file = folder / "sittings.json"
    sittings = json.loads(sittings_file.read_text()) if last.exists() and sittings_file.exists() else []
    if sittings:  # the interrupted sitting counts up to its last checkpoint
        sittings[-1]["seconds"] = max(0.0, last.stat().st_mtime - sittings[-1]["started"])
    resume = [f"ckpt_path={last}"] if last.exists() else []
    quiet = ["trainer.enable_progress_bar=false", "logger=none", f"hydra.run.dir={folder}"]
    args = ["train", f"seed={seed}", *overrides, *resume, *quiet]
    folder.mkdir(parents=True, exist_ok=True)
    sittings_file.write_text(json.dumps([*sittings, {"started": time.time()}]))
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    result = subprocess.run(
        [sys.executable, "-m", "lightning_seqrec.cli", *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"seqrec {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((folder / "test_metrics.json").read_text())
    seconds = time.perf_counter() - start + sum(s["seconds"] for s in sittings)
    to_best = seconds_to_best(folder, [*sittings, {"started": time.time() - (time.perf_counter() - start)}])
    return {
        "seconds": round(seconds, 1),
        **({"seconds_to_best": round(to_best, 1)} if to_best is not None else {}),
        **({"sittings": len(sittings) + 1} if sittings else {}),
        **{k.removeprefix("test/"): v for k, v in metrics.items()},
    }


def seconds_to_best(folder: Path, sittings: list[dict]) -> float | None:
    """Training seconds until the best checkpoint (`checkpoints/epochNNN.ckpt`, written at the end of the best
    validation epoch) was saved: the earlier sittings' seconds plus the time into the sitting that wrote it."""
    best = list((folder / "checkpoints").glob("epoch*.ckpt"))
    if len(best) != 1:
        return None
    written, before = best[0].stat().st_mtime, 0.0
    for sitting in sittings:
        if sitting is sittings[-1] or written <= sitting["started"] + sitting["seconds"]:
            return before + max(0.0, written - sitting["started"])
        before += sitting["seconds"]
    return None


def grid_dir(output: str) -> Path:
    """Where a grid's run folders live: `$SEQREC_GRID_DIR/<output>/` when set (e.g. a folder outside a checkout that
    may be laid anew), else outputs/grid/<output>/."""
    return Path(os.environ.get("SEQREC_GRID_DIR") or REPO / "outputs" / "grid") / output


def cell_folder(workdir: Path, overrides: list[str], seed: int | str) -> Path:
    """The run folder of one cell, named by its row's overrides and seed so it is found again on resume (seed
    "{seed}" gives the pattern `seqrec zoo build ... hydra.run.dir=` takes)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(overrides))[:100]  # `=` would break hydra.run.dir=
    return workdir / f"{name}-seed{seed}"


def summary(values: list[float], digits: int = 4) -> str:
    """`mean ± sd` (sample sd) of a row's seeds; the mean alone for one seed."""
    mean = statistics.fmean(values)
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def run_grid(
    table: list[dict],
    seeds: list[int],
    output: str,
    payload: dict,
    describe: Callable[[dict], str],
    columns: tuple[str, ...],
    common: tuple[str, ...] = (),
    jobs: int = 1,
    threads: int | None = None,
    resume: bool = False,
    kept: tuple[dict, ...] = (),
) -> list[dict]:
    """Run every row of `table` (dicts with an `overrides` list, optionally `seeds` of its own) for every seed;
    `common` overrides are added to each run but are not part of a row's identity; `kept` rows (other grids' results)
    are written along unchanged. Each row gains `runs` (one result per finished seed); benchmarks/results/<output>.json
    is rewritten after every run. Run folders live in `grid_dir(output)`; with `resume`, the runs already in the
    results file are kept and an interrupted run continues from its last checkpoint, so a grid longer than one
    sitting loses at most an epoch per run in flight."""
    done: dict[tuple[str, int], dict] = {}
    path = RESULTS / f"{output}.json"
    if resume and path.exists():
        for row in json.loads(path.read_text())["results"]:
            for r in row.get("runs", []):
                done[(json.dumps(row["overrides"]), r["seed"])] = r
    workdir = grid_dir(output)
    lock = threading.Lock()

    def collect() -> None:
        for entry in table:
            runs = (done.get((json.dumps(entry["overrides"]), s)) for s in entry.get("seeds", seeds))
            entry["runs"] = [r for r in runs if r is not None]

    def task(row: dict, seed: int) -> None:
        key = (json.dumps(row["overrides"]), seed)
        if key in done:
            return
        folder = cell_folder(workdir, row["overrides"], seed)
        if not resume:
            shutil.rmtree(folder, ignore_errors=True)
        result = {"seed": seed, **train_run([*row["overrides"], *common], seed, folder, threads)}
        with lock:
            done[key] = result
            cells = ", ".join(f"{c} {result[c]:.4f}" for c in columns)
            print(f"{describe(row)} seed {seed}: {cells} ({result['seconds']} s)", flush=True)
            collect()
            write_json(output, {**payload, "results": [*kept, *table]})

    # seed by seed (rows in order within a seed), so a grid cut short has every row's first seeds
    cells = sorted(((row, seed) for row in table for seed in row.get("seeds", seeds)), key=lambda cell: cell[1])
    with ThreadPoolExecutor(jobs) as pool:
        futures = [pool.submit(task, row, seed) for row, seed in cells]
        for future in futures:
            future.result()
    collect()  # rows whose runs were all kept
    return table


def build_zoo_entries(table: list[dict], output: str, common: tuple[str, ...] = ()) -> None:
    """Card the zoo entries whose recipe is a row of `table` (the same overrides) and whose seeds all ran: each is
    `seqrec zoo build NAME` over the grid's run folders, which reuses the finished runs (nothing is trained again).
    Not with `common` overrides, which would card a changed recipe."""
    rows = {json.dumps(row["overrides"]): row for row in table}
    for zoo_entry in model_zoo.list_entries():
        row = rows.get(json.dumps(zoo_entry.overrides()))
        seeds = zoo_entry.seeds()
        if row is None or not seeds or not set(seeds) <= {r["seed"] for r in row.get("runs", [])}:
            continue
        if common:
            print(f"{zoo_entry.name} not rebuilt: the grid ran with --override {' '.join(common)}", flush=True)
            continue
        pattern = cell_folder(grid_dir(output), row["overrides"], "{seed}")
        try:
            built = model_zoo.build(zoo_entry.name, extra_overrides=[f"hydra.run.dir={pattern}"])
        except SeqRecError as err:
            print(f"{zoo_entry.name} not rebuilt: {str(err).splitlines()[0]}", flush=True)
            continue
        cells = ", ".join(f"{k} {built.metrics[f'test/{k}']:.4f}" for k in ("hr@10", "ndcg@10"))
        print(f"{zoo_entry.name} rebuilt from seeds {seeds}: {cells} (mean), weights of seed {built.shipped.seed}")


def grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every grid of packaged experiments: seeds, threads and jobs, resume, report, extra overrides."""
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each run (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (e.g. --jobs 2 --threads 1 on 2 cores)")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in the results file")
    parser.add_argument("--report", action="store_true", help="print the table of the results file and stop")
    parser.add_argument("--override", action="append", default=[], help="extra override for every run")


def composes(overrides: list[str]) -> str | None:
    """None when `seqrec train` composes these overrides here, else the reason it does not."""
    try:
        run.compose("train", overrides)
    except SeqRecError as err:
        return str(err).splitlines()[0]
    return None


def run_rows(
    output: str,
    rows: Callable[[str], list[tuple[str, list[str]]]],
    datasets: list[str],
    names: list[str] | None,
    args: argparse.Namespace,
    columns: tuple[str, ...],
    payload: dict | None = None,
) -> list[dict]:
    """Run the rows `(name, overrides)` of `rows(dataset)` for each of `datasets` (only `names`, when given) with
    the options of `grid_arguments`; a row whose config does not compose is skipped with its reason, and the rows
    of the results file that are not run now (other datasets') are kept; then the zoo entries whose recipes are rows
    are carded from the runs (`build_zoo_entries`). Returns the kept rows, then these."""
    path = RESULTS / f"{output}.json"
    saved = json.loads(path.read_text())["results"] if path.exists() else []
    table = []
    for dataset in datasets:
        for name, overrides in rows(dataset):
            if names and name not in names:
                continue
            reason = composes(overrides)
            if reason:
                print(f"skipping {dataset} / {name}: {reason}", flush=True)
                continue
            table.append({"dataset": dataset, "model": name, "overrides": overrides})
    chosen = {json.dumps(r["overrides"]) for r in table}
    kept = tuple(r for r in saved if json.dumps(r["overrides"]) not in chosen)
    run_grid(
        table,
        args.seeds,
        output,
        {"args": vars(args), "command": " ".join(sys.argv), **(payload or {})},
        lambda r: f"{r['dataset']} {r['model']}",
        columns,
        common=tuple(args.override),
        jobs=args.jobs,
        threads=args.threads,
        resume=args.resume,
        kept=kept,
    )
    build_zoo_entries(table, output, tuple(args.override))
    return [*kept, *table]
