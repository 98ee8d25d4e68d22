"""Grids of `seqrec train` runs (packaged experiments x seeds): run them N at a time, resume an interrupted
grid from its results file, and summarise each row as mean ± sd over seeds.

Every cell is one `seqrec train` subprocess, so a grid measures exactly the configs users run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import RESULTS, write_json


def train_run(
    overrides: list[str], seed: int, folder: Path, threads: int | None = None, zoo: str | None = None
) -> dict:
    """One `seqrec train` run in `folder`; its test metrics (without the `test/` prefix) and wall time.

    With `zoo`, the run is `seqrec zoo build <zoo> <overrides>`, which also writes that entry's Hub folder: the
    caller passes it only when the entry's recipe is this run's experiment with this `seed`."""
    task = ["zoo", "build", zoo] if zoo else ["train", f"seed={seed}"]
    args = [*task, *overrides, "trainer.enable_progress_bar=false", "logger=none", f"hydra.run.dir={folder}"]
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    result = subprocess.run(
        [sys.executable, "-m", "lightning_seqrec.cli", *args], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        raise SystemExit(f"seqrec {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((folder / "test_metrics.json").read_text())
    return {
        "seconds": round(time.perf_counter() - start, 1),
        **{k.removeprefix("test/"): v for k, v in metrics.items()},
    }


def summary(values: list[float]) -> str:
    """`mean ± sd` (sample sd) of a row's seeds; the mean alone for one seed."""
    mean = statistics.fmean(values)
    return f"{mean:.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{mean:.4f}"


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
) -> list[dict]:
    """Run every row of `table` (dicts with an `overrides` list, optionally `zoo`: {seed: zoo entry whose recipe
    is the row's overrides with that seed}) for every seed; `common` overrides are added to each run but are not
    part of a row's identity. Each row gains `runs` (one result per finished seed);
    benchmarks/results/<output>.json is rewritten after every run, so an interrupted grid keeps what it has
    and `resume` skips the runs already there."""
    done: dict[tuple[str, int], dict] = {}
    path = RESULTS / f"{output}.json"
    if resume and path.exists():
        for row in json.loads(path.read_text())["results"]:
            for r in row.get("runs", []):
                done[(json.dumps(row["overrides"]), r["seed"])] = r
    lock = threading.Lock()

    def task(row: dict, seed: int, folder: Path) -> None:
        key = (json.dumps(row["overrides"]), seed)
        zoo = row.get("zoo", {}).get(seed)  # this seed is a zoo entry's recipe: build the entry with it
        overrides = list(common) if zoo else [*row["overrides"], *common]
        result = done.get(key) or {"seed": seed, **train_run(overrides, seed, folder, threads, zoo)}
        with lock:
            done[key] = result
            cells = ", ".join(f"{c} {result[c]:.4f}" for c in columns)
            print(f"{describe(row)} seed {seed}: {cells} ({result['seconds']} s)", flush=True)
            for entry in table:
                runs = [done.get((json.dumps(entry["overrides"]), s)) for s in seeds]
                entry["runs"] = [r for r in runs if r is not None]
            write_json(output, {**payload, "results": table})

    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(jobs) as pool:
        futures = [
            pool.submit(task, row, seed, Path(tmp) / f"{i}-{seed}") for i, row in enumerate(table) for seed in seeds
        ]
        for future in futures:
            future.result()
    return table
