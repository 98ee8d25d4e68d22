"""Keep the `seqrec` command's output to what the run has to say: the progress bar, our log lines, metrics and
recommendations, and every warning that points at a real problem.

Third-party libraries print tips and status lines at start-up that say nothing about the run (Lightning's
"GPU available: False", "TPU available", "LOCAL_RANK: 0 - CUDA_VISIBLE_DEVICES", a `litlogger` advertisement, "Seed
set to 42", "Restoring states from the checkpoint path"; FAISS's library-loading lines), and a few warnings whose
advice does not apply to how this library runs (each is named in `IGNORED_WARNINGS` with why). `quiet()` hides
exactly those: Lightning's own INFO lines (its WARNING lines and above still show, and so do the INFO lines of a
callback configured with `verbose=true` and those our code sends through `rank_zero_info`), FAISS's loader INFO lines,
and the listed warnings by message. Every other warning, ours included, still shows. `seqrec --debug` skips it.
"""

from __future__ import annotations

import logging
import os
import warnings

import lightning
from lightning_utilities.core import rank_zero

LIGHTNING_DIR = os.path.dirname(lightning.__file__) + os.sep
LIGHTNING_CALLBACKS_DIR = os.path.join(LIGHTNING_DIR, "pytorch", "callbacks") + os.sep

QUIET_LOGGERS = ("lightning.pytorch", "lightning.fabric", "faiss.loader")
"""Loggers whose INFO lines are start-up status, not news about the run: shown from WARNING up."""

VERBOSE_ON_REQUEST = ("lightning.pytorch.callbacks",)
"""Lightning loggers kept at INFO: its callbacks log there only when configured with `verbose=true`."""

IGNORED_WARNINGS = (
    # torch deprecated LeafSpec; Lightning's own _pytree.py still uses it on every fit and test (Lightning 2.6)
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    # a generic num_workers hint: the data's loaders are in memory and data.num_workers is the setting to change
    (r"The '\w+' does not have many workers", UserWarning),
    # a resumed run writes its checkpoints on into the folder it resumes from, on purpose (run.continue_checkpoints)
    (r"Checkpoint directory .* exists and is not empty", UserWarning),
    # under DDP: the val / test metrics are computed from metric states summed over the processes, the same everywhere
    (r"It is recommended to use `self.log\('(val|test)/", UserWarning),
)
"""(message regex, category) of third-party warnings that do not apply to the way this library runs."""

FLOWER_LOGGER = "flwr"

ENV = "SEQREC_QUIET"
"""Set to 1 by a quiet `seqrec` command, so that the processes it starts (DDP workers, Flower's simulated clients)
are quiet too: `import lightning_seqrec` calls `quiet()` there."""


def from_lightning_machinery(record: logging.LogRecord) -> bool:
    """Whether `record` is one of Lightning's own INFO (or DEBUG) lines, not from a Lightning callback.
    `rank_zero_info` logs under the caller's file name, so our code's messages sent through it are not."""
    path = os.path.abspath(record.pathname)
    return (
        record.levelno < logging.WARNING
        and path.startswith(LIGHTNING_DIR)
        and not path.startswith(LIGHTNING_CALLBACKS_DIR)
    )


def _keep(record: logging.LogRecord) -> bool:
    return not from_lightning_machinery(record)


def quiet() -> None:
    """Hide the start-up tips, status lines and inapplicable warnings named in this module, in this process and the
    ones it starts (idempotent)."""
    os.environ[ENV] = "1"
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in VERBOSE_ON_REQUEST:
        logging.getLogger(name).setLevel(logging.INFO)
    rank_zero_logger = rank_zero.log  # the logger behind rank_zero_info, for Lightning's calls and ours alike
    rank_zero_logger.setLevel(logging.INFO)
    if _keep not in rank_zero_logger.filters:
        rank_zero_logger.addFilter(_keep)
    for message, category in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    # Flower logs each line through a console handler of its own and passes it on to the root logger too, so each
    # line of `seqrec federated`'s round-by-round progress came out twice: once is enough.
    logging.getLogger(FLOWER_LOGGER).propagate = False
