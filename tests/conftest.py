"""Shared fixtures: a learnable synthetic log, tiny models, and the shared public datasets when present."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
from huggingface_hub import constants

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


@pytest.fixture
def offline_cache(monkeypatch, tmp_path) -> Path:
    """An empty Hub cache in tmp with offline mode on, set both as environment variables and as the constants
    huggingface_hub read from them at import time."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def populate_cache(cache: Path, repo_id: str, folder: Path, revision: str = "main") -> str:
    """Lay `folder` out as huggingface_hub stores a downloaded snapshot (blobs by sha256, snapshot symlinks, a ref
    naming the commit) and return the commit hash."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for file in folder.iterdir():
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        blob.write_bytes(file.read_bytes())
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", blob.name))
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return commit
