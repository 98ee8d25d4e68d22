"""Fine-tuning vs training from scratch on the same small budget: ML-1M -> ml-latest-small.

    python benchmarks/finetune_transfer.py --source-epochs 15 --target-epochs 3 --seeds 0 1 2

MovieLens releases share movie IDs, so a SASRec trained on ML-1M (`ml-1m.txt`, original IDs) carries its
embeddings to ml-latest-small (5-core) for every movie both catalogs hold; the newer movies are new items.
The source is trained once; then, per seed, the same number of epochs on ml-latest-small either fine-tunes
it (`adapt_to_data`, lr 3e-4, backbone frozen for the first epoch: the `seqrec finetune` defaults) or trains
from scratch (lr 1e-3, the `seqrec train` default, and lr 3e-4 so the learning rate is not what differs).
Test metrics are leave-one-out, full ranking, seen items masked. Writes benchmarks/results/finetune_transfer.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import lightning as L
from _common import use_shared_data, write_json

from lightning_seqrec import SASRec
from lightning_seqrec.data import MovieLens1M, MovieLensLatestSmall
from lightning_seqrec.finetune import FreezeBackbone, adapt_to_data

COLUMNS = ("hr@10", "ndcg@10", "coverage@10")


def trainer(epochs: int, callbacks=()) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        callbacks=list(callbacks),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )


def test_metrics(module, datamodule) -> dict:
    metrics = trainer(1).test(module, datamodule, verbose=False)[0]
    return {k.removeprefix("test/"): round(v, 5) for k, v in metrics.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-epochs", type=int, default=15)
    parser.add_argument("--target-epochs", type=int, default=3)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    use_shared_data()

    L.seed_everything(42)
    source_data = MovieLens1M(max_len=50)
    source_data.setup()
    source = SASRec(source_data.num_items, max_len=50, dropout=0.2, seed=42)
    start = time.perf_counter()
    trainer(args.source_epochs).fit(source, source_data)
    source_seconds = time.perf_counter() - start
    source_test = test_metrics(source, source_data)
    print(f"source ML-1M, {args.source_epochs} epochs ({source_seconds:.0f} s): {source_test}", flush=True)

    target = MovieLensLatestSmall()
    target.setup()
    runs = {"finetune (lr 3e-4, frozen 1 epoch)": [], "scratch (lr 1e-3)": [], "scratch (lr 3e-4)": []}
    shared = None
    for seed in args.seeds:
        L.seed_everything(seed)
        tuned = adapt_to_data(source, target, seed=seed)
        shared = tuned.hparams["finetune"]
        trainer(args.target_epochs, [FreezeBackbone(1)]).fit(tuned, target)
        runs["finetune (lr 3e-4, frozen 1 epoch)"].append(test_metrics(tuned, target))
        for lr, name in ((1e-3, "scratch (lr 1e-3)"), (3e-4, "scratch (lr 3e-4)")):
            L.seed_everything(seed)
            scratch = SASRec(target.num_items, max_len=50, dropout=0.2, lr=lr, seed=seed)
            trainer(args.target_epochs).fit(scratch, target)
            runs[name].append(test_metrics(scratch, target))
        print(f"seed {seed}: " + "; ".join(f"{n} ndcg@10 {r[-1]['ndcg@10']:.4f}" for n, r in runs.items()), flush=True)

    payload = {
        "args": vars(args),
        "command": " ".join(sys.argv),
        "source": {"epochs": args.source_epochs, "seconds": round(source_seconds, 1), "test": source_test},
        "transfer": shared,
        "runs": runs,
    }
    path = write_json("finetune_transfer", payload)
    print(f"\nml-latest-small after {args.target_epochs} epochs; {shared}; mean ± sd over seeds {args.seeds}")
    print(f"| run | {' | '.join(COLUMNS)} |\n|---|" + "---|" * len(COLUMNS))
    for name, results in runs.items():
        cells = []
        for column in COLUMNS:
            values = [r[column] for r in results]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.4f} ± {sd:.4f}")
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
