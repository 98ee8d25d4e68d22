"""Federated training on Flower's Message API, on the in-process LocalGrid (no Ray): what clients send (privacy), a
failing client (fault tolerance), the minimum-nodes and waiting limits, the count-weighted average and FedProx."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from federated_helpers import MARKETS, federated_config, write_markets  # sets FLWR_* before flwr loads

pytest.importorskip("flwr", reason="the federated tests need the [federated] extra: pip install -e '.[federated]'")

from flwr.app import Array  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402

from lightning_seqrec import run  # noqa: E402
from lightning_seqrec.checkpoint import read_checkpoint  # noqa: E402
from lightning_seqrec.errors import ConfigError  # noqa: E402
from lightning_seqrec.federated import client  # noqa: E402
from lightning_seqrec.federated.local_grid import LocalGrid  # noqa: E402
from lightning_seqrec.federated.markets import market_datamodule, write_config  # noqa: E402
from lightning_seqrec.federated.proximal import ProximalTerm  # noqa: E402
from lightning_seqrec.federated.records import from_record  # noqa: E402
from lightning_seqrec.federated.runner import resolved, run_local  # noqa: E402
from lightning_seqrec.federated.shared import (  # noqa: E402
    BACKBONE_PREFIX,
    ITEM_COUNTS,
    SHARED_ROWS,
    SharedPart,
    shared_items,
)
from lightning_seqrec.federated.strategies import make_strategy, shared_rows_average, wait_for_nodes  # noqa: E402

SHARED = [f"i{k}" for k in range(1, 13)]


def federate(tmp_path, client_app: ClientApp = client.app, *overrides: str) -> tuple[LocalGrid, dict]:
    cfg = federated_config(write_markets(tmp_path / "data"), tmp_path / "run", *overrides)
    with run.hydra_runtime(cfg):
        plain = resolved(cfg)
        grid = run_local(write_config(plain, tmp_path / "run"), client_app, len(MARKETS))
    return grid, plain


def test_clients_send_only_the_shared_part_counts_and_metrics(tmp_path):
    grid, plain = federate(tmp_path, client.app, "federation.strategy=shared_rows")
    assert len(grid.replies) == 2 * 2 * len(MARKETS)  # 2 rounds x (train + evaluate) x markets, none failed
    local = {m: read_checkpoint(tmp_path / "run" / "clients" / m / "local.ckpt")["state_dict"] for m in MARKETS}
    backbone_keys = {BACKBONE_PREFIX + k[len("backbone.") :] for k in local["aa"] if k.startswith("backbone.")}
    for sent, reply in zip(grid.sent, grid.replies, strict=True):
        content, market = reply.content, MARKETS[int(sent.metadata.dst_node_id) - 1]
        assert not reply.has_error() and not content.config_records  # nothing but arrays and metrics
        metrics = dict(content["metrics"])
        assert all(isinstance(v, (int, float)) for v in metrics.values())
        if sent.metadata.message_type == "train":
            assert set(content) == {"arrays", "metrics"} and set(metrics) == {"num-examples", "train-loss"}
            arrays = from_record(content["arrays"])
            assert set(arrays) == backbone_keys | {SHARED_ROWS, ITEM_COUNTS}
            assert arrays[SHARED_ROWS].shape == (len(SHARED), 16) and arrays[ITEM_COUNTS].shape == (len(SHARED),)
            assert all(a.dtype.kind == "f" for a in arrays.values())  # numbers only: no IDs, no sequences
            # none of the market-only rows (aa: i13..i18, bb: b0..b5) is anywhere in what was sent
            vocab = market_datamodule(plain["data"], market).vocab
            own = [i for i, raw in enumerate(vocab.raw_ids, start=1) if raw not in SHARED]
            rows = local[market]["item_embedding.weight"][own].numpy()
            sent_rows = np.concatenate(
                [a.reshape(-1, a.shape[-1]) for a in arrays.values() if a.ndim == 2 and a.shape[-1] == 16]
            )
            assert not (np.abs(sent_rows[:, None, :] - rows[None]).max(-1) < 1e-7).any()
        else:
            assert set(content) == {"metrics"}
            assert {k.split("/")[0] for k in metrics} <= {"val", "test", "num-examples", "partition-id"}


def test_a_failing_client_is_left_out_and_the_round_averages_the_others(tmp_path):
    flaky = ClientApp()

    @flaky.train()
    def train(message, context):
        if context.node_config["partition-id"] == 1 and message.content["config"]["server-round"] == 1:
            raise RuntimeError("market bb is down")
        return client.train(message, context)

    @flaky.evaluate()
    def evaluate(message, context):
        return client.evaluate(message, context)

    grid, _ = federate(tmp_path, flaky, "federation.min_nodes=1")
    train_replies = [r for s, r in zip(grid.sent, grid.replies, strict=True) if s.metadata.message_type == "train"]
    first, second = train_replies[:2], train_replies[2:]
    assert [r.has_error() for r in first].count(True) == 1 and "market bb is down" in next(
        r.error.reason for r in first if r.has_error()
    )
    arrived = next(r for r in first if not r.has_error())
    round_two = [s for s in grid.sent if s.metadata.message_type == "train"][2:]
    for message in round_two:  # the global model of round 1 is FedAvg of the one reply that arrived: that reply
        sent, expected = from_record(message.content["arrays"]), from_record(arrived.content["arrays"])
        assert sent.keys() == expected.keys() and all(np.array_equal(sent[k], expected[k]) for k in sent)
    assert len(second) == 2 and not any(r.has_error() for r in second)  # training went on with both markets


class Payload:
    """Unpickling this creates `target`: proof that the server ran code from a reply."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_a_hostile_clients_arrays_are_left_out_unread_and_the_round_goes_on(tmp_path):
    canary = tmp_path / "canary"
    hostile = ClientApp()

    @hostile.train()
    def train(message, context):
        reply = client.train(message, context)
        if context.node_config["partition-id"] == 1:
            arrays = reply.content["arrays"]
            key = next(iter(arrays))
            if message.content["config"]["server-round"] == 1:  # a pickle where the weights should be
                payload = np.empty(arrays[key].shape, dtype=object)
                payload.fill(Payload(canary))
                buffer = io.BytesIO()
                np.save(buffer, payload, allow_pickle=True)
                arrays[key] = Array(dtype="object", shape=payload.shape, stype="numpy.ndarray", data=buffer.getvalue())
            else:  # a poisoned update
                arrays[key] = Array(np.full(arrays[key].shape, np.nan, dtype=np.float32))
        return reply

    @hostile.evaluate()
    def evaluate(message, context):
        return client.evaluate(message, context)

    grid, _ = federate(tmp_path, hostile, "federation.min_nodes=1", "federation.num_rounds=3")
    assert not canary.exists()
    exchanges = [(s, r) for s, r in zip(grid.sent, grid.replies, strict=True) if s.metadata.message_type == "train"]
    rounds = [exchanges[i : i + 2] for i in range(0, len(exchanges), 2)]  # each round: one message to each market
    assert len(rounds) == 3
    for attacked, following in zip(rounds[:2], rounds[1:], strict=True):
        # the attacked round's global model is the honest market's reply alone
        honest = next(r for s, r in attacked if s.metadata.dst_node_id == 1)
        expected = from_record(honest.content["arrays"])
        for message, _ in following:
            got = from_record(message.content["arrays"])
            assert got.keys() == expected.keys() and all(np.array_equal(got[k], expected[k]) for k in got)


