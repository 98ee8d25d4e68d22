"""Server-side strategies: Flower's FedAvg and FedProx, and `SharedRowsAvg`, which averages each shared item's row
weighted by how many interactions each market has for it. All three wait a bounded time for their minimum of nodes
and record per-market evaluation metrics and per-round times."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from logging import INFO

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedProx
from flwr.supercore import log

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.federated.records import from_record, to_record
from lightning_seqrec.federated.shared import ITEM_COUNTS, SHARED_ROWS

STRATEGIES = ("fedavg", "fedprox", "shared_rows")


def wait_for_nodes(grid: Grid, minimum: int, patience: float) -> None:
    """Return once `minimum` nodes are connected; a ConfigError after `patience` seconds (Flower's own sampling
    waits forever)."""
    deadline = time.monotonic() + patience
    while len(list(grid.get_node_ids())) < minimum:
        if time.monotonic() > deadline:
            raise ConfigError(
                f"Only {len(list(grid.get_node_ids()))} of the {minimum} nodes federation.min_nodes asks for connected "
                f"within {patience:.0f} s; start more SuperNodes or lower federation.min_nodes."
            )
        time.sleep(0.5)


class Recorded:
    """Mixin: bounded node waiting, per-market evaluation metrics (`market_metrics[round][partition]`) and the wall
    time of each training round (`round_seconds`)."""

    def __init__(self, *args, node_wait: float = 60.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.node_wait = node_wait
        self.market_metrics: dict[int, dict[int, dict[str, float]]] = {}
        self.round_seconds: dict[int, float] = {}
        self._started = 0.0

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        wait_for_nodes(grid, self.min_available_nodes, self.node_wait)
        self._started = time.monotonic()
        return super().configure_train(server_round, arrays, config, grid)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        wait_for_nodes(grid, self.min_available_nodes, self.node_wait)
        return super().configure_evaluate(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        result = super().aggregate_train(server_round, replies)
        self.round_seconds[server_round] = time.monotonic() - self._started
        return result

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        replies = list(replies)
        per_market = self.market_metrics.setdefault(server_round, {})
        for reply in replies:
            if not reply.has_error():
                metrics = dict(reply.content["metrics"])
                per_market[int(metrics.pop("partition-id"))] = metrics
        aggregated = super().aggregate_evaluate(server_round, replies)
        if aggregated is not None:
            aggregated.pop("partition-id", None)  # a node label, not a metric to average
        return aggregated


class RecordedFedAvg(Recorded, FedAvg):
    """FedAvg (weights: each market's training interactions)."""


class RecordedFedProx(Recorded, FedProx):
    """FedProx: FedAvg on the server; clients add mu/2 · ||w - w_global||² (`ProximalTerm`)."""


def fedavg(replies: list[Mapping[str, np.ndarray]], examples: list[float]) -> dict[str, np.ndarray]:
    """Flower's FedAvg average, term by term in reply order: `sum_k a_k * (n_k / sum n)`."""
    total, merged = sum(examples), {}
    for reply, n in zip(replies, examples, strict=True):
        for key, value in reply.items():
            merged[key] = value * (n / total) if key not in merged else merged[key] + value * (n / total)
    return merged


def shared_rows_average(
    replies: list[Mapping[str, np.ndarray]], examples: list[float], previous: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The backbone averaged by `examples` (`fedavg`); each shared row averaged by the markets' interaction counts
    for that item (`ITEM_COUNTS`), a row no replying market has interactions for keeping its `previous` value."""
    rows = (SHARED_ROWS, ITEM_COUNTS)
    merged = fedavg([{k: v for k, v in reply.items() if k not in rows} for reply in replies], examples)
    counts = np.stack([reply[ITEM_COUNTS] for reply in replies])  # [K, S]
    tables = np.stack([reply[SHARED_ROWS] for reply in replies])  # [K, S, d]
    weight = counts.sum(0)
    averaged = (counts[..., None] * tables).sum(0) / np.maximum(weight, 1)[:, None]
    merged[SHARED_ROWS] = np.where(weight[:, None] > 0, averaged, previous[SHARED_ROWS]).astype(np.float32)
    return merged


class SharedRowsAvg(RecordedFedAvg):
    """FedAvg for the backbone; per-row averages, weighted by interaction counts, for the shared item table. Clients
    are asked to send `ITEM_COUNTS` (`send-counts`), which never reaches the global model."""

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        self._previous = from_record(arrays)
        config["send-counts"] = True
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        valid, _ = self._check_and_log_replies(list(replies), is_train=True)
        self.round_seconds[server_round] = time.monotonic() - self._started
        if not valid:
            return None, None
        contents = [reply.content for reply in valid]
        examples = [float(content["metrics"][self.weighted_by_key]) for content in contents]
        arrays = shared_rows_average([from_record(c["arrays"]) for c in contents], examples, self._previous)
        log(INFO, "shared_rows: averaged %d replies", len(valid))
        return to_record(arrays), self.train_metrics_aggr_fn(contents, self.weighted_by_key)


def make_strategy(federation: Mapping, num_markets: int):
    """The configured strategy, its minimum of nodes checked against the number of markets (= nodes)."""
    name = federation["strategy"]
    if name not in STRATEGIES:
        raise ConfigError(f"federation.strategy={name!r} is not valid; use one of {', '.join(STRATEGIES)}.")
    minimum = num_markets if federation.get("min_nodes") is None else int(federation["min_nodes"])
    if not 1 <= minimum <= num_markets:
        raise ConfigError(
            f"federation.min_nodes={minimum} must lie in 1..{num_markets} (one node per market); a larger minimum "
            "would wait for nodes that never come."
        )
    sampling = dict(min_train_nodes=minimum, min_evaluate_nodes=minimum, min_available_nodes=minimum)
    options = dict(node_wait=float(federation.get("node_wait", 60)), **sampling)
    if name == "fedprox":
        return RecordedFedProx(proximal_mu=float(federation["proximal_mu"]), **options)
    return (SharedRowsAvg if name == "shared_rows" else RecordedFedAvg)(**options)
