"""The model summary `seqrec train` prints before fitting, in the style of our metrics table."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelSummary as LightningModelSummary
from lightning.pytorch.utilities.model_summary.model_summary import get_formatted_model_size, get_human_readable_count


class ModelSummary(LightningModelSummary):
    """Lightning's model summary as a plain table of the blocks that hold parameters and one line of totals.

    Lightning's own adds a FLOPs column, which reads 0 unless the module defines an `example_input_array` (ours take
    batches of several shapes, so none do), and counts of modules in train and eval mode; both are left out. The
    configs turn Lightning's default summary off (`trainer.enable_model_summary: false`) and bring this one in
    `callbacks=default`; `callbacks.model_summary.max_depth=2` lists the blocks' children too, 0 prints nothing.
    """

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._title = type(pl_module).__name__
        super().on_fit_start(trainer, pl_module)

    def summarize(
        self,
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs,
    ) -> None:
        """Print the table (Lightning calls this on the global rank 0 only)."""
        columns = dict(summary_data)
        table = zip(columns["Name"], columns["Type"], columns["Params"], strict=True)
        rows = [row for row in table if row[2].strip() != "0"]  # counts end in a unit column ("496  ", "6.8 K")
        frozen = total_parameters - trainable_parameters
        trainable = "all trainable" if not frozen else f"{_count(frozen)} frozen"
        print(
            f"\nmodel {self._title}: {_count(total_parameters)} parameters ({trainable}), "
            f"{get_formatted_model_size(model_size)} MB"
        )
        width = max((len(name) for name, _, _ in rows), default=0) + 2
        kinds = max((len(kind) for _, kind, _ in rows), default=0) + 2
        for name, kind, params in rows:
            print(f"  {name:<{width}}{kind:<{kinds}}{params:>8}".rstrip())
        print(flush=True)


def _count(number: int) -> str:
    return get_human_readable_count(number).strip()
