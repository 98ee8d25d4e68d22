"""The run as a library call: compose a config, fit, test the best checkpoint, write `test_metrics.json`, return the
metrics. The `seqrec` command, `zoo.build`, and sweep or federated entry points all run through here.

    from lightning_seqrec import run
    result = run.run_task("train", ["experiment=sasrec_beauty_ce", "trainer.max_epochs=5"])
    result.metrics["test/ndcg@10"], result.best_checkpoint

`train(cfg)` / `finetune(cfg)` take a config composed as the command composes it (with its `hydra` node, since the
configs use `${hydra:runtime.output_dir}`); `compose` and `hydra_runtime` give one outside the Hydra app.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, read_write

from lightning_seqrec.checkpoint import SafeCheckpointIO, read_checkpoint
from lightning_seqrec.errors import ConfigError, SeqRecError
from lightning_seqrec.finetune import adapt_to_data, load_source

log = logging.getLogger("lightning_seqrec")

METRICS_FILE = "test_metrics.json"


@dataclass
class RunResult:
    """What a finished run leaves: its test metrics (empty with `test=false`), the checkpoint they were measured on
    ("" for the last weights), the trained module and its data, and whether this process is the global rank 0."""

    metrics: dict[str, float]
    best_checkpoint: str
    module: L.LightningModule
    datamodule: L.LightningDataModule
    is_global_zero: bool


class RunStopped(SeqRecError):
    """Training was stopped by a signal (SIGTERM: preemption, `kill`; SIGINT: Ctrl-C) before the test; `resume_from`
    names the checkpoint that continues it ("" when none was written yet)."""

    def __init__(self, signum: signal.Signals, epoch: int, resume_from: str):
        self.signum, self.epoch, self.resume_from = signum, epoch, resume_from
        resume = f"Resume it with ckpt_path={resume_from}." if resume_from else "No checkpoint was written yet."
        super().__init__(f"training stopped by {signum.name} in epoch {epoch}, before the test. {resume}")


# --------------------------------------------------------------------------------------------- configs
def compose(task: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config of `seqrec <task>` for Hydra `overrides`, composed from the packaged configs as the command composes
    it (the `hydra` node included)."""
    try:
        with initialize_config_module("lightning_seqrec.configs", version_base="1.3"):
            return hydra_compose(task, overrides=list(overrides), return_hydra_config=True)
    except HydraException as err:
        raise ConfigError(f"The `seqrec {task}` config does not compose with these overrides: {err}") from err


@contextmanager
def hydra_runtime(cfg: DictConfig) -> Iterator[Path]:
    """Within the block, `${hydra:...}` in `cfg` resolves as inside the Hydra app, to a created run folder."""
    run_dir = Path(cfg.hydra.run.dir).absolute()
    run_dir.mkdir(parents=True, exist_ok=True)
    with read_write(cfg.hydra):  # read-only once an earlier block set it
        cfg.hydra.runtime.output_dir = str(run_dir)
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(cfg)
    try:
        yield run_dir
    finally:
        hydra_config.cfg = previous


def run_task(task: str, overrides: Sequence[str] = ()) -> RunResult:
    """Compose `seqrec <task>`'s config (`train` or `finetune`) for `overrides` and run it in this process."""
    tasks = {"train": train, "finetune": finetune}
    if task not in tasks:
        raise ConfigError(f"run_task runs {' or '.join(tasks)}, not {task!r}.")
    cfg = compose(task, overrides)
    with hydra_runtime(cfg):
        return tasks[task](cfg)


# --------------------------------------------------------------------------------------------- runs
def instantiate_dict(cfg: DictConfig | None) -> dict:
    """Each entry of a config group that holds several components (objectives, callbacks, loggers), built."""
    return {name: instantiate(conf) for name, conf in (cfg or {}).items() if conf is not None}


def build_data(cfg: DictConfig):
    """The configured DataModule, set up for fitting."""
    datamodule = instantiate(cfg)
    datamodule.setup("fit")
    return datamodule


def train(cfg: DictConfig) -> RunResult:
    """Build the data and model of a `seqrec train` config, fit, and test the best checkpoint."""
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_data(cfg.data)
    pretrained = {}
    if cfg.get("embeddings"):
        pretrained["pretrained_embeddings"] = instantiate(cfg.embeddings)(datamodule)
    module = instantiate(
        cfg.model,
        num_items=datamodule.num_items,
        objectives=instantiate_dict(cfg.objective),
        _convert_="all",
        **pretrained,
    )
    return fit_and_test(cfg, module, datamodule)


