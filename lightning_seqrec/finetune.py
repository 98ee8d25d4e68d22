"""Fine-tuning: carry a trained model onto another dataset whose item catalog partly differs.

`adapt_to_data` builds the same architecture for the new catalog, copies the backbone and the embedding of
every item both catalogs share (matched by raw ID), and starts the other items by a documented rule;
`FreezeBackbone` keeps the backbone fixed for the first epochs while the item embeddings settle.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback

from lightning_seqrec import hub
from lightning_seqrec.checkpoint import load_checkpoint
from lightning_seqrec.data.vocab import ItemVocab
from lightning_seqrec.errors import ConfigError
from lightning_seqrec.modules import SeqRecModule
from lightning_seqrec.objectives import Objective

log = logging.getLogger(__name__)

FINETUNE_LR = 3e-4
"""Default fine-tuning learning rate: a third of the from-scratch 1e-3, so transferred weights are refined
rather than overwritten in the first steps."""
NEW_ITEM_RULES = ("mean", "normal")
MEAN_INIT_NOISE = 0.1
"""Noise scale of the `mean` rule, as a fraction of the source embeddings' per-dimension std."""
SHAPE_KEYS = frozenset(
    {"num_items", "backbone", "backbone_kwargs", "embedding_dim", "max_len", "pretrained_embeddings"}
)
"""Module arguments fixed by the source's weights (or by the new catalog), so not overridable."""


def load_source(name: str | Path) -> SeqRecModule:
    """The model to fine-tune: a Lightning `.ckpt` file (read with `weights_only=True`), or a Hub folder path,
    `local-dir:PATH`, `hf-hub:ORG/REPO[@REV]` or zoo name (safetensors only)."""
    if str(name).endswith(".ckpt"):
        return load_checkpoint(name)
    return hub.from_pretrained(name)


def adapt_to_data(
    source: SeqRecModule,
    datamodule,
    new_item_init: str = "mean",
    objectives: Mapping[str, Objective] | None = None,
    lr: float = FINETUNE_LR,
    **overrides,
) -> SeqRecModule:
    """A new `SeqRecModule` with `source`'s architecture for `datamodule`'s catalog (set up first), ready to fit.

    Every backbone weight is copied; items present in both vocabularies (same raw ID) keep their embedding
    rows exactly; the padding row stays zero. Items the source never saw start by `new_item_init`:

    - `"mean"` (default): the mean of the source's item embeddings plus Gaussian noise with, per dimension,
      0.1 x the source embeddings' std (drawn from the module's seed). A new item's dot-product score is then
      about the average of the known items' scores, so (by Jensen) its probability is at most about an average
      item's: new items neither flood the rankings, as a near-zero vector can when trained logits are mostly
      negative, nor start far from where the backbone's outputs live. The small noise keeps them distinct so
      training can pull them apart.
    - `"normal"`: the from-scratch initialisation, N(0, 0.02).

    `objectives` default to full cross-entropy: checkpoints and Hub folders do not keep objectives, so none
    are carried over. `lr` defaults to `FINETUNE_LR`; weight decay, `eval_ks` and `seed` are the source's
    unless `overrides` (any other `SeqRecModule` argument, e.g. `weight_decay`, `seed`, `mask_seen`) set them.
    A source with frozen embeddings gives a result with frozen embeddings, new items included: pass
    `freeze_embeddings=False` to train them. The result's `hparams["finetune"]` (saved in its checkpoints)
    records how many items were transferred and how many are new.
    """
    positions = _matched_positions(source, datamodule, new_item_init, overrides)
    settings = {"weight_decay": source.weight_decay, "eval_ks": source.eval_ks, "seed": source.seed}
    module = SeqRecModule(
        **{**source.architecture, **settings, **overrides, "num_items": datamodule.num_items, "lr": lr},
        objectives=objectives,
    )
    module.backbone.load_state_dict(source.backbone.state_dict())
    shared, new = np.flatnonzero(positions >= 0), np.flatnonzero(positions < 0)
    with torch.no_grad():
        weight, source_weight = module.item_embedding.weight, source.item_embedding.weight.detach()
        if new_item_init == "mean" and len(new):
            generator = torch.Generator().manual_seed(module.seed)
            weight[torch.from_numpy(new + 1)] = mean_rows(source_weight[1:].cpu(), len(new), generator).to(weight)
        weight[torch.from_numpy(shared + 1)] = source_weight[torch.from_numpy(positions[shared] + 1)].to(weight)
    module.attach_data(datamodule)
    module.hparams["finetune"] = {
        "source_items": len(source.vocab),
        "transferred_items": len(shared),
        "new_items": len(new),
        "new_item_init": new_item_init,
    }
    log.info(
        "Fine-tuning: %d of the data's %d items keep their embeddings from the source model (%d items); "
        "%d new items start by the %r rule.",
        len(shared),
        datamodule.num_items,
        len(source.vocab),
        len(new),
        new_item_init,
    )
    return module


