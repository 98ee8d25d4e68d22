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


def train_run(
    overrides: list[str], seed: int, folder: Path, threads: int | None = None, zoo: str | None = None
) -> dict:
    """One `seqrec train` run in `folder`; its test metrics (without the `test/` prefix) and wall time.

    With `zoo`, the run is `seqrec zoo build <zoo> <overrides>`, which also writes that entry's Hub folder: the
    caller passes it only when the entry's recipe is this run's experiment with this `seed`. A folder that holds
    an interrupted run's `checkpoints/last.ckpt` continues it from there (`ckpt_path=`, which restores the
    epoch, optimiser, early stopping and best checkpoint); its wall time then adds each earlier sitting up to
    its last checkpoint, the work after that being redone."""
    last = folder / "checkpoints" / "last.ckpt"
    sittings_file = folder / "sittings.json"
    sittings = json.loads(sittings_file.read_text()) if last.exists() and sittings_file.exists() else []
    if sittings:  # the interrupted sitting counts up to its last checkpoint
        sittings[-1]["seconds"] = max(0.0, last.stat().st_mtime - sittings[-1]["started"])
    task = ["zoo", "build", zoo] if zoo else ["train", f"seed={seed}"]
    resume = [f"ckpt_path={last}"] if last.exists() else []
    args = [*task, *overrides, *resume, "trainer.enable_progress_bar=false", "logger=none", f"hydra.run.dir={folder}"]
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


def cell_folder(workdir: Path, overrides: list[str], seed: int) -> Path:
    """The run folder of one cell, named by its row's overrides and seed so it is found again on resume."""
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
    """Run every row of `table` (dicts with an `overrides` list, optionally `seeds` of its own and `zoo`: {seed:
    zoo entry whose recipe is the row's overrides with that seed}) for every seed; `common` overrides are added to
    each run but are not part of a row's identity; `kept` rows (other grids' results) are written along unchanged.
    Each row gains `runs` (one result per finished seed); benchmarks/results/<output>.json is rewritten after every
    run. Run folders live under outputs/grid/<output>/ (under `$SEQREC_GRID_DIR/<output>/` when set, e.g. a folder
    outside a checkout that may be laid anew); with `resume`, the runs already in the results file are kept and an
    interrupted run continues from its last checkpoint, so a grid longer than one sitting loses at most an epoch per
    run in flight."""
    done: dict[tuple[str, int], dict] = {}
    path = RESULTS / f"{output}.json"
    if resume and path.exists():
        for row in json.loads(path.read_text())["results"]:
            for r in row.get("runs", []):
                done[(json.dumps(row["overrides"]), r["seed"])] = r
    workdir = Path(os.environ.get("SEQREC_GRID_DIR") or REPO / "outputs" / "grid") / output
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
        zoo = row.get("zoo", {}).get(seed)  # this seed is a zoo entry's recipe: build the entry with it
        overrides = list(common) if zoo else [*row["overrides"], *common]
        result = {"seed": seed, **train_run(overrides, seed, folder, threads, zoo)}
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


def zoo_builds() -> dict[str, dict[int, str]]:
    """{experiment: {seed: zoo entry}} for the zoo entries whose recipe is exactly `experiment=<e> seed=<seed>`:
    that cell runs as `seqrec zoo build`, so the same run also builds and cards the entry."""
    builds: dict[str, dict[int, str]] = {}
    for zoo_entry in model_zoo.list_entries():
        recipe = zoo_entry.overrides()
        seeds = [o.removeprefix("seed=") for o in recipe if o.startswith("seed=")]
        if len(recipe) == 2 and recipe[0].startswith("experiment=") and len(seeds) == 1 and seeds[0].isdigit():
            builds.setdefault(recipe[0].removeprefix("experiment="), {})[int(seeds[0])] = zoo_entry.name
    return builds


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
    of the results file that are not run now (other datasets') are kept. Returns the kept rows, then these."""
    path = RESULTS / f"{output}.json"
    saved = json.loads(path.read_text())["results"] if path.exists() else []
    table, builds = [], zoo_builds()
    for dataset in datasets:
        for name, overrides in rows(dataset):
            if names and name not in names:
                continue
            reason = composes(overrides)
            if reason:
                print(f"skipping {dataset} / {name}: {reason}", flush=True)
                continue
            experiment = overrides[0].removeprefix("experiment=") if len(overrides) == 1 else None
            table.append({"dataset": dataset, "model": name, "overrides": overrides, "zoo": builds.get(experiment, {})})
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
    return [*kept, *table]
