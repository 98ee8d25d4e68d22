"""Karlis et al. (IKEA Retail) Table 1 grid: NDCG@10, Gini of exposure (GC) and catalog coverage per loss and
negative sampler, for the paper's LSTM over frozen Word2Vec vectors and for SASRec with the same samplers.

    python benchmarks/ikea_table1.py --datasets retailrocket beauty --seeds 0 1 2

Every row is one `seqrec train` run of a packaged experiment (`experiment=ikea_*`), so the table measures
exactly what users run. RetailRocket (`data=retailrocket_cart`): views predict the add-to-cart item; the
shared sample is tiny, so its row checks the loader and pipeline, not quality. Beauty (`data=beauty_last`):
one stream, the evaluated user's last item is the label, seen items masked. Both: first chronological half
trains Word2Vec, the rest is split by user. Metrics are full-ranking over the catalog on the test users.
Writes benchmarks/results/ikea_table1.json (after every run, so an interrupted grid keeps what it has).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import RESULTS, use_shared_data, write_json

# Table 1 rows: (name, loss, sampler, size, overrides). LSTM rows run the packaged experiments as they are.
LSTM_ROWS = [
    ("lstm", "cosine", "NA", "NA", ["experiment=ikea_cosine"]),
    ("lstm", "weighted", "in-batch", 100, ["experiment=ikea_weighted_inbatch100"]),
    ("lstm", "weighted", "in-batch", 5, ["experiment=ikea_weighted_inbatch5"]),
    ("lstm", "weighted", "top-k", 5, ["experiment=ikea_weighted_topk5"]),
    ("lstm", "cross-entropy", "in-batch", 100, ["experiment=ikea_ce_inbatch100"]),
    ("lstm", "cross-entropy", "in-batch", 5, ["experiment=ikea_ce_inbatch5"]),
    ("lstm", "cross-entropy", "top-k", 5, ["experiment=ikea_ce_topk5"]),
]
# The same pipeline with the Word2Vec table trained along (initialised from Word2Vec, not frozen).
TRAINED = "lstm, w2v trained"
LSTM_TRAINED_ROWS = [
    (TRAINED, "weighted", "in-batch", 100, ["experiment=ikea_weighted_inbatch100", "model.freeze_embeddings=false"]),
    (TRAINED, "cross-entropy", "in-batch", 100, ["experiment=ikea_ce_inbatch100", "model.freeze_embeddings=false"]),
    (TRAINED, "cross-entropy", "top-k", 5, ["experiment=ikea_ce_topk5", "model.freeze_embeddings=false"]),
]
# SASRec learns its own item table (no Word2Vec, nothing frozen) and ranks by cosine like the LSTM rows. The
# cosine loss alone has no negatives, so a trainable table collapses under it; full CE is the usual baseline.
SASREC = ["model=sasrec", "embeddings=none", "model.freeze_embeddings=false", "model.scoring=cosine"]
SASREC_ROWS = [
    (
        "sasrec",
        "full CE (dot)",
        "all items",
        "all",
        ["experiment=ikea_cosine", *SASREC, "objective=ce", "model.scoring=dot"],
    ),
    ("sasrec", "weighted", "in-batch", 100, ["experiment=ikea_weighted_inbatch100", *SASREC]),
    ("sasrec", "cross-entropy", "in-batch", 100, ["experiment=ikea_ce_inbatch100", *SASREC]),
    ("sasrec", "cross-entropy", "top-k", 5, ["experiment=ikea_ce_topk5", *SASREC]),
]
DATA = {
    "retailrocket": ["data=retailrocket_cart", "model.mask_seen=false"],
    "beauty": ["data=beauty_last", "model.mask_seen=true"],
}
COLUMNS = ("ndcg@10", "gini@10", "coverage@10", "hr@10")


def run(overrides: list[str], seed: int, max_epochs: int, folder: Path, threads: int | None = None) -> dict:
    """One `seqrec train` run; returns its test metrics and wall time."""
    args = [
        *overrides,
        f"seed={seed}",
        f"trainer.max_epochs={max_epochs}",
        "trainer.enable_progress_bar=false",
        "logger=none",
        f"hydra.run.dir={folder}",
    ]
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    command = [sys.executable, "-m", "lightning_seqrec.cli", "train", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"seqrec train {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((folder / "test_metrics.json").read_text())
    return {
        "seconds": round(time.perf_counter() - start, 1),
        **{k.removeprefix("test/"): v for k, v in metrics.items()},
    }


def summary(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{mean:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["retailrocket", "beauty"], choices=sorted(DATA))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=30)
    models = ["lstm", TRAINED, "sasrec"]
    parser.add_argument("--models", nargs="+", default=models, choices=models)
    parser.add_argument("--output", default="ikea_table1", help="results file name under benchmarks/results/")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each run (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (e.g. --jobs 2 --threads 1 on 2 cores)")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in the results file")
    args = parser.parse_args()
    use_shared_data()
    rows = [r for r in LSTM_ROWS + LSTM_TRAINED_ROWS + SASREC_ROWS if r[0] in args.models]
    table = [
        {"dataset": d, "model": m, "loss": loss, "sampler": sampler, "size": size, "overrides": o + DATA[d]}
        for d in args.datasets
        for m, loss, sampler, size, o in rows
    ]
    done = {}
    path = RESULTS / f"{args.output}.json"
    if args.resume and path.exists():
        for row in json.loads(path.read_text())["results"]:
            for r in row["runs"]:
                done[(json.dumps(row["overrides"]), r["seed"])] = r
    lock = threading.Lock()

    def task(row: dict, seed: int, folder: Path) -> None:
        key = (json.dumps(row["overrides"]), seed)
        result = done.get(key) or {"seed": seed, **run(row["overrides"], seed, args.max_epochs, folder, args.threads)}
        with lock:
            done[key] = result
            print(
                f"{row['dataset']} {row['model']} {row['loss']} {row['sampler']} {row['size']} seed {seed}: "
                + ", ".join(f"{c} {result[c]:.4f}" for c in COLUMNS)
                + f" ({result['seconds']} s)",
                flush=True,
            )
            for entry in table:
                runs = [done.get((json.dumps(entry["overrides"]), s)) for s in args.seeds]
                entry["runs"] = [r for r in runs if r is not None]
            payload = {"args": vars(args), "command": " ".join(sys.argv), "results": table}
            write_json(args.output, payload)  # after every run, so an interrupted grid keeps what it has

    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(task, row, seed, Path(tmp) / f"{i}-{seed}")
            for i, row in enumerate(table)
            for seed in args.seeds
        ]
        for future in futures:
            future.result()
    print("\nTest metrics, mean ± sd over seeds " + ", ".join(map(str, args.seeds)))
    print(f"| dataset | model | loss | sampling | size | {' | '.join(COLUMNS)} |")
    print("|---" * (5 + len(COLUMNS)) + "|")
    for r in table:
        cells = [summary([run_[c] for run_ in r["runs"]]) for c in COLUMNS]
        print(f"| {r['dataset']} | {r['model']} | {r['loss']} | {r['sampler']} | {r['size']} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
