"""The Flower `ServerApp`: builds the shared item index and the initial global model from the run config, runs the
configured strategy with `strategy.start(...)`, and writes the result (global arrays, per-market metrics, round
times) to the run folder. The same app runs in the simulation engine and under a SuperLink."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from flwr.app import ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp
from safetensors.numpy import save_file

from lightning_seqrec.federated.markets import build_module, catalogs, read_config
from lightning_seqrec.federated.records import from_record, to_record
from lightning_seqrec.federated.shared import BACKBONE_PREFIX, SHARED_ROWS, shared_items
from lightning_seqrec.federated.strategies import make_strategy

app = ServerApp()

RESULT_FILE = "federated_result.json"
GLOBAL_FILE = "global_model.safetensors"


def initial_arrays(cfg: dict, items: list[str]) -> dict[str, np.ndarray]:
    """The seeded global model's shared part: a backbone and one embedding row per shared item."""
    module = build_module(cfg, len(items))
    state = {BACKBONE_PREFIX + k: v.numpy().copy() for k, v in module.backbone.state_dict().items()}
    state[SHARED_ROWS] = module.item_embedding.weight.detach()[1:].numpy().copy()
    return state


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = read_config(context.run_config)
    federation, markets = cfg["federation"], cfg["data"]["markets"]
    items = shared_items(catalogs(cfg["data"]))
    strategy = make_strategy(federation, len(markets))
    # as JSON bytes, which Flower's logs show as <bytes> instead of thousands of item IDs every round
    config = ConfigRecord({"seqrec-config": json.dumps(cfg).encode(), "shared-items": json.dumps(items).encode()})
    result = strategy.start(
        grid=grid,
        initial_arrays=to_record(initial_arrays(cfg, items)),
        num_rounds=int(federation["num_rounds"]),
        timeout=float(federation["round_timeout"]),
        train_config=config,
        evaluate_config=ConfigRecord(dict(config)),
    )
    folder = Path(cfg["output_dir"])
    save_file(from_record(result.arrays), str(folder / GLOBAL_FILE))
    summary = {
        "markets": markets,
        "shared_items": len(items),
        "round_seconds": strategy.round_seconds,
        "metrics": {r: {markets[p]: m for p, m in sorted(per.items())} for r, per in strategy.market_metrics.items()},
        "train": {r: dict(m) for r, m in result.train_metrics_clientapp.items()},
    }
    (folder / RESULT_FILE).write_text(json.dumps(summary, indent=1))
