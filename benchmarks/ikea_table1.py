"""Karlis et al. (IKEA Retail) Table 1 grid: NDCG@10, Gini of exposure (GC) and catalog coverage per loss and
negative sampler, for the paper's LSTM over frozen Word2Vec vectors and for SASRec with the same samplers.

    python benchmarks/ikea_table1.py --datasets retailrocket beauty --seeds 0 1 2

Every row is one `seqrec train` run of a packaged experiment (`experiment=ikea_*`), so the table measures
exactly what users run. RetailRocket (`data=retailrocket_cart`): views predict the add-to-cart item, from the
full `events.csv` when it is found by name ($SEQREC_DATA_DIR or the cache), else from the shared 1,500-visitor
sample, which is tiny: its row then checks the loader and pipeline, not quality. Beauty (`data=beauty_last`):
one stream, the evaluated user's last item is the label, seen items masked. Both: first chronological half
trains Word2Vec, the rest is split by user. Metrics are full-ranking over the catalog on the test users.
Writes benchmarks/results/ikea_table1.json (after every run, so an interrupted grid keeps what it has).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from _common import use_shared_data
from _grid import run_grid, summary

from lightning_seqrec.data import find_dataset

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
SAMPLE = "events_sample_1500visitors.csv.gz"
COLUMNS = ("ndcg@10", "gini@10", "coverage@10", "hr@10")


def retailrocket_source(data_dir: Path) -> list[str]:
    """No override when the full events.csv is found by name (as `seqrec train` finds it); else `data.path` of the
    shared sample."""
    if find_dataset("retailrocket") is not None:
        return []
    sample = data_dir / "retailrocket" / SAMPLE
    print(f"No full RetailRocket events.csv found: the RetailRocket rows run on {sample}, a pipeline check only.")
    return [f"data.path={sample}"]


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
    data = {**DATA, "retailrocket": DATA["retailrocket"] + retailrocket_source(use_shared_data())}
    rows = [r for r in LSTM_ROWS + LSTM_TRAINED_ROWS + SASREC_ROWS if r[0] in args.models]
    table = [
        {"dataset": d, "model": m, "loss": loss, "sampler": sampler, "size": size, "overrides": o + data[d]}
        for d in args.datasets
        for m, loss, sampler, size, o in rows
    ]
    payload = {"args": vars(args), "command": " ".join(sys.argv)}
    run_grid(
        table,
        args.seeds,
        args.output,
        payload,
        lambda r: f"{r['dataset']} {r['model']} {r['loss']} {r['sampler']} {r['size']}",
        COLUMNS,
        common=(f"trainer.max_epochs={args.max_epochs}",),
        jobs=args.jobs,
        threads=args.threads,
        resume=args.resume,
    )
    print("\nTest metrics, mean ± sd over seeds " + ", ".join(map(str, args.seeds)))
    print(f"| dataset | model | loss | sampling | size | {' | '.join(COLUMNS)} |")
    print("|---" * (5 + len(COLUMNS)) + "|")
    for r in table:
        cells = [summary([run_[c] for run_ in r["runs"]]) for c in COLUMNS]
        print(f"| {r['dataset']} | {r['model']} | {r['loss']} | {r['sampler']} | {r['size']} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
