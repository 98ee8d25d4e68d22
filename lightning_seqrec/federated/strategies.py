"""Server-side strategies: Flower's FedAvg and FedProx, and `SharedRowsAvg`, which averages each shared item's row
weighted by how many interactions each market has for it. All three wait a bounded time for their minimum of nodes
and record per-market evaluation metrics and per-round times."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from logging import INFO, WARNING

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
    """Mixin: bounded node waiting, per-market evaluation metrics (`market_metrics[round][partition]`), the wall
    time of each training round (`round_seconds`), and training replies checked against the arrays sent before
    any is read (`conforming`)."""

    def __init__(self, *args, node_wait: float = 60.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.node_wait = node_wait
        self.market_metrics: dict[int, dict[int, dict[str, float]]] = {}
        self.round_seconds: dict[int, float] = {}
        self.expected: dict[str, tuple[int, ...]] = {}
        self._started = 0.0

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        wait_for_nodes(grid, self.min_available_nodes, self.node_wait)
        self._started = time.monotonic()
        self.expected = {key: tuple(array.shape) for key, array in arrays.items()}
        return super().configure_train(server_round, arrays, config, grid)

    def conforming(self, replies: Iterable[Message]) -> list[Message]:
        """The replies fit to average: failed ones pass through (Flower counts them), and a reply whose arrays are
        not the `expected` keys and shapes in a float dtype with finite values, or whose example count is not a
        positive number, is left out with a warning, so one broken or hostile client can neither stop the round nor
        make the server read anything but plain numbers (Flower's arrays never unpickle)."""
        kept = []
        for reply in replies:
            problem = None if reply.has_error() else self._problem(reply)
            if problem is None:
                kept.append(reply)
            else:
                log(WARNING, "left out the reply of node %d: %s", reply.metadata.src_node_id, problem)
        return kept

    def _problem(self, reply: Message) -> str | None:
        content = reply.content
        if set(content.array_records) != {"arrays"} or "metrics" not in content.metric_records:
            return "it does not carry exactly one 'arrays' record and a 'metrics' record"
        arrays = content["arrays"]
        if {key: tuple(a.shape) for key, a in arrays.items()} != self.expected:
            return "its arrays are not the keys and shapes the server sent"
        if not all(_is_float(a.dtype) for a in arrays.values()):
            return "its arrays are not floating point"
        if not all(np.isfinite(value).all() for value in from_record(arrays).values()):
            return "its arrays hold NaN or infinite values"
        examples = content["metrics"].get(self.weighted_by_key)
        if not isinstance(examples, (int, float)) or not np.isfinite(examples) or examples <= 0:
            return f"its {self.weighted_by_key!r} is not a positive number"
        return None

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        wait_for_nodes(grid, self.min_available_nodes, self.node_wait)
        return super().configure_evaluate(server_round, arrays, config, grid)

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        result = super().aggregate_train(server_round, self.conforming(replies))
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


def _is_float(dtype: str) -> bool:
    try:
        return np.dtype(dtype).kind == "f"
    except TypeError:  # a dtype name numpy does not know
        return False


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
        messages = super().configure_train(server_round, arrays, config, grid)
        self.expected[ITEM_COUNTS] = self.expected[SHARED_ROWS][:1]
        return messages

    def aggregate_train(self, server_round: int, replies: Iterable[Message]):
        valid, _ = self._check_and_log_replies(self.conforming(replies), is_train=True)
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
