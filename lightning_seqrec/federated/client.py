"""The Flower `ClientApp` of one market: each round it trains the library's module with a Lightning Trainer on its
market's DataModule and sends back only the shared part (`SharedPart`), plus counts and metrics.

The market's own state (market-only item rows, optimizer, epoch and step counters) lives in `local.ckpt` on the
client's disk: a round resumes the client's run from it, with the shared part replaced by the global model's, so
round r trains the epochs `[(r-1)·E, r·E)` of one continuous local run (what `FederatedRounds` reproduces).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from lightning_seqrec.checkpoint import read_checkpoint
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.federated.markets import LOCAL_FIT, build_module, local_trainer, market_datamodule
from lightning_seqrec.federated.proximal import ProximalTerm
from lightning_seqrec.federated.records import from_record, to_record
from lightning_seqrec.federated.shared import ITEM_COUNTS, SharedPart
from lightning_seqrec.objectives.semantic_ce import SemanticSoftCE

app = ClientApp()

REPORTED = ("hr", "ndcg")
"""Metric names a client reports per cut-off, for validation and test (every reply has the same keys)."""


class MarketClient:
    """One market's side of a round, built from the message: its data, its module with the global shared part
    loaded over its local state, and the folder that state lives in."""

    def __init__(self, message: Message, context: Context):
        config: ConfigRecord = message.content["config"]
        self.cfg = json.loads(config["seqrec-config"])
        self.config = config
        self.partition = int(context.node_config["partition-id"])
        markets = self.cfg["data"]["markets"]
        if not 0 <= self.partition < len(markets):
            raise ConfigError(f"partition-id {self.partition} has no market; the run has {len(markets)}: {markets}.")
        self.market = markets[self.partition]
        self.folder = Path(self.cfg["output_dir"], "clients", self.market)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.datamodule = market_datamodule(self.cfg["data"], self.market)
        self.part = SharedPart(json.loads(config["shared-items"]), self.datamodule.vocab)
        self.received = from_record(message.content["arrays"])
        self.module = build_module(self.cfg, self.datamodule.num_items)
        self.local = self.folder / "local.ckpt"
        if self.local.is_file():
            self.module.load_state_dict(read_checkpoint(self.local)["state_dict"])
        self.part.load(self.module, self.received)

    def train(self) -> RecordDict:
        """Train this round's local epochs from the resumed local run; reply with the shared part."""
        epochs = int(self.cfg["federation"]["local_epochs"]) * int(self.config["server-round"])
        for objective in self.module.objectives.values():
            if isinstance(objective, SemanticSoftCE):  # similarity from the global model's embeddings of this round
                objective.set_semantics(self.module.item_embedding.weight)
        callbacks = []
        if "proximal-mu" in self.config:
            callbacks.append(ProximalTerm(float(self.config["proximal-mu"]), self.module, self.part))
        resume = None
        if self.local.is_file():  # continue the local run, its shared part now the global model's
            checkpoint = read_checkpoint(self.local)
            checkpoint["state_dict"] = self.module.state_dict()
            resume = self.folder / "resume.ckpt"
            torch.save(checkpoint, resume)
        trainer = local_trainer(self.cfg, max_epochs=epochs, callbacks=callbacks, **LOCAL_FIT)
        trainer.fit(self.module, datamodule=self.datamodule, ckpt_path=resume, weights_only=True)
        trainer.save_checkpoint(self.local)
        arrays = self.part.arrays(self.module, self.received)
        if bool(self.config.get("send-counts", False)):
            arrays[ITEM_COUNTS] = self.part.counts(self.datamodule)
        loss = float(trainer.callback_metrics.get("train/loss", torch.tensor(float("nan"))))
        metrics = {"num-examples": int(self.datamodule.item_counts().sum()), "train-loss": loss}
        return RecordDict({"arrays": to_record(arrays), "metrics": MetricRecord(metrics)})

    def evaluate(self) -> RecordDict:
        """Validation and test metrics of the market's model (global shared part + local rows)."""
        trainer = local_trainer(self.cfg)
        scores = trainer.validate(self.module, datamodule=self.datamodule, verbose=False)[0]
        scores |= trainer.test(self.module, datamodule=self.datamodule, verbose=False)[0]
        ks = self.cfg["model"]["eval_ks"]
        keys = [f"{split}/{name}@{k}" for split in ("val", "test") for name in REPORTED for k in ks]
        metrics = {key: float(scores[key]) for key in keys}
        metrics |= {"num-examples": len(self.datamodule.split.test), "partition-id": self.partition}
        return RecordDict({"metrics": MetricRecord(metrics)})


@app.train()
def train(message: Message, context: Context) -> Message:
    return Message(MarketClient(message, context).train(), reply_to=message)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
    return Message(MarketClient(message, context).evaluate(), reply_to=message)