def _matched_positions(source: SeqRecModule, datamodule, new_item_init: str, overrides: Mapping) -> np.ndarray:
    """`source_positions` of the data's items, after refusing what cannot transfer, each with its fix."""
    if new_item_init not in NEW_ITEM_RULES:
        raise ConfigError(f"new_item_init={new_item_init!r} is not valid; use one of {', '.join(NEW_ITEM_RULES)}.")
    fixed = sorted(SHAPE_KEYS & overrides.keys())
    if fixed:
        raise ConfigError(f"{', '.join(fixed)} are fixed by the source model's weights and the data; drop them.")
    if source.vocab is None:
        raise ConfigError(
            "The source model has no item vocabulary, so its items cannot be matched to the new catalog: load it "
            "with load_checkpoint / lightning_seqrec.hub.load, or train it on a datamodule first."
        )
    if datamodule.max_len > source.max_len:
        raise ConfigError(
            f"The data's max_len ({datamodule.max_len}) exceeds the {source.max_len} items the source model reads; "
            f"set the data's max_len to {source.max_len} or less (data.max_len={source.max_len} on the command line)."
        )
    positions = source_positions(source.vocab, datamodule.vocab)
    if not (positions >= 0).any():
        raise ConfigError(
            f"The data's {datamodule.num_items} items share no raw ID with the source model's {len(source.vocab)} "
            f"(e.g. {source.vocab.raw_ids[:3]!r} vs {datamodule.vocab.raw_ids[:3]!r}), so nothing would transfer. "
            "Map the item column to the source's IDs (a table's IDs are read as strings: data.int_ids=[item_id] "
            "reads integer ones), or train from scratch with `seqrec train`."
        )
    return positions


def source_positions(source: ItemVocab, target: ItemVocab) -> np.ndarray:
    """For each item of `target` (in index order), its 0-based position in `source`, or -1 when absent.

    Raw IDs match exactly, type included (42 and "42" differ), as the readers produce them.
    """
    return pd.Index(source.raw_ids, dtype=object).get_indexer(pd.Index(target.raw_ids, dtype=object))


def mean_rows(items: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` rows of the `mean` rule: the mean of `items [N, d]` plus N(0, (MEAN_INIT_NOISE x std)^2) noise."""
    mean, std = items.mean(0), items.std(0, correction=0)
    noise = torch.randn(count, items.shape[1], generator=generator, dtype=items.dtype)
    return mean + MEAN_INIT_NOISE * std * noise


class FreezeBackbone(Callback):
    """Keep `module.backbone` fixed for the first `epochs` epochs, then let it train; embeddings always train.

    New items start from a rule, not from training, so their first gradients are large and would disturb a
    backbone that already works; holding it for an epoch lets the embeddings settle first. The backbone's
    gradients are dropped before each optimizer step rather than switched off with `requires_grad`: the
    module's optimizer already holds every parameter (Lightning's `BaseFinetuning` expects frozen parameters to
    be left out of it and added later) and DDP must see the same trainable set throughout. AdamW skips
    parameters without a gradient, weight decay included, so the backbone stays exactly as it was; the rule
    depends on the epoch only, so a resumed run behaves like one that never stopped.
    """

    def __init__(self, epochs: int = 1):
        if epochs < 0:
            raise ConfigError(f"FreezeBackbone(epochs={epochs}): the number of frozen epochs must be >= 0.")
        self.epochs = epochs

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if trainer.current_epoch < self.epochs:
            for param in pl_module.backbone.parameters():
                param.grad = None
