"""The `seqrec` command end to end (train -> eval -> recommend) and its errors, as a user runs it."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import chain_log
from omegaconf import OmegaConf

from lightning_seqrec import cli
from lightning_seqrec.run import RunStopped

OFFLINE = {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def seqrec_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lightning_seqrec.cli", *args]


def seqrec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **OFFLINE}
    return subprocess.run(seqrec_command(*args), cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def chain_table(folder: Path) -> list[str]:
    """The chain log written as a user's CSV in `folder`, and the `data=table` overrides of a tiny model on it."""
    chain_log().to_csv(folder / "events.csv", index=False)
    data = ["data=table", f"data.path={folder / 'events.csv'}", "data.columns.user_id=user"]
    return [*data, "data.columns.item_id=item", "data.columns.timestamp=ts", "data.max_len=8", "model.embedding_dim=16"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """`seqrec train` on a user's own CSV through data=table, two epochs, logged to W&B offline."""
    tmp = tmp_path_factory.mktemp("cli")
    result = seqrec(
        "train",
        *chain_table(tmp),
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
        "show_user=u3",
        "logger=wandb",
        f"hydra.run.dir={tmp / 'run'}",
        cwd=tmp,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp, result


def test_train_prints_metrics_and_recommendations(trained_run):
    tmp, result = trained_run
    rows = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.split()}
    assert {"hr", "ndcg", "mrr", "coverage", "gini", "hr_head"} <= rows
    assert "top-10 for user u3:" in result.stdout
    assert (tmp / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp / "run" / "training_curves.png").is_file()  # callbacks=default draws them into the run folder
    offline_runs = list((tmp / "run" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and any(offline_runs[0].glob("*.wandb"))


def test_eval_reproduces_the_test_metrics(trained_run):
    tmp, train = trained_run
    best = next(p for p in (tmp / "run" / "checkpoints").glob("epoch*.ckpt"))
    result = seqrec("eval", f"ckpt={best}", f"hydra.run.dir={tmp / 'eval'}", cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in train.stdout.splitlines() if x.startswith("  ndcg "))
    assert line in result.stdout.splitlines()  # same checkpoint, same data recorded in it -> same numbers


def test_recommend_by_user_and_by_history(trained_run):
    tmp, _ = trained_run
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    by_user = seqrec("recommend", f"ckpt={ckpt}", "user=u3", "k=5", f"hydra.run.dir={tmp / 'r1'}", cwd=tmp)
    assert by_user.returncode == 0, by_user.stderr[-3000:]
    assert by_user.stdout.count("(item ") == 5
    by_history = seqrec("recommend", f"ckpt={ckpt}", "history=[1,2,3]", f"hydra.run.dir={tmp / 'r2'}", cwd=tmp)
    assert by_history.returncode == 0 and by_history.stdout.count("(item ") == 10


def test_unknown_item_and_user_are_clear_errors(trained_run):
    tmp, _ = trained_run
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    bad_item = seqrec("recommend", f"ckpt={ckpt}", "history=[1,999]", f"hydra.run.dir={tmp / 'e1'}", cwd=tmp)
    assert bad_item.returncode == 2
    assert "not in this model's vocabulary: 999" in bad_item.stderr and "unknown='drop'" in bad_item.stderr
    bad_user = seqrec("recommend", f"ckpt={ckpt}", "user=nobody", f"hydra.run.dir={tmp / 'e2'}", cwd=tmp)
    assert bad_user.returncode == 2 and "User 'nobody' is not in" in bad_user.stderr


def test_wrong_config_keys_name_the_key_and_the_fix(tmp_path):
    typo = seqrec("train", "data.max_lenn=5", cwd=tmp_path)
    assert typo.returncode != 0
    assert "data.max_lenn" in typo.stderr and "+data.max_lenn" in typo.stderr  # Hydra names the key and the fix
    extra = seqrec("train", "+model.num_layer=3", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    assert extra.returncode == 2
    assert "num_layer" in extra.stderr and "--cfg job" in extra.stderr
    unknown = seqrec("frobnicate", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown command 'frobnicate'" in unknown.stderr


def test_missing_checkpoint_and_malformed_data(tmp_path):
    missing = seqrec("eval", "ckpt=nope.ckpt", f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "bad.csv").write_text("user,item\nu1,1\n")
    bad = seqrec(
        "train",
        "data=table",
        f"data.path={tmp_path / 'bad.csv'}",
        f"hydra.run.dir={tmp_path / 'b'}",
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "user_id" in bad.stderr


def test_resume_into_a_new_run_folder_keeps_the_best_checkpoint_so_far(tmp_path):
    """`ckpt_path=` with another run folder continues the checkpoints where they were, so the best score before the
    resume carries over (in a new folder Lightning would forget it and the test would score a later epoch)."""
    data = chain_table(tmp_path)
    run = [*data, "trainer.enable_progress_bar=false", "logger=none"]
    first = seqrec("train", *run, "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / 'first'}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoints = tmp_path / "first" / "checkpoints"

    def best_state() -> tuple[int, dict]:
        saved = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
        return saved["epoch"], next(v for k, v in saved["callbacks"].items() if k.startswith("ModelCheckpoint"))

    epoch, before = best_state()
    resumed = seqrec(
        "train", *run, "trainer.max_epochs=4", f"ckpt_path={checkpoints / 'last.ckpt'}",
        f"hydra.run.dir={tmp_path / 'second'}", cwd=tmp_path,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoints continue in" in (tmp_path / "second" / "cli.log").read_text()
    assert not (tmp_path / "second" / "checkpoints").exists()
    epoch_after, after = best_state()
    assert (epoch, epoch_after) == (1, 3)
    assert after["best_model_score"] >= before["best_model_score"]
    assert Path(after["best_model_path"]).parent == checkpoints.resolve() and Path(after["best_model_path"]).is_file()
    missing = seqrec("train", *run, "ckpt_path=nope.ckpt", f"hydra.run.dir={tmp_path / 'third'}", cwd=tmp_path)
    assert missing.returncode == 2 and "pass the run's checkpoints/last.ckpt" in missing.stderr


def test_last_ckpt_is_the_last_epoch_while_the_test_scores_the_best(tmp_path):
    """`last.ckpt` is written at every epoch's end (Lightning's `save_last` writes it only when a new best is saved,
    so a run resumed after a plateau would redo every epoch since its best), and the test still scores the best
    epoch. Ranking by lowest NDCG makes the best epoch differ from the last on this data."""
    data = chain_table(tmp_path)
    result = seqrec(
        "train", *data, "trainer.max_epochs=3", "callbacks.model_checkpoint.mode=min", "logger=none",
        "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = tmp_path / "run" / "checkpoints"
    (best,) = checkpoints.glob("epoch*.ckpt")
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 2 and best.name != "epoch002.ckpt"
    assert f"best checkpoint {best}" in result.stdout


def stop_after_first_epoch(tmp_path: Path, signum: signal.Signals) -> tuple[int, str, Path]:
    """Start an endless `seqrec train` on the chain table, send `signum` once its first `last.ckpt` is written, and
    return its exit status, its stderr and that checkpoint's path."""
    data = chain_table(tmp_path)
    args = ["train", *data, "trainer.max_epochs=100000", "callbacks.early_stopping.patience=100000", "logger=none"]
    args += ["trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, **OFFLINE}
    proc = subprocess.Popen(
        seqrec_command(*args), cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background job may inherit SIG_IGN
    )  # fmt: skip
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    try:
        while not last.exists() and proc.poll() is None:  # the run has finished an epoch
            time.sleep(0.5)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return proc.returncode, stderr, last


def test_sigterm_stops_training_with_status_143_and_says_how_to_resume(tmp_path):
    """Lightning turns SIGTERM into SystemExit(0), so a preempted run would pass for a finished one: `seqrec`
    exits 143 instead, before the test, naming the checkpoint to resume from."""
    returncode, stderr, last = stop_after_first_epoch(tmp_path, signal.SIGTERM)
    assert returncode == 143, stderr[-3000:]
    assert "training stopped by SIGTERM in epoch" in stderr and f"ckpt_path={last}" in stderr
    assert not (tmp_path / "run" / "test_metrics.json").exists()


def test_sigint_stops_training_with_status_130_and_says_how_to_resume(tmp_path):
    """Ctrl-C ends a run like SIGTERM does: status 128 + 2, before the test, naming the checkpoint to resume from
    (Lightning itself would exit 1 without saying where the run stands)."""
    returncode, stderr, last = stop_after_first_epoch(tmp_path, signal.SIGINT)
    assert returncode == 130, stderr[-3000:]
    assert "training stopped by SIGINT in epoch" in stderr and f"ckpt_path={last}" in stderr
    assert not (tmp_path / "run" / "test_metrics.json").exists()


def test_a_run_stopped_before_its_first_checkpoint_says_there_is_none(capsys):
    def stopped_by(signum):
        def task(cfg):
            raise RunStopped(signum, epoch=0, resume_from="")  # the every-epoch last.ckpt not written yet

        return cli._reporting(task)

    with pytest.raises(SystemExit) as stop:
        stopped_by(signal.SIGINT)(OmegaConf.create({}))
    assert stop.value.code == 130
    assert "stopped by SIGINT in epoch 0" in capsys.readouterr().err.replace("\n", " ")
    with pytest.raises(SystemExit):
        stopped_by(signal.SIGTERM)(OmegaConf.create({}))
    assert "No checkpoint was written yet" in capsys.readouterr().err


def test_test_metrics_json_stays_json_when_a_metric_is_nan(tmp_path):
    """Every user's last (test) item here is one no training sequence holds, so it is a tail item and the HR of
    the head and mid popularity buckets averages over no user: NaN, written as null rather than as invalid JSON."""
    log = chain_log()
    last = log.groupby("user").tail(1).assign(item=31, ts=lambda rows: rows["ts"] + 1)
    pd.concat([log, last]).to_csv(tmp_path / "events.csv", index=False)
    data = ["data=table", f"data.path={tmp_path / 'events.csv'}", "data.columns.user_id=user"]
    data += ["data.columns.item_id=item", "data.columns.timestamp=ts", "data.max_len=8", "model.embedding_dim=16"]
    result = seqrec(
        "train", *data, "trainer.max_epochs=1", "logger=none", "trainer.enable_progress_bar=false",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]

    def refuse(constant: str):
        raise AssertionError(f"test_metrics.json holds {constant}, which is not JSON")

    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text(), parse_constant=refuse)
    assert metrics["test/hr_head@10"] is None and metrics["test/hr_tail@10"] is not None
    assert 0 <= metrics["test/ndcg@10"] <= 1


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_a_ddp_run_ends_like_a_single_process_one(tmp_path):
    """The README's `seqrec train trainer=ddp_cpu` fits and tests in two spawned processes; the parent, whose copy of
    the module never saw the data, still prints the recommendations and exits 0. The default CSV logger's
    metrics.csv holds the fit's and the test's columns (each phase's spawned writer starts from the file's header)."""
    limits = ["+trainer.limit_train_batches=2", "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2"]
    result = seqrec(
        "train", "trainer=ddp_cpu", "trainer.max_epochs=1", *limits, "model.embedding_dim=16",
        "trainer.enable_progress_bar=false", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "top-10 for user" in result.stdout and result.stdout.count("(item ") == 10
    assert 0 <= json.loads((tmp_path / "run" / "test_metrics.json").read_text())["test/ndcg@10"] <= 1
    assert (tmp_path / "run" / "training_curves.png").is_file()  # by the rank-0 process, after a loss all-reduce
    with open(next((tmp_path / "run" / "csv").rglob("metrics.csv")), newline="") as file:
        rows = list(csv.DictReader(file))
    assert any(row["val/ndcg@10"] for row in rows) and any(row["test/ndcg@10"] for row in rows)
