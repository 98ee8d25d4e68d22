"""The W&B sweep files of configs/sweep/: each parses, each value of each parameter composes with the file's fixed
overrides, and the command a W&B agent starts for sampled values (rendered by W&B's own code) trains through
`seqrec` (one tiny step) into an offline W&B run holding the sweep's metric. No W&B server is reachable here, so
`sweep create` / `agent` are checked up to the server: the check they run first, and their one-line failure."""

from __future__ import annotations

import csv
import random
import subprocess
import sys

import pytest
import yaml
from conftest import chain_log, require_shared
from omegaconf import OmegaConf
from wandb_helpers import offline_env, updates, wandb_records

from lightning_seqrec import cli, run, sweeps
from lightning_seqrec.errors import ConfigError

SWEEPS = sorted(path.stem for path in sweeps.sweep_folder().glob("*.yaml"))
ONE_STEP = ["trainer.max_epochs=1", "+trainer.limit_train_batches=1", "+trainer.limit_val_batches=1"]
ONE_STEP += ["trainer.enable_progress_bar=false", "test=false"]  # one training step and its validation


def test_one_sweep_per_method():
    assert SWEEPS == ["fecosr", "ikea", "rcl", "sasrec_ce", "sasrec_ce_ml-1m", "tme_psr"]


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_file_parses_and_every_value_composes(name):
    sweep = sweeps.load(name)
    assert (sweep.metric, sweep.maximize) == ("val/ndcg@10", True)
    assert sweep.config["command"][:2] == ["${env}", "seqrec"] and sweep.config["command"][-1] == sweeps.ARGS
    experiments = [o for o in sweep.fixed_overrides if o.startswith("experiment=")]
    assert experiments or "experiment" in sweep.parameters
    composed = sweeps.check(sweep)
    texts = {v for n, spec in sweep.parameters.items() for v in sweeps.candidates(n, spec) if isinstance(v, str)}
    assert texts <= {o.partition("=")[2] for overrides in composed for o in overrides}  # each group choice composed
    cfg = run.compose(sweep.task, composed[0])  # the parameters land where they say
    for key, value in sweeps.first_values(sweep).items():
        if "." in key:
            assert OmegaConf.select(cfg, key) == pytest.approx(value)


def test_the_agent_renders_parameters_as_hydra_overrides():
    values = {"model.lr": 1e-05, "model.num_heads": 4, "inputs": "dual_time_user", "trainer.enable_progress_bar": False}
    command = sweeps.load("tme_psr").command(values)
    fixed = ["/usr/bin/env", "seqrec", "train", "experiment=tme_psr_beauty", "logger=wandb"]
    rendered = ["model.lr=1e-05", "model.num_heads=4", "inputs=dual_time_user", "trainer.enable_progress_bar=False"]
    assert command == fixed + rendered
    cfg = run.compose("train", command[3:])
    assert cfg.model.lr == 1e-05 and cfg.model.num_heads == 4 and cfg.trainer.enable_progress_bar is False
    assert cfg.model.input_encoder_kwargs.gating == "user" and "wandb" in cfg.logger


