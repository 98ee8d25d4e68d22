"""Scale on one machine: preparing generated logs the size of MovieLens-20M and of 100M interactions, and SASRec
training with sampled softmax over 100k- and 1M-item catalogs.

    python benchmarks/scale.py --logs 20m 100m --catalogs 100k 1m

Logs are generated chunk by chunk straight into a parquet file (Zipf item popularity, log-normal history
lengths of at least 5, increasing timestamps), so generation never holds the log in memory. Each measurement
runs in a fresh process reading that file, so peak memory (VmHWM) is the preparation's or the training's own:
read -> vocabulary -> chronological sort -> leave-one-out split -> padded tensors, exactly `SeqRecDataModule`.
Training: SASRec (64 dims, 2 blocks, max_len 50, batch 128) with `SampledSoftmax` (256 shared uniform
negatives), timed over optimiser steps after warm-up, once with a dense item table (AdamW updates every row) and
once with `sparse_item_grad=True` (`SparseAwareAdamW` updates only the rows a step touched). FAISS retrieval
over 1M items is measured by benchmarks/ann_retrieval.py. Writes benchmarks/results/scale.json, where each row
measured replaces the earlier row of the same log or catalog and update (`--logs 100m --catalogs` re-measures
one row and keeps the rest).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, peak_rss_mb, status_mb, write_json

# name: (users, items, interactions)
LOGS = {"20m": (138_493, 26_744, 20_000_263), "100m": (700_000, 150_000, 100_000_000)}
CATALOGS = {"100k": (100_000, 100_000, 5_000_000), "1m": (200_000, 1_000_000, 10_000_000)}


def generate_log(path: Path, users: int, items: int, interactions: int, seed: int = 0, chunk: int = 50_000) -> dict:
    """A synthetic log of about `interactions` rows written to parquet `chunk` users at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(10, items + 10) ** 0.9  # Zipf-like, item 0 the most popular
    cdf = np.cumsum(popularity / popularity.sum())
    mean = interactions / users
    lengths = np.maximum(rng.lognormal(np.log(mean) - 0.5, 1.0, users).round().astype(np.int64), 5)
    lengths = np.maximum((lengths * interactions / lengths.sum()).round().astype(np.int64), 5)
    schema = pa.schema([("user_id", pa.int32()), ("item_id", pa.int32()), ("timestamp", pa.int64())])
    start = time.perf_counter()
    with pq.ParquetWriter(path, schema) as writer:
        for first in range(0, users, chunk):
            n = lengths[first : first + chunk]
            user = np.repeat(np.arange(first, first + len(n), dtype=np.int32), n)
            item = np.minimum(np.searchsorted(cdf, rng.random(len(user))), items - 1).astype(np.int32)
            gaps = rng.exponential(3600.0, len(user)).astype(np.int64) + 1
            total, starts = np.cumsum(gaps), np.cumsum(n) - n
            within = total - np.repeat(total[starts] - gaps[starts], n)  # seconds since the user's first event
            base = np.repeat(rng.integers(1_000_000_000, 1_500_000_000, len(n)), n)
            writer.write_table(pa.table({"user_id": user, "item_id": item, "timestamp": base + within}, schema=schema))
    return {"rows": int(lengths.sum()), "generate_seconds": round(time.perf_counter() - start, 1)}


def prepare_child(path: str) -> dict:
    """Prepare the log as `SeqRecDataModule` does, in this (fresh) process."""
    from lightning_seqrec.data import SeqRecDataModule

    import_mb = status_mb("VmRSS")
    start = time.perf_counter()
    dm = SeqRecDataModule("table", path=path, max_len=50)
    dm.setup()
    return {
        "prepare_seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_rss_above_imports_mb": round(peak_rss_mb() - import_mb),
        "users": len(dm.sequences),
        "items": dm.num_items,
        "train_windows": len(dm.train_tensors["item_seq"]),
    }


