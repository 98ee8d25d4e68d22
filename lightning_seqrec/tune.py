"""`seqrec tune FILE n_trials=N`: the search space of a W&B sweep file (`configs/sweep/`) searched offline with Optuna.

Each trial's config is composed with Hydra's compose API from the sweep's command and the trial's parameters (the
overrides a W&B agent would pass), then run in this process (`run.train` inside `run.hydra_runtime`, or a federated
run). The study lives in SQLite and resumes: `n_trials` is the total of finished (complete or pruned) trials, so the
same command after an interruption runs only what is missing, and a trial its process left running (killed) is
marked failed and its parameters queued again; that trial continues the stopped run from its `last.ckpt`, so an
interruption costs at most an epoch of a long trial. `TrialPruning` reports the sweep's metric at every validation and
prunes with Optuna's median (or, when the file asks W&B for hyperband, Hyperband) pruner. The best trial's
parameters and value are printed and written to `<study folder>/best.yaml`.

    seqrec tune sasrec_ce n_trials=20 trainer.max_epochs=50
    seqrec tune rcl n_trials=30 study=rcl-beauty storage=sqlite:///tuning/rcl.db
"""

from __future__ import annotations

import math
import os
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import yaml

from lightning_seqrec import run
from lightning_seqrec.errors import ConfigError, SeqRecError
from lightning_seqrec.sweeps import Sweep, bounds, distribution, federated_score, load

OPTIONS = ("n_trials", "study", "storage", "dir", "pruner", "startup_trials", "sampler_seed")
PRUNERS = ("median", "hyperband", "none")
USAGE = (
    "usage: seqrec tune FILE n_trials=N [study=NAME storage=sqlite:///FILE dir=FOLDER pruner=median|hyperband|none "
    "startup_trials=5 sampler_seed=0] [hydra overrides for every trial]"
)
BEST_FILE = "best.yaml"
WORKER = "worker"
"""User attribute holding `host:pid` of the process running a trial, so that a resumed study can tell a trial whose
process was killed from one another worker is still running."""

RUN_DIR, CONTINUES = "run_dir", "continues"
"""Trial attributes: the trial's run folder, and the number of the stopped trial whose run it continues."""
RUNNING_TRIALS: dict[int, object] = {}
"""Trials running in this process by number: `TrialPruning`, built from plain config, finds its Optuna trial here."""


class TuneStopped(run.RunStopped):
    """Tuning stopped by a signal (Ctrl-C, SIGTERM) in a trial; the same command continues the study, the stopped
    trial's parameters first."""

    def __init__(self, stopped: run.RunStopped, study: str, finished: int, total: int):
        self.signum, self.epoch, self.resume_from = stopped.signum, stopped.epoch, ""
        SeqRecError.__init__(
            self,
            f"tuning stopped by {stopped.signum.name} with {finished} of {total} trials finished; the same `seqrec "
            f"tune` command continues study {study} and the stopped trial, from its last checkpoint if it wrote one.",
        )


class TrialPruning(L.Callback):
    """Reports `monitor` to Optuna trial number `trial` after every validation and stops the run with
    `optuna.TrialPruned` when the study's pruner says so."""

    def __init__(self, trial: int, monitor: str = "val/ndcg@10"):
        if trial not in RUNNING_TRIALS:
            raise ConfigError(
                f"TrialPruning(trial={trial}) reports to a trial of `seqrec tune` running in this process."
            )
        self.trial, self.monitor = RUNNING_TRIALS[trial], monitor

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import optuna

        if trainer.sanity_checking:
            return
        if self.monitor not in trainer.callback_metrics:
            logged = sorted(k for k in trainer.callback_metrics if k.startswith("val/"))
            raise ConfigError(f"The sweep's metric {self.monitor} was not logged; validation logs {logged}.")
        value = float(trainer.callback_metrics[self.monitor])
        self.trial.report(value, step=trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.monitor}={value:.4f} at epoch {trainer.current_epoch}")


