"""Per-market data and models of a federated run: one market's log as a `SeqRecDataModule` (its own catalog, so
evaluation ranks that market's items), and the module every client and the server build from the same config."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lightning_seqrec.checkpoint import SafeCheckpointIO
from lightning_seqrec.data import XMRec
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.run import instantiate_dict

CONFIG_ENV = "SEQREC_FEDERATED_CONFIG"
"""Environment variable naming the run's config JSON, where Flower's run config has no `config-file`."""


def catalogs(data: Mapping) -> dict[str, list]:
    """Each configured market's item IDs: the public product catalogs the shared index is built from."""
    frame = XMRec(path=data["path"], markets=data["markets"]).read().frame
    return {m: frame.loc[frame["market"] == m, "item_id"].unique().tolist() for m in data["markets"]}


@lru_cache(maxsize=8)
def _market_datamodule(path, market: str, settings: str) -> XMRec:
    datamodule = XMRec(path=path, markets=[market], **json.loads(settings))
    datamodule.setup("fit")
    return datamodule


def market_datamodule(data: Mapping, market: str) -> XMRec:
    """The set-up DataModule of one market (cached per process): per-user leave-one-out by date, full ranking over
    that market's catalog, seen items masked by the model."""
    keys = ("max_len", "batch_size", "eval_batch_size", "seed")
    return _market_datamodule(data["path"], market, json.dumps({k: data[k] for k in keys}))


def build_module(cfg: Mapping, num_items: int):
    """The configured model for `num_items` items, seeded by `cfg["seed"]` so every party builds the same weights."""
    L.seed_everything(cfg["seed"], workers=True, verbose=False)
    return instantiate(
        OmegaConf.create(cfg["model"]),
        num_items=num_items,
        objectives=instantiate_dict(OmegaConf.create(cfg["objective"])),
        _convert_="all",
    )


LOCAL_FIT = {"limit_val_batches": 0, "num_sanity_val_steps": 0}
"""Trainer settings of local training in a round: no validation (clients evaluate when the server asks)."""


def local_trainer(cfg: Mapping, **settings):
    """A market's Lightning Trainer from the configured one: no logger, checkpoints or progress bar, resume and
    checkpoints read through `SafeCheckpointIO`; `settings` on top (epochs, callbacks, strategy)."""
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    return instantiate(OmegaConf.create(cfg["trainer"]), **quiet, plugins=[SafeCheckpointIO()], **settings)


def write_config(cfg: Mapping, folder: Path) -> Path:
    """The resolved run config as JSON in `folder`: what the ServerApp reads and sends to the clients."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "federated_config.json"
    path.write_text(json.dumps(cfg, indent=1))
    return path


def read_config(run_config: Mapping) -> dict:
    """The run config JSON named by Flower's run config (`config-file`) or by `$SEQREC_FEDERATED_CONFIG`."""
    path = run_config.get("config-file") or os.environ.get(CONFIG_ENV)
    if not path or not Path(str(path)).is_file():
        raise ConfigError(
            f"No federated run config: pass --run-config 'config-file=\"<run>/federated_config.json\"' to flwr run, "
            f"or set {CONFIG_ENV}; `seqrec federated` writes that file (got {path!r})."
        )
    return json.loads(Path(str(path)).read_text())
