"""`run_federated(cfg)`: a `seqrec federated` config run in Flower's simulation engine (Ray) or on the in-process
`LocalGrid`, returning the ServerApp's summary (per-market metrics per round, round times)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from flwr.app import Context, RecordDict
from flwr.clientapp import ClientApp
from omegaconf import DictConfig
from safetensors.numpy import load_file

from lightning_seqrec.checkpoint import read_checkpoint
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.federated import client, server
from lightning_seqrec.federated.local_grid import LocalGrid
from lightning_seqrec.federated.markets import CONFIG_ENV, build_module, catalogs, market_datamodule, write_config
from lightning_seqrec.federated.shared import SharedPart, shared_items
from lightning_seqrec.run import plain_config as resolved  # the config as plain data, without the hydra node

ENGINES = ("simulation", "local")


def run_local(config_file: Path, client_app: ClientApp, num_nodes: int) -> LocalGrid:
    """Run the ServerApp on a `LocalGrid` of `client_app` nodes; the grid keeps every message sent and received."""
    grid = LocalGrid(client_app, num_nodes)
    context = Context(
        run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={"config-file": str(config_file)}
    )
    server.main(grid, context)
    return grid


def run_federated(cfg: DictConfig) -> dict:
    """Run the federation the config describes; the summary is also in `<output_dir>/federated_result.json`."""
    plain = resolved(cfg)
    engine, markets = plain["federation"]["engine"], plain["data"]["markets"]
    if engine not in ENGINES:
        raise ConfigError(f"federation.engine={engine!r} is not valid; use one of {', '.join(ENGINES)}.")
    path = write_config(plain, Path(plain["output_dir"]))
    if engine == "local":
        run_local(path, client.app, len(markets))
    else:
        from flwr.simulation import run_simulation

        os.environ[CONFIG_ENV] = str(path)  # run_simulation takes no run config
        cpus = int(plain["federation"]["client_cpus"])
        backend = {"client_resources": {"num_cpus": cpus, "num_gpus": 0.0}, "init_args": {"num_cpus": cpus}}
        run_simulation(server.app, client.app, num_supernodes=len(markets), backend_config=backend)
    result = Path(plain["output_dir"], server.RESULT_FILE)
    if not result.is_file():
        raise ConfigError(f"The federated run wrote no {result}; its log above says why.")
    return json.loads(result.read_text())


def market_model(plain: dict, market: str):
    """One market's model after a finished run (its `local.ckpt` with the final global shared part) and its data."""
    datamodule = market_datamodule(plain["data"], market)
    module = build_module(plain, datamodule.num_items)
    module.load_state_dict(read_checkpoint(Path(plain["output_dir"], "clients", market, "local.ckpt"))["state_dict"])
    items = shared_items(catalogs(plain["data"]))
    SharedPart(items, datamodule.vocab).load(module, load_file(str(Path(plain["output_dir"], server.GLOBAL_FILE))))
    module.attach_data(datamodule)
    return module, datamodule
