"""Quality on the S3-Rec protocol: leave-one-out, full ranking over the catalog, seen items masked.

    python benchmarks/quality_s3rec.py --dataset beauty --models sasrec gru4rec

Trains each model with early stopping on validation NDCG@10, tests the best checkpoint, prints a table
and writes benchmarks/results/quality_<dataset>.json.
"""

from __future__ import annotations

import argparse
import sys

import lightning as L
from _common import use_shared_data, write_json
from _fit import fit_and_test

from lightning_seqrec import GRU4Rec, SASRec
from lightning_seqrec.data import AmazonBeauty, AmazonSports, AmazonToys, MovieLens1M, Yelp

DATASETS = {
    "beauty": AmazonBeauty,
    "sports": AmazonSports,
    "toys": AmazonToys,
    "yelp": Yelp,
    "ml-1m": MovieLens1M,
}
MODELS = {
    "sasrec": lambda n, a: SASRec(
        n,
        embedding_dim=64,
        max_len=a.max_len,
        num_blocks=2,
        num_heads=2,
        dropout=a.dropout,
        lr=a.lr,
        seed=a.seed,
    ),
    "gru4rec": lambda n, a: GRU4Rec(
        n, embedding_dim=64, max_len=a.max_len, hidden_dim=64, dropout=a.dropout, lr=a.lr, seed=a.seed
    ),
}


def run(model_name: str, args) -> dict:
    L.seed_everything(args.seed, workers=True)
    dm = DATASETS[args.dataset](max_len=args.max_len, batch_size=args.batch_size, eval_batch_size=512)
    dm.setup()
    module = MODELS[model_name](dm.num_items, args)
    fit = fit_and_test(module, dm, args.max_epochs, args.patience)
    seconds = fit.trace.epoch_seconds
    return {
        "model": model_name,
        "epochs": fit.epochs,
        "best_val_ndcg@10": fit.best_val_ndcg,
        "fit_seconds": round(fit.fit_seconds, 1),
        "seconds_per_epoch": round(sum(seconds) / len(seconds), 2),
        "test": {k.removeprefix("test/"): round(v, 5) for k, v in fit.test.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty", choices=sorted(DATASETS))
    parser.add_argument("--models", nargs="+", default=["sasrec", "gru4rec"], choices=sorted(MODELS))
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    use_shared_data()
    rows = []
    for name in args.models:  # results are written after each model, so an interrupted run keeps what it has
        rows.append(run(name, args))
        payload = {"args": vars(args), "command": " ".join(sys.argv), "results": rows}
        path = write_json(f"quality_{args.dataset}", payload)
    print(f"\n{args.dataset}: leave-one-out, full ranking, seen items masked, max_len {args.max_len}, 64 dims")
    header = ("model", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR@10", "cov@10", "gini@10", "epochs", "s/epoch")
    print("".join(f"{h:>9}" for h in header))
    for r in rows:
        t = r["test"]
        values = [t["hr@5"], t["hr@10"], t["ndcg@5"], t["ndcg@10"], t["mrr@10"], t["coverage@10"], t["gini@10"]]
        print(
            f"{r['model']:>9}"
            + "".join(f"{v:>9.4f}" for v in values)
            + f"{r['epochs']:>9}{r['seconds_per_epoch']:>9.1f}"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
