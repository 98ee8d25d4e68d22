"""WeakPositiveMiner: tables handed to the RCL objective during training, the re-mining schedule, configuration
errors, and identical tables on every rank under DDP."""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import numpy as np
import pytest
import torch
from conftest import chain_log, make_chain_datamodule, quiet_trainer, tiny_sasrec
from lightning_seqrec.callbacks import WeakPositiveMiner

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.objectives import FullCrossEntropy, RelativeContrastive
from lightning_seqrec.objectives.contrastive import input_windows
from lightning_seqrec.objectives.positives import EmbeddingCosine, mine_weak_positives


class TableRecorder(L.Callback):
    """Keeps the RCL objective's weak-positive table as it stands at the end of every training epoch."""

    def __init__(self):
        self.tables = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.tables.append(pl_module.objectives["rcl"].weak)


def fit_with_miner(miner: WeakPositiveMiner, epochs: int = 2):
    dm = make_chain_datamodule()
    L.seed_everything(0)
    module = tiny_sasrec(dm, objectives={"ce": FullCrossEntropy(), "rcl": RelativeContrastive(weight=0.5, alpha=0.2)})
    recorder = TableRecorder()
    trainer = quiet_trainer(max_epochs=epochs, callbacks=[miner, recorder])
    trainer.fit(module, dm)
    return dm, module, trainer, recorder.tables


def test_ngram_table_is_mined_once_and_trains():
    dm, module, trainer, tables = fit_with_miner(WeakPositiveMiner(method="ngram", n=2))
    assert miner_epochs(trainer) == [0]  # a fixed similarity: mined at fit start only
    assert tables[0] is tables[1] and tables[0] is not None
    assert torch.isfinite(trainer.callback_metrics["train/loss/rcl"])
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    targets = dm.train_tensors["target_seq"][:, -1].numpy()
    table = tables[0]
    k = int(np.ceil(0.2 * len(targets)))
    assert len(table) == len(targets) and (table.lengths <= k).all() and table.lengths.mean() > 1
    rows = np.repeat(np.arange(len(table)), table.lengths)
    assert (targets[table.indices] != targets[rows]).all()


@pytest.mark.parametrize(("every", "expected"), [(1, [0, 1]), (2, [0])])
def test_embedding_table_is_remined_every_n_epochs(every, expected):
    _, _, trainer, tables = fit_with_miner(WeakPositiveMiner(method="embedding", every_n_epochs=every))
    assert miner_epochs(trainer) == expected
    assert (tables[0] is not tables[1]) == (every == 1)
    assert torch.isfinite(trainer.callback_metrics["train/loss/rcl"])


def miner_epochs(trainer: L.Trainer) -> list[int]:
    return next(c for c in trainer.callbacks if isinstance(c, WeakPositiveMiner)).mined_epochs


def test_miner_needs_an_rcl_objective_and_a_valid_method():
    dm = make_chain_datamodule()
    trainer = quiet_trainer(max_epochs=1, callbacks=[WeakPositiveMiner()])
    with pytest.raises(ConfigError, match="objective=rcl"):
        trainer.fit(tiny_sasrec(dm), dm)
    with pytest.raises(ConfigError, match="Unknown weak-positive similarity"):
        WeakPositiveMiner(method="levenshtein")


class SaveTable(L.Callback):
    """Writes each rank's mined table to `folder/rank<r>.npz` (runs inside the spawned DDP processes)."""

    def __init__(self, folder: str):
        self.folder = folder

    def on_train_end(self, trainer, pl_module):
        table = pl_module.objectives["rcl"].weak
        path = f"{self.folder}/rank{trainer.global_rank}.npz"
        np.savez(path, indptr=table.indptr, indices=table.indices, weights=table.weights)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_ddp_ranks_mine_shards_and_hold_the_same_table(tmp_path):
    dm = make_chain_datamodule()
    L.seed_everything(0)
    module = tiny_sasrec(dm, objectives={"ce": FullCrossEntropy(), "rcl": RelativeContrastive(alpha=0.2)})
    # what a single process mines from the same initial model
    miner = WeakPositiveMiner(method="embedding")
    windows = input_windows(dm.train_tensors)
    ids = np.arange(len(dm.train_tensors["item_seq"]))
    targets = dm.train_tensors["target_seq"][:, -1].numpy()
    k = int(np.ceil(0.2 * len(ids)))
    expected = mine_weak_positives(EmbeddingCosine(miner.encode(module, windows, ids)), targets, ids, k)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_spawn",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        callbacks=[miner, SaveTable(str(tmp_path))],
    )
    trainer.fit(module, dm)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    for name in ("indptr", "indices", "weights"):
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name])
    np.testing.assert_array_equal(ranks[0]["indptr"], expected.indptr)
    np.testing.assert_allclose(ranks[0]["weights"], expected.weights, atol=1e-5)


def test_cli_trains_with_rcl_and_mining(tmp_path):
    chain_log().to_csv(tmp_path / "events.csv", index=False)
    args = [
        "train",
        "data=table",
        f"data.path={tmp_path / 'events.csv'}",
        "data.columns={user_id: user, item_id: item, timestamp: ts}",
        "data.max_len=8",
        "model.embedding_dim=16",
        "model.num_blocks=1",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
        "objective=rcl",
        "objective.rcl.weight=0.3",
        "objective.rcl.alpha=0.1",
        "objective.rcl.temperature=0.5",
        "callbacks=rcl_mining",
        "callbacks.weak_positive_miner.method=tfidf",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "lightning_seqrec.cli", *args]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WeakPositiveMiner: tfidf weak positives" in result.stdout + result.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
