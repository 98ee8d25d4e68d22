"""`seqrec tune`: a sweep file's search space with Optuna in an SQLite study that resumes after its process is
killed (to the same total of finished trials, the earlier ones untouched, the killed trial's parameters run again,
going on from its last checkpoint),
prunes on validation NDCG@10, and writes the best trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import chain_log
from optuna.trial import TrialState

from lightning_seqrec import sweeps, tune
from lightning_seqrec.errors import ConfigError

SEARCH = {
    "method": "random",
    "metric": {"name": "val/ndcg@10", "goal": "maximize"},
    "parameters": {
        "model.lr": {"distribution": "log_uniform_values", "min": 0.0001, "max": 0.05},
        "model.dropout": {"values": [0.0, 0.2]},
    },
    "command": ["${env}", "seqrec", "train", "logger=wandb", "${args_no_hyphens}"],
}


def tiny_search(folder) -> tuple[str, list[str]]:
    """A two-parameter sweep file in `folder` and the overrides of two-epoch trials on the chain log."""
    (folder / "tiny.yaml").write_text(yaml.safe_dump(SEARCH))
    chain_log().to_csv(folder / "events.csv", index=False)
    data = ["data=table", f"data.path={folder / 'events.csv'}", "data.columns.user_id=user", "data.max_len=8"]
    data += ["data.columns.item_id=item", "data.columns.timestamp=ts"]
    model = ["model.embedding_dim=8", "model.num_blocks=1", "model.num_heads=1"]
    trainer = ["trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
    return str(folder / "tiny.yaml"), [*data, *model, *trainer, "logger=none", "test=false"]


def snapshot(study) -> list[tuple]:
    return [(t.number, t.state, t.params, t.value, dict(t.intermediate_values)) for t in study.get_trials()]


def test_an_interrupted_study_resumes_to_its_total(tmp_path, capsys):
    sweep_file, overrides = tiny_search(tmp_path)
    options = [f"dir={tmp_path / 'study'}", "startup_trials=1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    command = [sys.executable, "-m", "lightning_seqrec.cli", "tune", sweep_file, "n_trials=5", *options, *overrides]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    storage, deadline = f"sqlite:///{tmp_path / 'study' / 'study.db'}", time.monotonic() + 300
    try:
        while True:  # kill it in the middle of its fourth trial
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the first three trials took over 5 minutes"
            if (tmp_path / "study" / "study.db").exists():
                states = [t.state for t in optuna.load_study(study_name="tiny", storage=storage).get_trials()]
                if len(states) == 4 and states[3] == TrialState.RUNNING:
                    break
            time.sleep(0.1)
    finally:
        process.kill()
        process.wait()
    before = snapshot(optuna.load_study(study_name="tiny", storage=storage))
    assert all(t[1] in (TrialState.COMPLETE, TrialState.PRUNED) for t in before[:3])
    assert before[3][1] == TrialState.RUNNING

    tune.main([sweep_file, "n_trials=5", *options, *overrides])  # the same command again

    study = optuna.load_study(study_name="tiny", storage=storage)
    after = snapshot(study)
    assert after[:3] == before[:3]  # finished trials are kept as they were
    assert after[3][1] == TrialState.FAIL and after[4][2] == before[3][2]  # the killed trial ran again
    assert len(tune.finished(study)) == 5 and len(after) == 6
    pruned = [t for t in after if t[1] == TrialState.PRUNED]
    continued = {t.number for t in study.trials if tune.CONTINUES in t.user_attrs}  # the killed trial's, if any
    assert pruned and all(len(t[4]) == 1 for t in pruned if t[0] not in continued)  # stopped after epoch 1 of 2
    complete = [t for t in after if t[1] == TrialState.COMPLETE]
    assert all(t[3] == max(t[4].values()) for t in complete)  # a trial's value is its best epoch's
    best = yaml.safe_load((tmp_path / "study" / tune.BEST_FILE).read_text())
    assert best["best"]["value"] == max(t[3] for t in complete) == study.best_value
    assert best["trials"] == {"complete": len(complete), "pruned": len(pruned), "fail": 1}
    assert f"model.lr={study.best_params['model.lr']}" in best["command"] and "logger=none" in best["command"]
    printed = capsys.readouterr().out
    assert "trials [3] were left running by a stopped process" in printed and "best trial" in printed

    tune.main([sweep_file, "n_trials=5", *options, *overrides])  # finished: nothing more runs
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 6


def test_trials_that_need_several_processes_are_refused(tmp_path):
    sweep_file, overrides = tiny_search(tmp_path)
    with pytest.raises(ConfigError, match="cannot be tuned"):
        tune.main([sweep_file, "n_trials=1", f"dir={tmp_path / 'study'}", *overrides, "trainer=ddp_cpu"])


def test_search_space_maps_to_optuna(tmp_path):
    """Each W&B distribution becomes the Optuna suggestion of the same range (a log range stays log)."""
    space = {
        "a": {"values": ["x", "y"]},
        "b": {"min": 1, "max": 4},
        "c": {"distribution": "log_uniform_values", "min": 0.001, "max": 0.1},
        "d": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25},
        "e": {"distribution": "log_uniform", "min": -2.0, "max": 0.0},
        "f": {"value": 7},
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({**SEARCH, "parameters": space}))
    sweep = sweeps.load(tmp_path / "space.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = tune.suggest(trial, sweep)
    assert values["f"] == 7 and set(trial.params) == set("abcde")
    distributions = trial.distributions
    assert distributions["a"].choices == ("x", "y") and (distributions["b"].low, distributions["b"].high) == (1, 4)
    assert distributions["c"].log and distributions["e"].log and distributions["d"].step == 0.25
    assert distributions["e"].low == pytest.approx(0.1353, abs=1e-4) and distributions["e"].high == pytest.approx(1.0)


def test_a_trial_stopped_by_ctrl_c_runs_again_when_the_study_resumes(tmp_path, monkeypatch):
    """Training stopped by a signal (`RunStopped`, as Ctrl-C or SIGTERM leave it) stops the tuning with a line that
    says how to continue; the same command then runs the stopped trial's parameters first."""
    sweep_file, overrides = tiny_search(tmp_path)
    options = [f"dir={tmp_path / 'study'}", "n_trials=2"]
    real_train = tune.run.train

    def stopped_in_the_second_trial(cfg):
        if cfg.hydra.run.dir.endswith("trial_0001"):
            raise tune.run.RunStopped(signal.SIGINT, 0, "")
        return real_train(cfg)

    monkeypatch.setattr(tune.run, "train", stopped_in_the_second_trial)
    with pytest.raises(tune.TuneStopped, match="1 of 2 trials finished; the same `seqrec tune` command continues"):
        tune.main([sweep_file, *options, *overrides])
    monkeypatch.setattr(tune.run, "train", real_train)
    tune.main([sweep_file, *options, *overrides])
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[2].params == trials[1].params


