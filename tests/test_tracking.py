"""W&B and TensorBoard tracking of `seqrec train`: an offline W&B run holds the resolved config, the metrics, the
exposure plots, a table of recommendations and the best checkpoint as a `model` artifact; only rank 0 logs."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import chain_log
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.loggers.logger import DummyExperiment
from lightning.pytorch.utilities import rank_zero_only
from lightning_seqrec.callbacks import DiversityMetrics, WandbTracking, ZooPublisher
from lightning_seqrec.callbacks.wandb_tracking import has_credentials, wandb_logger
from wandb_helpers import offline_env, updates, wandb_records


def tiny_train_args(folder: Path) -> list[str]:
    """`seqrec train` overrides of a two-epoch SASRec on the chain log written as a CSV in `folder`."""
    chain_log().to_csv(folder / "events.csv", index=False)
    data = [f"data.path={folder / 'events.csv'}", "data.columns.user_id=user", "data.columns.item_id=item"]
    model = ["model.embedding_dim=16", "model.num_blocks=1"]
    trainer = ["trainer.max_epochs=2", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false"]
    return ["data=table", *data, "data.columns.timestamp=ts", "data.max_len=8", *model, *trainer]


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """`seqrec train logger=[wandb,tensorboard]` on a small CSV, as a user runs it, with W&B offline."""
    tmp = tmp_path_factory.mktemp("tracking")
    args = [*tiny_train_args(tmp), "logger=[wandb,tensorboard]", f"hydra.run.dir={tmp / 'run'}"]
    result = subprocess.run(
        [sys.executable, "-m", "lightning_seqrec.cli", "train", *args],
        cwd=tmp,
        env=offline_env(tmp),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "run", result


def test_offline_run_holds_config_metrics_and_plots(tracked_run):
    run_dir, result = tracked_run
    assert "W&B: offline (WANDB_MODE=offline)" in result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr  # e.g. W&B's about Lightning's `anonymous` argument
    (folder,) = (run_dir / "wandb").glob("offline-run-*")
    records = wandb_records(folder)
    config = {k: v for update in updates(records, "config") for k, v in update.items()}
    assert config["data"]["path"].endswith("events.csv") and config["data"]["max_len"] == 8
    assert config["model"]["embedding_dim"] == 16 and config["trainer"]["max_epochs"] == 2
    assert config["callbacks"]["wandb_tracking"]["_target_"] == "lightning_seqrec.callbacks.WandbTracking"
    history = updates(records, "history")
    validations = [h["val/ndcg@10"] for h in history if "val/ndcg@10" in h]
    assert len(validations) == 2 and any("train/loss" in h for h in history)
    tested = json.loads((run_dir / "test_metrics.json").read_text())
    logged = {k: v for h in history for k, v in h.items() if k.startswith("test/")}
    assert logged["test/ndcg@10"] == pytest.approx(tested["test/ndcg@10"])
    summary = {k: v for update in updates(records, "summary") for k, v in update.items()}
    assert summary["val/ndcg@10"] == pytest.approx(max(validations))  # the best epoch, not the last
    plots = sorted(p.name for p in (folder / "files" / "media" / "images" / "val" / "diversity").glob("*.png"))
    assert len(plots) == 2 and any((folder / "files" / "media" / "images" / "test" / "diversity").glob("*.png"))
    assert any(record.WhichOneof("record_type") == "exit" for record in records)


def test_offline_run_holds_recommendations_and_the_best_checkpoint(tracked_run):
    run_dir, _ = tracked_run
    (folder,) = (run_dir / "wandb").glob("offline-run-*")
    (table_file,) = (folder / "files" / "media" / "table").glob("recommendations_*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["user", "recent history", "held-out item", "rank", "item_id", "title", "score", "hit"]
    rows = table["data"]
    assert len(rows) == 5 * 10 and len({row[0] for row in rows}) == 5
    for user in {row[0] for row in rows}:
        mine = [row for row in rows if row[0] == user]
        assert [row[3] for row in mine] == list(range(1, 11))
        assert [row[6] for row in mine] == sorted((row[6] for row in mine), reverse=True)
        assert all(row[7] == (row[4] == row[2]) for row in mine)  # chain items have no titles: IDs stand in
    (artifact,) = [
        r.artifact
        for r in wandb_records(folder)
        if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "model"
    ]
    (best,) = (run_dir / "checkpoints").glob("epoch*.ckpt")
    (entry,) = artifact.manifest.contents
    assert entry.path == "model.ckpt" and entry.size == best.stat().st_size
    assert entry.digest == base64.b64encode(hashlib.md5(best.read_bytes()).digest()).decode()
    assert "best" in artifact.aliases
    metadata = json.loads(artifact.metadata)
    assert metadata["checkpoint"] == best.name
    validations = [h["val/ndcg@10"] for h in updates(wandb_records(folder), "history") if "val/ndcg@10" in h]
    assert metadata["val/ndcg@10"] == pytest.approx(max(validations))
    assert metadata["test/ndcg@10"] == pytest.approx(
        json.loads((run_dir / "test_metrics.json").read_text())["test/ndcg@10"]
    )


def test_tensorboard_logger_writes_scalars_and_the_config(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _ = tracked_run
    (version,) = (run_dir / "tensorboard").glob("version_*")
    events = EventAccumulator(str(version))
    events.Reload()
    assert len(events.Scalars("val/ndcg@10")) == 2 and events.Scalars("test/ndcg@10")
    assert "embedding_dim: 16" in (version / "hparams.yaml").read_text()


def test_online_only_with_credentials(monkeypatch, tmp_path):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine example.org login user password secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert not has_credentials()
    assert wandb_logger(save_dir=str(tmp_path))._offline  # no run is started: that waits for the trainer
    netrc.write_text("machine api.wandb.ai login user password " + "k" * 40 + "\n")
    assert has_credentials() and not wandb_logger(save_dir=str(tmp_path))._offline
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_logger(save_dir=str(tmp_path))._offline
    assert not (tmp_path / "wandb").exists()


def test_only_global_rank_zero_creates_a_run(monkeypatch, tmp_path):
    """What DDP runs rely on: Lightning's WandbLogger gives ranks > 0 a dummy run, and WandbTracking acts on
    rank 0 only. (A 2-process `trainer=ddp_cpu logger=wandb` run left one offline run with every record.)"""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger = WandbLogger(save_dir=str(tmp_path), offline=True)
    assert isinstance(logger.experiment, DummyExperiment)
    logger.log_hyperparams({"lr": 0.1})
    logger.log_metrics({"val/ndcg@10": 0.5}, step=1)

    class OtherRank:
        is_global_zero = False

        @property
        def loggers(self):
            raise AssertionError("WandbTracking read the loggers on a rank > 0")

    WandbTracking().teardown(OtherRank(), None, "test")
    WandbTracking().on_exception(OtherRank(), None, RuntimeError())
    assert not (tmp_path / "wandb").exists()


def test_exposure_plot_reads_the_log_folder_on_every_rank(tmp_path):
    """`trainer.log_dir` is a broadcast under DDP: a rank that skipped it left rank 0 waiting (a hang with
    logger=wandb, which adds the plot); every rank reads it, only rank 0 draws."""

    class Trainer:
        is_global_zero, current_epoch, loggers, reads = False, 0, [], 0

        @property
        def log_dir(self):
            self.reads += 1
            return str(tmp_path)

    class Module:
        def log(self, *args, **kwargs):
            pass

    diversity = DiversityMetrics(k=2, num_items=5)
    diversity.update(torch.tensor([[1, 2], [2, 3]]), torch.tensor([0, 4]))
    trainer = Trainer()
    diversity._end(trainer, Module(), "val")
    assert trainer.reads == 1 and not list(tmp_path.iterdir())


def test_summary_holds_the_best_epoch_and_the_artifact_a_zoo_card(tmp_path):
    """The monitored metric's summary is the best epoch's (here not the last), and a zoo build's Hub folder,
    card included, goes into the model artifact beside the checkpoint."""
    (tmp_path / "epoch001.ckpt").write_bytes(b"weights")
    hub_folder = tmp_path / "hub"
    hub_folder.mkdir()
    (hub_folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# card\n")
    publisher = ZooPublisher(folder=hub_folder)
    publisher.written = hub_folder
    best = ModelCheckpoint(monitor="val/ndcg@10", mode="max")
    best.best_model_path, best.best_model_score = str(tmp_path / "epoch001.ckpt"), torch.tensor(0.25)

    class Trainer:
        checkpoint_callbacks, callbacks, datamodule = [best], [publisher], None
        callback_metrics = {"val/ndcg@10": torch.tensor(0.125), "test/ndcg@10": torch.tensor(0.2)}

    class Run:
        id, summary, logged = "abc123", {"val/ndcg@10": 0.125}, []

        def log_artifact(self, artifact, aliases):
            self.logged.append((artifact, aliases))

    class Logger:
        experiment = Run()

    tracking = WandbTracking()
    tracking.log_run(Trainer(), None, Logger())
    run = Logger.experiment
    assert run.summary["val/ndcg@10"] == 0.25
    ((artifact, aliases),) = run.logged
    assert aliases == ["best"] and artifact.type == "model" and artifact.name == "model-abc123"
    assert set(artifact.manifest.entries) == {"model.ckpt", "hub/README.md"}
    assert artifact.metadata["val/ndcg@10"] == 0.25 and artifact.metadata["test/ndcg@10"] == pytest.approx(0.2)
