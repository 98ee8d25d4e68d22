"""`WeakPositiveMiner`: mines RCL's weak positives (similar sequences with another target) during training."""

from __future__ import annotations

import math
import time

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from lightning_seqrec.errors import ConfigError
from lightning_seqrec.objectives.positives import (
    EmbeddingCosine,
    NgramJaccard,
    TfidfCosine,
    WeakPositiveTable,
    mine_weak_positives,
)
from lightning_seqrec.objectives.view import ModelView
from lightning_seqrec.objectives.windows import encode_windows, input_windows

METHODS = ("ngram", "tfidf", "embedding")


def rcl_objectives(pl_module: L.LightningModule) -> list:
    """The module's objectives that take weak positives (those with `set_weak_positives`, e.g. RelativeContrastive)."""
    return [o for o in pl_module.objectives.values() if callable(getattr(o, "set_weak_positives", None))]


def all_gather_objects(obj) -> list:
    """`[obj of rank 0, obj of rank 1, ...]` under torch.distributed, `[obj]` in a single process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return [obj]
    gathered = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, obj)
    return gathered


class WeakPositiveMiner(L.Callback):
    """Mines each training window's weak positives for the module's `RelativeContrastive` objectives.

    A weak positive of window u is one of its top-⌈α·N⌉ most similar windows (capped at `max_neighbours`
    to bound memory) whose target differs from u's and whose similarity is > 0; the objective samples one
    per step ∝ similarity. Methods:

    - `ngram`: Jaccard of the sets of 1..n-grams (the paper's best measure is 2-gram; n = 1 is item-set
      Jaccard). `tfidf`: cosine of TF-IDF vectors over 1..n-grams. Both are exact sparse products
      X[block] @ Xᵀ (scipy.sparse) over blocks of `block_size` anchors with a vectorised top-k per row: the
      cost follows the number of overlapping pairs, not N², and memory stays bounded by one block. These
      similarities never change, so they are mined once, at fit start.
    - `embedding`: cosine of the model's own sequence representations, exact inner-product search in FAISS
      (a flat index: 150k x 64 needs no approximation); mined at fit start from the model as it is then
      (untrained unless fine-tuning) and again at the start of every `every_n_epochs`-th epoch, since the
      representations move as the model trains.

    Exact methods are used rather than LSH: their cost extrapolates to minutes for 150,000 sequences on 2
    cores (benchmarks/mining_scale.py measures it), so an approximation would only add a recall loss to tune.
    The strong positives (same target) need no mining: each objective indexes them by target in its `setup`.
    `RelativeContrastive` brings one of these (its `mining` settings) through `SeqRecModule.configure_callbacks`;
    one configured in the Trainer's callbacks is used instead, and a single miner feeds every RCL objective.
    Under DDP every rank mines a strided shard of the anchors (and, for `embedding`, encodes a strided shard
    of the windows), then the shards are all-gathered, so every rank holds the same table; in a single
    process it simply runs.
    """

    def __init__(
        self,
        method: str = "ngram",
        n: int = 2,
        every_n_epochs: int = 1,
        max_neighbours: int = 256,
        block_size: int = 2048,
        batch_size: int = 1024,
    ):
        if method not in METHODS:
            raise ConfigError(f"Unknown weak-positive similarity {method!r}; use one of {METHODS}.")
        if n < 1 or every_n_epochs < 1 or max_neighbours < 1 or block_size < 1 or batch_size < 1:
            raise ConfigError("n, every_n_epochs, max_neighbours, block_size and batch_size must all be >= 1.")
        self.method, self.n, self.every_n_epochs = method, n, every_n_epochs
        self.max_neighbours, self.block_size, self.batch_size = max_neighbours, block_size, batch_size
        self.mined_epochs: list[int] = []  # epochs at whose start a table was mined

    def settings(self) -> dict:
        """The constructor arguments, e.g. to compare two miners."""
        names = ("method", "n", "every_n_epochs", "max_neighbours", "block_size", "batch_size")
        return {name: getattr(self, name) for name in names}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not rcl_objectives(pl_module):
            raise ConfigError(
                "WeakPositiveMiner feeds RelativeContrastive objectives; the module has none (objective=rcl)."
            )
        if getattr(trainer.datamodule, "train_tensors", None) is None:
            raise ConfigError(
                "WeakPositiveMiner reads the training windows of a SeqRecDataModule: fit with datamodule=..."
            )
        self.mine(trainer, pl_module)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        if self.method == "embedding" and epoch > 0 and epoch % self.every_n_epochs == 0:
            self.mine(trainer, pl_module)

    def mine(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Mine this rank's shard of anchors, gather every shard and hand the table to each RCL objective."""
        started = time.perf_counter()
        tensors = trainer.datamodule.train_tensors
        targets = tensors["target_seq"][:, -1].numpy()
        num = len(targets)
        anchors = np.arange(trainer.global_rank, num, trainer.world_size)
        similarity = self.similarity(pl_module, tensors, anchors)
        for objective in rcl_objectives(pl_module):
            table = self.table(similarity, targets, anchors, objective.alpha)
            objective.set_weak_positives(table, similarity)
        self.mined_epochs.append(trainer.current_epoch)
        seconds = time.perf_counter() - started
        rank_zero_info(
            f"WeakPositiveMiner: {self.method} weak positives of {num} windows in {seconds:.1f}s; "
            f"{(table.lengths > 0).mean():.1%} have at least one, {table.lengths.mean():.1f} on average."
        )

    def table(self, similarity, targets: np.ndarray, anchors: np.ndarray, alpha: float) -> WeakPositiveTable:
        """The weak positives of every window: this rank's `anchors` mined (top-⌈α·N⌉, capped at `max_neighbours`)
        and the ranks' shards gathered into one table."""
        k = min(math.ceil(alpha * len(targets)), self.max_neighbours)
        shard = mine_weak_positives(similarity, targets, anchors, k, self.block_size)
        return WeakPositiveTable.assemble(all_gather_objects((anchors, shard)), len(targets))

    def similarity(self, pl_module: L.LightningModule, tensors: dict, shard: np.ndarray):
        """The similarity measure over all training windows (`shard`: the windows this rank encodes)."""
        item_seq = tensors["item_seq"].numpy()
        if self.method == "ngram":
            return NgramJaccard(item_seq, self.n)
        if self.method == "tfidf":
            return TfidfCosine(item_seq, self.n)
        embeddings = np.empty((len(item_seq), ModelView(pl_module).embedding_dim), dtype=np.float32)
        for rows, part in all_gather_objects((shard, self.encode(pl_module, input_windows(tensors), shard))):
            embeddings[rows] = part
        return EmbeddingCosine(embeddings)

    @torch.no_grad()
    def encode(self, pl_module: L.LightningModule, windows: dict, ids: np.ndarray) -> np.ndarray:
        """Evaluation-mode representations of windows `ids`, in batches of similar length (little padding)."""
        was_training = pl_module.training
        pl_module.eval()
        model = ModelView(pl_module)
        try:
            lengths = (windows["item_seq"][ids] > 0).sum(1).numpy()
            order = np.argsort(lengths, kind="stable")
            out = np.empty((len(ids), model.embedding_dim), dtype=np.float32)
            for start in range(0, len(ids), self.batch_size):
                chunk = order[start : start + self.batch_size]
                out[chunk] = encode_windows(model, windows, torch.from_numpy(ids[chunk]), None).float().cpu().numpy()
            return out
        finally:
            pl_module.train(was_training)
