"""Lightning's CSVLogger with a metrics writer that keeps the columns already in metrics.csv.

Under `trainer=ddp_spawn` each of fit and test runs in freshly spawned processes holding a copy of the parent's
writer, which never saw the fit's columns: Lightning's writer then rewrites the file with the test's columns only
and fails ("dict contains fields not in fieldnames"). This writer reads the file's header before adding columns.
"""

from __future__ import annotations

import csv

from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _HeaderKeepingWriter(ExperimentWriter):
    """A metrics writer whose known columns start with those of an existing metrics.csv."""

    def _record_new_keys(self) -> set[str]:
        if not self.metrics_keys and self._fs.isfile(self.metrics_file_path):  # a copy that has not seen the file
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                header = next(csv.reader(file), [])
            self.metrics_keys = sorted(set(self.metrics_keys) | set(header))
        return super()._record_new_keys()


class CSVLogger(_LightningCSVLogger):
    """`logger=csv`: metrics.csv and hparams.yaml in the run folder, correct across spawned fit and test phases."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _HeaderKeepingWriter(log_dir=self.log_dir)
        return self._experiment