def train_child(path: str, steps: int, sparse: bool) -> dict:
    """Sampled-softmax SASRec training throughput on the log, in this (fresh) process."""
    import torch
    from speed import train_throughput

    from lightning_seqrec import SASRec
    from lightning_seqrec.data import SeqRecDataModule
    from lightning_seqrec.objectives import SampledSoftmax

    torch.manual_seed(0)
    dm = SeqRecDataModule("table", path=path, max_len=50, batch_size=128)
    dm.setup()
    prepared_mb = status_mb("VmRSS")
    objectives = {"ss": SampledSoftmax(num_negatives=256)}
    module = SASRec(dm.num_items, dropout=0.2, objectives=objectives, sparse_item_grad=sparse)
    module.attach_data(dm)
    result = train_throughput(dm, module, steps)
    return {
        **result,
        "items": dm.num_items,
        "sparse_item_grad": sparse,
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_after_data_mb": round(prepared_mb),
        "threads": torch.get_num_threads(),
    }


def in_child(kind: str, path: Path, *options: str) -> dict:
    """Run `prepare_child` / `train_child` on `path` in a fresh process and return its JSON line."""
    args = ["--child", kind, str(path), *options]
    run = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"scale.py {' '.join(args)} failed:\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def previous_results() -> dict[str, list]:
    """The rows of benchmarks/results/scale.json, so a run that measures some rows keeps the others."""
    path = RESULTS / "scale.json"
    saved = json.loads(path.read_text())["results"] if path.exists() else {}
    return {"logs": saved.get("logs", []), "catalogs": saved.get("catalogs", [])}


def record(results: dict[str, list], section: str, row: dict, key: tuple[str, ...]) -> None:
    """Put `row` (with the command that measured it) in place of the section's row with the same `key` fields,
    print it and rewrite benchmarks/results/scale.json."""
    row = {**row, "command": " ".join(sys.argv)}
    rows = results[section]
    same = [i for i, r in enumerate(rows) if all(r.get(k) == row[k] for k in key)]
    if same:
        rows[same[0]] = row
    else:
        rows.append(row)
    print(json.dumps(row), flush=True)
    write_json("scale", {"results": results})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", nargs="*", default=list(LOGS), choices=list(LOGS))
    parser.add_argument("--catalogs", nargs="*", default=list(CATALOGS), choices=list(CATALOGS))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--workdir", default=None, help="where the generated parquet files go (default: a temp dir)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # (prepare|train|train-sparse, parquet path)
    args = parser.parse_args()
    if args.child:
        kind, path = args.child
        if kind == "prepare":
            print(json.dumps(prepare_child(path)))
        else:
            print(json.dumps(train_child(path, args.steps, sparse=kind == "train-sparse")))
        return
    results = previous_results()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for name in args.logs:
            users, items, rows = LOGS[name]
            path = Path(tmp) / f"log-{name}.parquet"
            generated = generate_log(path, users, items, rows)
            row = {
                "log": name,
                **generated,
                "parquet_mb": round(path.stat().st_size / 2**20),
                **in_child("prepare", path),
            }
            path.unlink()
            record(results, "logs", row, ("log",))
        for name in args.catalogs:
            users, items, rows = CATALOGS[name]
            path = Path(tmp) / f"catalog-{name}.parquet"
            generate_log(path, users, items, rows)
            for kind in ("train", "train-sparse"):  # dense AdamW over the whole table, then lazy sparse rows
                row = {"catalog": name, "interactions": rows, **in_child(kind, path, "--steps", str(args.steps))}
                record(results, "catalogs", row, ("catalog", "sparse_item_grad"))
            path.unlink()
    print("\n| log | rows | users | items | generate s | prepare s | peak RSS MB (above imports) |")
    print("|---|---|---|---|---|---|---|")
    for r in results["logs"]:
        print(
            f"| {r['log']} | {r['rows']:,} | {r['users']:,} | {r['items']:,} | {r['generate_seconds']} | "
            f"{r['prepare_seconds']} | {r['peak_rss_mb']:,} ({r['peak_rss_above_imports_mb']:,}) |"
        )
    print("\n| catalog | items | item-table update | positions / s | peak RSS MB | threads |")
    print("|---|---|---|---|---|---|")
    for r in results["catalogs"]:
        update = "sparse rows" if r["sparse_item_grad"] else "dense AdamW"
        print(
            f"| {r['catalog']} | {r['items']:,} | {update} | {r['positions_per_second']:,} | {r['peak_rss_mb']:,} "
            f"| {r['threads']} |"
        )


if __name__ == "__main__":
    main()
