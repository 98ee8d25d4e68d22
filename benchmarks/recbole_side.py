"""RecBole's half of compare_recbole.py; runs inside RecBole's own virtual environment, never imports ours.

    <recbole-venv>/bin/python benchmarks/recbole_side.py --data-path DIR --dataset NAME --out result.json

Trains RecBole 1.2.1's SASRec on the atomic file DIR/NAME/NAME.inter with full CE and leave-one-out full-ranking
evaluation (no seen-item filtering, RecBole's protocol), and writes per-epoch training time, every validation
NDCG@10 with the wall time since training started, the test metrics of the best epoch and the peak memory.
With `--state DIR` the run is saved after every epoch and the same command resumes it (`RunState`). The epoch
loop is RecBole's `Trainer.fit` (train epoch, validation, its `early_stopping` rule) written out so it can be saved.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not in /proc/self/status (Linux only)")


class RunState:
    """The run so far, saved after every epoch so a run longer than one sitting continues where it stopped:
    weights, optimiser and best weights in `state.pt` (plain tensors, loaded with `weights_only=True`), the
    trace in `trace.json`. Wall time counts training and validation only, summed over the sittings
    (`segments`); peak memory is the largest of theirs. A resumed run continues from the saved weights and
    optimiser, but its data order differs from an uninterrupted run's."""

    def __init__(self, folder: Path | None, prepare_seconds: float, settings: dict):
        self.folder = folder
        self.best: dict = {}
        self.trace = {
            "next_epoch": 0,
            "best_score": -float("inf"),
            "cur_step": 0,
            "elapsed": 0.0,
            "epoch_seconds": [],
            "validations": [],
            "segments": [],
            "peak_rss_mb": 0.0,
            "prepare_seconds": [],
            "done": False,
            "settings": settings,
        }
        if folder is not None and (folder / "trace.json").exists():
            self.trace = json.loads((folder / "trace.json").read_text())
            if self.trace["settings"] != settings:
                raise SystemExit(
                    f"{folder} holds a run with other settings ({self.trace['settings']}, now {settings}); "
                    "resume with the same arguments or delete the folder."
                )
        self.trace["prepare_seconds"].append(prepare_seconds)
        threads = os.environ.get("OMP_NUM_THREADS")
        self.trace["segments"].append({"first_epoch": self.trace["next_epoch"], "threads": threads})
        self.elapsed_before = self.trace["elapsed"]

    def describe(self) -> str:
        if self.trace["next_epoch"] == 0:
            return "new run" + (f", saved in {self.folder}" if self.folder else "")
        return f"resuming at epoch {self.trace['next_epoch']} from {self.folder} (best {self.trace['best_score']:.4f})"

    def restore(self, model, trainer) -> None:
        if self.trace["next_epoch"] == 0:
            return
        import torch

        saved = torch.load(self.folder / "state.pt", weights_only=True)
        if saved["next_epoch"] != self.trace["next_epoch"]:
            raise SystemExit(
                f"{self.folder}: state.pt is of epoch {saved['next_epoch']} but trace.json of epoch "
                f"{self.trace['next_epoch']} (a save was interrupted); delete the folder to start the run again."
            )
        model.load_state_dict(saved["model"])
        trainer.optimizer.load_state_dict(saved["optimizer"])
        self.best = saved["best"]

    def end_epoch(self, epoch: int, train_seconds: float, score: float, best: float, cur_step: int, in_segment: float):
        trace = self.trace
        trace["elapsed"] = self.elapsed_before + in_segment
        trace["epoch_seconds"].append(train_seconds)
        load = os.getloadavg()[0]  # shows how busy the machine was while this epoch ran
        trace["validations"].append({"epoch": epoch, "seconds": trace["elapsed"], "ndcg@10": score, "load_1min": load})
        trace.update(next_epoch=epoch + 1, best_score=float(best), cur_step=cur_step)
        trace["peak_rss_mb"] = max(trace["peak_rss_mb"], peak_rss_mb())

    def save(self, model, trainer, done: bool) -> None:
        self.trace["done"] = done
        if self.folder is None:
            return
        import torch

        self.folder.mkdir(parents=True, exist_ok=True)
        state = {
            "model": model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "best": self.best,
            "next_epoch": self.trace["next_epoch"],
        }
        torch.save(state, self.folder / "state.pt.tmp")
        (self.folder / "trace.json.tmp").write_text(json.dumps(self.trace, indent=1))
        # replaced one after the other: `restore` refuses a pair left from an interrupted save
        (self.folder / "state.pt.tmp").replace(self.folder / "state.pt")
        (self.folder / "trace.json.tmp").replace(self.folder / "trace.json")


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
    parser.add_argument("--state", default=None, help="folder to save the run in after every epoch and resume from")
    args = parser.parse_args()

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import early_stopping, init_seed

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
    settings = {k: v for k, v in vars(args).items() if k not in ("data_path", "out", "state", "epochs")}
    state = RunState(Path(args.state) if args.state else None, prepare_seconds, settings)
    state.restore(model, trainer)
    print(f"recbole: {state.describe()}", flush=True)
    segment_start = time.perf_counter()
    for epoch in range(state.trace["next_epoch"], 0 if state.trace["done"] else args.epochs):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch, show_progress=False)
        train_seconds = time.perf_counter() - start
        score, _ = trainer._valid_epoch(valid_data, show_progress=False)
        # RecBole's own rule (Trainer.fit): a tie replaces the best; stop after `stopping_step` epochs without one
        best, cur_step, stop, improved = early_stopping(
            score, state.trace["best_score"], state.trace["cur_step"], max_step=args.stopping_step, bigger=True
        )
        if improved:
            state.best = {k: v.detach().clone() for k, v in model.state_dict().items()}
        state.end_epoch(epoch, train_seconds, float(score), best, cur_step, time.perf_counter() - segment_start)
        state.save(model, trainer, done=stop)  # reaching --epochs is not done: a higher cap continues the run
        print(f"recbole epoch {epoch}: train {train_seconds:.1f}s, valid ndcg@10 {score:.4f}", flush=True)
        if stop:
            break
    model.load_state_dict(state.best)
    test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    trace = state.trace
    result = {
        "library": "recbole",
        "prepare_seconds": trace["prepare_seconds"][0],
        "fit_seconds": trace["elapsed"],
        "epoch_seconds": trace["epoch_seconds"],
        "validations": trace["validations"],
        "best_valid_ndcg@10": float(trace["best_score"]),
        "test": {"hr@10": float(test["hit@10"]), "ndcg@10": float(test["ndcg@10"])},
        "peak_rss_mb": max(trace["peak_rss_mb"], peak_rss_mb()),
        "segments": trace["segments"],
        "train_sequences": len(train_data.dataset),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