# --------------------------------------------------------------------------------------------- the search space
def suggest(trial, sweep: Sweep) -> dict:
    """One value per sweep parameter from the Optuna `trial`, by its W&B distribution."""
    values = {}
    for name, spec in sweep.parameters.items():
        kind = distribution(name, spec, sweep.path)
        if kind == "constant":
            values[name] = spec["value"]
        elif kind == "categorical":
            values[name] = trial.suggest_categorical(name, spec["values"])
        elif kind == "int_uniform":
            values[name] = trial.suggest_int(name, spec["min"], spec["max"])
        elif kind == "q_uniform" and all(isinstance(spec[k], int) for k in ("min", "max", "q")):
            values[name] = trial.suggest_int(name, spec["min"], spec["max"], step=spec["q"])
        elif kind == "q_uniform":
            values[name] = trial.suggest_float(name, spec["min"], spec["max"], step=spec["q"])
        else:  # uniform, log_uniform_values, log_uniform
            low, high = bounds(spec, kind)
            values[name] = trial.suggest_float(name, low, high, log=kind != "uniform")
    return values


def grid_space(sweep: Sweep) -> dict[str, list]:
    """A grid sweep's parameters with their values (constants are not searched)."""
    return {name: spec["values"] for name, spec in sweep.parameters.items() if "values" in spec}


def make_sampler(sweep: Sweep, seed: int):
    """W&B's method as an Optuna sampler: grid -> GridSampler, random -> RandomSampler, bayes -> TPESampler."""
    import optuna

    if sweep.config["method"] == "grid":
        return optuna.samplers.GridSampler(grid_space(sweep), seed=seed)
    if sweep.config["method"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(sweep: Sweep, choice: str | None, startup_trials: int):
    """`median` (Optuna's MedianPruner after `startup_trials` trials), `hyperband` (the file's W&B
    `early_terminate` settings: `min_iter` epochs, `eta`) or `none`; by default hyperband when the file asks W&B for
    it, else median."""
    import optuna

    early = sweep.config.get("early_terminate") or {}
    choice = choice or ("hyperband" if early.get("type") == "hyperband" else "median")
    if choice not in PRUNERS:
        raise ConfigError(f"pruner={choice} is not one of {', '.join(PRUNERS)}.")
    if choice == "none":
        return optuna.pruners.NopPruner()
    if choice == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=int(early.get("min_iter", 1)), reduction_factor=early.get("eta", 3)
        )
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials)


# --------------------------------------------------------------------------------------------- one trial
def trial_overrides(sweep: Sweep, values: dict, extra: Sequence[str], run_dir: Path) -> list[str]:
    """The sweep command's overrides for `values` without its logger choice (trials log to the default, csv, unless
    `extra` names a logger), then `extra`, then the trial's run folder."""
    fixed = [o for o in sweep.overrides(values) if o.lstrip("+~").partition("=")[0] != "logger"]
    return [*fixed, *extra, f"hydra.run.dir={run_dir}"]


def run_trial(trial, sweep: Sweep, extra: Sequence[str], folder: Path) -> float:
    """Compose and run one trial; its value is the best validation `metric` over its epochs (the epoch whose
    checkpoint is tested), or for a federated sweep the last round's mean over markets."""
    from omegaconf import open_dict

    values = suggest(trial, sweep)
    run_dir, resume_from = continued_run(trial, folder)
    overrides = trial_overrides(sweep, values, extra, run_dir)
    trial.set_user_attr("overrides", overrides)
    trial.set_user_attr(RUN_DIR, str(run_dir))
    if resume_from is not None:
        overrides = [*overrides, f"ckpt_path={resume_from}"]
    cfg = run.compose(sweep.task, overrides)
    if sweep.task == "federated":
        from lightning_seqrec.federated.runner import run_federated

        with run.hydra_runtime(cfg):
            return federated_score(run_federated(cfg), sweep.metric)
    devices, strategy = cfg.trainer.get("devices", 1), str(cfg.trainer.get("strategy", "auto"))
    if str(devices) != "1" or "ddp" in strategy:
        raise ConfigError(
            f"seqrec tune runs each trial in this process, so trainer.devices={devices} strategy={strategy} (several "
            "processes) cannot be tuned; use one device, or a W&B sweep (`seqrec sweep`), whose runs are processes."
        )
    with open_dict(cfg):
        cfg.callbacks = cfg.callbacks or {}
        cfg.callbacks.trial_pruning = {
            "_target_": "lightning_seqrec.tune.TrialPruning",
            "trial": trial.number,
            "monitor": sweep.metric,
        }
    RUNNING_TRIALS[trial.number] = trial
    try:
        with run.hydra_runtime(cfg):
            result = run.train(cfg) if sweep.task == "train" else run.finetune(cfg)
    except run.RunStopped:
        trial.study.enqueue_trial(trial.params, skip_if_exists=False)  # an interrupted trial runs again on resume
        raise
    finally:
        RUNNING_TRIALS.pop(trial.number, None)
    trial.set_user_attr("test_metrics", {k: float(v) for k, v in result.metrics.items()})
    reported = [t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number][0].intermediate_values
    if not reported:
        raise ConfigError(f"Trial {trial.number} never validated, so it has no {sweep.metric}; let validation run.")
    return (max if sweep.maximize else min)(reported.values())


