"""Shared fixtures: a learnable synthetic log, tiny models, and the shared public datasets when present."""

from __future__ import annotations

import os
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest

from lightning_seqrec import Interactions, SASRec, SeqRecDataModule

SHARED_DATA = Path(os.environ.get("SEQREC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def require_shared(folder: str) -> Path:
    """Path of a shared dataset folder, or skip saying what is missing."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        pytest.skip(f"shared dataset folder {path} is missing (set SEQREC_DATA_DIR to a folder holding {folder}/)")
    return path


def chain_log(num_users: int = 61, num_items: int = 30, seed: int = 0) -> pd.DataFrame:
    """Users walk the item cycle 1 -> 2 -> ... -> num_items -> 1 from random starts: next item is learnable."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(num_users):
        start, length = rng.integers(num_items), rng.integers(5, 14)
        for t in range(length):
            rows.append((f"u{user}", int((start + t) % num_items) + 1, 1000 * user + t))
    return pd.DataFrame(rows, columns=["user", "item", "ts"])


def chain_interactions_of(**kwargs) -> Interactions:
    columns = {"user_id": "user", "item_id": "item", "timestamp": "ts"}
    return Interactions.from_frame(chain_log(**kwargs), columns=columns)


def make_chain_datamodule() -> SeqRecDataModule:
    """61 users (an odd count, so uneven DDP shards), 30 items, max_len 8, eval batches of 7."""
    dm = SeqRecDataModule(chain_interactions_of(), max_len=8, batch_size=16, eval_batch_size=7)
    dm.setup()
    return dm


@pytest.fixture
def chain_interactions() -> Interactions:
    return chain_interactions_of()


@pytest.fixture
def chain_datamodule() -> SeqRecDataModule:
    return make_chain_datamodule()


def quiet_trainer(**kwargs) -> L.Trainer:
    """A Trainer without logger, checkpoints, progress bar or summary; `kwargs` override any of these."""
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    return L.Trainer(**{**quiet, **kwargs})


def tiny_sasrec(dm: SeqRecDataModule, **kwargs) -> SASRec:
    defaults = dict(embedding_dim=16, max_len=dm.max_len, num_blocks=1, num_heads=2, dropout=0.1, lr=5e-3)
    return SASRec(dm.num_items, **{**defaults, **kwargs})
