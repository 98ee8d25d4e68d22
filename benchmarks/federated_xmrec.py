"""FeCoSR on the 7 XMRec Electronics markets: one table per market of test NDCG@10 / HR@10 (full ranking over the
market's catalog, seen items masked, per-user leave-one-out by date), mean ± sd over seeds, for

- local: each market alone (`seqrec train data=xmrec +data.markets=[m]`, early stopping on validation NDCG@10);
- transfer: pre-trained on the largest market (ca, its local model), fine-tuned on the target (`seqrec finetune`);
- pooled: one model on all markets' logs (the non-private reference), tested per market through `adapt_to_data`;
- fedavg_ce / fedavg_s2ce: the Flower federation (FedAvg, CE or S²CE), the last round's model of each market;
- fecosr: fedavg_s2ce, then local fine-tuning of a market adapter with the encoder frozen (`seqrec finetune`).

    python benchmarks/federated_xmrec.py --seeds 0 1 2            # resumable: finished cells are kept
    python benchmarks/federated_xmrec.py --report                  # reprint the table

Every finished cell is written to benchmarks/results/federated_xmrec.json at once, so an interrupted run continues
with the next cell. The federation runs its ServerApp / ClientApp on the in-process LocalGrid (the apps
`seqrec federated` runs in Flower's simulation engine; tests/test_federated_rounds.py ties them to FederatedRounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from _common import RESULTS, machine, use_shared_data, write_json
from hydra.utils import instantiate

from lightning_seqrec import adapt_to_data, hub, run
from lightning_seqrec.data import XMRec
from lightning_seqrec.federated import server
from lightning_seqrec.federated.adapter import with_adapter
from lightning_seqrec.federated.runner import market_model, resolved, run_federated

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

MARKETS = ("ca", "de", "fr", "in", "jp", "mx", "uk")
SOURCE = "ca"  # the largest market (4,668 users)
METHODS = ("local", "transfer", "pooled", "fedavg_ce", "fedavg_s2ce", "fecosr")
METRICS = ("test/ndcg@10", "test/hr@10")
OUT = RESULTS / "federated_xmrec.json"
WORK = Path(os.environ.get("SEQREC_GRID_DIR") or RESULTS.parent.parent / "outputs" / "grid") / "federated_xmrec"


def common(seed: int, folder: str) -> list[str]:
    return [
        f"seed={seed}",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={WORK / f'seed{seed}' / folder}",
    ]


def trained(task: str, overrides: list[str]) -> run.RunResult:
    cfg = run.compose(task, ["logger=none", *overrides])
    with run.hydra_runtime(cfg):
        return getattr(run, task)(cfg)


def picked(metrics: dict) -> dict:
    return {key: float(metrics[key]) for key in METRICS}


def local(seed: int, args) -> dict:
    return {
        m: picked(trained("train", [f"+data.markets=[{m}]", *args.train, *common(seed, f"local/{m}")]).metrics)
        for m in MARKETS
    }


def transfer(seed: int, args) -> dict:
    source = trained("train", [f"+data.markets=[{SOURCE}]", *args.train, *common(seed, f"local/{SOURCE}")])
    cells = {SOURCE: picked(source.metrics)}
    for market in MARKETS:
        if market != SOURCE:
            overrides = [f"zoo={source.best_checkpoint}", "data=xmrec", f"+data.markets=[{market}]", *args.finetune]
            cells[market] = picked(trained("finetune", [*overrides, *common(seed, f"transfer/{market}")]).metrics)
    return cells


def pooled(seed: int, args) -> dict:
    result = trained("train", [*args.train, *common(seed, "pooled")])
    cfg, cells = run.compose("train", common(seed, "pooled")), {}
    with run.hydra_runtime(cfg):  # the trainer config reads the run folder from Hydra
        for market in MARKETS:
            datamodule = XMRec(markets=[market], seed=seed)
            datamodule.setup("fit")
            module = adapt_to_data(result.module, datamodule)  # every market item is in the pooled catalog: all kept
            tester = instantiate(cfg.trainer, logger=False)
            cells[market] = picked(tester.test(module, datamodule=datamodule, verbose=False)[0])
    return cells


def federation(seed: int, args, objective: str) -> tuple[dict, dict]:
    overrides = ["federation.engine=local", f"objective={objective}", *args.federation]
    cfg = run.compose("federated", [*overrides, *common(seed, f"fedavg_{objective}")])
    with run.hydra_runtime(cfg):
        summary = run_federated(cfg)
    last = summary["metrics"][str(max(int(r) for r in summary["metrics"]))]
    return {m: picked(last[m]) for m in MARKETS}, {"round_seconds": summary["round_seconds"]}


def fecosr(seed: int, args) -> dict:
    """Adapters fine-tuned on this seed's S²CE federation, which runs again first when its run folder is gone
    (a new machine, or a cell measured in an earlier sitting)."""
    plain = federation_config(seed, args)
    if not Path(plain["output_dir"], server.GLOBAL_FILE).is_file():
        federation(seed, args, "s2ce")
    cells = {}
    for market in MARKETS:
        module, _ = market_model(plain, market)
        folder = hub.save_pretrained(with_adapter(module, args.bottleneck), WORK / f"seed{seed}" / "adapted" / market)
        overrides = [
            f"zoo=local-dir:{folder}",
            "data=xmrec",
            f"+data.markets=[{market}]",
            *args.finetune,
            "callbacks.freeze_backbone._target_=lightning_seqrec.federated.adapter.FreezeEncoder",
            f"freeze_backbone_epochs={args.frozen_epochs}",
        ]
        cells[market] = picked(trained("finetune", [*overrides, *common(seed, f"fecosr/{market}")]).metrics)
    return cells


def run_cell(results: dict, key: str, compute) -> None:
    if key in results["cells"]:
        return
    started = time.time()
    value = compute()
    cells, extra = value if isinstance(value, tuple) else (value, {})
    results["cells"][key] = {
        "markets": cells,
        "seconds": time.time() - started,
        **extra,
    }
    write_json("federated_xmrec", results)
    print(f"{key}: {time.time() - started:.0f} s", flush=True)


def report(results: dict) -> None:
    seeds = sorted({int(k.split(":")[0]) for k in results["cells"]})
    for market in MARKETS:
        print(f"\n{market} (seeds {seeds})   NDCG@10            HR@10")
        for method in METHODS:
            values = [
                results["cells"][f"{s}:{method}"]["markets"][market]
                for s in seeds
                if f"{s}:{method}" in results["cells"]
            ]
            if not values:
                continue
            text = []
            for metric in METRICS:
                xs = [v[metric] for v in values]
                sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
                text.append(f"{statistics.mean(xs):.4f} ± {sd:.4f} (n={len(xs)})")
            print(f"  {method:<12} " + "   ".join(text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--bottleneck", type=int, default=16)
    parser.add_argument("--frozen-epochs", type=int, default=1000, help="encoder frozen this many fine-tuning epochs")
    # The budget every cell of the table shares (a run refuses to add cells of another budget to the results file):
    # as many epochs for every method, 20, with early stopping on validation (patience 3) where a model trains
    # alone, and 20 federated rounds of 1 local epoch.
    parser.add_argument(
        "--train", nargs="*", default=["data=xmrec", "trainer.max_epochs=20", "callbacks.early_stopping.patience=3"]
    )
    parser.add_argument(
        "--finetune", nargs="*", default=["trainer.max_epochs=20", "callbacks.early_stopping.patience=3"]
    )
    parser.add_argument("--federation", nargs="*", default=["federation.num_rounds=20", "federation.local_epochs=1"])
    args = parser.parse_args()
    use_shared_data()
    results = json.loads(OUT.read_text()) if OUT.is_file() else {"cells": {}}
    budget = {key: getattr(args, key) for key in ("train", "finetune", "federation", "bottleneck", "frozen_epochs")}
    if not args.report and results["cells"] and results.get("budget") != budget:
        sys.exit(
            f"{OUT} holds cells of another budget ({results.get('budget')}); pass the same --train / --finetune / "
            "--federation / --bottleneck / --frozen-epochs, or move the file away to start a new table."
        )
    results |= {"command": " ".join([sys.executable, *sys.argv]), "machine": machine(), "budget": budget}
    cells = {
        "local": local,
        "transfer": transfer,
        "pooled": pooled,
        "fedavg_ce": lambda seed, args: federation(seed, args, "ce"),
        "fedavg_s2ce": lambda seed, args: federation(seed, args, "s2ce"),
        "fecosr": fecosr,
    }
    for seed in [] if args.report else args.seeds:
        for method in args.methods:
            run_cell(results, f"{seed}:{method}", lambda m=method, s=seed: cells[m](s, args))
    report(results)


def federation_config(seed: int, args) -> dict:
    """The resolved config of this seed's S²CE federation, whose clients' local checkpoints are on disk."""
    cfg = run.compose(
        "federated", ["federation.engine=local", "objective=s2ce", *args.federation, *common(seed, "fedavg_s2ce")]
    )
    with run.hydra_runtime(cfg):
        return resolved(cfg)


if __name__ == "__main__":
    main()