def continued_run(trial, folder: Path) -> tuple[Path, Path | None]:
    """The run folder of `trial` and the checkpoint it goes on from. A trial queued again after its run stopped (a
    failed trial of the same parameters whose folder holds `checkpoints/last.ckpt`, not yet taken up by another)
    continues that run in its folder from there, with the stopped trial's validation values reported again, so a
    long trial loses at most an epoch per interruption; any other trial starts in `trial_<number>`."""
    from optuna.trial import TrialState

    trials = trial.study.get_trials(deepcopy=False)
    taken = {t.user_attrs.get(CONTINUES) for t in trials}
    for earlier in reversed([t for t in trials if t.state == TrialState.FAIL and t.params == trial.params]):
        run_dir = Path(str(earlier.user_attrs.get(RUN_DIR, "")))
        last = run_dir / "checkpoints" / "last.ckpt"
        if earlier.number in taken or run_dir.parent != folder or not last.is_file():
            continue
        trial.set_user_attr(CONTINUES, earlier.number)
        for step, value in sorted(earlier.intermediate_values.items()):
            trial.report(value, step)
        print(f"trial {trial.number} continues stopped trial {earlier.number} from {last}", flush=True)
        return run_dir, last
    return folder / f"trial_{trial.number:04d}", None


# --------------------------------------------------------------------------------------------- the study
def finished(study) -> list:
    """The study's trials that count towards `n_trials`: complete or pruned."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def fail_orphans(study) -> list[int]:
    """Mark failed, and queue again, the trials left running by a process of this host that no longer exists (a
    `seqrec tune` killed mid-trial); a trial of another host or of a live process is left alone."""
    from optuna.trial import TrialState

    orphans = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        host, _, pid = str(trial.user_attrs.get(WORKER, "")).rpartition(":")
        if host != socket.gethostname() or not pid.isdigit() or _alive(int(pid)):
            continue
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
        orphans.append(trial.number)
    return orphans


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tune(
    sweep: Sweep,
    n_trials: int,
    overrides: Sequence[str] = (),
    study_name: str | None = None,
    storage: str | None = None,
    folder: str | Path | None = None,
    pruner: str | None = None,
    startup_trials: int = 5,
    sampler_seed: int = 0,
):
    """Run trials of `sweep` until the study holds `n_trials` finished ones; returns the Optuna study. The study is
    `study_name` (the sweep's name) in `storage` (`sqlite:///<folder>/study.db`), trial run folders and `best.yaml`
    are in `folder` (`outputs/tune/<study>`), and `overrides` go to every trial after the sweep's own."""
    import optuna

    if n_trials < 1:
        raise ConfigError(f"n_trials={n_trials}: pass the total number of trials to finish, n_trials=<N >= 1>.")
    study_name = study_name or sweep.name
    folder = Path(folder or Path("outputs", "tune", study_name)).absolute()
    folder.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{folder / 'study.db'}"
    direction = "maximize" if sweep.maximize else "minimize"
    try:
        study = optuna.create_study(study_name=study_name, storage=storage, direction=direction, load_if_exists=True)
    except Exception as err:  # sqlalchemy's errors for a bad URL or an unreadable file
        raise ConfigError(f"storage={storage} could not be opened ({err}); pass storage=sqlite:///<file>.") from err
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"Study {study_name} in {storage} is {study.direction.name.lower()}d; this sweep {direction}s."
        )
    study.sampler = make_sampler(sweep, sampler_seed + len(study.trials))  # a resumed study draws new points
    study.pruner = make_pruner(sweep, pruner, startup_trials)
    retried = fail_orphans(study)
    if retried:
        print(f"trials {retried} were left running by a stopped process: marked failed, their parameters queued again")
    if sweep.config["method"] == "grid":
        n_trials = min(n_trials, math.prod(len(v) for v in grid_space(sweep).values()))

    def objective(trial):
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        return run_trial(trial, sweep, overrides, folder)

    while len(finished(study)) < n_trials:
        before = len(study.trials)
        try:
            study.optimize(objective, n_trials=n_trials - len(finished(study)))
        except run.RunStopped as stopped:
            raise TuneStopped(stopped, study_name, len(finished(study)), n_trials) from stopped
        if len(study.trials) == before:  # the sampler stopped the study (a grid with every point run)
            break
    write_best(study, sweep, folder)
    return study


