"""W&B tracking: `wandb_logger` (Lightning's WandbLogger, online with credentials and offline without) and
`WandbTracking`, the callback that adds what Lightning logs to W&B: sample recommendations with titles, the best
checkpoint as a model artifact, and the best validation score as the run's summary, which sweeps rank runs by."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning_seqrec.callbacks.zoo_publisher import ZooPublisher

OFFLINE_MODES = ("offline", "dryrun")


def has_credentials() -> bool:
    """Whether wandb finds credentials without asking: `WANDB_API_KEY`, an identity token file, or a netrc entry
    (written by `wandb login`) for the host of `WANDB_BASE_URL`."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", "~/.netrc")).expanduser()
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (netrc.NetrcParseError, OSError):
        return False


def wandb_logger(offline: bool | None = None, **kwargs) -> WandbLogger:
    """A `WandbLogger` (`kwargs` as Lightning's), offline when `offline=True`, when `WANDB_MODE` is offline or when
    no credentials are found, since an online run would stop to ask for a key; one line says which and why."""
    mode = os.environ.get("WANDB_MODE", "")
    where = f"{kwargs.get('save_dir') or '.'}/wandb"
    if kwargs.get("save_dir"):  # processes spawned by ddp_spawn attach to the run and write its media under WANDB_DIR
        os.environ["WANDB_DIR"] = str(kwargs["save_dir"])
    if offline is None:
        offline = mode in OFFLINE_MODES or (mode != "disabled" and not has_credentials())
        reason = f"WANDB_MODE={mode}" if mode in OFFLINE_MODES else "no W&B API key (WANDB_API_KEY or `wandb login`)"
    else:
        reason = f"offline={offline}"
    if mode == "disabled":
        rank_zero_info("W&B: disabled (WANDB_MODE=disabled); nothing is logged to W&B.")
    elif offline:
        rank_zero_info(f"W&B: offline ({reason}); the run is written to {where}, `wandb sync` uploads it later.")
    else:
        rank_zero_info(f"W&B: online, project {kwargs.get('project') or os.environ.get('WANDB_PROJECT')}.")
    logger = WandbLogger(offline=offline, **kwargs)
    if logger._wandb_init.get("anonymous") is None:  # Lightning always passes it; W&B >= 0.19 warns about any value
        del logger._wandb_init["anonymous"]
    return logger


class WandbTracking(L.Callback):
    """At the end of a run, on the global rank 0, logs to the trainer's `WandbLogger`:

    - `recommendations`, a `wandb.Table` of the top-`k` of the first `users` test users, each held-out item beside
      them (user, the last `history` items' titles, held-out item, rank, item ID, title, score, hit), ranked from
      the weights just tested with the module's own `mask_seen`;
    - the monitored best checkpoint as an artifact of type `model` (alias `best`) with its score and the test
      metrics as metadata, plus the Hub folder a `ZooPublisher` wrote when the run is a zoo build;
    - the best validation score as the summary value of the monitored metric (Lightning leaves the last epoch's).

    "End" is the test when `after_test` (the run tests after fitting), else the end of fit; the W&B run is then
    finished, so a later run in the same process starts its own. Metrics, images and the run config reach W&B
    through Lightning's logging.
    """

    def __init__(self, users: int = 5, k: int = 10, history: int = 5, after_test: bool = True):
        self.users, self.k, self.history, self.after_test = users, k, history, after_test
        self.artifact = None  # the logged model artifact, once logged

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == ("test" if self.after_test else "fit") and trainer.is_global_zero:
            for logger in self._loggers(trainer):
                self.log_run(trainer, pl_module, logger)
                logger.experiment.finish()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if trainer.is_global_zero:
            for logger in self._loggers(trainer):
                logger.experiment.finish(exit_code=1)

    @staticmethod
    def _loggers(trainer: L.Trainer) -> list[WandbLogger]:
        found = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not found:
            rank_zero_warn("WandbTracking logs to a WandbLogger, and the trainer has none: pass logger=wandb.")
        return found

    def log_run(self, trainer: L.Trainer, pl_module: L.LightningModule, logger: WandbLogger) -> None:
        """The table, the artifact and the best score of the finished run, to `logger`'s W&B run."""
        run = logger.experiment
        monitored = next((c for c in trainer.checkpoint_callbacks if c.monitor and c.best_model_path), None)
        if monitored is not None and monitored.best_model_score is not None:
            run.summary[monitored.monitor] = float(monitored.best_model_score)
        if hasattr(pl_module, "recommend") and trainer.datamodule is not None and self.users > 0:
            run.log({"recommendations": self.recommendations(pl_module, trainer.datamodule)})
        if monitored is not None:
            self.artifact = self.model_artifact(run, trainer, monitored)
            run.log_artifact(self.artifact, aliases=["best"])
        else:
            rank_zero_info("WandbTracking: no monitored checkpoint was written, so no model artifact is logged.")

    def recommendations(self, module, datamodule):
        """A `wandb.Table` with one row per recommended item of the first test users."""
        import wandb

        test = datamodule.split.test
        history, titles = test.history, module.item_titles
        vocab = module.vocab
        exclude_seen = bool(getattr(module, "mask_seen", True))
        table = wandb.Table(
            columns=["user", "recent history", "held-out item", "rank", "item_id", "title", "score", "hit"]
        )
        for row in range(min(self.users, len(history))):
            start, end = history.indptr[row], history.indptr[row + 1]
            items = vocab.decode(history.items[start:end])
            options = {}
            if getattr(module, "uses_time", False):
                options["timestamps"] = [history.times[start:end].tolist()]
            target = vocab.decode([int(test.targets[row])])[0]
            recent = " | ".join(titles.get(str(i), str(i)) for i in items[-self.history :])
            held_out = titles.get(str(target), str(target))
            top = module.recommend([items], k=self.k, exclude_seen=exclude_seen, **options)[0]
            for rank, entry in enumerate(top, start=1):
                item = entry["item_id"]
                title = entry.get("title", str(item))
                table.add_data(
                    str(history.users[row]), recent, held_out, rank, str(item), title, entry["score"], item == target
                )
        return table

    def model_artifact(self, run, trainer: L.Trainer, monitored: ModelCheckpoint):
        """The best checkpoint (`model.ckpt`) and a zoo build's Hub folder (`hub/`) as one `model` artifact."""
        import wandb

        tested = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        score = monitored.best_model_score
        metadata = {
            "checkpoint": Path(monitored.best_model_path).name,
            monitored.monitor: float(score) if score is not None else None,
            **tested,
        }
        artifact = wandb.Artifact(f"model-{run.id}", type="model", metadata=metadata)
        artifact.add_file(monitored.best_model_path, name="model.ckpt")
        for callback in trainer.callbacks:
            if isinstance(callback, ZooPublisher) and callback.written is not None:
                artifact.add_dir(str(callback.written), name="hub")
                artifact.metadata["zoo_folder"] = str(callback.written)
        return artifact
