"""`FederatedRounds` (2 CPU processes, gloo) ends with the weights of the Flower federation run with the same config,
seeds and schedule (2 rounds of 1 local epoch, FedAvg): the global shared part and each market's own item rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from federated_helpers import MARKETS, free_port  # sets FLWR_* before flwr loads

pytest.importorskip("flwr", reason="the federated tests need the [federated] extra: pip install -e '.[federated]'")

from safetensors.numpy import load_file, save_file  # noqa: E402
from test_federated import federate  # noqa: E402

from lightning_seqrec.checkpoint import read_checkpoint  # noqa: E402
from lightning_seqrec.federated import client  # noqa: E402
from lightning_seqrec.federated.markets import catalogs, market_datamodule  # noqa: E402
from lightning_seqrec.federated.rounds import fit_market  # noqa: E402
from lightning_seqrec.federated.server import GLOBAL_FILE, initial_arrays  # noqa: E402
from lightning_seqrec.federated.shared import shared_items  # noqa: E402


def _market_process(rank: int, cfg: dict, items: list, port: int, folder: str) -> None:
    import os

    os.environ["FLWR_TELEMETRY_ENABLED"] = "0"
    torch.set_num_threads(1)
    module, strategy = fit_market(cfg, items, rank, port)
    save_file(strategy.previous, f"{folder}/global{rank}.safetensors")
    save_file({"items": module.item_embedding.weight.detach().numpy().copy()}, f"{folder}/items{rank}.safetensors")


def test_federated_rounds_equals_the_flower_federation(tmp_path):
    torch.set_num_threads(1)
    _, cfg = federate(tmp_path / "flower", client.app)
    items = shared_items(catalogs(cfg["data"]))
    torch.multiprocessing.start_processes(
        _market_process, args=(cfg, items, free_port(), str(tmp_path)), nprocs=len(MARKETS), start_method="spawn"
    )
    flower = load_file(str(tmp_path / "flower" / "run" / GLOBAL_FILE))
    start = initial_arrays(cfg, items)
    assert max(np.abs(flower[k] - start[k]).max() for k in flower) > 1e-3  # the rounds did move the global model
    for rank, market in enumerate(MARKETS):
        rounds = load_file(str(tmp_path / f"global{rank}.safetensors"))
        assert rounds.keys() == flower.keys()
        for key in flower:
            np.testing.assert_allclose(rounds[key], flower[key], rtol=0, atol=1e-6, err_msg=key)
        local = read_checkpoint(tmp_path / "flower" / "run" / "clients" / market / "local.ckpt")["state_dict"]
        trained = load_file(str(tmp_path / f"items{rank}.safetensors"))["items"]
        vocab = market_datamodule(cfg["data"], market).vocab
        own = [i for i, raw in enumerate(vocab.raw_ids, start=1) if str(raw) not in set(items)]
        assert own  # each test market sells items of its own, which never travel and are never averaged
        np.testing.assert_allclose(trained[own], local["item_embedding.weight"][own].numpy(), rtol=0, atol=1e-6)
