"""`FederatedRounds`: the federated schedule as a Lightning strategy on torch.distributed, for fast experiments on one
machine or cluster. Each process trains one market with its own Trainer (no gradient all-reduce: to Lightning it is
a single-device run), and every N local epochs (or steps) the processes all-gather their shared parts and replace
them by the same average the Flower strategies compute (`fedavg` or `shared_rows`). With the same config, seeds and
schedule it ends with the weights of the Flower federation (`tests/test_federated_rounds.py`)."""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping

import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import SingleDeviceStrategy

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.federated.markets import LOCAL_FIT, build_module, local_trainer, market_datamodule
from lightning_seqrec.federated.server import initial_arrays
from lightning_seqrec.federated.shared import ITEM_COUNTS, SharedPart
from lightning_seqrec.federated.strategies import fedavg, shared_rows_average

WEIGHTINGS = ("fedavg", "shared_rows")


class FederatedRounds(SingleDeviceStrategy):
    """One market per process (`rank` of `world_size`, meeting at `address:port` through a gloo TCP store). Its own
    process group is not torch's default one, so the DataModule and Lightning still see one process and each market
    trains on all of its data. `part` / `examples` / `counts` are this market's shared part and weights, `initial`
    the global shared part the run starts from; `round_seconds` keeps each round's wall time."""

    def __init__(
        self,
        part: SharedPart,
        initial: Mapping[str, np.ndarray],
        examples: float,
        counts: np.ndarray,
        rank: int,
        world_size: int,
        address: str = "127.0.0.1",
        port: int = 29500,
        every_n_epochs: int | None = 1,
        every_n_steps: int | None = None,
        weighting: str = "fedavg",
        timeout_s: float = 600.0,
    ):
        super().__init__(device=torch.device("cpu"))
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"FederatedRounds weighting={weighting!r} is not valid; use one of {WEIGHTINGS}.")
        if (every_n_epochs is None) == (every_n_steps is None):
            raise ConfigError("FederatedRounds averages every_n_epochs or every_n_steps: set exactly one of them.")
        self.part, self.previous, self.weighting = part, dict(initial), weighting
        self.examples, self.counts = float(examples), np.asarray(counts, dtype=np.float64)
        self.rank, self.world, self.every_n_epochs, self.every_n_steps = rank, world_size, every_n_epochs, every_n_steps
        timeout = datetime.timedelta(seconds=timeout_s)
        store = dist.TCPStore(address, port, world_size, rank == 0, timeout=timeout)
        self.group = dist.ProcessGroupGloo(store, rank, world_size, timeout)
        self.round_seconds: list[float] = []
        self._steps, self._started = 0, time.monotonic()

    def optimizer_step(self, optimizer, closure, model=None, **kwargs):
        output = super().optimizer_step(optimizer, closure, model, **kwargs)
        self._steps += 1
        trainer = self.lightning_module.trainer
        if self.every_n_steps is not None:
            due = self._steps % self.every_n_steps == 0
        else:
            last = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
            due = last and (trainer.current_epoch + 1) % self.every_n_epochs == 0
        if due:
            self.average()
        return output

    def _gather(self, vector: torch.Tensor) -> list[torch.Tensor]:
        gathered = [torch.empty_like(vector) for _ in range(self.world)]
        self.group.allgather([gathered], [vector.contiguous()]).wait()
        return gathered

    def average(self) -> None:
        """Replace this market's shared part by the average over all markets, as the server would."""
        module = self.lightning_module
        arrays = self.part.arrays(module, self.previous)
        keys = list(arrays)
        flat = torch.from_numpy(np.concatenate([arrays[k].astype(np.float32).ravel() for k in keys]))
        weights = torch.from_numpy(np.concatenate([[self.examples], self.counts]))
        replies = []
        for values, weight in zip(self._gather(flat), self._gather(weights), strict=True):
            reply, offset = {}, 0
            for key in keys:
                size = arrays[key].size
                reply[key] = values[offset : offset + size].numpy().reshape(arrays[key].shape)
                offset += size
            reply[ITEM_COUNTS] = weight[1:].numpy()
            replies.append((reply, float(weight[0])))
        examples = [n for _, n in replies]
        if self.weighting == "shared_rows":
            merged = shared_rows_average([r for r, _ in replies], examples, self.previous)
        else:
            merged = fedavg([{k: r[k] for k in keys} for r, _ in replies], examples)
        self.part.load(module, merged)
        self.previous = merged
        now = time.monotonic()
        self.round_seconds.append(now - self._started)
        self._started = now


def fit_market(cfg: Mapping, items: list[str], rank: int, port: int, weighting: str = "fedavg"):
    """Train market `cfg["data"]["markets"][rank]` for the federation's rounds under `FederatedRounds` (one process
    per market, called in each); returns the trained module and the strategy (its `previous` is the global part)."""
    market = cfg["data"]["markets"][rank]
    datamodule = market_datamodule(cfg["data"], market)
    part = SharedPart(items, datamodule.vocab)
    module = build_module(cfg, datamodule.num_items)
    initial = initial_arrays(cfg, items)
    part.load(module, initial)
    federation = cfg["federation"]
    strategy = FederatedRounds(
        part,
        initial,
        examples=int(datamodule.item_counts().sum()),
        counts=part.counts(datamodule),
        rank=rank,
        world_size=len(cfg["data"]["markets"]),
        port=port,
        every_n_epochs=int(federation["local_epochs"]),
        weighting=weighting,
    )
    epochs = int(federation["local_epochs"]) * int(federation["num_rounds"])
    trainer = local_trainer(cfg, max_epochs=epochs, strategy=strategy, **LOCAL_FIT)
    trainer.fit(module, datamodule=datamodule)
    return module, strategy