def best_record(study, sweep: Sweep) -> dict:
    """The best trial as plain data: its number, value, parameters, test metrics, and the command that retrains it."""
    from optuna.trial import TrialState

    best = study.best_trial
    overrides = [o for o in best.user_attrs.get("overrides", []) if not o.startswith(("hydra.run.dir=", "ckpt_path="))]
    states = [t.state for t in study.trials]
    return {
        "study": study.study_name,
        "sweep": str(sweep.path),
        "metric": sweep.metric,
        "goal": "maximize" if sweep.maximize else "minimize",
        "trials": {s.name.lower(): states.count(s) for s in TrialState if states.count(s)},
        "best": {
            "trial": best.number,
            "value": best.value,
            "params": best.params,
            "test_metrics": best.user_attrs.get("test_metrics", {}),
        },
        "command": shlex.join(["seqrec", sweep.task, *overrides]),
    }


def write_best(study, sweep: Sweep, folder: Path) -> Path | None:
    """`best.yaml` in `folder` (when a trial completed), and the same printed."""
    if not any(t.value is not None and t.state.name == "COMPLETE" for t in study.trials):
        print(f"study {study.study_name}: no trial completed yet")
        return None
    record = best_record(study, sweep)
    path = folder / BEST_FILE
    path.write_text(yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
    best = record["best"]
    print(f"\nstudy {study.study_name}: {record['trials']}")
    print(f"best trial {best['trial']}: {sweep.metric} = {best['value']:.4f}")
    for name, value in best["params"].items():
        print(f"  {name}={value}")
    print(f"retrain it: {record['command']}\nwritten to {path}")
    return path


# --------------------------------------------------------------------------------------------- command line
def main(args: list[str]) -> None:
    """`seqrec tune FILE n_trials=N [options] [overrides]`: options are `OPTIONS`, anything else a Hydra override."""
    if not args or "=" in args[0]:
        raise ConfigError(f"seqrec tune needs a sweep file first; {USAGE}")
    try:
        import optuna  # noqa: F401
    except ImportError as err:
        raise ConfigError(f"seqrec tune needs Optuna ({err}); pip install 'lightning-seqrec[tune]'.") from err
    sweep = load(args[0])
    chosen, overrides = {}, []
    for arg in args[1:]:
        key, _, value = arg.partition("=")
        if key in OPTIONS:
            chosen[key] = value
        else:
            overrides.append(arg)
    if "n_trials" not in chosen:
        raise ConfigError(f"n_trials is required: pass n_trials=<total trials to finish>; {USAGE}")
    numbers = {}
    for key in ("n_trials", "startup_trials", "sampler_seed"):
        if key in chosen:
            if not chosen[key].isdigit():
                raise ConfigError(f"{key}={chosen[key]} is not a whole number; pass {key}=<N>.")
            numbers[key] = int(chosen[key])
    tune(
        sweep,
        overrides=overrides,
        study_name=chosen.get("study"),
        storage=chosen.get("storage"),
        folder=chosen.get("dir"),
        pruner=chosen.get("pruner"),
        **numbers,
    )
