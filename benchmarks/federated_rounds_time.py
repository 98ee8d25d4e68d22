"""Per-round wall time of the same federation (the 7 XMRec markets, FedAvg, CE, 1 local epoch per round) in three
engines: Flower's simulation engine (Ray, `federation.engine=simulation`), the in-process LocalGrid
(`federation.engine=local`), and `FederatedRounds` (one process per market on torch.distributed, gloo).
tests/test_federated_rounds.py checks that FederatedRounds ends with the Flower federation's weights; this measures
what each costs. A round is training only (from sending the global model to averaging the replies).

    python benchmarks/federated_rounds_time.py                   # 2 rounds; writes results/federated_rounds_time.json
    python benchmarks/federated_rounds_time.py --rounds 3 --engines local rounds
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

import torch  # noqa: E402
from _common import machine, use_shared_data, write_json  # noqa: E402

from lightning_seqrec import run  # noqa: E402
from lightning_seqrec.federated.markets import catalogs  # noqa: E402
from lightning_seqrec.federated.rounds import fit_market  # noqa: E402
from lightning_seqrec.federated.runner import resolved, run_federated  # noqa: E402
from lightning_seqrec.federated.shared import shared_items  # noqa: E402

ENGINES = ("simulation", "local", "rounds")


def config(engine: str, rounds: int, folder: Path):
    overrides = [
        f"federation.engine={'local' if engine == 'rounds' else engine}",
        f"federation.num_rounds={rounds}",
        "federation.local_epochs=1",
        "trainer.enable_progress_bar=false",
        f"hydra.run.dir={folder}",
    ]
    return run.compose("federated", overrides)


def flower_rounds(engine: str, rounds: int, folder: Path) -> list[float]:
    cfg = config(engine, rounds, folder)
    with run.hydra_runtime(cfg):
        summary = run_federated(cfg)
    return [summary["round_seconds"][str(r)] for r in range(1, rounds + 1)]


def _market_process(rank: int, cfg: dict, items: list, port: int, folder: str) -> None:
    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    torch.set_num_threads(1)
    _, strategy = fit_market(cfg, items, rank, port)
    Path(folder, f"rounds{rank}.json").write_text(json.dumps(strategy.round_seconds))


def federated_rounds(rounds: int, folder: Path) -> list[float]:
    """Each round's wall time as the slowest market saw it (all processes wait for each other to average)."""
    cfg = config("rounds", rounds, folder)
    with run.hydra_runtime(cfg):
        plain = resolved(cfg)
    items = shared_items(catalogs(plain["data"]))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    markets = len(plain["data"]["markets"])
    torch.multiprocessing.start_processes(
        _market_process, args=(plain, items, port, str(folder)), nprocs=markets, start_method="spawn"
    )
    per_market = [json.loads(Path(folder, f"rounds{rank}.json").read_text()) for rank in range(markets)]
    return [max(times[r] for times in per_market) for r in range(rounds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    args = parser.parse_args()
    use_shared_data()
    results = {"command": "python benchmarks/federated_rounds_time.py", "machine": machine(), "engines": {}}
    for engine in args.engines:
        folder = Path(tempfile.mkdtemp(prefix=f"rounds-{engine}-"))
        started = time.perf_counter()
        seconds = (
            federated_rounds(args.rounds, folder) if engine == "rounds" else flower_rounds(engine, args.rounds, folder)
        )
        row = {"round_seconds": seconds, "mean_round_s": statistics.mean(seconds)}
        results["engines"][engine] = row | {"wall_s": time.perf_counter() - started}
        rounds = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"{engine:<11} rounds {rounds} s; whole run {results['engines'][engine]['wall_s']:.0f} s", flush=True)
    write_json("federated_rounds_time", results)


if __name__ == "__main__":
    main()
