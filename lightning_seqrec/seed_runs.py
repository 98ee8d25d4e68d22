"""The training runs behind a multi-seed result: one run folder per seed, reused when it holds a finished run of the
same config, continued when it holds an interrupted one, refused when it holds another config's run.

`zoo.build` trains its recipe once per seed through `run_seed`, so an interrupted build resumes seed by seed and the
runs of a benchmark grid (`seqrec train` run folders) can be carded without training them again; `best_validated`
picks the seed whose weights are shipped and `mean_and_sd` summarises the seeds' test metrics. A reused folder is
read, never run: its recorded config is only compared with ours, its checkpoints are read with `weights_only`.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lightning_seqrec import run
from lightning_seqrec.checkpoint import read_checkpoint
from lightning_seqrec.errors import ConfigError

__all__ = ["SeedRun", "best_validated", "finished_run", "identity_differences", "mean_and_sd", "run_seed"]

log = logging.getLogger(__name__)

CONFIG_RECORD = Path(".hydra") / "config.yaml"
"""Where a run folder records its config: where the Hydra app (`seqrec train`) writes it."""
IDENTITY_SECTIONS = ("seed", "data", "model", "inputs", "objective", "embeddings", "trainer", "callbacks")
"""The config sections that decide what a run trains; loggers, paths and what is printed afterwards do not."""
RUN_OPTIONS = ("enable_progress_bar", "enable_model_summary", "default_root_dir")
"""Trainer keys that change how a run reports, not what it trains."""


@dataclass(frozen=True)
class SeedRun:
    """One seed's finished run: its folder, its best checkpoint with that checkpoint's validation score (`monitor`,
    `mode`), the test metrics of that checkpoint, and how this call got it (`trained`, `continued` or `reused`)."""

    seed: int
    run_dir: Path
    best_checkpoint: Path
    monitor: str
    mode: str
    val_score: float
    metrics: dict[str, float | None]
    how: str = "trained"


def run_seed(cfg: DictConfig) -> SeedRun:
    """The finished run of `cfg` (a composed `seqrec train` config) in its `hydra.run.dir`: read from the folder when
    it already holds one of this config, else trained there, continuing from the folder's `last.ckpt` when an earlier
    sitting was interrupted. A folder holding another config's run, or files without a recorded config, is refused."""
    run_dir = Path(cfg.hydra.run.dir).absolute()
    recorded, last = run_dir / CONFIG_RECORD, run_dir / "checkpoints" / "last.ckpt"
    with run.hydra_runtime(cfg):
        if recorded.is_file():
            differences = identity_differences(_read_record(recorded), cfg)
            if differences:
                raise ConfigError(
                    f"{run_dir} holds a run of another config (it differs in {', '.join(differences)}); "
                    "remove that folder or build into another hydra.run.dir=."
                )
        elif any(run_dir.iterdir()):
            raise ConfigError(
                f"{run_dir} holds files but no {CONFIG_RECORD} saying which config made them; "
                "remove that folder or build into another hydra.run.dir=."
            )
        if recorded.is_file() and (run_dir / run.METRICS_FILE).is_file():
            log.info("Seed %s: reusing the finished run in %s.", cfg.seed, run_dir)
            how = "reused"
        else:
            how = "trained"
            if last.is_file() and not cfg.ckpt_path:
                log.info("Seed %s: continuing the interrupted run in %s from %s.", cfg.seed, run_dir, last)
                cfg.ckpt_path, how = str(last), "continued"
            recorded.parent.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(OmegaConf.create({k: cfg[k] for k in cfg if k != "hydra"}), recorded)
            run.train(cfg)
    return finished_run(int(cfg.seed), run_dir, checkpoint_mode(cfg), how)


def checkpoint_mode(cfg: DictConfig) -> str:
    """`max` or `min`: how the config's monitored checkpoint callback ranks validation scores (Lightning's default
    is min)."""
    modes = {
        str(c.get("mode", "min"))
        for c in (cfg.get("callbacks") or {}).values()
        if c is not None and c.get("monitor") and str(c.get("_target_", "")).endswith("ModelCheckpoint")
    }
    if len(modes) != 1 or not modes <= {"max", "min"}:
        raise ConfigError("Seeds are ranked by one monitored ModelCheckpoint callback (callbacks.model_checkpoint).")
    return modes.pop()