def test_a_stopped_trial_goes_on_from_its_last_checkpoint_when_the_study_resumes(tmp_path, monkeypatch):
    """A trial stopped after an epoch (its `last.ckpt` written) is continued by the trial queued with its parameters:
    the same run folder, training from the next epoch, the first epoch's validation value reported again."""
    sweep_file, overrides = tiny_search(tmp_path)
    overrides = [o for o in overrides if o != "test=false"]  # test the continued run's best checkpoint
    options = [f"dir={tmp_path / 'study'}", "n_trials=1"]
    real_train = tune.run.train

    def stopped_after_the_first_epoch(cfg):
        cfg.trainer.max_epochs = 1
        real_train(cfg)  # epoch 0 trained, validated and checkpointed
        raise tune.run.RunStopped(signal.SIGTERM, 1, str(Path(cfg.output_dir) / "checkpoints" / "last.ckpt"))

    monkeypatch.setattr(tune.run, "train", stopped_after_the_first_epoch)
    with pytest.raises(tune.TuneStopped):
        tune.main([sweep_file, *options, *overrides])
    run_dir = tmp_path / "study" / "trial_0000"
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    monkeypatch.setattr(tune.run, "train", real_train)
    tune.main([sweep_file, *options, *overrides])
    stopped, continued = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir.parent / 'study.db'}").trials
    assert (stopped.state, continued.state) == (TrialState.FAIL, TrialState.COMPLETE)
    assert continued.params == stopped.params and continued.user_attrs[tune.CONTINUES] == 0
    assert continued.user_attrs[tune.RUN_DIR] == str(run_dir) and not (run_dir.parent / "trial_0001").exists()
    assert list(stopped.intermediate_values) == [0] and list(continued.intermediate_values) == [0, 1]
    assert continued.intermediate_values[0] == stopped.intermediate_values[0]  # reported again, not retrained
    assert continued.value == max(continued.intermediate_values.values())
    resumed = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["epoch"] == 1  # the second epoch, trained by the continued trial
    assert "ckpt_path" not in yaml.safe_load((run_dir.parent / tune.BEST_FILE).read_text())["command"]