def test_minimum_nodes_is_checked_against_the_markets_and_waiting_is_bounded():
    with pytest.raises(ConfigError, match="min_nodes=3 must lie in 1..2"):
        make_strategy({"strategy": "fedavg", "min_nodes": 3}, num_markets=2)
    with pytest.raises(ConfigError, match="strategy='fedsgd' is not valid"):
        make_strategy({"strategy": "fedsgd"}, num_markets=2)
    with pytest.raises(ConfigError, match="Only 1 of the 2 nodes"):
        wait_for_nodes(LocalGrid(client.app, 1), minimum=2, patience=0.2)


def test_shared_rows_are_averaged_by_each_markets_counts():
    previous = {SHARED_ROWS: np.full((3, 2), 9.0, dtype=np.float32)}
    replies = [
        {
            "backbone.w": np.array([1.0]),
            SHARED_ROWS: np.array([[1, 1], [2, 2], [9, 9]], np.float32),
            ITEM_COUNTS: np.array([3.0, 1.0, 0.0]),
        },
        {
            "backbone.w": np.array([4.0]),
            SHARED_ROWS: np.array([[5, 5], [9, 9], [9, 9]], np.float32),
            ITEM_COUNTS: np.array([1.0, 0.0, 0.0]),
        },
    ]
    merged = shared_rows_average(replies, examples=[2.0, 1.0], previous=previous)
    assert merged.keys() == {"backbone.w", SHARED_ROWS}  # counts never reach the global model
    assert np.allclose(merged["backbone.w"], [2.0])  # (2 * 1 + 1 * 4) / 3
    assert np.allclose(merged[SHARED_ROWS], [[2, 2], [2, 2], [9, 9]])  # (3*1 + 1*5)/4; only market 1; nobody


def test_shared_part_maps_global_rows_and_fedprox_pulls_towards_the_global_model(tmp_path, chain_datamodule):
    from conftest import tiny_sasrec

    items = shared_items({"a": [1, 2, 3, 77], "b": [2, 3, 77, 88]})
    assert items == ["2", "3", "77"]
    module = tiny_sasrec(chain_datamodule)
    part = SharedPart(items, chain_datamodule.vocab)  # the chain data has items 1..30: 77 is absent
    received = {SHARED_ROWS: np.zeros((3, 16), np.float32)} | {
        BACKBONE_PREFIX + k: v.numpy() for k, v in module.backbone.state_dict().items()
    }
    arrays = part.arrays(module, received)
    weight = module.item_embedding.weight.detach()
    assert np.array_equal(arrays[SHARED_ROWS][0], weight[part.rows[0]].numpy()) and not arrays[SHARED_ROWS][2].any()
    prox = ProximalTerm(0.5, module, part)
    with torch.no_grad():
        module.item_embedding.weight.add_(1.0)
    module.item_embedding.weight.grad = torch.zeros_like(module.item_embedding.weight)
    prox.on_before_optimizer_step(None, module, None)
    grad = module.item_embedding.weight.grad
    assert torch.allclose(grad[part.rows[:2]], torch.full((2, 16), 0.5)) and grad.abs().sum() == 0.5 * 2 * 16