def finished_run(seed: int, run_dir: Path, mode: str, how: str = "reused") -> SeedRun:
    """The `SeedRun` of a finished run folder: test metrics from `test_metrics.json`, the best checkpoint and its
    validation score from the state of the monitored checkpoint callback saved in `checkpoints/last.ckpt`; `mode` is
    how that callback ranked (`checkpoint_mode`)."""
    metrics_file, last = run_dir / run.METRICS_FILE, run_dir / "checkpoints" / "last.ckpt"
    for needed in (metrics_file, last):
        if not needed.is_file():
            raise ConfigError(
                f"{run_dir} has no {needed.relative_to(run_dir)}: a multi-seed result needs each run's test metrics "
                "and its checkpoints/last.ckpt (callbacks.last_checkpoint); run it with test=true and those callbacks."
            )
    states = read_checkpoint(last).get("callbacks", {}).values()
    monitored = [s for s in states if isinstance(s, dict) and s.get("monitor") and s.get("best_model_path")]
    if len(monitored) != 1:
        raise ConfigError(f"{last} records {len(monitored)} monitored checkpoint callbacks, not one best checkpoint.")
    state = monitored[0]
    best = run_dir / "checkpoints" / Path(str(state["best_model_path"])).name  # never a path outside the folder
    if not best.is_file():
        raise ConfigError(f"The best checkpoint of {run_dir}, {best}, is missing; remove the folder and train again.")
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{metrics_file} is not JSON ({err}); remove the folder and train again.") from err
    return SeedRun(
        seed=seed,
        run_dir=run_dir,
        best_checkpoint=best,
        monitor=str(state["monitor"]),
        mode=mode,
        val_score=float(state["best_model_score"]),
        metrics=metrics,
        how=how,
    )


def _read_record(path: Path) -> DictConfig:
    """A run folder's recorded config, read as YAML data (never run)."""
    try:
        return OmegaConf.load(path)
    except (yaml.YAMLError, OmegaConfBaseException, UnicodeDecodeError) as err:
        raise ConfigError(f"{path} is not a readable config ({err}); remove that run folder.") from err


def training_identity(cfg: DictConfig) -> dict:
    """What a config trains, as plain data: the sections that decide the weights, resolved (inside
    `run.hydra_runtime`, where run paths resolve to the run folder), without the trainer's reporting options."""
    identity = {key: _plain(cfg, key) for key in IDENTITY_SECTIONS if key in cfg}
    if isinstance(identity.get("trainer"), dict):
        identity["trainer"] = {k: v for k, v in identity["trainer"].items() if k not in RUN_OPTIONS}
    return identity


def _plain(cfg: DictConfig, key: str):
    """The config node at `key` as plain resolved data; one that does not resolve is compared as written."""
    node = cfg[key]
    if not OmegaConf.is_config(node):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException:
        return OmegaConf.to_container(node, resolve=False)


def identity_differences(recorded: DictConfig, cfg: DictConfig) -> list[str]:
    """The top-level keys of `training_identity` (`trainer`, `callbacks`: their entries) in which the recorded config
    and `cfg` differ; empty when both train the same model."""
    old, new = training_identity(recorded), training_identity(cfg)
    differences = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key in ("trainer", "callbacks"):
            differences += [f"{key}.{k}" for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
        elif a != b:
            differences.append(key)
    return differences


def best_validated(runs: Sequence[SeedRun]) -> SeedRun:
    """The run whose best checkpoint scored best on validation, as its checkpoint callback ranks (max or min)."""
    modes = {r.mode for r in runs}
    if len(modes) != 1 or len({r.monitor for r in runs}) != 1:
        raise ConfigError("The seeds' runs monitor different validation metrics; they are not runs of one recipe.")
    return (max if modes == {"max"} else min)(runs, key=lambda r: r.val_score)


def mean_and_sd(runs: Sequence[SeedRun]) -> tuple[dict[str, float], dict[str, float]]:
    """Each test metric's mean and sample sd over the runs (sd 0 for one run); a metric some run could not measure
    (null, e.g. the HR of a popularity bucket no test target falls in) is left out."""
    names = [k for k in runs[0].metrics if all(_finite(r.metrics.get(k)) for r in runs)]
    means = {k: statistics.fmean(r.metrics[k] for r in runs) for k in names}
    sds = {k: statistics.stdev(r.metrics[k] for r in runs) if len(runs) > 1 else 0.0 for k in names}
    return means, sds


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