def finetune(cfg: DictConfig) -> RunResult:
    """Adapt a trained model (zoo name, Hub folder or `.ckpt`) to the data's catalog, then fit and test as `train`."""
    L.seed_everything(cfg.seed, workers=True)
    source = load_source(cfg.zoo)  # before the data, so a wrong name fails fast
    datamodule = build_data(cfg.data)
    module = adapt_to_data(
        source,
        datamodule,
        new_item_init=cfg.new_item_init,
        objectives=instantiate_dict(cfg.objective),
        lr=cfg.lr,
        seed=cfg.seed,
    )
    return fit_and_test(cfg, module, datamodule)


def fit_and_test(cfg: DictConfig, module, datamodule) -> RunResult:
    """Fit with the configured trainer, callbacks and loggers (resuming from `cfg.ckpt_path`), test the best
    checkpoint and write its metrics to `test_metrics.json` in `cfg.output_dir`. A run stopped by SIGTERM or Ctrl-C
    raises `RunStopped` naming the checkpoint to resume from, instead of ending as if it had finished."""
    module.data_config = OmegaConf.to_container(cfg.data, resolve=True)
    callbacks = list(instantiate_dict(cfg.get("callbacks")).values())
    if cfg.ckpt_path:
        continue_checkpoints(callbacks, Path(cfg.ckpt_path))
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=list(instantiate_dict(cfg.get("logger")).values()) or False,
        plugins=[SafeCheckpointIO()],  # resume and the test of the best checkpoint read through safe_load
    )
    for logger in trainer.loggers:  # the resolved config: W&B's run config, hparams.yaml of CSV and TensorBoard
        logger.log_hyperparams(plain_config(cfg))
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
    except SystemExit as stop:  # Lightning ends a run stopped by SIGTERM or Ctrl-C so: it would look finished
        if not trainer.interrupted:
            raise
        signum = signal.SIGTERM if isinstance(stop, SIGTERMException) else signal.SIGINT
        saved = [c.best_model_path for c in trainer.checkpoint_callbacks if not c.monitor and c.best_model_path]
        raise RunStopped(signum, trainer.current_epoch, saved[0] if saved else "") from stop
    metrics, best = {}, ""
    if cfg.test:
        monitored = [c for c in trainer.checkpoint_callbacks if c.monitor]  # not the every-epoch last.ckpt
        best = monitored[0].best_model_path if monitored else ""
        tested = trainer.test(module, datamodule=datamodule, ckpt_path=best or None, verbose=False, weights_only=True)
        metrics = tested[0]
        if trainer.is_global_zero:  # machine-readable copy for sweeps and benchmark scripts
            write_metrics(Path(cfg.output_dir, METRICS_FILE), metrics)
    if trainer.is_global_zero and module.vocab is None:
        module.attach_data(datamodule)  # ddp_spawn fitted and tested in child processes: the weights came back only
    return RunResult(metrics, best, module, datamodule, trainer.is_global_zero)


def plain_config(cfg: DictConfig) -> dict:
    """The config as plain data without the `hydra` node (resolved inside `hydra_runtime` or the Hydra app)."""
    return {
        key: OmegaConf.to_container(cfg[key], resolve=True) if OmegaConf.is_config(cfg[key]) else cfg[key]
        for key in cfg
        if key != "hydra"
    }


def write_metrics(path: Path, metrics: dict) -> None:
    """`metrics` as strict JSON, a non-finite value (NaN: e.g. the HR of a popularity bucket no test target falls
    in) written as null: NaN is not JSON, and strict readers refuse the whole file."""
    finite = {name: float(value) if math.isfinite(value) else None for name, value in metrics.items()}
    path.write_text(json.dumps(finite, indent=2, allow_nan=False))


def continue_checkpoints(callbacks: list, ckpt: Path) -> None:
    """A resumed run writes its checkpoints next to the one it resumes from. Lightning restores a checkpoint
    callback's best score and top-k only into the folder they were saved in: in a new folder the resumed run would
    forget its best epoch so far, and the test would score whichever epoch came after the resume."""
    if not ckpt.is_file():
        raise SeqRecError(f"ckpt_path={ckpt} is not a file; pass the run's checkpoints/last.ckpt to resume it.")
    read_checkpoint(ckpt)  # refuse a corrupt, foreign or pickled file now, with one line, before any training
    folder = os.path.realpath(ckpt.parent)
    for callback in callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath != folder:
            log.info("Resuming from %s: checkpoints continue in %s, with its best so far.", ckpt, folder)
            callback.dirpath = folder
