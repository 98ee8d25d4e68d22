"""`DiversityMetrics`: NDCG@k, Gini of exposure and catalog coverage of the top-k lists, plus a long-tail
exposure plot (recommendations per item, sorted) saved as PNG and sent to loggers that take images."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor, nn

from lightning_seqrec.metrics.beyond_accuracy import CatalogCoverage, Gini
from lightning_seqrec.metrics.ranking import NDCG, target_ranks


class DiversityMetrics(L.Callback):
    """Measures accuracy and diversity of the top-`k` lists at the end of each validation / test epoch.

    It reuses the ranks and top-k lists a `SeqRecModule` evaluation step returns (no second scoring pass); for
    other modules, or a k above the module's largest cutoff, it scores the batch through `module.score(batch)`.
    Metrics are logged as `<stage>/diversity/{ndcg,gini,coverage}@k`; the plot goes to `output_dir` (default:
    the trainer's log directory) as `exposure_<stage>_epoch<NNN>.png`. `update`/`compute`/`save_plot` also
    work by hand on top-k lists built elsewhere.
    """

    def __init__(self, k: int = 10, num_items: int | None = None, output_dir: str | None = None, plot: bool = True):
        self.k, self.output_dir, self.plot = k, output_dir, plot
        self.metrics: nn.ModuleDict | None = None
        self.last_plot: Path | None = None
        if num_items is not None:
            self.reset(num_items)

    def reset(self, num_items: int, device: torch.device | str = "cpu") -> None:
        """Fresh metric states for a catalog of `num_items` real items."""
        self.metrics = nn.ModuleDict(
            {
                f"ndcg@{self.k}": NDCG(self.k),
                f"gini@{self.k}": Gini(self.k, num_items),
                f"coverage@{self.k}": CatalogCoverage(self.k, num_items),
            }
        ).to(device)

    def update(self, topk_items: Tensor, ranks: Tensor | None = None) -> None:
        """Add top-k lists `[B, K]` (item indices, 0 = none) and, for NDCG, the targets' 0-based ranks `[B]`."""
        self.metrics[f"gini@{self.k}"].update(topk_items)
        self.metrics[f"coverage@{self.k}"].update(topk_items)
        if ranks is not None:
            self.metrics[f"ndcg@{self.k}"].update(ranks)

    def compute(self) -> dict[str, Tensor]:
        """The metrics seen so far (NDCG only when ranks were given), synchronised across processes."""
        return {name: m.compute() for name, m in self.metrics.items() if m.update_count > 0}

    def exposure(self) -> Tensor:
        """Recommendation count of every real item, most exposed first: the long-tail curve."""
        return self.metrics[f"gini@{self.k}"].counts[1:].sort(descending=True).values.cpu()

    def save_plot(self, path: str | Path, title: str = "") -> Path:
        """Write the long-tail exposure plot to `path` (PNG); matplotlib is imported only here."""
        from matplotlib.figure import Figure

        counts = self.exposure().numpy()
        figure = Figure(figsize=(6, 4))
        axes = figure.subplots()
        axes.plot(range(1, len(counts) + 1), counts)
        axes.fill_between(range(1, len(counts) + 1), counts, alpha=0.3)
        axes.set(xlabel="item rank by exposure", ylabel=f"times in top-{self.k}", title=title or "exposure")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=100)
        return path

    # ----------------------------------------------------------------- lightning hooks
    def _start(self, pl_module: L.LightningModule) -> None:
        self.reset(pl_module.num_items, pl_module.device)

    @torch.no_grad()
    def _batch(self, pl_module: L.LightningModule, batch: dict, outputs) -> None:
        k = min(self.k, pl_module.num_items)
        if isinstance(outputs, dict) and "topk_items" in outputs and outputs["topk_items"].shape[1] >= k:
            self.update(outputs["topk_items"][:, :k], outputs["ranks"])  # the module's own ranking of this batch
            return
        scores = pl_module.score(batch)
        top_scores, top_index = scores[:, 1:].topk(k, dim=1)
        self.update(torch.where(top_scores == float("-inf"), 0, top_index + 1), target_ranks(scores, batch["target"]))

    def _end(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for name, value in self.compute().items():
            pl_module.log(f"{stage}/diversity/{name}", value.float())
        if not self.plot:
            return
        folder = Path(self.output_dir or trainer.log_dir or trainer.default_root_dir)  # log_dir: a collective in DDP
        if not trainer.is_global_zero:
            return
        title = f"{stage} exposure, epoch {trainer.current_epoch}"
        self.last_plot = self.save_plot(folder / f"exposure_{stage}_epoch{trainer.current_epoch:03d}.png", title)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):  # W&B, Neptune, ... take image files
                logger.log_image(key=f"{stage}/diversity/exposure", images=[str(self.last_plot)])

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._start(pl_module)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._batch(pl_module, batch, outputs)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._end(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start(pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._batch(pl_module, batch, outputs)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._end(trainer, pl_module, "test")