BROKEN = {
    "misspelt key": ({"parameters": {"model.lrr": {"values": [0.1]}}}, "model.lrr"),
    "no such experiment": ({"parameters": {"experiment": {"values": ["sasrec_beauty_nope"]}}}, "sasrec_beauty_nope"),
    "multirun": ({"command": ["${env}", "seqrec", "train", "-m", sweeps.ARGS]}, "multirun"),
    "no parameters in the command": ({"command": ["${env}", "seqrec", "train"]}, "args_no_hyphens"),
    "hyphenated flags": ({"command": ["${env}", "seqrec", "train", "${args}", sweeps.ARGS]}, "no other"),
    "not seqrec": ({"command": ["${env}", "python", "train.py", sweeps.ARGS]}, "seqrec train"),
    "grid over a range": ({"method": "grid"}, "method=grid"),
    "unsupported distribution": ({"parameters": {"model.lr": {"distribution": "beta", "a": 1}}}, "beta"),
    "empty range": ({"parameters": {"model.lr": {"min": 0.1, "max": 0.01}}}, "min must be below max"),
    "no goal": ({"metric": {"name": "val/ndcg@10", "goal": "best"}}, "goal"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_sweep_file_is_refused_in_one_line(case, tmp_path):
    change, message = BROKEN[case]
    config = {**sweeps.load("sasrec_ce").config, **change}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")) as refused:
        sweeps.check(sweeps.load(path))
    assert "\n" not in str(refused.value).strip()


def test_create_and_agent_without_a_server_fail_in_one_line(tmp_path):
    """In a process of their own: wandb's failed login leaves its process-wide state such that a later offline run's
    `finish()` in the same process returned before writing its records."""
    env = {**offline_env(tmp_path), "WANDB_BASE_URL": "http://127.0.0.1:9", "NETRC": str(tmp_path / "no-netrc")}
    env.pop("WANDB_API_KEY", None)
    script = (
        "import sys\nfrom lightning_seqrec import cli\n"
        "for args in (['create', 'rcl'], ['agent', 'entity/project/abc123', 'count=1']):\n"
        "    try:\n        cli.main(['sweep', *args])\n    except SystemExit as stop:\n"
        "        print('exit', stop.code, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    lines = [line for line in result.stderr.splitlines() if line.startswith(("seqrec:", "exit"))]
    assert [line for line in lines if line.startswith("exit")] == ["exit 2", "exit 2"], result.stderr[-2000:]
    errors = [line for line in lines if line.startswith("seqrec:")]
    assert len(errors) == 2 and all(e.startswith("seqrec: error: W&B could not") and "seqrec tune" in e for e in errors)


def sample(spec: dict, rng: random.Random, name: str):
    """A value as a W&B agent draws one: a listed value, or a point of the range."""
    kind = sweeps.distribution(name, spec)
    if kind in ("constant", "categorical"):
        return rng.choice(sweeps.candidates(name, spec))
    low, high = sweeps.bounds(spec, kind)
    return rng.randint(low, high) if kind == "int_uniform" else rng.uniform(low, high)


def tiny_data(name: str, folder) -> list[str]:
    """Overrides that put sweep `name`'s command on small data (the command's own experiment stays)."""
    if name == "ikea":
        sample_log = require_shared("retailrocket") / "events_sample_1500visitors.csv.gz"
        return [f"data.path={sample_log}", *ONE_STEP]
    if name == "fecosr":
        pytest.importorskip("flwr", reason="the federated sweep needs the [federated] extra")
        from federated_helpers import MARKETS, write_markets

        data = [f"data.path={write_markets(folder / 'markets')}", f"data.markets=[{','.join(MARKETS)}]"]
        model = ["model.embedding_dim=16", "model.num_blocks=1", "model.eval_ks=[5,10]"]
        federation = ["federation.engine=local", "federation.num_rounds=1", "trainer.accelerator=cpu"]
        return [*data, "data.max_len=8", "data.batch_size=16", *model, *federation, "+trainer.limit_train_batches=1"]
    chain_log().to_csv(folder / "events.csv", index=False)
    columns = ["data.columns.user_id=user", "data.columns.item_id=item", "data.columns.timestamp=ts"]
    return ["data=table", f"data.path={folder / 'events.csv'}", *columns, "data.max_len=8", *ONE_STEP]


WANDB_CHECKED = ("fecosr", "ikea", "sasrec_ce")
"""Sweeps whose one-step run logs to offline W&B as the agent's would; the others log to CSV (the W&B records of a
train run are checked in test_tracking.py), which keeps this file's time down."""


@pytest.mark.parametrize("name", SWEEPS)
def test_the_agents_command_trains_one_step_through_seqrec(name, tmp_path, monkeypatch):
    sweep = sweeps.load(name)
    rng = random.Random(SWEEPS.index(name))
    values = {key: sample(spec, rng, key) for key, spec in sweep.parameters.items()}
    command = sweep.command(values)
    assert command[:3] == ["/usr/bin/env", "seqrec", sweep.task]
    for key, value in offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))  # the logger sets it; restored after the test
    loggers = [] if name in WANDB_CHECKED else ["logger=csv"]
    cli.main([*command[2:], *tiny_data(name, tmp_path), *loggers, f"hydra.run.dir={tmp_path / 'run'}"])
    if loggers:
        (version,) = (tmp_path / "run" / "csv").glob("version_*")
        config = yaml.safe_load((version / "hparams.yaml").read_text())
        validated = [row for row in csv.DictReader((version / "metrics.csv").open()) if row.get("val/ndcg@10")]
        assert len(validated) == 1 and 0 <= float(validated[0]["val/ndcg@10"]) <= 1
    else:
        (folder,) = (tmp_path / "run" / "wandb").glob("offline-run-*")
        records = wandb_records(folder)
        config = {k: v for update in updates(records, "config") for k, v in update.items()}
        summary = {k: v for update in updates(records, "summary") for k, v in update.items()}
        assert 0 <= summary["val/ndcg@10"] <= 1
    for key, value in values.items():
        if "." in key:
            assert OmegaConf.select(OmegaConf.create(config), key) == pytest.approx(value)
