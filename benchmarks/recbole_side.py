"""RecBole's half of compare_recbole.py; runs inside RecBole's own virtual environment, never imports ours.

    <recbole-venv>/bin/python benchmarks/recbole_side.py --data-path DIR --dataset NAME --out result.json

Trains RecBole 1.2.1's SASRec on the atomic file DIR/NAME/NAME.inter with full CE and leave-one-out full-ranking
evaluation (no seen-item filtering, RecBole's protocol), and writes per-epoch training time, every validation
NDCG@10 with the wall time since training started, the test metrics of the best epoch and the peak memory.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not in /proc/self/status (Linux only)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--stopping-step", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=2048, help="RecBole's default train_batch_size")
    parser.add_argument("--dropout", type=float, default=0.5, help="RecBole's default SASRec dropouts")
    args = parser.parse_args()

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    config = Config(
        model="SASRec",
        dataset=args.dataset,
        config_dict={
            "data_path": args.data_path,
            "USER_ID_FIELD": "user_id",
            "ITEM_ID_FIELD": "item_id",
            "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "MAX_ITEM_LIST_LENGTH": 50,
            "hidden_size": 64,
            "inner_size": 256,
            "n_layers": 2,
            "n_heads": 2,
            "hidden_dropout_prob": args.dropout,
            "attn_dropout_prob": args.dropout,
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
            "metrics": ["Hit", "NDCG"],
            "topk": [10],
            "valid_metric": "NDCG@10",
            "epochs": args.epochs,
            "stopping_step": args.stopping_step,
            "train_batch_size": args.batch_size,
            "learning_rate": 0.001,
            "seed": args.seed,
            "reproducibility": True,
            "use_gpu": False,
            "device": "cpu",
            "show_progress": False,
            "log_wandb": False,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    prepare_start = time.perf_counter()
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    prepare_seconds = time.perf_counter() - prepare_start
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)

    epoch_seconds: list[float] = []
    train_epoch = trainer._train_epoch

    def timed_train_epoch(*a, **k):
        start = time.perf_counter()
        loss = train_epoch(*a, **k)
        epoch_seconds.append(time.perf_counter() - start)
        return loss

    trainer._train_epoch = timed_train_epoch
    validations: list[dict] = []
    best_state: dict = {}
    fit_start = time.perf_counter()

    def record(epoch: int, score: float) -> None:
        validations.append({"epoch": epoch, "seconds": time.perf_counter() - fit_start, "ndcg@10": float(score)})
        if score >= max(v["ndcg@10"] for v in validations):  # as RecBole: a tie replaces the best
            best_state.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        print(f"recbole epoch {epoch}: train {epoch_seconds[-1]:.1f}s, valid ndcg@10 {score:.4f}", flush=True)

    # saved=False: the best weights are kept in memory, since reloading RecBole's pickled checkpoint fails
    # under torch's weights_only default.
    best_score, _ = trainer.fit(train_data, valid_data, saved=False, show_progress=False, callback_fn=record)
    fit_seconds = time.perf_counter() - fit_start
    model.load_state_dict(best_state)
    test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    result = {
        "library": "recbole",
        "prepare_seconds": prepare_seconds,
        "fit_seconds": fit_seconds,
        "epoch_seconds": epoch_seconds,
        "validations": validations,
        "best_valid_ndcg@10": float(best_score),
        "test": {"hr@10": float(test["hit@10"]), "ndcg@10": float(test["ndcg@10"])},
        "peak_rss_mb": peak_rss_mb(),
        "train_sequences": len(train_data.dataset),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
