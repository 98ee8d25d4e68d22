"""`ZooPublisher`: writes a trained model's Hub folder, with its measured metrics, and pushes it when it can."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import huggingface_hub
import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from lightning_seqrec import hub
from lightning_seqrec.errors import ConfigError

STAGES = ("test", "val")


class ZooPublisher(L.Callback):
    """Writes `folder` with `hub.save_pretrained` once the metrics it records are measured, then pushes it.

    `metrics_from` picks those metrics and so the moment: `"test"` (default) writes when `trainer.test` ends,
    from the weights just tested (in `seqrec train` and `seqrec zoo build`, the best checkpoint) with every
    `test/*` metric; `"val"` writes when fit ends, from the weights as they are then with the last validation's
    `val/*` metrics. The card's dataset name, split protocol and data fingerprint come from the trainer's
    datamodule unless `dataset` is given; `recipe` is shown as given. Only global rank 0 writes. The folder is
    pushed to `repo_id` when one is set and a token is available (`token`, else `HF_TOKEN` or a stored
    `hf auth login`; prefer those to a token in a config file); otherwise the skipped push is logged.
    """

    def __init__(
        self,
        folder: str | Path,
        repo_id: str | None = None,
        token: str | None = None,
        fp16: bool = False,
        metrics_from: str = "test",
        dataset: str | Mapping[str, str] | None = None,
        recipe: str | None = None,
    ):
        if metrics_from not in STAGES:
            raise ConfigError(f"ZooPublisher(metrics_from={metrics_from!r}): use one of {', '.join(STAGES)}.")
        self.folder, self.repo_id, self.token, self.fp16 = Path(folder), repo_id, token, fp16
        self.metrics_from, self.dataset, self.recipe = metrics_from, dataset, recipe
        self.written: Path | None = None  # the folder, once written
        self.commit_url: str | None = None  # the Hub commit, once pushed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.dataset is None and not hasattr(trainer.datamodule, "fingerprint"):
            raise ConfigError(
                "ZooPublisher records the data a model was measured on: fit with datamodule=<a SeqRecDataModule>, "
                "or pass ZooPublisher(dataset={'name': ..., 'split': ...})."
            )

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.metrics_from == "val":
            self.publish(trainer, pl_module)
        else:
            rank_zero_info(f"ZooPublisher: {self.folder} is written when testing ends (metrics_from='test').")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.metrics_from == "test":
            self.publish(trainer, pl_module)

    def publish(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the folder from `pl_module` and the trainer's `<metrics_from>/*` metrics, then push or say why not."""
        if not trainer.is_global_zero:
            return
        prefix = f"{self.metrics_from}/"
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}
        dataset, fingerprint = self.dataset, None
        if dataset is None:
            datamodule = trainer.datamodule
            dataset = {"name": datamodule.interactions.name, "split": datamodule.split_name}
            fingerprint = datamodule.fingerprint()
        self.written = hub.save_pretrained(
            pl_module,
            self.folder,
            metrics=metrics,
            dataset=dataset,
            fingerprint=fingerprint,
            recipe=self.recipe,
            fp16=self.fp16,
        )
        rank_zero_info(f"ZooPublisher: wrote {self.written} ({len(metrics)} {self.metrics_from} metrics).")
        token = self.token or huggingface_hub.get_token()
        if self.repo_id and token:
            self.commit_url = hub.push_to_hub(self.written, self.repo_id, token=token).commit_url
            rank_zero_info(f"ZooPublisher: pushed to hf-hub:{self.repo_id} ({self.commit_url}).")
        else:
            reason = "no Hugging Face token (set HF_TOKEN or run `hf auth login`)" if self.repo_id else "no repo_id"
            rank_zero_info(f"ZooPublisher: push skipped: {reason}; the folder is ready for push_to_hub.")
